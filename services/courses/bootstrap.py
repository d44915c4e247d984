"""Wires courses: settings, database, broker and HTTP app. Its features arrive in later issues;
today it runs as a healthy service with its database and broker connections."""

from fastapi import FastAPI

from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "0.1.0"


class CoursesSettings(ServiceSettings):
    model_config = service_settings("courses")

    service_name: str = "courses"
    port: int = 8003


def build_app(settings: CoursesSettings | None = None) -> FastAPI:
    runtime = ServiceRuntime(settings or CoursesSettings())
    return runtime.http_app(title="IDO courses API", api_version=API_VERSION)
