"""The colony's parts and the built-in daemons, stepped one pass at a time with ``run_once()``.

No colony runs here: the tests build a :class:`ColonyRuntime` with one swarm, its drones, fetcher,
completer and watcher, and drive them by hand against the real storage, so each step's effect is
seen on its own (no heartbeat threads either: the steps are quick).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from hivemind_jobs.colony.completer import Completer
from hivemind_jobs.colony.drone import Drones, SyncJobThreads
from hivemind_jobs.colony.fetcher import ChangeWatch, Fetcher
from hivemind_jobs.colony.runtime import ColonyRuntime, SwarmRunner
from hivemind_jobs.colony.watcher import StateSync, Watcher
from hivemind_jobs.core.names import DEFAULT_QUEUE
from hivemind_jobs.core.retry import RESCUES_PROPERTY, RETRIES_PROPERTY
from hivemind_jobs.daemons import (
    ColonyCleanup,
    LockMonitor,
    Maintenance,
    PeriodicDaemon,
    Scheduler,
    colony_cleanup_daemon,
    lock_monitor_daemon,
    maintenance_daemon,
    scheduler_daemon,
)
from hivemind_jobs.daemons.runtime import DaemonContext, DaemonFunction, DaemonSpec
from hivemind_jobs.storage.protocol import DaemonLogRow
from tests.worker import jobs
from tests.worker.conftest import ALLOW, _options
from tests.worker.test_rescue_order import EXPIRED, _claim_and_die


class Stepper:
    """One colony's parts, not running: step them."""

    def __init__(self, hive: hm.HiveMind, *, drones: int = 2, name: str = "stepper", **options: object) -> None:
        self.runtime = ColonyRuntime(hive.env(), name=name, options=_options(**options), allow=ALLOW, properties={})
        self.runtime.runners = [SwarmRunner(hm.Swarm.define("main", drones=drones))]
        self.threads = SyncJobThreads(2, name)
        self.drones = Drones(self.runtime, self.threads)
        self.fetcher = Fetcher(self.runtime, self.runtime.runners[0], self.drones)
        self.completer = Completer(self.runtime, self.drones, [self.fetcher])
        self.watcher = Watcher(self.runtime)

    @property
    def runner(self) -> SwarmRunner:
        return self.runtime.runners[0]

    async def drones_done(self) -> None:
        """Wait until every launched run has handed its outcome over."""
        tasks = [run.task for run in self.runtime.running if run.task is not None]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)

    def context(self, name: str, function: DaemonFunction, sink: list[DaemonLogRow] | None = None) -> DaemonContext:
        """The context a daemon of this colony gets (the runtime is its host)."""
        return DaemonContext(DaemonSpec(name, function), self.runtime, asyncio.Event(), [] if sink is None else sink)

    def close(self) -> None:
        for run in self.runtime.running:
            run.cancel(hard=True)
        self.threads.shutdown(wait=False, cancel_futures=True)


@pytest_asyncio.fixture
async def stepper(whive: hm.HiveMind) -> AsyncIterator[Stepper]:
    parts = Stepper(whive)
    yield parts
    parts.close()


async def _state(hive: hm.HiveMind, job_id: int) -> hm.State:
    return (await hive.jobs.get(job_id)).state


# ------------------------------------------------------------------------------- fetcher + completer


async def test_a_fetch_claims_at_most_the_free_drones_and_launches_them(whive: hm.HiveMind, stepper: Stepper) -> None:
    ids = await whive.jobs.create_many([hm.call(jobs.add, n, 1) for n in range(3)])
    assert await stepper.fetcher.run_once() == 2
    assert not stepper.runner.free_drones and len(stepper.runner.busy) == 2
    running = sorted(stepper.runtime.running_jobs)
    assert running == ids[:2]
    for job_id in running:
        state = await _state(whive, job_id)
        assert isinstance(state, hm.Executing) and state.colony == "stepper" and state.swarm == "main"
    assert isinstance(await _state(whive, ids[2]), hm.Enqueued)
    assert stepper.runtime.last_progress_at is not None


async def test_a_fetch_with_nothing_due_launches_nothing(whive: hm.HiveMind, stepper: Stepper) -> None:
    await whive.jobs.options(delay=timedelta(hours=1)).create(jobs.add, 1, 2)
    assert await stepper.fetcher.run_once() == 0
    assert not stepper.runtime.running and len(stepper.runner.free_drones) == 2


