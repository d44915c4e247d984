"""Reporting's one use case on the live side: project an event into the read models. It runs in
the consumer's unit of work, so the writes and the processed-event record commit together: an
event counts once or not at all."""

from typing import Any, Protocol
from uuid import UUID

from services.reporting.domain.projections import Changes, changes_of
from shared.events.envelope import CloudEvent


class Versions(Protocol):
    async def targets_of(self, event_ids: list[UUID], event_times: list[Any]) -> dict[int, list[int]]: ...


class ReadModels(Protocol):
    async def apply(self, version: int, changes: Changes) -> None: ...


class ProjectionUnitOfWork(Protocol):
    """What the projection needs of its unit of work (adapters.repository.ReportingUnitOfWork)."""

    @property
    def versions(self) -> Versions: ...
    @property
    def read_models(self) -> ReadModels: ...


async def on_event(event: CloudEvent, data: Any, *, uow: ProjectionUnitOfWork) -> None:
    """One event: a batch of one."""
    await on_events([(event, data)], uow=uow)


async def on_events(events: list[tuple[CloudEvent, Any]], *, uow: ProjectionUnitOfWork) -> None:
    """A batch of new events in one unit of work: folded into one set of changes per version
    (counters summed in memory), written with one upsert per table."""
    targets = await uow.versions.targets_of([e.id for e, _ in events], [e.time for e, _ in events])
    for version, positions in targets.items():
        await uow.read_models.apply(version, changes_of([events[i] for i in positions]))
