"""What the parts of a running colony share: who it is, its environment and options, its counters,
the drones of each swarm and the runs in flight.

The fetchers (:mod:`.fetcher`), drones (:mod:`.drone`), completer (:mod:`.completer`), watcher
(:mod:`.watcher`) and heartbeat threads (:mod:`.heartbeat`) each hold the one
:class:`ColonyRuntime` of their colony; none of them reaches into another part or into the
:class:`~hivemind_jobs.Colony`, which only configures, starts and stops them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hivemind_jobs.colony.execution import DroneJobContext
from hivemind_jobs.colony.options import ColonyOptions
from hivemind_jobs.colony.swarm import Swarm
from hivemind_jobs.core.invocation import AllowList
from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.states import State
from hivemind_jobs.daemons.runtime import DaemonSupervisor
from hivemind_jobs.storage.protocol import JobLogRow

if TYPE_CHECKING:
    from hivemind_jobs.colony.processes import ProcessPool
    from hivemind_jobs.environment import Environment

__all__ = ["ColonyRuntime", "ColonyStatus", "Outcome", "Run", "SwarmRunner"]

_log = logging.getLogger("hivemind_jobs.colony")


class ColonyStatus:
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class SwarmRunner:
    """The drones of one swarm while the colony runs: which are free, which run what, and the
    events that wake its fetcher."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self.path = swarm.path
        #: the fetch order as configured, and as claimed from now: without paused queues, or empty
        #: while the swarm is paused
        self.configured_groups = swarm.queue_groups()
        self.groups = self.configured_groups
        self.queues = frozenset(queue for group in self.groups for queue in group)
        self.paused = False
        self.middleware = tuple(swarm.middleware_chain())
        #: how long a run of a job without a timeout of its own may take here (None: the environment's)
        self.timeout = swarm.run_timeout()
        #: the child processes its sync jobs run in (set while the colony runs, for ``execution="process"``)
        self.processes: ProcessPool | None = None
        self.free_drones: deque[str] = deque(f"{swarm.name}.drone-{index + 1}" for index in range(swarm.drones))
        #: drones named so far (a written-off drone's replacement gets the next number)
        self.drones_named = swarm.drones
        self.busy: dict[str, Run] = {}
        #: drones taken for a claim in flight (neither free nor running a job yet)
        self.claiming: set[str] = set()
        #: busy drones -> how many claims in flight take a job ahead for them (see :meth:`release`),
        #: and those of them whose run ended meanwhile (neither free nor running: a claim's job is theirs)
        self.ahead: dict[str, int] = {}
        self.parked: set[str] = set()
        #: drone -> the runs claimed ahead for it, in order, waiting for the drone's current run to end
        self.held: dict[str, list[Run]] = {}
        #: a written-off drone whose claim ahead was in flight -> the fresh drone that takes it over
        self.renamed: dict[str, str] = {}
        #: how long its runs took of late (seconds, a moving average; None: none ended yet)
        self.run_time: float | None = None
        #: its last claim ahead found nothing: none until jobs are enqueued (:attr:`wake`) or a
        #: claim for free drones finds some
        self.ahead_dry = False
        #: set when jobs of its queues may have become due (an enqueue here or elsewhere)
        self.wake = asyncio.Event()
        #: set when drones became free and no completer refilled them
        self.slot_free = asyncio.Event()
        #: the completion generation during which a claim last found nothing (burst mode)
        self.idle_since: int | None = None
        #: the storage's change marker read just before the last claim
        self.marker: object | None = None

    def describe(self) -> dict[str, Any]:
        drones: list[dict[str, Any]] = [{"name": name, "job_id": None} for name in self.free_drones]
        drones += [{"name": name, "job_id": None} for name in self.claiming if name not in self.busy]
        drones += [{"name": name, "job_id": None} for name in self.parked]
        drones += [{"name": name, "job_id": run.job.id} for name, run in self.busy.items()]
        drones.sort(key=lambda item: str(item["name"]))
        return {
            "name": self.path,
            "queues": [list(group) for group in self.groups],
            "drones": drones,
            "busy": len(self.busy),
            "paused": self.paused,
        }

    def apply_pauses(self, paused_queues: frozenset[str], *, swarm_paused: bool) -> bool:
        """Leave paused queues (or, while the swarm is paused, every queue) out of the claims;
        returns True when a queue became claimable again (the fetcher should look at once)."""
        before = frozenset(queue for group in self.groups for queue in group)
        self.paused = swarm_paused
        if swarm_paused:
            self.groups = ()
        elif not paused_queues:
            self.groups = self.configured_groups
        else:
            kept = (tuple(queue for queue in group if queue not in paused_queues) for group in self.configured_groups)
            self.groups = tuple(group for group in kept if group)
        return any(queue not in before for group in self.groups for queue in group)

    def take_drone(self) -> str:
        name = self.free_drones.popleft()
        self.claiming.add(name)
        return name

    def return_drone(self, name: str, *, wake: bool = True) -> None:
        self.busy.pop(name, None)
        self.claiming.discard(name)
        self.free_drones.append(name)
        if wake:
            self.slot_free.set()

    def ahead_candidates(self, limit: int, within: float, now: float, depth: int) -> list[str]:
        """Up to ``limit`` busy drones a job may be claimed ahead for: those with fewer than
        ``depth`` jobs held or being claimed for them whose current run started less than ``within``
        seconds ago (or is about to), and parked ones with fewer than ``depth`` claims in flight."""
        chosen: list[str] = []
        held, ahead = self.held, self.ahead
        for name, run in self.busy.items():
            if len(chosen) >= limit:
                break
            if run.drone_lost or len(held.get(name, ())) + ahead.get(name, 0) >= depth:
                continue
            if run.started_at and now - run.started_at >= within:
                continue
            chosen.append(name)
        for name in self.parked:  # waiting for the jobs claims in flight take for them
            if len(chosen) >= limit:
                break
            if ahead.get(name, 0) < depth:
                chosen.append(name)
        return chosen

    def reserve(self, names: list[str]) -> None:
        """A claim in flight takes a job ahead for each of ``names`` (see :meth:`give_back`)."""
        ahead = self.ahead
        for name in names:
            ahead[name] = ahead.get(name, 0) + 1

    def _unreserve(self, name: str) -> bool:
        """One claim ahead for ``name`` is over; returns whether another is still in flight."""
        left = self.ahead[name] - 1
        if left:
            self.ahead[name] = left
            return True
        del self.ahead[name]
        return False

    def release(self, name: str, *, wake: bool = True) -> None:
        """A run on drone ``name`` ended: the drone starts the next run held for it, waits for the
        jobs claims in flight take ahead for it, or is free again."""
        held = self.held.get(name)
        while held:
            run = held.pop(0)
            if run.after is not None and not run.after.done():
                if not held:
                    del self.held[name]
                self.busy[name] = run
                run.after.set_result(None)
                self.slot_free.set()  # fewer jobs held for it: the fetcher may claim ahead again
                return
        self.held.pop(name, None)
        if name in self.ahead:
            self.busy.pop(name, None)
            self.parked.add(name)
            self.slot_free.set()  # the fetcher may claim one more ahead for it
            return
        self.return_drone(name, wake=wake)

    def adopt(self, run: Run) -> None:
        """Place a run claimed ahead: it runs at once where its drone is parked, or is held (with
        ``run.after`` set) until the drone's runs before it ended."""
        name = run.drone
        self._unreserve(name)
        if name in self.parked:
            self.parked.discard(name)
            self.busy[name] = run
            return
        run.after = asyncio.get_running_loop().create_future()
        self.held.setdefault(name, []).append(run)

    def note_run_time(self, seconds: float) -> None:
        """Fold one run's duration into :attr:`run_time`."""
        before = self.run_time
        self.run_time = seconds if before is None else before + (seconds - before) / 8

    def give_back(self, name: str) -> None:
        """A drone taken for a claim got no job from it: free again, or (taken ahead) back to its
        current run, or free if that run ended meanwhile and no other claim is in flight for it."""
        name = self.renamed.get(name, name)
        if name not in self.ahead:
            self.return_drone(name)
            return
        if not self._unreserve(name) and name in self.parked:
            self.parked.discard(name)
            self.return_drone(name)

    def replace_drone(self, name: str) -> str:
        """Write drone ``name`` off (its job went on past its timeout) and give the swarm a fresh one
        in its place; returns the fresh one's name. The runs held for the written-off drone go to
        the fresh one (the first starts at once), and so do the jobs claims in flight take for it."""
        self.busy.pop(name, None)
        self.claiming.discard(name)
        self.drones_named += 1
        fresh = f"{self.swarm.name}.drone-{self.drones_named}"
        waiting = [run for run in self.held.pop(name, ()) if run.after is not None and not run.after.done()]
        for run in waiting:
            run.move_to(fresh)
        claims = self.ahead.pop(name, 0)
        if claims:
            self.ahead[fresh] = claims
            self.renamed[name] = fresh
        if waiting:
            first = waiting.pop(0)
            if waiting:
                self.held[fresh] = waiting
            self.busy[fresh] = first
            assert first.after is not None
            first.after.set_result(None)
        elif claims:
            self.parked.add(fresh)
        else:
            self.free_drones.append(fresh)
        self.slot_free.set()
        return fresh