@pytest_asyncio.fixture
async def steppers(whive: hm.HiveMind) -> AsyncIterator[Callable[..., Stepper]]:
    """Makes steppers with options of their own (closed afterwards)."""
    made: list[Stepper] = []

    def make(*, ack_and_fetch: bool) -> Stepper:
        made.append(Stepper(whive, ack_and_fetch=ack_and_fetch))
        return made[-1]

    yield make
    for parts in made:
        parts.close()


def test_ack_and_fetch_is_chosen_by_the_storage_unless_set(whive: hm.HiveMind, stepper: Stepper) -> None:
    # two transactions at a time pay only where the storage has more than one writer
    assert stepper.runtime.ack_and_fetch is whive.env().storage.capabilities.single_writer
    with pytest.raises(hm.ConfigurationError, match="ack_and_fetch must be True, False or None"):
        _options(ack_and_fetch="yes")


async def _two_of_three_ran(hive: hm.HiveMind, stepper: Stepper) -> list[int]:
    """Three jobs created, two claimed for the stepper's two drones and run; their outcomes wait."""
    ids = await hive.jobs.create_many([hm.call(jobs.add, n, 1) for n in range(3)])
    assert await stepper.fetcher.run_once() == 2
    await stepper.drones_done()
    assert len(stepper.runtime.outcomes) == 2 and stepper.runtime.completing
    return ids


async def test_a_completion_writes_the_outcomes_and_refills_the_freed_drones(
    whive: hm.HiveMind, steppers: Callable[..., Stepper]
) -> None:
    stepper = steppers(ack_and_fetch=True)
    ids = await _two_of_three_ran(whive, stepper)
    assert not stepper.runner.slot_free.is_set()  # the completer refills them: the fetcher sleeps on
    # one batch: both outcomes, and (ack and fetch) the third job claimed for a freed drone
    assert await stepper.completer.run_once() == 2
    assert stepper.runtime.processed == 2 and stepper.runtime.succeeded == 2
    assert stepper.runtime.completion_generation == 1
    assert list(stepper.runtime.running_jobs) == [ids[2]]
    await stepper.drones_done()
    assert await stepper.completer.run_once() == 1
    assert await stepper.completer.run_once() == 0  # nothing waits
    results = [(await whive.jobs.get(job_id)).state for job_id in ids]
    assert [state.result for state in results if isinstance(state, hm.Succeeded)] == [1, 2, 3]
    assert stepper.runtime.processed == 3 and not stepper.runtime.running


async def test_without_ack_and_fetch_the_fetcher_claims_for_freed_drones_while_outcomes_wait(
    whive: hm.HiveMind, steppers: Callable[..., Stepper]
) -> None:
    stepper = steppers(ack_and_fetch=False)
    ids = await _two_of_three_ran(whive, stepper)
    # the freed drones wake the fetcher, which claims in its own transaction before the outcomes
    # are written: the database works on both while the new job runs
    assert stepper.runner.slot_free.is_set()
    assert await stepper.fetcher.run_once() == 1
    assert [run.job.id for run in stepper.runner.busy.values()] == [ids[2]]
    assert sorted(stepper.runtime.running_jobs) == ids  # two of them until their outcomes are written
    # the completer writes the outcomes only (nothing more is due)
    assert await stepper.completer.run_once() == 2
    assert stepper.runtime.processed == 2 and list(stepper.runtime.running_jobs) == [ids[2]]
    await stepper.drones_done()
    assert await stepper.completer.run_once() == 1
    assert len(stepper.runner.free_drones) == 2 and not stepper.runtime.running
    results = [(await whive.jobs.get(job_id)).state for job_id in ids]
    assert [state.result for state in results if isinstance(state, hm.Succeeded)] == [1, 2, 3]


async def test_without_ack_and_fetch_a_completion_claims_nothing(
    whive: hm.HiveMind, steppers: Callable[..., Stepper]
) -> None:
    stepper = steppers(ack_and_fetch=False)
    ids = await _two_of_three_ran(whive, stepper)
    assert await stepper.completer.run_once() == 2
    assert not stepper.runtime.running and len(stepper.runner.free_drones) == 2
    assert isinstance(await _state(whive, ids[2]), hm.Enqueued)
    assert stepper.runner.slot_free.is_set()  # the fetcher is woken for the free drones


