from services.subsidy.bootstrap import SubsidySettings, build_app
from shared.runtime import serve

settings = SubsidySettings()
serve(build_app(settings), settings)
