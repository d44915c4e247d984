from services.intake.bootstrap import IntakeSettings, build_app
from shared.runtime import serve

settings = IntakeSettings()
serve(build_app(settings), settings)
