"""Each service owns its database: its login role connects to its own database only, and
that database is closed to every other role (as `ido db setup` creates them)."""

import asyncpg
import pytest

from shared.db import connect
from shared.settings import SERVICES

pytestmark = pytest.mark.infra


async def test_a_service_role_reaches_its_own_database_and_no_other(infra):
    for service in SERVICES:
        own = await connect(infra.service_database_url(service), infra.pgpassfile)
        assert await own.fetchval("SELECT current_user") == f"ido_{service}"
        await own.close()
        for other in SERVICES:
            if other == service:
                continue
            url = infra.service_database_url(service).rsplit("/", 1)[0] + f"/ido_{other}"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connect(url, infra.pgpassfile)


async def test_a_service_role_is_no_superuser_and_cannot_create_roles_or_databases(infra):
    conn = await connect(infra.service_database_url("intake"), infra.pgpassfile)
    try:
        row = await conn.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        )
        assert tuple(row) == (False, False, False)
    finally:
        await conn.close()
