"""What the courses integration tests share: a handler in its own unit of work, and a migrated
database that knows one library's IDO location and the course types."""

from datetime import UTC, datetime

from services.courses import handlers
from services.courses.adapters.repository import CoursesUnitOfWork
from services.courses.domain.model import DEFAULT_COURSE_TYPES
from shared.events.catalog import IdoLocationRegistered

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def within(db, handler, *args, **kwargs):
    """Run one handler in its own unit of work, as the HTTP entrypoint does."""
    async with db.unit_of_work() as tx:
        return await handler(*args, uow=CoursesUnitOfWork(tx), **kwargs)


async def register_location(db, library: str, code: str, postcode: str, city: str = "Ergens") -> None:
    data = IdoLocationRegistered(
        location_id=f"{library}:{code}",
        library=library,
        code=code,
        name=f"IDO {code}",
        postcode=postcode,
        city=city,
        opening_hours_per_week=10,
        staff=1,
        volunteers=1,
        registered_at=NOW,
    )
    await within(db, handlers.on_location_registered, None, data)


async def courses_database(migrated, library: str, postcode: str, city: str):
    """Courses' database with the library's `centrum` location and the course types."""
    db = await migrated("courses")
    await register_location(db, library, "centrum", postcode, city)
    await within(db, handlers.seed_course_types, DEFAULT_COURSE_TYPES)
    return db
