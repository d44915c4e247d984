from services.reporting.bootstrap import ReportingSettings, build_app
from shared.runtime import serve

settings = ReportingSettings()
serve(build_app(settings), settings)
