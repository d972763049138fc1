"""What every part of the storage conformance suite shares: the base class with the ``storage``
fixture, and builders of the rows the engine would write."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from hivemind_jobs.core.job import PropertyType
from hivemind_jobs.storage.protocol import (
    ColonyUpsert,
    JobGet,
    JobInsert,
    JobRecord,
    JobUpdate,
    PropertyRow,
    QueueClaim,
    QueuePointer,
    StateRow,
    Storage,
)

__all__ = [
    "LONG",
    "ConformanceBase",
    "StorageFactory",
    "colony_row",
    "every_property_type",
    "new_job",
    "state_row",
    "utc_now",
]

StorageFactory = Callable[[str], Storage]
LONG = timedelta(minutes=5)


def utc_now() -> datetime:
    return datetime.now(UTC)


def state_row(
    sequence: int,
    name: str,
    fields: dict[str, object] | None = None,
    reason: str | None = None,
    elected_at: datetime | None = None,
) -> StateRow:
    return StateRow(sequence, name, elected_at or utc_now(), reason, json.dumps(fields or {}))


def every_property_type(text: str, number: float, flag: bool) -> tuple[PropertyRow, ...]:
    """A property of each type, with the given text, float and bool values (the others fixed)."""
    return (
        PropertyRow("text", PropertyType.TEXT, text),
        PropertyRow("int", PropertyType.INT, -(2**62)),
        PropertyRow("float", PropertyType.FLOAT, number),
        PropertyRow("bool", PropertyType.BOOL, flag),
        PropertyRow("when", PropertyType.DATETIME, datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
        PropertyRow("tenant", PropertyType.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678")),
    )


def new_job(
    *,
    queue: str = "global",
    priority: int = 2,
    state: str = "Enqueued",
    enqueue: bool = True,
    execute_after: datetime | None = None,
    delay: timedelta | None = None,
    properties: tuple[PropertyRow, ...] = (),
    awaiting_parent: int | None = None,
    lock_owner: str | None = None,
    elected_at: datetime | None = None,
    function: str = "tests.sample:work",
) -> JobInsert:
    """A job row as the engine would insert it (Created, then ``state`` elected at ``elected_at``)."""
    execution_id = str(uuid.uuid4())
    return JobInsert(
        queue=queue,
        priority=priority,
        execution_id=execution_id,
        invocation=json.dumps({"v": 1, "target": function, "async": False, "args": {"n": 1}}),
        middleware="[]",
        function=function,
        states=(state_row(0, "Created", elected_at=elected_at), state_row(1, state, elected_at=elected_at)),
        properties=properties,
        enqueue=QueuePointer(queue, priority, execution_id, execute_after, delay=delay) if enqueue else None,
        awaiting_parent=awaiting_parent,
        lock_owner=lock_owner,
    )


def colony_row(
    colony_id: str,
    *,
    name: str = "colony",
    status: str = "running",
    state: dict[str, object] | None = None,
    last_progress_at: datetime | None = None,
) -> ColonyUpsert:
    """A colony's state as a running colony would write it."""
    return ColonyUpsert(
        id=colony_id,
        name=name,
        host="host-1",
        pid=4242,
        status=status,
        state=json.dumps(state or {}),
        last_progress_at=last_progress_at,
    )


class ConformanceBase:
    """The fixtures and helpers of the suite; each part of it subclasses this."""

    pytestmark = [pytest.mark.asyncio]

    @pytest.fixture
    def storage_factory(self) -> StorageFactory:  # pragma: no cover - replaced by each backend
        raise NotImplementedError("provide a storage_factory fixture")

    @pytest_asyncio.fixture
    async def storage(self, storage_factory: StorageFactory) -> AsyncIterator[Storage]:
        storage = storage_factory("hm_conf_")
        await storage.open()
        try:
            yield storage
        finally:
            await storage.close()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    async def insert(storage: Storage, *jobs: JobInsert) -> list[int]:
        async with storage.transaction() as tx:
            inserted = await tx.job_insert(list(jobs))
        return [row.id for row in inserted]

    @staticmethod
    async def get(storage: Storage, job_id: int, requester: str | None = None) -> object:
        async with storage.transaction(readonly=requester is None) as tx:
            return await tx.job_get(JobGet(job_id, lock_requester=requester))

    @staticmethod
    async def claim(
        storage: Storage, groups: tuple[tuple[str, ...], ...], limit: int, owner: str = "drone"
    ) -> list[int]:
        async with storage.transaction() as tx:
            return [job.job_id for job in await tx.queue_claim(QueueClaim(groups, limit, owner))]

    @staticmethod
    def _update(record: object, holder: str, **changes: object) -> JobUpdate:
        """A save of ``record`` by ``holder`` that changes nothing but ``changes``."""
        assert isinstance(record, JobRecord)
        base: dict[str, object] = {
            "job_id": record.id,
            "holder": holder,
            "expected_execution_id": record.execution_id,
            "lock_timeout": LONG,
            "queue": record.queue,
            "priority": record.priority,
            "execution_id": record.execution_id,
        }
        base.update(changes)
        return JobUpdate(**base)  # type: ignore[arg-type]