@dataclass(eq=False, slots=True)
class Run:
    """One execution in this colony."""

    job: BackgroundJob
    runner: SwarmRunner
    drone: str
    context: DroneJobContext
    due_at: datetime
    claimed_at: float
    #: when the last renewal of its lock that the database confirmed was sent (monotonic)
    last_confirmed: float
    task: asyncio.Task[None] | None = None
    started_at: float = 0.0
    #: the wall clock when the drone started the job (lead time = started_on - due_at)
    started_on: datetime | None = None
    #: the state a client asked for when it stopped the job
    stop_state: State | None = None
    #: a colony stop cancelled it
    interrupted: bool = False
    #: its lock could not be confirmed (or another execution owns the job): nothing more is written for it
    lost: bool = False
    #: the sync-job calls this run handed to a thread (one per call, usually one)
    threads: list[Future[Any]] = field(default_factory=list)
    #: a stop ended while this run could still run (its thread had not returned): it keeps its lock
    #: (heartbeats go on) and nothing is written for it; the lock expires once the process is gone
    lingering: bool = False
    #: how long it may run, in seconds (None: no timeout)
    timeout: float | None = None
    #: it reached its timeout and was cancelled: it ends as Failed with a TimeoutError
    timed_out: bool = False
    #: it went on past its timeout's grace period: its drone was given back to the swarm (a fresh
    #: one) while it keeps its lock until it returns
    drone_lost: bool = False
    #: the sync-job thread pool got one more thread when its drone was written off
    extra_thread: bool = False
    #: the timer of its timeout, then of the grace period after it
    timer: asyncio.TimerHandle | None = None
    #: the child process that runs its sync job (swarms with ``execution="process"``)
    process: object | None = None
    #: claimed ahead: done when its drone's current run ended and it may start (None: at once)
    after: asyncio.Future[None] | None = None

    def move_to(self, drone: str) -> None:
        """Run on ``drone`` instead (the one it was claimed for was written off)."""
        self.drone = drone
        self.context.move_to(drone)

    def in_thread(self) -> bool:
        """Whether a thread runs this job's code right now (cancelling the task would not stop it)."""
        return any(future.running() for future in self.threads)

    def cancel(self, *, hard: bool) -> None:
        """Ask the job to stop: sync jobs see ``ctx.cancelled``; async ones (or ``hard``) are cancelled."""
        self.context.cancelled.set()
        if self.task is not None and (hard or self.job.invocation.is_async):
            self.task.cancel()