async def test_a_failed_run_is_enqueued_again_when_the_retry_decision_says_so(
    whive: hm.HiveMind, stepper: Stepper
) -> None:
    policy = hm.RetryPolicy(max_retries=2, base_delay=timedelta(seconds=30), jitter=0)
    job_id = await whive.jobs.options(retry=policy).create(jobs.boom, "first")
    assert await stepper.fetcher.run_once() == 1
    await stepper.drones_done()
    assert await stepper.completer.run_once() == 1
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Enqueued) and job.state.reason == "retry 1 of 2 in 30 s"
    assert job.get_property(RETRIES_PROPERTY) == 1
    assert [state.name for state in job.states][-3:] == ["Executing", "Failed", "Enqueued"]
    assert stepper.runtime.processed == 1 and stepper.runtime.failed == 0  # it ends Enqueued, not Failed


async def test_a_failed_run_without_retries_left_stays_failed(whive: hm.HiveMind, stepper: Stepper) -> None:
    job_id = await whive.jobs.create(jobs.boom, "only")  # the hive's policy: no retries
    assert await stepper.fetcher.run_once() == 1
    await stepper.drones_done()
    await stepper.completer.run_once()
    state = await _state(whive, job_id)
    assert isinstance(state, hm.Failed) and state.reason == "gave up after 0 retries"
    assert stepper.runtime.failed == 1


# ------------------------------------------------------------------------------- watcher


async def test_a_look_delivers_a_stop_request_to_its_running_job(whive: hm.HiveMind, stepper: Stepper) -> None:
    job_id = await whive.jobs.create(jobs.sync_sleeper, 30.0)
    assert await stepper.fetcher.run_once() == 1
    assert await whive.jobs.cancel(job_id, reason="enough") == hm.CancelResult.REQUESTED
    (run,) = stepper.runtime.running
    assert not run.context.cancelled.is_set()  # asked in the database, not yet seen here
    await stepper.watcher.run_once()
    assert isinstance(run.stop_state, hm.Idle) and run.context.cancelled.is_set()
    await stepper.drones_done()  # the job saw ctx.cancelled and raised
    await stepper.completer.run_once()
    state = await _state(whive, job_id)
    assert isinstance(state, hm.Idle) and state.reason == "enough"


async def test_a_state_sync_writes_the_colony_record(whive: hm.HiveMind, stepper: Stepper) -> None:
    await stepper.watcher.sync_state()
    info = await whive.colonies.get(stepper.runtime.id)
    assert info.name == "stepper" and info.status == hm.ColonyStatus.STOPPED
    assert [swarm["name"] for swarm in info.swarms] == ["main"]
    sync = StateSync(stepper.context("hm.colony-state", stepper.watcher.state_daemon), stepper.watcher)
    stepper.runtime.status = hm.ColonyStatus.RUNNING
    await sync.run_once()
    assert (await whive.colonies.get(stepper.runtime.id)).status == hm.ColonyStatus.RUNNING


# ------------------------------------------------------------------------------- wake-ups


async def test_an_enqueue_in_this_process_wakes_the_fetchers_of_its_queue(stepper: Stepper) -> None:
    changes = ChangeWatch(stepper.runtime)
    changes.on_wake(frozenset({"elsewhere"}))
    assert not stepper.runner.wake.is_set()
    changes.on_wake(frozenset({DEFAULT_QUEUE}))
    assert stepper.runner.wake.is_set()


async def test_a_moved_change_marker_wakes_idle_fetchers_only(whive: hm.HiveMind, stepper: Stepper) -> None:
    storage = whive.env().storage
    probed = await storage.probe_changes()  # MySQL: the marker is read by a query
    if storage.change_marker() is None:
        pytest.skip("this storage has no change marker")
    changes = ChangeWatch(stepper.runtime)

    async def look() -> int:
        return await changes.probe_once() if probed else changes.run_once()

    # a notified marker may still move for the set-up's own writes: let it settle first
    for _ in range(100):
        marker = storage.change_marker()
        await asyncio.sleep(0.05)
        if storage.change_marker() == marker:
            break
    assert await stepper.fetcher.run_once() == 0  # records the marker it claimed at
    assert await look() == 0  # not idle yet
    stepper.runner.idle_since = stepper.runtime.completion_generation
    assert await look() == 0  # idle, nothing changed
    await whive.jobs.create(jobs.add, 1, 1)
    # a notified marker (PostgreSQL: LISTEN/NOTIFY) moves when the notification arrives, a moment later
    for _ in range(500):  # at most about 5 s
        if woken := await look():
            break
        await asyncio.sleep(0.01)
    assert woken == 1 and stepper.runner.wake.is_set()


