"""Wires reporting: settings, database, broker and HTTP app. Its features arrive in later issues;
today it runs as a healthy service with its database and broker connections."""

from fastapi import FastAPI

from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "0.1.0"


class ReportingSettings(ServiceSettings):
    model_config = service_settings("reporting")

    service_name: str = "reporting"
    port: int = 8005


def build_app(settings: ReportingSettings | None = None) -> FastAPI:
    runtime = ServiceRuntime(settings or ReportingSettings())
    return runtime.http_app(title="IDO reporting API", api_version=API_VERSION)
