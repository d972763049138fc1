"""SvcsActivator: instance-method jobs resolved from an svcs registry, a container per job execution."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import svcs

import hivemind_jobs as hm
from hivemind_jobs.contrib.svcs import SvcsActivator
from tests.contrib import activation
from tests.contrib.activation import (
    EVENTS,
    NO_RETRIES,
    Connection,
    Greeting,
    NeedsArgument,
    Watch,
    clear_events,  # noqa: F401  (autouse)
    plain,
    position,
    record,
)
from tests.worker import jobs as worker_jobs


class Greeter(Greeting):
    def __init__(self, connection: Connection) -> None:
        self.connection = connection


class Unregistered:
    def run(self) -> None:
        record("ran", "unregistered")


def connection(svcs_container: svcs.Container) -> Iterator[Connection]:
    opened = Connection(svcs_container.get(hm.JobContext).job.id)
    record("open", opened.serial)
    yield opened
    opened.closed = True
    record("close", opened.serial)


def greeter(svcs_container: svcs.Container) -> Greeter:
    return Greeter(svcs_container.get(Connection))


async def async_connection(svcs_container: svcs.Container) -> AsyncIterator[Connection]:
    await asyncio.sleep(0)
    opened = Connection(svcs_container.get(hm.JobContext).job.id)
    record("open", opened.serial)
    yield opened
    await asyncio.sleep(0)
    opened.closed = True
    record("close", opened.serial)


async def async_greeter(svcs_container: svcs.Container) -> Greeter:
    return Greeter(await svcs_container.aget(Connection))


@pytest.fixture(params=["sync factories", "async factories"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[svcs.Registry]:
    async with svcs.Registry() as registry:
        if request.param == "sync factories":
            registry.register_factory(Connection, connection)
            registry.register_factory(Greeter, greeter)
        else:
            registry.register_factory(Connection, async_connection)
            registry.register_factory(Greeter, async_greeter)
        yield registry


async def run_colony(hive: hm.HiveMind, *, middleware: bool = False) -> hm.Colony:
    return await activation.run_colony(hive, __name__, middleware=middleware)


async def test_each_execution_gets_its_own_container_closed_after_the_job(
    sqlite_url: str, registry: svcs.Registry
) -> None:
    async with hm.HiveMind(sqlite_url, options=NO_RETRIES, activator=SvcsActivator(registry)) as hive:
        sync_id = await hive.jobs.create(hm.instance(Greeter).greet, "ada")
        async_id = await hive.jobs.create(hm.instance(Greeter).agreet, "bob")
        plain_id = await hive.jobs.create(plain, "no class")
        colony = await run_colony(hive)
        assert colony.succeeded == 3
        sync_job = await hive.jobs.get(sync_id)
        async_job = await hive.jobs.get(async_id)
        assert (await hive.jobs.get(plain_id)).state.result == "no class"
    sync_result, async_result = sync_job.state.result, async_job.state.result
    assert isinstance(sync_result, dict) and isinstance(async_result, dict)
    assert (sync_result["text"], async_result["text"]) == ("hello ada", "hello bob")
    # the factory read each execution's JobContext from the job's container
    assert (sync_result["job"], async_result["job"]) == (sync_id, async_id)
    assert sync_result["thread"] is False and async_result["thread"] is True  # a sync job runs in a thread
    # two executions, two connections, each still open while its job ran and closed after it
    assert sync_result["connection"] != async_result["connection"]
    assert sync_result["closed"] is False and async_result["closed"] is False
    for serial in (sync_result["connection"], async_result["connection"]):
        assert position(("open", serial)) < position(("ran", serial)) < position(("close", serial))
    assert len([event for event in EVENTS if event[0] == "close"]) == 2
    assert ("plain", "no class") in EVENTS


async def test_the_container_closes_after_a_failing_job_and_encloses_the_middleware(
    sqlite_url: str, registry: svcs.Registry
) -> None:
    async with hm.HiveMind(sqlite_url, options=NO_RETRIES, activator=SvcsActivator(registry)) as hive:
        job_id = await hive.jobs.create(hm.instance(Greeter).fail)
        await run_colony(hive, middleware=True)
        job = await hive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed)
    assert job.state.exception_type == "builtins.ValueError"
    serial = next(event[1] for event in EVENTS if event[0] == "open")
    assert job.state.message == f"failed on connection {serial}"
    happened = list(EVENTS)
    assert happened == [
        ("open", serial),
        ("middleware:before", job_id),
        ("ran", serial),
        ("middleware:saw", "ValueError", f"failed on connection {serial}"),
        ("middleware:after", job_id),
        ("close", serial),
    ]


async def test_a_class_the_registry_does_not_know_fails_the_job_readably(
    sqlite_url: str, registry: svcs.Registry
) -> None:
    async with hm.HiveMind(sqlite_url, activator=SvcsActivator(registry)) as hive:
        job_id = await hive.jobs.options(retry=hm.RetryPolicy(max_retries=3)).create(hm.instance(Unregistered).run)
        colony = await run_colony(hive)
        job = await hive.jobs.get(job_id)
    assert colony.failed == 1
    assert isinstance(job.state, hm.Failed)
    assert job.state.exception_type == "hivemind_jobs.errors.JobDefinitionError"
    assert job.state.message == (
        f"the svcs registry has no factory for {__name__}.Unregistered: register one "
        "(registry.register_factory(Unregistered, ...)) to run it as a job"
    )
    assert job.state.reason == "fatal error: not retried"
    assert EVENTS == []  # Unregistered() was not constructed behind the registry's back


async def test_a_target_outside_the_allow_list_fails_as_it_does_without_a_scope(
    tmp_path: Path, registry: svcs.Registry
) -> None:
    failures = []
    for name, activator in (("default", None), ("svcs", SvcsActivator(registry))):
        async with hm.HiveMind(f"sqlite:///{tmp_path / name}.db", options=NO_RETRIES, activator=activator) as hive:
            job_id = await hive.jobs.create(hm.instance(worker_jobs.Greeter).greet, "ada")
            await run_colony(hive, middleware=True)
            failed = (await hive.jobs.get(job_id)).state
        assert isinstance(failed, hm.Failed)
        failures.append((failed.exception_type, failed.message))
        # raised inside the middleware, where prepare_call raises it
        assert EVENTS[1][:2] == ("middleware:saw", "JobDefinitionError")
        assert not any(event[0] == "open" for event in EVENTS)
        EVENTS.clear()
    assert failures[0] == failures[1]
    assert "not allowed" in (failures[1][1] or "")


def test_activate_outside_a_job_constructs_the_class_or_says_why_it_cannot() -> None:
    activator = SvcsActivator(svcs.Registry())
    assert isinstance(activator.activate(Watch), Watch)
    with pytest.raises(hm.JobDefinitionError, match=r"NeedsArgument is activated outside a job's container"):
        activator.activate(NeedsArgument)
