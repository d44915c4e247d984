from services.courses.bootstrap import CoursesSettings, build_app
from shared.runtime import serve

settings = CoursesSettings()
serve(build_app(settings), settings)