# ------------------------------------------------------------------------------- daemons


class _Counting(PeriodicDaemon):
    def __init__(self, ctx: DaemonContext, stop_after: int) -> None:
        super().__init__(ctx)
        self.passes = 0
        self.stop_after = stop_after

    def next_delay(self) -> float:
        return 0.01

    async def run_once(self) -> int:
        self.passes += 1
        if self.passes == self.stop_after:
            self.ctx.stopping.set()
        return self.passes


async def test_a_periodic_daemon_passes_until_its_colony_stops(stepper: Stepper) -> None:
    daemon = _Counting(stepper.context("counting", lambda ctx: _Counting(ctx, 3).run()), 3)
    await asyncio.wait_for(daemon.run(), timeout=5)
    assert daemon.passes == 3
    stopped = _Counting(stepper.context("stopped", lambda ctx: _Counting(ctx, 1).run()), 1)
    stopped.ctx.stopping.set()
    await asyncio.wait_for(stopped.run(), timeout=5)
    assert stopped.passes == 0  # a stop before the first wait: no pass at all


async def test_a_lock_monitor_pass_rescues_an_expired_lock_and_counts_it(db_url: str) -> None:
    options = hm.Options(lock_timeout=timedelta(seconds=1), retry=hm.RetryPolicy(max_retries=0))
    async with hm.HiveMind(db_url, options=options) as hive:
        job_id = await hive.jobs.create(jobs.note, "rescued")
        claimed = await _claim_and_die(hive)
        assert claimed is not None and claimed[0] == job_id
        monitor_parts = Stepper(hive, name="monitor")
        try:
            sink: list[DaemonLogRow] = []
            monitor = LockMonitor(monitor_parts.context("hm.lock-monitor", lock_monitor_daemon, sink))
            assert await monitor.run_once() == 0  # not expired yet
            await asyncio.sleep(EXPIRED)
            assert await monitor.run_once() == 1
            assert monitor_parts.runtime.rescued == 1
            assert [row.message for row in sink] == ["rescued 1 job(s) whose lock expired"]
            job = await hive.jobs.get(job_id)
            assert isinstance(job.state, hm.Enqueued) and job.get_property(RESCUES_PROPERTY) == 1
        finally:
            monitor_parts.close()


async def test_a_cleanup_pass_removes_stale_colonies(whive: hm.HiveMind) -> None:
    old = Stepper(whive, name="old")
    cleaner = Stepper(whive, name="cleaner", stale_colony_after=timedelta(milliseconds=300))
    try:
        await old.watcher.sync_state()
        cleanup = ColonyCleanup(cleaner.context("hm.colony-cleanup", colony_cleanup_daemon))
        assert await cleanup.run_once() == []
        await asyncio.sleep(0.5)
        await cleaner.watcher.sync_state()  # fresh: it stays
        assert await cleanup.run_once() == [old.runtime.id]
        assert await whive.colonies.try_get(old.runtime.id) is None
        assert await whive.colonies.try_get(cleaner.runtime.id) is not None
    finally:
        old.close()
        cleaner.close()


async def test_a_maintenance_pass_takes_a_lease_and_reports(stepper: Stepper, caplog: pytest.LogCaptureFixture) -> None:
    maintenance = Maintenance(stepper.context("hm.maintenance", maintenance_daemon))
    assert 0 < maintenance.next_delay() <= 5.0  # the first pass comes early
    with caplog.at_level(logging.INFO):
        report = await maintenance.run_once()
    assert report is not None and report.lease == "maintenance.0" and report.finished
    assert maintenance.next_delay() >= stepper.runtime.options.maintenance_interval.total_seconds() * 0.9


async def test_a_scheduler_pass_reports_what_it_enqueued(whive: hm.HiveMind, stepper: Stepper) -> None:
    scheduler = Scheduler(stepper.context("hm.scheduler", scheduler_daemon))
    report = await scheduler.run_once()
    assert report is not None and report.enqueued == 0 and not report.errors
