from services.routing.bootstrap import RoutingSettings, build_app
from shared.runtime import serve

settings = RoutingSettings()
serve(build_app(settings), settings)
