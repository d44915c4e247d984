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


def test_ido_db_setup_and_migrate_are_safe_to_repeat(infra):
    """The operator's commands, as `make up` runs them: a second run changes nothing."""
    import subprocess
    import sys
    from pathlib import Path

    ido = str(Path(sys.executable).parent / "ido")
    for command in (["db", "setup"], ["db", "migrate"], ["db", "migrate", "--service", "routing"]):
        result = subprocess.run([ido, *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert "0 objects created" in subprocess.run([ido, "db", "setup"], capture_output=True, text=True).stderr
    again = subprocess.run([ido, "db", "migrate"], capture_output=True, text=True).stderr
    assert again.count("0 migrations applied") == 5, again
