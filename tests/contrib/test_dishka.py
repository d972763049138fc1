"""DishkaActivator: instance-method jobs resolved from a dishka container, a scope per job execution."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from dishka import AsyncContainer, Container, Provider, Scope, make_async_container, make_container, provide

import hivemind_jobs as hm
from hivemind_jobs.contrib.dishka import DishkaActivator, JobContextProvider
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


class Settings:
    """Provided once, in the root scope."""

    def __init__(self) -> None:
        self.greeting = "hello"


class Greeter(Greeting):
    def __init__(self, connection: Connection, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings

    @property
    def greeting(self) -> str:  # type: ignore[override]
        return self.settings.greeting


class Unprovided:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def run(self) -> None:
        record("ran", self.connection.serial)


class SyncProvider(Provider):
    settings = provide(Settings, scope=Scope.APP)
    greeter = provide(Greeter, scope=Scope.REQUEST)

    @provide(scope=Scope.REQUEST)
    def connection(self, context: hm.JobContext) -> Iterator[Connection]:
        connection = Connection(context.job.id)
        record("open", connection.serial)
        yield connection
        connection.closed = True
        record("close", connection.serial)


class AsyncProvider(Provider):
    settings = provide(Settings, scope=Scope.APP)
    greeter = provide(Greeter, scope=Scope.REQUEST)

    @provide(scope=Scope.REQUEST)
    async def connection(self, context: hm.JobContext) -> AsyncIterator[Connection]:
        await asyncio.sleep(0)
        connection = Connection(context.job.id)
        record("open", connection.serial)
        yield connection
        await asyncio.sleep(0)
        connection.closed = True
        record("close", connection.serial)


@pytest.fixture(params=["sync container", "async container"])
async def container(request: pytest.FixtureRequest) -> AsyncIterator[Container | AsyncContainer]:
    if request.param == "sync container":
        sync_container = make_container(SyncProvider(), JobContextProvider())
        yield sync_container
        sync_container.close()
    else:
        async_container = make_async_container(AsyncProvider(), JobContextProvider())
        yield async_container
        await async_container.close()


async def run_colony(hive: hm.HiveMind, *, middleware: bool = False) -> hm.Colony:
    return await activation.run_colony(hive, __name__, middleware=middleware)


async def test_each_execution_gets_its_own_scoped_dependency_closed_after_the_job(
    sqlite_url: str, container: Container | AsyncContainer
) -> None:
    async with hm.HiveMind(sqlite_url, options=NO_RETRIES, activator=DishkaActivator(container)) as hive:
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
    # the provider got each execution's JobContext
    assert (sync_result["job"], async_result["job"]) == (sync_id, async_id)
    assert sync_result["thread"] is False and async_result["thread"] is True  # a sync job runs in a thread
    # two executions, two connections, each still open while its job ran and closed after it
    assert sync_result["connection"] != async_result["connection"]
    assert sync_result["closed"] is False and async_result["closed"] is False
    for serial in (sync_result["connection"], async_result["connection"]):
        assert position(("open", serial)) < position(("ran", serial)) < position(("close", serial))
    serials = (sync_result["connection"], async_result["connection"])
    opened_and_closed = sorted(event for event in EVENTS if event[0] in ("open", "close"))
    assert opened_and_closed == sorted((kind, serial) for kind in ("open", "close") for serial in serials)
    assert ("plain", "no class") in EVENTS


async def test_the_scope_closes_after_a_failing_job_and_encloses_the_middleware(
    sqlite_url: str, container: Container | AsyncContainer
) -> None:
    async with hm.HiveMind(sqlite_url, options=NO_RETRIES, activator=DishkaActivator(container)) as hive:
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


async def test_a_class_the_container_cannot_resolve_fails_the_job_readably(
    sqlite_url: str, container: Container | AsyncContainer
) -> None:
    async with hm.HiveMind(sqlite_url, activator=DishkaActivator(container)) as hive:
        job_id = await hive.jobs.options(retry=hm.RetryPolicy(max_retries=3)).create(hm.instance(Unprovided).run)
        colony = await run_colony(hive)
        job = await hive.jobs.get(job_id)
    assert colony.failed == 1
    assert isinstance(job.state, hm.Failed)
    assert job.state.exception_type == "hivemind_jobs.errors.JobDefinitionError"
    message = job.state.message or ""
    assert message.startswith(f"the dishka container cannot resolve {__name__}.Unprovided in a job's scope: ")
    assert "Cannot find factory for (Unprovided" in message
    assert job.state.reason == "fatal error: not retried"
    assert not any(event[0] == "ran" for event in EVENTS)


async def test_a_target_outside_the_allow_list_fails_as_it_does_without_a_scope(
    tmp_path: Path, container: Container | AsyncContainer
) -> None:
    failures = []
    for name, activator in (("default", None), ("dishka", DishkaActivator(container))):
        async with hm.HiveMind(f"sqlite:///{tmp_path / name}.db", options=NO_RETRIES, activator=activator) as hive:
            job_id = await hive.jobs.create(hm.instance(worker_jobs.Greeter).greet, "ada")
            await run_colony(hive, middleware=True)
            failed = (await hive.jobs.get(job_id)).state
        assert isinstance(failed, hm.Failed)
        failures.append((failed.exception_type, failed.message))
        # raised inside the middleware, where prepare_call raises it
        assert EVENTS[1][:2] == ("middleware:saw", "JobDefinitionError")
        assert not any(event[0] == "open" for event in EVENTS)  # no scope was entered
        EVENTS.clear()
    assert failures[0] == failures[1]
    assert "not allowed" in (failures[1][1] or "")


def test_activate_outside_a_scope_uses_the_root_container_then_a_plain_construction() -> None:
    sync_container = make_container(SyncProvider(), JobContextProvider())
    try:
        activator = DishkaActivator(sync_container)
        settings = activator.activate(Settings)
        assert settings is sync_container.get(Settings)  # the root scope's instance
        assert isinstance(activator.activate(Watch), Watch)  # not provided: constructed
        with pytest.raises(hm.JobDefinitionError, match=r"NeedsArgument is not provided by the dishka container's"):
            activator.activate(NeedsArgument)
    finally:
        sync_container.close()


async def test_activate_outside_a_scope_with_an_async_container_constructs_the_class() -> None:
    async_container = make_async_container(AsyncProvider(), JobContextProvider())
    try:
        activator = DishkaActivator(async_container)
        assert isinstance(activator.activate(Watch), Watch)
        with pytest.raises(hm.JobDefinitionError, match=r"an async container cannot resolve it"):
            activator.activate(NeedsArgument)
    finally:
        await async_container.close()
