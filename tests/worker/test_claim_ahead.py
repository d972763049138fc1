"""Claims ahead: where a swarm's fetcher claims for its drones itself (no ack and fetch) and its
runs have been short, it also claims a job for each busy drone, held until that drone's run ends.

Stepped by hand (the parts of :mod:`tests.worker.test_stepping`) where the order matters, and
run in a real colony for what a stop does to held jobs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from hivemind_jobs.colony.fetcher import AHEAD_DEPTH
from tests import backends
from tests.worker import jobs
from tests.worker.conftest import colony_of
from tests.worker.test_stepping import Stepper

DRONE = "main.drone-1"


@pytest_asyncio.fixture
async def ahead(whive: hm.HiveMind) -> AsyncIterator[Stepper]:
    """One drone, claiming ahead for it while its runs take less than 30 s; runs of late were short."""
    parts = Stepper(whive, drones=1, ack_and_fetch=False, claim_ahead=timedelta(seconds=30))
    parts.runner.note_run_time(0.001)
    yield parts
    for gate in jobs.GATES.values():
        gate.set()
    parts.close()


async def _history(hive: hm.HiveMind, job_id: int) -> list[hm.State]:
    return list((await hive.jobs.get(job_id)).states)


async def _until(condition: Callable[[], object], what: str) -> None:
    """Let the loop run until ``condition()`` holds (the drones' tasks run meanwhile)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def _started(label: str) -> bool:
    return any(entry[:2] == ("start", label) for entry in jobs.RAN if isinstance(entry, tuple))


async def _write_all(stepper: Stepper) -> None:
    await stepper.drones_done()
    while await stepper.completer.run_once():
        pass


async def test_a_busy_drone_gets_jobs_claimed_ahead_that_start_in_turn_when_its_run_ends(
    whive: hm.HiveMind, ahead: Stepper
) -> None:
    ids = await whive.jobs.create_many([hm.call(jobs.gated, label) for label in "abcd"])
    assert await ahead.fetcher.run_once() == 1  # the free drone: a, which starts
    await _until(lambda: _started("a"), "job a to start")
    # the drone is busy and its run is young: the next claims take jobs ahead for it, up to the depth
    for _ in range(AHEAD_DEPTH):
        assert await ahead.fetcher.run_once() == 1
    assert await ahead.fetcher.run_once() == 0  # nothing more for this drone
    held = ahead.runner.held[DRONE]
    assert [run.job.id for run in held] == ids[1 : 1 + AHEAD_DEPTH]
    for job_id in ids[1 : 1 + AHEAD_DEPTH]:
        state = (await _history(whive, job_id))[-1]
        assert isinstance(state, hm.Executing) and state.drone == DRONE  # started by the claim, on its drone
    assert isinstance((await _history(whive, ids[3]))[-1], hm.Enqueued)
    assert not _started("b")  # held: it has not run
    jobs.gate("a").set()
    await _until(lambda: _started("b"), "job b to start after a")
    assert ahead.runner.busy[DRONE].job.id == ids[1]
    assert not _started("c") and [run.job.id for run in ahead.runner.held[DRONE]] == [ids[2]]
    jobs.gate("b").set()
    jobs.gate("c").set()
    await _write_all(ahead)
    assert [entry for entry in jobs.RAN if isinstance(entry, tuple)] == [
        ("start", "a", DRONE),
        ("start", "b", DRONE),
        ("start", "c", DRONE),
    ]
    for job_id in ids[:3]:
        names = [state.name for state in await _history(whive, job_id)]
        assert names == ["Created", "Enqueued", "Executing", "Succeeded"]
    assert list(ahead.runner.free_drones) == [DRONE] and not ahead.runner.held and not ahead.runner.ahead
    assert not ahead.runtime.running and ahead.runtime.succeeded == 3


async def test_a_held_job_asked_to_stop_ends_as_asked_without_running(whive: hm.HiveMind, ahead: Stepper) -> None:
    first, second = await whive.jobs.create_many([hm.call(jobs.gated, "a"), hm.call(jobs.gated, "b")])
    assert await ahead.fetcher.run_once() == 1
    await _until(lambda: _started("a"), "job a to start")
    assert await ahead.fetcher.run_once() == 1  # b, held for the drone
    assert await whive.jobs.cancel(second, reason="not now") == hm.CancelResult.REQUESTED
    await ahead.watcher.run_once()
    await _until(lambda: ahead.runtime.outcomes, "the held job's outcome")
    assert not ahead.runner.held and ahead.runner.busy[DRONE].job.id == first  # the drone still runs a
    await ahead.completer.run_once()
    state = (await _history(whive, second))[-1]
    assert isinstance(state, hm.Idle) and state.reason == "not now"
    jobs.gate("a").set()
    await _write_all(ahead)
    assert isinstance((await _history(whive, first))[-1], hm.Succeeded)
    assert not _started("b") and list(ahead.runner.free_drones) == [DRONE]


async def test_a_claim_ahead_that_finds_nothing_gives_a_parked_drone_back(whive: hm.HiveMind, ahead: Stepper) -> None:
    (job_id,) = await whive.jobs.create_many([hm.call(jobs.add, 1, 2)])
    assert await ahead.fetcher.run_once() == 1
    # claimed ahead for the busy drone, whose run ends before the claim comes back: parked meanwhile
    ahead.runner.reserve([DRONE])
    await ahead.drones_done()
    assert ahead.runner.parked == {DRONE} and not ahead.runner.free_drones
    ahead.runner.give_back(DRONE)  # the claim found nothing
    assert list(ahead.runner.free_drones) == [DRONE] and not ahead.runner.parked and not ahead.runner.ahead
    await _write_all(ahead)
    assert isinstance((await _history(whive, job_id))[-1], hm.Succeeded)


async def test_a_parked_drone_starts_its_claimed_job_at_once(whive: hm.HiveMind, ahead: Stepper) -> None:
    ids = await whive.jobs.create_many([hm.call(jobs.add, 1, 2), hm.call(jobs.gated, "b")])
    assert await ahead.fetcher.run_once() == 1
    assert await ahead.fetcher.run_once() == 1  # b claimed ahead while add has not run yet
    await _until(lambda: _started("b"), "job b to start once add ended")
    assert ahead.runner.busy[DRONE].job.id == ids[1] and not ahead.runner.held
    jobs.gate("b").set()
    await _write_all(ahead)
    assert [(await _history(whive, job_id))[-1].name for job_id in ids] == ["Succeeded", "Succeeded"]


async def test_jobs_held_for_a_written_off_drone_run_on_its_replacement(whive: hm.HiveMind, ahead: Stepper) -> None:
    ids = await whive.jobs.create_many([hm.call(jobs.gated, label) for label in "abc"])
    assert await ahead.fetcher.run_once() == 1
    await _until(lambda: _started("a"), "job a to start")
    assert await ahead.fetcher.run_once() == 1
    assert await ahead.fetcher.run_once() == 1
    stuck = ahead.runner.busy[DRONE]
    stuck.drone_lost = True  # as the drone's write-off after a timeout's grace period marks it
    fresh = ahead.runner.replace_drone(DRONE)
    await _until(lambda: _started("b"), "job b to start on the fresh drone")
    assert ("start", "b", fresh) in jobs.RAN
    assert ahead.runner.busy[fresh].job.id == ids[1] and [run.job.id for run in ahead.runner.held[fresh]] == [ids[2]]
    assert not ahead.runner.free_drones  # still one drone: the fresh one, busy
    for label in "abc":
        jobs.gate(label).set()
    await _write_all(ahead)
    assert ("start", "c", fresh) in jobs.RAN
    assert list(ahead.runner.free_drones) == [fresh]


async def test_no_claim_ahead_for_long_runs_or_where_it_is_off(whive: hm.HiveMind, ahead: Stepper) -> None:
    await whive.jobs.create_many([hm.call(jobs.gated, "a"), hm.call(jobs.gated, "b")])
    assert await ahead.fetcher.run_once() == 1
    await _until(lambda: _started("a"), "job a to start")
    fetcher, runner, options = ahead.fetcher, ahead.runner, ahead.runtime.options
    assert fetcher._ahead_candidates(5) == [DRONE]
    (run,) = runner.busy.values()
    run.started_at -= 31  # the current run is older than claim_ahead: it may go on for long
    assert fetcher._ahead_candidates(5) == []
    run.started_at += 31
    runner.run_time = 30.5  # the swarm's runs of late took longer than claim_ahead
    assert fetcher._ahead_candidates(5) == []
    runner.run_time = 0.001
    ahead.runtime.options = hm.ColonyOptions(ack_and_fetch=False, claim_ahead=None)
    assert fetcher._ahead_candidates(5) == []
    ahead.runtime.options = hm.ColonyOptions(ack_and_fetch=True, claim_ahead=timedelta(seconds=30))
    assert fetcher._ahead_candidates(5) == []  # the completer claims for freed drones: never ahead
    ahead.runtime.options = options
    ahead.runtime.stopping.set()
    assert fetcher._ahead_candidates(5) == []
    ahead.runtime.stopping.clear()
    assert await ahead.fetcher.run_once() == 1  # and back on: b is claimed ahead


async def test_with_an_election_handler_nothing_is_claimed_ahead(whive: hm.HiveMind, ahead: Stepper) -> None:
    elected: list[tuple[int, str]] = []

    def watch(request: hm.StateElection) -> hm.State | None:
        elected.append((request.job.id, request.elected.name))
        return None

    first, second = await whive.jobs.create_many([hm.call(jobs.gated, "a"), hm.call(jobs.gated, "b")])
    remove = whive.mediator.add_request_handler(hm.StateElection, watch)
    try:
        assert await ahead.fetcher.run_once() == 1
        await _until(lambda: _started("a"), "job a to start")
        # a busy drone and short runs, but a handler sees transitions: every one is elected, so
        # the claim takes the general path, which claims for free drones only
        assert ahead.fetcher._ahead_candidates(5) == [DRONE]
        assert await ahead.fetcher.run_once() == 0
        assert not ahead.runner.ahead and not ahead.runner.held  # the reservation is given back
        assert isinstance((await _history(whive, second))[-1], hm.Enqueued)
        jobs.gate("a").set()
        await ahead.drones_done()
        assert list(ahead.runner.free_drones) == [DRONE]  # not parked: free again
        await _write_all(ahead)
        assert (first, "Executing") in elected and (first, "Succeeded") in elected
    finally:
        remove()


async def test_jobs_with_limits_are_never_claimed_ahead(whive: hm.HiveMind, ahead: Stepper) -> None:
    await whive.jobs.create(jobs.gated, "a")
    assert await ahead.fetcher.run_once() == 1
    await _until(lambda: _started("a"), "job a to start")
    limited = await whive.jobs.options(concurrency=hm.Limit(key="k", max=5)).create(jobs.add, 1, 2)
    rated = await whive.jobs.options(rate_limit=hm.RateLimit(max=5, per=timedelta(seconds=1), key="r")).create(
        jobs.add, 2, 3
    )
    assert ahead.fetcher._ahead_candidates(5) == [DRONE]
    # held, they would count against their limits before running, and start later than recorded
    assert await ahead.fetcher.run_once() == 0
    assert not ahead.runner.held and not ahead.runner.ahead
    for job_id in (limited, rated):
        assert isinstance((await _history(whive, job_id))[-1], hm.Enqueued)
    # no claim ahead after one that found nothing, until jobs are enqueued (or one is found)
    assert ahead.runner.ahead_dry and ahead.fetcher._ahead_candidates(5) == []
    ahead.runner.wake.set()  # as an enqueue in this process, or a notification, does
    assert ahead.fetcher._ahead_candidates(5) == [DRONE] and not ahead.runner.ahead_dry
    jobs.gate("a").set()
    await ahead.drones_done()
    # the drone is free: a claim for it takes the first of them
    assert await ahead.fetcher.run_once() == 1
    await _write_all(ahead)
    assert await ahead.fetcher.run_once() == 1
    await _write_all(ahead)
    for job_id in (limited, rated):
        assert isinstance((await _history(whive, job_id))[-1], hm.Succeeded)


async def test_a_claim_with_free_and_ahead_places_gives_limited_jobs_only_the_free_ones(whive: hm.HiveMind) -> None:
    stepper = Stepper(whive, drones=2, ack_and_fetch=False, claim_ahead=timedelta(seconds=30))
    stepper.runner.note_run_time(0.001)
    try:
        await whive.jobs.create(jobs.gated, "a")
        assert await stepper.fetcher.run_once() == 1  # a on one drone, the other one free
        await _until(lambda: _started("a"), "job a to start")
        limit = hm.Limit(key="k", max=5)
        first, second = await whive.jobs.options(concurrency=limit).create_many(
            [hm.call(jobs.gated, "b"), hm.call(jobs.gated, "c")]
        )
        # one free place and one ahead (depth 2 on a's drone: the claim may take two for it, but
        # its limit is one claim's reservation): the first limited job takes the free drone
        assert len(stepper.runner.free_drones) == 1
        assert await stepper.fetcher.run_once() == 1
        await _until(lambda: _started("b"), "job b to start")
        assert ("start", "b", "main.drone-2") in jobs.RAN and not stepper.runner.held
        assert isinstance((await _history(whive, second))[-1], hm.Enqueued)
        for label in "abc":
            jobs.gate(label).set()
        await _write_all(stepper)
        assert await stepper.fetcher.run_once() == 1  # c, once a drone is free
        await _write_all(stepper)
        assert isinstance((await _history(whive, first))[-1], hm.Succeeded)
        assert isinstance((await _history(whive, second))[-1], hm.Succeeded)
    finally:
        for gate in jobs.GATES.values():
            gate.set()
        stepper.close()


async def test_a_failed_claim_gives_its_drones_back(whive: hm.HiveMind, db_url: str, ahead: Stepper) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip(
            "the claim is made to fail by renaming a table under SQLite; a server may run statements it prepared"
        )
    await whive.jobs.create_many([hm.call(jobs.gated, "a"), hm.call(jobs.gated, "b")])
    assert await ahead.fetcher.run_once() == 1
    await _until(lambda: _started("a"), "job a to start")
    backends.raw(db_url, 'ALTER TABLE {queue} RENAME TO "hm_main_queue_away"')
    try:
        with pytest.raises(hm.HiveMindError):
            await ahead.fetcher.run_once()  # it claimed ahead for the busy drone, and failed
    finally:
        backends.raw(db_url, 'ALTER TABLE "hm_main_queue_away" RENAME TO {queue}')
    assert not ahead.runner.ahead and not ahead.runner.parked  # nothing stays reserved
    jobs.gate("a").set()
    await ahead.drones_done()
    assert list(ahead.runner.free_drones) == [DRONE]  # free again, not parked for a claim that failed
    assert await ahead.fetcher.run_once() == 1  # and b is claimed for it
    jobs.gate("b").set()
    await _write_all(ahead)


def test_claim_ahead_must_be_positive_or_none() -> None:
    with pytest.raises(hm.ConfigurationError, match="claim_ahead"):
        hm.ColonyOptions(claim_ahead=timedelta(0))
    assert hm.ColonyOptions(claim_ahead=None).claim_ahead is None


async def test_a_stop_puts_held_jobs_back_in_the_queue(whive: hm.HiveMind) -> None:
    colony = colony_of(
        whive, drones=1, ack_and_fetch=False, claim_ahead=timedelta(seconds=30), graceful_stop=timedelta(seconds=0.2)
    )
    async with colony:
        warm = await whive.jobs.create_many([hm.call(jobs.add, n, 1) for n in range(3)])
        for job_id in warm:  # short runs, so the swarm claims ahead
            await whive.jobs.wait(job_id, timeout=timedelta(seconds=10))
        first, second = await whive.jobs.create_many([hm.call(jobs.gated, "a"), hm.call(jobs.gated, "b")])
        await _until(lambda: _started("a"), "job a to start")
        deadline = time.monotonic() + 10
        while not isinstance((await _history(whive, second))[-1], hm.Executing):
            assert time.monotonic() < deadline, "job b was not claimed ahead"
            await asyncio.sleep(0.02)
    assert not _started("b")
    for job_id in (first, second):
        history = await _history(whive, job_id)
        assert [state.name for state in history] == ["Created", "Enqueued", "Executing", "Enqueued"]
        assert history[-1].reason is not None and history[-1].reason.startswith("shutdown")
    info = await whive.jobs.get(second)
    assert info.locked_by is None
    # the next colony runs both
    jobs.gate("a").set()
    jobs.gate("b").set()
    async with colony_of(whive, drones=1):
        for job_id in (first, second):
            await whive.jobs.wait(job_id, timeout=timedelta(seconds=10))


async def test_many_short_jobs_run_once_each_on_the_drone_their_state_names(whive: hm.HiveMind) -> None:
    ids = await whive.jobs.create_many([hm.call(jobs.async_with_context) for _ in range(200)])
    async with colony_of(whive, drones=3, ack_and_fetch=False):
        for job_id in ids:
            await whive.jobs.wait(job_id, timeout=timedelta(seconds=30))
    for job_id in ids:
        history = await _history(whive, job_id)
        assert [state.name for state in history] == ["Created", "Enqueued", "Executing", "Succeeded"]
        executing, succeeded = history[-2], history[-1]
        assert isinstance(executing, hm.Executing) and isinstance(succeeded, hm.Succeeded)
        assert succeeded.result == executing.drone  # it ran on the drone its Executing state names
