"""Wires subsidy: settings, database, broker and HTTP app. Its features arrive in later issues;
today it runs as a healthy service with its database and broker connections."""

from fastapi import FastAPI

from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "0.1.0"


class SubsidySettings(ServiceSettings):
    model_config = service_settings("subsidy")

    service_name: str = "subsidy"
    port: int = 8004


def build_app(settings: SubsidySettings | None = None) -> FastAPI:
    runtime = ServiceRuntime(settings or SubsidySettings())
    return runtime.http_app(title="IDO subsidy API", api_version=API_VERSION)
