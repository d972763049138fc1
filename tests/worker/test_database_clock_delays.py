"""Relative delays are measured on the database clock; a node whose clock is off is warned about.

Each hive here runs on a clock shifted by two minutes (behind or ahead of the database). A job
created with ``delay=``, a retry backoff and a continuation delay must still be due exactly that
long after the database's own now: the queue row is read with a separate connection and its due
time compared with its ``enqueued_at`` (stamped by the database clock in the same statement) and
with the database's clock read directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.clock import from_microseconds
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.lifecycle import services as environment_module
from hivemind_jobs.lifecycle.records import state_from_row, state_to_row
from tests import backends
from tests.worker import jobs
from tests.worker.conftest import colony_of

SKEWS = [pytest.param(timedelta(seconds=-120), id="behind"), pytest.param(timedelta(seconds=120), id="ahead")]
DELAY = timedelta(seconds=30)


class OffsetClock:
    """The system clock shifted by ``offset``: a node whose clock is wrong."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _moment(value: Any) -> datetime:
    """A timestamp as the drivers return it (integer microseconds, naive UTC or aware) as aware UTC."""
    if isinstance(value, int):
        return from_microseconds(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def database_now(url: str) -> datetime:
    if url.startswith("sqlite"):
        return datetime.now(UTC)  # SQLite's clock is this machine's
    if url.startswith("postgres"):
        return _moment(backends.raw(url, "SELECT statement_timestamp()")[0][0])
    return _moment(backends.raw(url, "SELECT UTC_TIMESTAMP(6)")[0][0])


def queue_row(url: str, job_id: int) -> tuple[datetime, datetime]:
    """The job's queue entry: (due time, enqueued at)."""
    rows = backends.raw(url, "SELECT execute_after, enqueued_at FROM {queue} WHERE job_id = ?", job_id)
    assert len(rows) == 1, f"job {job_id} has no queue entry"
    return _moment(rows[0][0]), _moment(rows[0][1])


def assert_due_on_database_clock(url: str, job_id: int, delay: timedelta) -> None:
    due, enqueued_at = queue_row(url, job_id)
    assert due - enqueued_at == delay, f"due {due - enqueued_at} after it was enqueued, expected {delay}"
    # enqueued_at is the database's now at the write: far from the skewed clock, close to the database's
    assert abs(database_now(url) - enqueued_at) < timedelta(seconds=30)
    assert timedelta(seconds=0) < due - database_now(url) <= delay


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- delays


@pytest.mark.parametrize("skew", SKEWS)
async def test_delay_at_creation_is_due_on_the_database_clock(db_url: str, skew: timedelta) -> None:
    async with hm.HiveMind(db_url, clock=OffsetClock(skew)) as hive:
        one = await hive.jobs.options(delay=DELAY).create(jobs.note, "one")
        many = await hive.jobs.options(delay=DELAY).create_many([hm.call(jobs.note, "a"), hm.call(jobs.note, "b")])
        async with hive.transaction() as tx:
            in_tx = await tx.jobs.options(delay=DELAY).create(jobs.note, "tx")
        for job_id in (one, *many, in_tx):
            assert_due_on_database_clock(db_url, job_id, DELAY)
        state = (await hive.jobs.get(one)).state
        assert isinstance(state, hm.Enqueued) and state.delay == DELAY and state.delay_until is None
        assert [(s.ready, s.delayed) for s in await hive.jobs.queue_stats()] == [(0, 4)]


@pytest.mark.parametrize("skew", SKEWS)
async def test_delay_until_stays_absolute(db_url: str, skew: timedelta) -> None:
    until_moment = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    async with hm.HiveMind(db_url, clock=OffsetClock(skew)) as hive:
        job_id = await hive.jobs.options(delay_until=until_moment).create(jobs.note, "x")
        assert queue_row(db_url, job_id)[0] == until_moment
        state = (await hive.jobs.get(job_id)).state
        assert isinstance(state, hm.Enqueued) and state.delay_until == until_moment and state.delay is None


@pytest.mark.parametrize("skew", SKEWS)
async def test_retry_delay_from_a_skewed_colony_is_due_on_the_database_clock(db_url: str, skew: timedelta) -> None:
    options = hm.Options(retry=hm.RetryPolicy(max_retries=1, delays=[DELAY]))
    async with hm.HiveMind(db_url, clock=OffsetClock(skew), options=options) as hive:
        job_id = await hive.jobs.create(jobs.boom, "fails once")

        async def retried() -> bool:
            return (await hive.jobs.get(job_id)).get_property("hm.retries") == 1

        async with colony_of(hive):
            await until(retried)
            await asyncio.sleep(0.3)  # time enough to run it again, were it due
        job = await hive.jobs.get(job_id)
        assert [s.name for s in job.states] == ["Created", "Enqueued", "Executing", "Failed", "Enqueued"], (
            "the retry was not due 30 s after the database's now"
        )
        assert_due_on_database_clock(db_url, job_id, DELAY)
        assert isinstance(job.state, hm.Enqueued) and job.state.delay == DELAY and job.state.delay_until is None


@pytest.mark.parametrize("skew", SKEWS)
async def test_continuation_delay_is_due_on_the_database_clock(db_url: str, skew: timedelta) -> None:
    async with hm.HiveMind(db_url, clock=OffsetClock(skew)) as hive:
        parent = await hive.jobs.create(jobs.note, "parent")
        waiting = await hive.jobs.options(after=hm.After(parent, delay=DELAY)).create(jobs.note, "child")
        async with hive.jobs.get_with_lock(parent, requester="drone") as job:  # as a drone would
            await job.change_state(hm.Executing())
            await job.change_state(hm.Succeeded())
            await job.save(keep_lock=True)
        # created after the parent finished: released at once, in the insert
        late = await hive.jobs.options(after=hm.After(parent, delay=DELAY)).create(jobs.note, "late")
        for child in (waiting, late):
            assert_due_on_database_clock(db_url, child, DELAY)
            state = (await hive.jobs.get(child)).state
            assert isinstance(state, hm.Enqueued) and state.delay == DELAY


async def test_a_moved_job_keeps_its_due_time(db_url: str) -> None:
    async with hm.HiveMind(db_url) as hive:
        job_id = await hive.jobs.options(delay=timedelta(hours=1)).create(jobs.note, "x")
        due, _ = queue_row(db_url, job_id)
        await asyncio.sleep(0.05)
        async with hive.jobs.get_with_lock(job_id, requester="mover") as job:
            job.move(queue="elsewhere", priority=hm.Priority.HIGH)
            await job.save()
        rows = backends.raw(db_url, "SELECT queue, execute_after FROM {queue} WHERE job_id = ?", job_id)
        assert [(queue, _moment(moment)) for queue, moment in rows] == [("elsewhere", due)]


# ----------------------------------------------------------------------------- skew warning


def _skew_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "hivemind_jobs.clock" and record.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("skew", SKEWS)
async def test_a_skewed_clock_is_warned_about_once(
    db_url: str, skew: timedelta, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="hivemind_jobs.clock")
    options = hm.Options(clock_skew_warning=timedelta(seconds=5))
    async with hm.HiveMind(db_url, clock=OffsetClock(skew), options=options) as hive:
        [message] = _skew_warnings(caplog)  # when the environment opened
        direction = "behind" if skew < timedelta(0) else "ahead of"
        assert f"s {direction} the database clock of environment 'main'" in message
        measured = float(re.search(r"process is (\d+\.\d+) s", message).group(1))  # type: ignore[union-attr]
        assert abs(measured - 120) < 1 and "Options.clock_skew_warning (5.000 s)" in message
        async with colony_of(hive):  # syncs its state every 200 ms: checked each time, not repeated
            await asyncio.sleep(1.0)
        assert len(_skew_warnings(caplog)) == 1
        monkeypatch.setattr(environment_module, "CLOCK_SKEW_WARNING_INTERVAL", 0.0)
        async with colony_of(hive):
            await until(lambda: _more_than(caplog, 2))


async def _more_than(caplog: pytest.LogCaptureFixture, count: int) -> bool:
    return len(_skew_warnings(caplog)) > count


async def test_no_warning_within_the_threshold_or_when_off(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hivemind_jobs.clock")
    async with hm.HiveMind(db_url, clock=OffsetClock(timedelta(seconds=2))) as hive, colony_of(hive):
        await asyncio.sleep(0.5)
    off = hm.Options(clock_skew_warning=None)
    async with hm.HiveMind(db_url, clock=OffsetClock(timedelta(hours=1)), options=off) as hive, colony_of(hive):
        await asyncio.sleep(0.5)
    assert _skew_warnings(caplog) == []


def test_clock_skew_warning_is_validated() -> None:
    for wrong in (timedelta(0), timedelta(seconds=-1), 5):
        with pytest.raises(hm.ConfigurationError, match="clock_skew_warning"):
            hm.Options(clock_skew_warning=wrong)  # type: ignore[arg-type]
    assert hm.Options().clock_skew_warning == timedelta(seconds=10)


def test_enqueued_delay_is_checked_and_a_refused_stored_one_reads_as_unknown() -> None:
    with pytest.raises(hm.ConfigurationError, match="non-negative timedelta"):
        hm.Enqueued(delay=timedelta(seconds=-1))
    with pytest.raises(hm.ConfigurationError, match="not both"):
        hm.Enqueued(delay=DELAY, delay_until=datetime.now(UTC))
    codec = Codec()
    applied = hm.Enqueued(delay=DELAY)
    applied.sequence, applied.elected_at = 1, datetime.now(UTC)
    good = state_to_row(applied, codec)
    assert state_from_row(good, codec).persisted_fields() == {"delay": DELAY, "delay_until": None}
    negative = dataclasses.replace(good, fields='{"delay":{"$hm":"timedelta","v":[-1,0,0]}}')
    restored = state_from_row(negative, codec)  # a damaged row still reads: the job can be shown or deleted
    assert isinstance(restored, hm.UnknownState) and restored.stored_name == "Enqueued"


@pytest.mark.parametrize("observed", [False, True], ids=["direct", "elected"])
async def test_a_node_clock_behind_the_database_never_stamps_a_start_before_the_due_time(
    db_url: str, observed: bool
) -> None:
    """The claim finds an entry due by the database clock; the Executing state's time comes from this
    node's clock, which here runs two minutes behind: it is stamped with the due time instead."""
    async with hm.HiveMind(db_url, clock=OffsetClock(timedelta(seconds=-120))) as hive:
        if observed:  # with a handler every transition goes through the election
            hive.mediator.add_request_handler(hm.StateElection, lambda request: None)
        job_id = await hive.jobs.options(delay=timedelta(milliseconds=200)).create(jobs.note, "late")
        due, _ = queue_row(db_url, job_id)

        async def done() -> bool:
            return (await hive.jobs.get(job_id)).state.name == "Succeeded"

        async with colony_of(hive):
            await until(done)
        executing = (await hive.jobs.get(job_id)).states[2]
    assert isinstance(executing, hm.Executing) and executing.due_at == due
    assert executing.elected_at is not None and executing.elected_at >= due
