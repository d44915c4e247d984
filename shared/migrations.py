"""Versioned schema migrations (yoyo-migrations): numbered SQL files, applied in order and
recorded in the database, under yoyo's lock so instances starting together apply them once.
The kernel's tables (outbox, processed events) come first, then the service's own files."""

from pathlib import Path
from urllib.parse import quote

from yoyo import get_backend, read_migrations

KERNEL = Path(__file__).resolve().parent / "migrations"


def _yoyo_url(database_url: str, passfile: Path) -> str:
    rest = database_url.split("://", 1)[1]
    separator = "&" if "?" in rest else "?"
    # libpq reads the password from the password file when the URL has none.
    return f"postgresql+psycopg://{rest}{separator}passfile={quote(str(passfile))}"


def apply(database_url: str, passfile: Path, directory: Path | None) -> list[str]:
    """Apply what is missing; return the ids applied. Safe to run from several instances."""
    backend = get_backend(_yoyo_url(database_url, passfile))
    sources = [str(KERNEL)] + ([str(directory)] if directory and directory.is_dir() else [])
    migrations = read_migrations(*sources)
    with backend.lock():
        missing = backend.to_apply(migrations)
        backend.apply_migrations(missing)
    return [m.id for m in missing]