@dataclass(eq=False, slots=True)
class Outcome:
    """How a run ended, waiting for the completer."""

    run: Run
    result: Any = None
    error: BaseException | None = None
    duration: float = 0.0
    #: computed once: the states to elect and properties to set (re-applied on a write retry)
    states: list[State] = field(default_factory=list)
    properties: dict[str, int] = field(default_factory=dict)
    notes: list[JobLogRow] = field(default_factory=list)
    #: the result as the codec encoded it (checked once, stored as is)
    encoded_result: Any = None


class ColonyRuntime:
    """The state one colony's parts share (see the module docstring).

    It outlives a run: the counters add up over every run of the colony, the swarms' drones and the
    runs in flight belong to the current (or last) run.
    """

    def __init__(
        self,
        environment: Environment,
        *,
        name: str | None,
        options: ColonyOptions,
        allow: AllowList,
        properties: Mapping[str, str | int | float | bool],
    ) -> None:
        host = socket.gethostname()
        self.environment = environment
        self.host = host
        self.pid = os.getpid()
        self.id = f"{host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.name = name if name is not None else f"{host.split('.')[0]}-{self.pid}"[:64]
        self.options = options
        self.allow = allow
        self.properties = properties
        self.status = ColonyStatus.STOPPED
        #: set from the moment a stop is asked for until the next run starts
        self.stopping = asyncio.Event()
        #: counts the completer's batches (a burst run ends when every swarm found nothing since the last)
        self.completion_generation = 0
        self.processed = 0
        self.succeeded = 0
        self.failed = 0
        self.rescued = 0
        self.last_progress_at: datetime | None = None
        self.runners: list[SwarmRunner] = []
        #: the queues paused in storage as last read, and the swarms (paths) paused in this colony
        self.paused_queues: frozenset[str] = frozenset()
        self.paused_swarms: set[str] = set()
        #: the runs in flight (a job can have two: a lost run still ending, and its re-run)
        self.running: set[Run] = set()
        #: the newest run of each job in flight here
        self.latest: dict[int, Run] = {}
        #: outcomes waiting for the completer, and the event that wakes it
        self.outcomes: list[Outcome] = []
        self.outcome_ready = asyncio.Event()
        #: the completer is writing a batch
        self.writing = False
        self.supervisor: DaemonSupervisor | None = None

    @property
    def completing(self) -> bool:
        """Outcomes are waiting to be written (with :attr:`ack_and_fetch`, the completer will
        refill the drones they freed)."""
        return bool(self.outcomes) or self.writing

    @property
    def ack_and_fetch(self) -> bool:
        """Whether the completer claims for the drones a batch freed in that batch's transaction
        (``ColonyOptions.ack_and_fetch``; by default where the storage has one writer at a time),
        or the fetchers claim for them at once in transactions of their own."""
        chosen = self.options.ack_and_fetch
        if chosen is None:
            return self.environment.storage.capabilities.single_writer
        return chosen

    @property
    def running_jobs(self) -> dict[int, str]:
        """Job id -> drone of the jobs running now."""
        return {run.job.id: run.drone for run in self.running if not run.lost}

    def apply_pauses(self) -> None:
        """Bring every swarm's claims in line with the paused queues and swarms; wake the fetchers
        of those that may claim more than before."""
        for runner in self.runners:
            if runner.apply_pauses(self.paused_queues, swarm_paused=runner.path in self.paused_swarms):
                runner.wake.set()

    def forget(self, run: Run) -> None:
        """The run is over for this colony (written, dropped or given up)."""
        self.running.discard(run)
        if self.latest.get(run.job.id) is run:
            del self.latest[run.job.id]

    def lose(self, run: Run, why: str) -> None:
        """Give a run up: nothing more is written for it. The heartbeat thread may have flagged it
        lost already (while the loop was blocked); this is where it is logged and cancelled."""
        run.lost = True
        _log.warning("job %s: %s; cancelling it (nothing more is written for this execution)", run.job.id, why)
        run.cancel(hard=True)

    def describe(self) -> dict[str, Any]:
        """The colony's state as its record stores it."""
        return {
            "environment": self.environment.name,
            "properties": dict(self.properties),
            "swarms": [runner.describe() for runner in self.runners],
            "daemons": self.supervisor.describe() if self.supervisor is not None else [],
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "rescued": self.rescued,
            "running": len(self.running),
        }
