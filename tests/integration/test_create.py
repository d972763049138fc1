"""Creating jobs: every kind of callable, every option, validated before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

import hivemind_jobs as hm
from tests import backends
from tests import sample_jobs as jobs


def raw_count(db_url: str, table: str) -> int:
    return backends.count(db_url, table)


async def test_every_kind_of_callable_becomes_a_job(hive: hm.HiveMind) -> None:
    created = {
        "function": await hive.jobs.create(jobs.hello_world, "world"),
        "async": await hive.jobs.create(jobs.async_job, "entity"),
        "static": await hive.jobs.create(jobs.ConsoleWriterJob.static_run, 1),
        "classmethod": await hive.jobs.create(jobs.ConsoleWriterJob.class_run, 2),
        "instance": await hive.jobs.create(hm.instance(jobs.ConsoleWriterJob).run, "text"),
        "async instance": await hive.jobs.create(hm.instance(jobs.ConsoleWriterJob).run_async, "text"),
    }
    assert len(set(created.values())) == len(created)
    loaded = {kind: await hive.jobs.get(job_id) for kind, job_id in created.items()}
    assert loaded["function"].invocation.target == "tests.sample_jobs:hello_world"
    assert loaded["async"].invocation.is_async and loaded["async"].invocation.arguments == {"entity_id": "entity"}
    assert loaded["static"].invocation.target == "tests.sample_jobs:ConsoleWriterJob.static_run"
    assert loaded["instance"].invocation.method == "run"
    for job in loaded.values():
        assert isinstance(job.state, hm.Enqueued)
        assert [state.name for state in job.states] == ["Created", "Enqueued"]
        assert job.queue == "global" and job.priority is hm.Priority.NORMAL
        assert job.created_at is not None and job.created_at.tzinfo is not None


async def test_default_placement_is_global_normal_and_claimable(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    stats = await hive.jobs.queue_stats()
    assert [(s.queue, s.priority, s.ready) for s in stats] == [("global", 2, 1)]
    assert (await hive.jobs.count_by_state()) == {"Enqueued": 1}
    job = await hive.jobs.get(job_id)
    assert job.execution_id == job.execution_id  # stable on read


async def test_queues_and_priorities(hive: hm.HiveMind) -> None:
    created = [
        await hive.jobs.options(priority=hm.Priority.CRITICAL).create(jobs.do_stuff),
        await hive.jobs.options(queue="Finalize", priority=hm.Priority.HIGH).create(jobs.do_stuff),
        await hive.jobs.options(queue="Process", priority="normal").create(jobs.do_stuff),
        await hive.jobs.options(queue="Initialize", priority=3).create(jobs.do_stuff),
        await hive.jobs.options(queue="Maintenance", priority=hm.Priority.NONE).create(jobs.do_stuff),
    ]
    placed = [((job := await hive.jobs.get(job_id)).queue, job.priority) for job_id in created]
    assert placed == [
        ("global", hm.Priority.CRITICAL),
        ("Finalize", hm.Priority.HIGH),
        ("Process", hm.Priority.NORMAL),
        ("Initialize", hm.Priority.LOW),
        ("Maintenance", hm.Priority.NONE),
    ]


async def test_delayed_jobs_are_enqueued_but_not_ready(hive: hm.HiveMind) -> None:
    until = datetime.now(UTC) + timedelta(hours=8)
    by_date = await hive.jobs.options(delay_until=until).create(jobs.do_stuff)
    by_delay = await hive.jobs.options(delay=timedelta(minutes=5)).create(jobs.do_stuff)
    first, second = await hive.jobs.get(by_date), await hive.jobs.get(by_delay)
    assert isinstance(first.state, hm.Enqueued) and first.state.delay_until == until
    assert isinstance(second.state, hm.Enqueued) and second.state.delay_until is None
    assert second.state.delay == timedelta(minutes=5)  # relative: measured on the database clock
    stats = await hive.jobs.queue_stats()
    assert [(s.ready, s.delayed) for s in stats] == [(0, 2)]


async def test_properties_are_typed(hive: hm.HiveMind) -> None:
    tenant = UUID(int=42)
    when = datetime(2031, 1, 1, tzinfo=UTC)
    job_id = await hive.jobs.options(
        properties={"tenant": tenant, "count": 3, "ratio": 0.5, "vip": True, "when": when, "name": "acme"}
    ).create(jobs.do_stuff)
    job = await hive.jobs.get(job_id)
    assert job.properties == {"tenant": tenant, "count": 3, "ratio": 0.5, "vip": True, "when": when, "name": "acme"}
    assert isinstance(job.get_property("tenant"), UUID) and job.get_property("missing", "default") == "default"


async def test_middleware_entries_are_stored_in_order(hive: hm.HiveMind) -> None:
    job_id = (
        await hive.jobs.options(
            middleware=[hm.Middleware(jobs.ExampleMiddleware, "I'm input for the middleware", priority=12)]
        )
        .options(middleware=[hm.Middleware(jobs.ExampleMiddleware, {"limit": 3})])
        .create(jobs.do_stuff)
    )
    job = await hive.jobs.get(job_id)
    assert [(entry.type_name, entry.input, entry.priority) for entry in job.middleware] == [
        ("tests.sample_jobs:ExampleMiddleware", "I'm input for the middleware", 12),
        ("tests.sample_jobs:ExampleMiddleware", {"limit": 3}, None),
    ]


async def test_initial_state_option(hive: hm.HiveMind) -> None:
    idle = await hive.jobs.options(state=hm.Idle(reason="parked")).create(jobs.do_stuff)
    failed = await hive.jobs.options(state=hm.Failed(message="imported as failed")).create(jobs.do_stuff)
    assert isinstance((await hive.jobs.get(idle)).state, hm.Idle)
    assert (await hive.jobs.get(failed)).state.reason is None
    assert (await hive.jobs.queue_stats()) == []  # neither is queued
    client = hive.jobs.options(state=hm.Idle())
    await client.create(jobs.do_stuff)
    await client.create(jobs.do_stuff)  # the same options create twice: a fresh state each time


async def test_rich_arguments_are_stored_as_tagged_json(hive: hm.HiveMind) -> None:
    invoice = jobs.Invoice(7, Decimal("9.99"), datetime(2030, 1, 1, tzinfo=UTC))
    job_id = await hive.jobs.create(
        jobs.everything,
        invoice,
        jobs.Color.RED,
        datetime(2030, 1, 1, tzinfo=UTC),
        timedelta(1),
        UUID(int=1),
        b"x",
        (1, "a"),
        {"t"},
        {1: "x"},
    )
    arguments = (await hive.jobs.get(job_id)).invocation.arguments
    assert arguments["invoice"]["$hm"] == "dataclass" and arguments["color"] == {
        "$hm": "enum",
        "c": "tests.sample_jobs:Color",
        "v": "red",
    }


async def test_create_many_is_one_transaction(hive: hm.HiveMind, db_url: str) -> None:
    ids = await hive.jobs.options(queue="bulk").create_many(hm.call(jobs.add, i) for i in range(50))
    assert len(ids) == 50 and ids == sorted(ids)
    assert raw_count(db_url, "job") == 50
    with pytest.raises(hm.ArgumentBindingError):
        await hive.jobs.create_many([hm.call(jobs.add, 1), hm.call(jobs.add, "bad")])  # type: ignore[arg-type]
    assert raw_count(db_url, "job") == 50  # all or nothing
    assert await hive.jobs.create_many([]) == []


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda h: h.jobs.create(jobs.add), hm.ArgumentBindingError),
        (lambda h: h.jobs.create(jobs.add, "one"), hm.ArgumentBindingError),
        (lambda h: h.jobs.create(jobs.hello_world, object()), hm.ArgumentBindingError),
        (lambda h: h.jobs.create(jobs.ConsoleWriterJob.run, "x"), hm.JobDefinitionError),
        (lambda h: h.jobs.create(lambda: None), hm.JobDefinitionError),
        (lambda h: h.jobs.options(queue="bad queue").create(jobs.do_stuff), hm.InvalidNameError),
        (lambda h: h.jobs.options(priority=9).create(jobs.do_stuff), hm.ConfigurationError),
        (lambda h: h.jobs.options(properties={"bad name!": 1}).create(jobs.do_stuff), hm.InvalidNameError),
        (lambda h: h.jobs.options(properties={"blob": b"x"}).create(jobs.do_stuff), hm.ConfigurationError),
        (
            lambda h: h.jobs.options(properties={"when": datetime(2030, 1, 1)}).create(jobs.do_stuff),
            hm.ConfigurationError,
        ),
        (lambda h: h.jobs.options(delay=timedelta(-1)).create(jobs.do_stuff), hm.ConfigurationError),
        (lambda h: h.jobs.options(delay_until=datetime(2030, 1, 1)).create(jobs.do_stuff), hm.ConfigurationError),
        (lambda h: h.jobs.options(delay=timedelta(1), state=hm.Idle()).create(jobs.do_stuff), hm.ConfigurationError),
        (lambda h: h.jobs.options(state=hm.Created()).create(jobs.do_stuff), hm.ConfigurationError),
        (
            lambda h: h.jobs.options(middleware=[hm.Middleware(jobs.ExampleMiddleware, object())]).create(
                jobs.do_stuff
            ),
            hm.SerializationError,
        ),
        (lambda h: h.jobs.options(after=hm.After(999)).create(jobs.do_stuff), hm.JobNotFoundError),
    ],
)
async def test_bad_input_raises_and_writes_nothing(
    hive: hm.HiveMind, db_url: str, build: object, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        await build(hive)  # type: ignore[operator]
    assert isinstance(raised.value, hm.HiveMindError)
    assert str(raised.value)  # a message that says what was wrong
    for table in ("job", "job_state", "job_property", "queue"):
        assert raw_count(db_url, table) == 0


async def test_job_files_live_where_the_url_says(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "jobs.db"
    async with hm.HiveMind(f"sqlite:///{path}") as hive:
        await hive.jobs.create(jobs.do_stuff)
    assert path.exists()
