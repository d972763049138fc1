"""The colony: one worker process's swarms of drones and its daemons, under one task group.

How a job travels through a colony:

1. A swarm's fetcher claims at most as many due jobs as it has free drones (plus the prefetch), in
   its queue-group order, and in the *same transaction* moves each one to Executing (the colony
   holds the job lock; the new execution id is the fencing token).
2. A drone runs the job (middleware onion, async on the loop, sync in the thread pool).
3. The completer writes outcomes in batches: Succeeded, Failed (then Enqueued again when the retry
   policy says so), the state a client asked for when it cancelled the job, or Enqueued after a
   shutdown. Every write is fenced by (job id, execution id, lock holder): a drone that lost its
   lock never overwrites the outcome of a re-run.
4. A heartbeat thread renews the locks of running jobs (batched) on a connection of its own, so a
   job that blocks the event loop cannot starve them; a job whose lock cannot be confirmed in time
   is cancelled and writes nothing (fail closed, checked by a thread too). The watcher picks up
   cancel requests and writes job logs. The lock-monitor daemon of any colony rescues jobs of
   colonies that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import queue
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from hivemind_jobs.client.context import JobCancelled, JobContext
from hivemind_jobs.client.locked import LockedJob
from hivemind_jobs.client.worker_api import (
    Scope,
    elect,
    job_from_record,
    save_locked_many,
    state_from_row,
    write_scope,
)
from hivemind_jobs.colony.daemons import DaemonContext, DaemonFunction, DaemonSpec, DaemonSupervisor
from hivemind_jobs.colony.events import ColonyStatusChanged, JobExecuted, JobExecuting
from hivemind_jobs.colony.execution import DroneJobContext, resolve_middleware, run_pipeline
from hivemind_jobs.colony.heartbeat import Heartbeats
from hivemind_jobs.colony.options import ColonyOptions, RestartPolicy
from hivemind_jobs.colony.swarm import QueueSpec, Swarm
from hivemind_jobs.core.invocation import AllowList, prepare_call
from hivemind_jobs.core.job import BackgroundJob, Middleware, PropertyType, property_type_of
from hivemind_jobs.core.names import validate_property_name, validate_swarm_name
from hivemind_jobs.core.retry import RESCUES_PROPERTY, RETRIES_PROPERTY, RETRY_POLICY_PROPERTY, RetryPolicy
from hivemind_jobs.core.states import Enqueued, Executing, Failed, State, Succeeded
from hivemind_jobs.core.text import nested_text_problem
from hivemind_jobs.errors import ConfigurationError, HiveMindError, SerializationError
from hivemind_jobs.storage.protocol import (
    ClaimedJob,
    ColonyUpsert,
    JobActionList,
    JobLogRow,
    QueueClaim,
    StateRow,
    UpdateOutcome,
)

if TYPE_CHECKING:
    from hivemind_jobs.environment import Environment
    from hivemind_jobs.hive import HiveMind

__all__ = ["RESCUES_PROPERTY", "RETRIES_PROPERTY", "Colony", "ColonyStatus"]

_log = logging.getLogger("hivemind_jobs.colony")

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: after a second stop signal, the whole rest of the stop gets at most this long
_FAST_STOP_SECONDS = 0.5
#: a task cancelled during a stop is cancelled again this often while it has not ended: a driver
#: may first wait for its own clean-up (psycopg cancels the query on the server, up to seconds) and
#: a second cancel cuts that short
_RECANCEL_EVERY = 0.3


class ColonyStatus:
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


def _colony_properties(properties: Mapping[str, object]) -> dict[str, str | int | float | bool]:
    """Checked colony properties (text, int, float or bool: they are stored as JSON)."""
    checked: dict[str, str | int | float | bool] = {}
    for name, value in properties.items():
        validate_property_name(name)
        kind = property_type_of(name, value)
        if kind not in (PropertyType.TEXT, PropertyType.INT, PropertyType.FLOAT, PropertyType.BOOL):
            raise ConfigurationError(f"colony property {name!r}: use text, int, float or bool, got {value!r}")
        checked[name] = value  # type: ignore[assignment]  # one of the four, checked above
    return checked


@dataclass(eq=False)
class _Run:
    """One execution in this colony."""

    job: BackgroundJob
    runner: _SwarmRunner
    drone: str
    context: DroneJobContext
    due_at: datetime
    claimed_at: float
    last_confirmed: float
    task: asyncio.Task[None] | None = None
    started_at: float = 0.0
    #: the wall clock when the drone started the job (lead time = started_on - due_at)
    started_on: datetime | None = None
    stop_state: State | None = None
    interrupted: bool = False
    lost: bool = False
    #: the sync-job calls this run handed to a thread (one per call, usually one)
    threads: list[Future[Any]] = field(default_factory=list)
    #: a stop ended while this run could still run (its thread had not returned): it keeps its lock
    #: (heartbeats go on) and nothing is written for it; the lock expires once the process is gone
    lingering: bool = False

    def in_thread(self) -> bool:
        """Whether a thread runs this job's code right now (cancelling the task would not stop it)."""
        return any(future.running() for future in self.threads)

    def cancel(self, *, hard: bool) -> None:
        """Ask the job to stop: sync jobs see ``ctx.cancelled``; async ones (or ``hard``) are cancelled."""
        self.context.cancelled.set()
        if self.task is not None and (hard or self.job.invocation.is_async):
            self.task.cancel()


@dataclass(eq=False)
class _Outcome:
    run: _Run
    result: Any = None
    error: BaseException | None = None
    duration: float = 0.0
    #: computed once: the states to elect and properties to set (re-applied on a write retry)
    states: list[State] = field(default_factory=list)
    properties: dict[str, int] = field(default_factory=dict)
    notes: list[JobLogRow] = field(default_factory=list)


class _SwarmRunner:
    """The fetcher and drones of one swarm."""

    def __init__(self, colony: Colony, swarm: Swarm) -> None:
        self.colony = colony
        self.swarm = swarm
        self.path = swarm.path
        self.groups = swarm.queue_groups()
        self.queues = frozenset(queue for group in self.groups for queue in group)
        self.middleware = tuple(swarm.middleware_chain())
        self.free_drones: deque[str] = deque(f"{swarm.name}.drone-{index + 1}" for index in range(swarm.drones))
        self.busy: dict[str, _Run] = {}
        self.wake = asyncio.Event()
        self.slot_free = asyncio.Event()
        #: the completion generation during which a claim last found nothing (burst mode)
        self.idle_since: int | None = None
        #: the storage's change marker read just before the last claim
        self.marker: object | None = None

    def describe(self) -> dict[str, Any]:
        drones: list[dict[str, Any]] = [{"name": name, "job_id": None} for name in self.free_drones]
        drones += [{"name": name, "job_id": run.job.id} for name, run in self.busy.items()]
        drones.sort(key=lambda item: str(item["name"]))
        return {
            "name": self.path,
            "queues": [list(group) for group in self.groups],
            "drones": drones,
            "busy": len(self.busy),
        }

    async def fetch_loop(self) -> None:
        colony = self.colony
        options = colony.options
        failures = 0
        while not colony.stopping.is_set():
            free = len(self.free_drones)
            if free == 0 or colony.completing:
                # drones freed by finished jobs are refilled by the completer, in the same transaction
                # that writes their outcomes; it wakes this fetcher when drones stay free
                self.slot_free.clear()
                await _wait_either(self.slot_free, colony.stopping, options.poll_interval.total_seconds())
                continue
            generation = colony.completion_generation
            self.wake.clear()
            self.marker = colony.environment.storage.change_marker()
            try:
                started = await colony._claim(self, free + options.prefetch)
                failures = 0
            except Exception as error:  # a fetcher never dies: it reports and retries with backoff
                failures += 1
                delay = min(10.0, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.8, 1.2)
                _log.warning(
                    "swarm %s could not fetch jobs (%s); retrying in %.1f s",
                    self.path,
                    error,
                    delay,
                    exc_info=not isinstance(error, HiveMindError),
                )
                await _wait_either(colony.stopping, colony.stopping, delay)
                continue
            if started:
                self.idle_since = None
                continue
            self.idle_since = generation
            poll = options.poll_interval.total_seconds() * random.uniform(
                1 - options.poll_jitter, 1 + options.poll_jitter
            )
            await _wait_either(self.wake, colony.stopping, poll)

    def take_drone(self) -> str:
        return self.free_drones.popleft()

    def return_drone(self, name: str, *, wake: bool = True) -> None:
        self.busy.pop(name, None)
        self.free_drones.append(name)
        if wake:
            self.slot_free.set()


def _undecodable_failure(problem: str) -> Failed:
    """The end of a job whose stored call this build cannot decode (not retried: it never will)."""
    return Failed(
        exception_type=f"{SerializationError.__module__}.{SerializationError.__qualname__}",
        message=problem,
        reason=f"not run: {problem}",
    )


async def _wait_either(first: asyncio.Event, second: asyncio.Event, timeout: float | None) -> None:
    """Wait until either event is set (or the timeout passes)."""
    if first.is_set() or second.is_set():
        return
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class _DaemonThreadPool(Executor):
    """A bounded pool of daemon threads for sync jobs.

    ``ThreadPoolExecutor`` threads are joined when the interpreter exits, so one sync job that
    ignores its cancel would keep a stopped worker process alive until the job ends. These threads
    are not: a stop gives such a job up with its lock kept, and the process can exit.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._shut_down:
                raise RuntimeError("the colony's sync-job threads are shut down")
            self._work.put((future, functools.partial(fn, *args, **kwargs)))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                self._work.put(None)  # for the next thread
                return
            future, call = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as error:
                    future.set_exception(error)
                    del error
                else:
                    future.set_result(result)
                    del result
            del future, call
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut_down = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            self._work.put(None)
        if wait:
            for thread in list(self._threads):
                thread.join()


class _RunExecutor(Executor):
    """Hands one run's sync calls to the colony's threads and remembers them on the run, so that
    a stop knows whether a thread still runs the job."""

    def __init__(self, pool: Executor, run: _Run) -> None:
        self._pool = pool
        self._run = run

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future = self._pool.submit(fn, *args, **kwargs)
        self._run.threads.append(future)
        return future


async def _wait_tasks(tasks: Iterable[asyncio.Future[Any]], until: Callable[[], float]) -> set[asyncio.Future[Any]]:
    """Wait until ``tasks`` are done or ``until()`` passes (read again and again: it can move
    closer); returns the ones still pending."""
    pending = {task for task in tasks if not task.done()}
    while pending and (remaining := until() - time.monotonic()) > 0:
        _, pending = await asyncio.wait(pending, timeout=min(0.05, remaining))
    return pending


async def _cancel_within(tasks: Iterable[asyncio.Future[Any]], until: Callable[[], float]) -> set[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait for them until ``until()``; the ones still pending are left
    behind (a task stuck on a database that does not answer must not hold a stop)."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    await asyncio.sleep(0)  # one step for each to see its cancellation, whatever the budget
    recancel_at = time.monotonic() + _RECANCEL_EVERY
    while pending and (remaining := until() - time.monotonic()) > 0:
        _, pending = await asyncio.wait(pending, timeout=min(0.05, remaining))
        if pending and time.monotonic() >= recancel_at:
            for task in pending:
                task.cancel()
            recancel_at = time.monotonic() + _RECANCEL_EVERY
    return {task for task in pending if not task.done()}


async def _within(awaitable: Awaitable[Any], until: Callable[[], float], what: str) -> None:
    """Await ``awaitable`` until ``until()``, then cancel it and go on (logged, never raised)."""
    task = asyncio.ensure_future(awaitable)
    try:
        pending = await _wait_tasks([task], until)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if pending:
        await _cancel_within(pending, time.monotonic)
        _log.warning("%s did not finish within the stop budget; given up", what)
        return
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        _log.warning("%s failed: %s", what, error, exc_info=not isinstance(error, HiveMindError))


class Colony:
    """A worker: swarms of drones that run jobs of one environment, and daemons.

    Build it with :meth:`HiveMind.colony`, add swarms and daemons, then run it::

        colony = hive.colony(name="billing-worker", allow=hm.AllowList(modules=["billing"]))
        main = colony.swarm("main", drones=8, queues=[("critical", 0), "billing"])
        main.swarm("reports", drones=2, queues=["reports"], dedicated=True)
        async with hive:
            await colony.run(handle_signals=True)     # until SIGTERM/SIGINT or colony.stop()

    or ``async with colony:`` to run it in the background of a block. Only jobs whose function
    (and middleware) lives in a module ``allow`` permits are run; others fail with a clear reason.
    """

    def __init__(
        self,
        hive: HiveMind,
        *,
        name: str | None = None,
        environment: str | None = None,
        options: ColonyOptions | None = None,
        allow: AllowList | None = None,
        properties: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        if options is not None and not isinstance(options, ColonyOptions):
            raise ConfigurationError(f"options must be hivemind_jobs.ColonyOptions, got {options!r}")
        if allow is not None and not isinstance(allow, AllowList):
            raise ConfigurationError(f"allow must be hivemind_jobs.AllowList, got {allow!r}")
        self.hive = hive
        self.environment: Environment = hive.env(environment)
        host = socket.gethostname()
        self.host = host
        self.pid = os.getpid()
        self.id = f"{host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.name = validate_swarm_name(name) if name is not None else f"{host.split('.')[0]}-{self.pid}"[:64]
        self.options = options or ColonyOptions()
        self.allow = allow or AllowList()
        self.properties = _colony_properties(properties or {})
        self.status = ColonyStatus.STOPPED
        self.stopping = asyncio.Event()
        self.completion_generation = 0
        self.processed = 0
        self.succeeded = 0
        self.failed = 0
        self.rescued = 0
        self.last_progress_at: datetime | None = None
        self._roots: list[Swarm] = []
        self._swarm_names: set[str] = set()
        self._daemon_specs: list[DaemonSpec] = []
        self._runners: list[_SwarmRunner] = []
        #: the runs in flight (a job can have two: a lost run still ending, and its re-run)
        self._running: set[_Run] = set()
        #: the newest run of each job in flight here
        self._latest: dict[int, _Run] = {}
        self._outcomes: list[_Outcome] = []
        self._outcome_ready = asyncio.Event()
        self._writing = False
        self._executor: _DaemonThreadPool | None = None
        self._supervisor: DaemonSupervisor | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._fast_stop = False
        #: when the stop was asked for, and when a fast one (monotonic): the stop's budget counts from these
        self._stop_at: float | None = None
        self._fast_at: float | None = None

    def __repr__(self) -> str:
        return f"<Colony {self.name!r} id={self.id} {self.status}>"

    # ------------------------------------------------------------------ configuration
    def swarm(
        self,
        name: str,
        *,
        drones: int = 4,
        queues: Iterable[QueueSpec] = (),
        dedicated: bool = False,
        work_on_global: bool | None = None,
        middleware: Iterable[Middleware] = (),
    ) -> Swarm:
        """Add a root swarm (it also works the ``global`` queue unless ``work_on_global=False``)."""
        if self.status != ColonyStatus.STOPPED:
            raise ConfigurationError("add swarms before the colony starts")
        swarm = Swarm.define(
            name,
            drones=drones,
            queues=queues,
            dedicated=dedicated,
            work_on_global=work_on_global,
            middleware=middleware,
            taken=self._swarm_names,
        )
        self._roots.append(swarm)
        return swarm

    def daemon(
        self,
        name: str,
        function: DaemonFunction,
        *,
        restart: RestartPolicy = RestartPolicy.ON_FAILURE,
        priority: int = 0,
        restart_delay: float = 1.0,
        log_level: int = logging.WARNING,
    ) -> None:
        """Run ``await function(ctx)`` while the colony runs (see :class:`DaemonContext`)."""
        if self.status != ColonyStatus.STOPPED:
            raise ConfigurationError("add daemons before the colony starts")
        if name.startswith("hm.") or any(spec.name == name for spec in self._daemon_specs):
            raise ConfigurationError(f"daemon name {name!r} is taken (names starting with 'hm.' are reserved)")
        self._daemon_specs.append(DaemonSpec(name, function, restart, priority, restart_delay, log_level))

    @property
    def swarms(self) -> list[Swarm]:
        return [swarm for root in self._roots for swarm in root.walk()]

    @property
    def completing(self) -> bool:
        """Outcomes are waiting to be written (the completer will refill the drones they freed)."""
        return bool(self._outcomes) or self._writing

    @property
    def running_jobs(self) -> dict[int, str]:
        """Job id -> drone of the jobs running now."""
        return {run.job.id: run.drone for run in self._running if not run.lost}

    # ------------------------------------------------------------------ lifecycle
    def stop(self, *, fast: bool = False) -> None:
        """Ask the colony to stop (running jobs get the grace period unless ``fast``).

        The stop ends within ``graceful_stop + shutdown_timeout`` of the first request (a ``fast``
        one: within about half a second of it), even when the database does not answer. A job is
        put back to Enqueued only once nothing of this colony runs it any more: a sync job whose
        thread is still running keeps its lock until it returns or the process exits.
        """
        now = time.monotonic()
        if self._stop_at is None:
            self._stop_at = now
        if fast:
            self._fast_stop = True
            if self._fast_at is None:
                self._fast_at = now
        self.stopping.set()

    def shutdown_remaining(self) -> float:
        """Seconds left of the current (or last) stop's budget (0 when it is spent or no stop was asked
        for): what closing the storage after :meth:`run` may still take."""
        if self._stop_at is None:
            return 0.0
        return max(0.0, self._stop_deadline() - time.monotonic())

    def _stop_deadline(self) -> float:
        assert self._stop_at is not None
        options = self.options
        deadline = self._stop_at + (options.graceful_stop + options.stop_budget).total_seconds()
        if self._fast_at is not None:
            deadline = min(deadline, self._fast_at + _FAST_STOP_SECONDS)
        return deadline

    def _grace_deadline(self) -> float:
        assert self._stop_at is not None
        if self._fast_at is not None:
            return min(self._fast_at, self._stop_at + self.options.graceful_stop.total_seconds())
        return self._stop_at + self.options.graceful_stop.total_seconds()

    async def __aenter__(self) -> Colony:
        self._task = asyncio.create_task(self.run(), name=f"hivemind-colony-{self.name}")
        waiter = asyncio.ensure_future(self._started.wait())
        await asyncio.wait([waiter, self._task], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # raise the start-up error
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()
        if self._task is not None:
            await self._task

    async def run(self, *, burst: bool = False, handle_signals: bool = False) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT with ``handle_signals``); with ``burst``, return
        as soon as no job is due and none is running."""
        if self.status != ColonyStatus.STOPPED:
            raise ConfigurationError(f"colony {self.name!r} is already running")
        if not self._roots:
            raise ConfigurationError(f"colony {self.name!r} has no swarm; add one with colony.swarm(...)")
        self.stopping.clear()
        self._fast_stop = False
        self._stop_at = self._fast_at = None
        self._started.clear()
        await self._set_status(ColonyStatus.STARTING)
        loop = asyncio.get_running_loop()
        removers: list[Callable[[], object]] = []
        if handle_signals:
            removers.extend(self._install_signal_handlers(loop))
        total_drones = sum(swarm.drones for swarm in self.swarms)
        self._executor = _DaemonThreadPool(self.options.sync_threads or max(1, total_drones), f"hivemind-{self.name}")
        self._runners = [_SwarmRunner(self, swarm) for swarm in self.swarms if swarm.drones > 0]
        removers.append(self.environment.add_wake_listener(self._on_wake))
        self._supervisor = DaemonSupervisor(self, self._builtin_daemons() + self._daemon_specs)
        tasks: list[asyncio.Task[None]] = []
        heartbeats = Heartbeats(self, loop)
        try:
            heartbeats.start()
            await self._sync_state()
            await self._supervisor.start()
            tasks = [
                asyncio.create_task(runner.fetch_loop(), name=f"hivemind-fetch-{runner.path}")
                for runner in self._runners
            ]
            tasks.append(asyncio.create_task(self._completion_loop(), name="hivemind-completer"))
            tasks.append(asyncio.create_task(self._watch_loop(), name="hivemind-watcher"))
            if self.options.change_check_interval is not None:
                tasks.append(asyncio.create_task(self._change_loop(), name="hivemind-changes"))
            await self._set_status(ColonyStatus.RUNNING)
            with contextlib.suppress(HiveMindError):
                await self._sync_state()  # visible as running at once, not at the first periodic sync
            self._started.set()
            _log.info(
                "colony %s (%s) running %d drones in %d swarms", self.name, self.id, total_drones, len(self._runners)
            )
            if burst:
                await self._wait_until_drained()
            else:
                await self.stopping.wait()
        finally:
            if self._stop_at is None:  # burst mode ended, or a failure: the stop starts now
                self._stop_at = time.monotonic()
            await self._set_status(ColonyStatus.STOPPING)
            self.stopping.set()
            lingering: list[_Run] = []
            try:
                lingering = await self._shutdown(tasks)
            finally:
                if lingering:
                    self._heartbeat_until_done(heartbeats, lingering)
                else:  # after the outcomes were written: their locks are kept until then
                    await _within(heartbeats.stop(), self._stop_deadline, f"colony {self.name}: stopping heartbeats")
            for remove in removers:
                remove()
            await self._set_status(ColonyStatus.STOPPED)

    async def _set_status(self, status: str) -> None:
        if status == self.status:
            return
        self.status = status
        try:
            await self.environment.mediator.publish(ColonyStatusChanged(self, status))
        except Exception:
            _log.exception("a ColonyStatusChanged handler failed")

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[Callable[[], object]]:
        removers: list[Callable[[], object]] = []

        def on_signal(number: int) -> None:
            if self.stopping.is_set():
                _log.warning(
                    "colony %s: second %s, stopping at once: jobs still running in threads keep their locks and "
                    "are rescued once this process is gone",
                    self.name,
                    signal.Signals(number).name,
                )
                self.stop(fast=True)
                return
            _log.info("colony %s: %s received, stopping", self.name, signal.Signals(number).name)
            self.stop()

        for number in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(number, on_signal, number)
                removers.append(functools.partial(loop.remove_signal_handler, number))
        return removers

    async def _change_loop(self) -> None:
        """Wake idle fetchers when the storage changed since their last claim (another process may
        have enqueued): a local check every few milliseconds instead of a query."""
        assert self.options.change_check_interval is not None
        interval = self.options.change_check_interval.total_seconds()
        storage = self.environment.storage
        unsubscribe = storage.subscribe_changes(self._on_storage_change)
        if unsubscribe is not None:  # the storage calls back (PostgreSQL NOTIFY): nothing to check
            try:
                await asyncio.Event().wait()
            finally:
                unsubscribe()
        if storage.change_marker() is None:
            return
        while True:
            await asyncio.sleep(interval)
            idle = [runner for runner in self._runners if runner.idle_since is not None and runner.free_drones]
            if not idle:
                continue
            marker = storage.change_marker()
            for runner in idle:
                if runner.marker != marker:
                    runner.wake.set()

    def _on_storage_change(self) -> None:
        # every fetcher, idle or claiming: one whose claim is in flight claims once more at once,
        # so an enqueue committed after its claim's snapshot is not left to the poll
        for runner in self._runners:
            runner.wake.set()

    def _on_wake(self, queues: frozenset[str]) -> None:
        for runner in self._runners:
            if runner.queues & queues:
                runner.wake.set()

    async def _wait_until_drained(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(0.02)
            if self._running or self._outcomes or self._writing:
                continue
            generation = self.completion_generation
            if all(runner.idle_since == generation for runner in self._runners):
                return

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> list[_Run]:
        """Stop every stage within one budget; returns the runs given up with their locks kept."""
        options = self.options
        until = self._stop_deadline
        fetchers = tasks[: len(self._runners)]
        await _cancel_within(fetchers, until)
        # drain: running jobs get the grace period
        await _wait_tasks(self._run_tasks(), lambda: min(self._grace_deadline(), until()))
        for run in list(self._running):
            if run.task is None or run.task.done():
                continue
            run.interrupted = True
            for future in run.threads:
                future.cancel()  # only a call still waiting for a thread: it never starts
            # a thread cannot be cancelled: its job sees ctx.cancelled, and its run goes on until the
            # thread returns (cancelling the task would free the job while its code still runs)
            run.cancel(hard=not run.in_thread())
        # what ends now is written: leave part of the budget for those writes
        reserve = min(options.stop_budget.total_seconds() / 2, 2.0)
        await _wait_tasks(self._run_tasks(), lambda: until() - reserve)
        lingering = [run for run in self._running if run.task is not None and not run.task.done()]
        for run in lingering:
            run.lingering = True
        if lingering:
            _log.warning(
                "colony %s: %d job(s) still running after the stop budget (%s); they keep their locks (the lock "
                "monitor re-enqueues them once this process is gone) and nothing is written for them",
                self.name,
                len(lingering),
                ", ".join(str(run.job.id) for run in lingering),
            )
        while (self._outcomes or self._writing) and time.monotonic() < until():
            self._outcome_ready.set()
            await asyncio.sleep(0.02)
        await _cancel_within(tasks[len(self._runners) :], until)
        if self._outcomes:
            _log.error(
                "colony %s stopped with %d job outcomes unwritten (database unreachable); their locks expire and "
                "the lock monitor re-enqueues them",
                self.name,
                len(self._outcomes),
            )
        if self._supervisor is not None:
            supervisor = self._supervisor
            # three priority groups of built-in daemons (user daemons, maintenance, colony state)
            per_group = max(0.0, until() - time.monotonic()) / 3
            await _within(supervisor.stop(timeout=per_group), until, f"colony {self.name}: stopping daemons")
        await self._set_status(ColonyStatus.STOPPED)
        await _within(self._sync_state(), until, f"colony {self.name}: writing its stopped state")
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        _log.info("colony %s stopped (%d jobs processed)", self.name, self.processed)
        return lingering

    def _run_tasks(self) -> list[asyncio.Task[None]]:
        return [run.task for run in self._running if run.task is not None and not run.task.done()]

    def _heartbeat_until_done(self, heartbeats: Heartbeats, lingering: list[_Run]) -> None:
        """Keep renewing the locks of runs a stop gave up until each has ended (then the heartbeat
        threads stop) or the process exits (then the locks expire and the jobs are rescued)."""
        waits: list[Future[Any] | asyncio.Future[Any]] = []
        for run in lingering:
            running = [future for future in run.threads if not future.done()]
            if running:
                waits.extend(running)
            elif run.task is not None:
                waits.append(run.task)
        guard = threading.Lock()
        left = [len(waits)]

        def ended(_: object) -> None:  # on a job thread, or on the loop
            with guard:
                left[0] -= 1
                if left[0] > 0:
                    return
            for run in lingering:
                self._running.discard(run)
            heartbeats._stopped.set()  # the threads end by themselves (they are daemon threads)

        if not waits:
            ended(None)
        for wait in waits:
            wait.add_done_callback(ended)

    # ------------------------------------------------------------------ fetching
    async def _claim(self, runner: _SwarmRunner, limit: int) -> int:
        """Claim and launch jobs; returns how many were launched or taken out of the queue as unrunnable."""
        claimed: list[tuple[_Run, UpdateOutcome]] = []
        try:
            async with write_scope(self.environment) as scope:
                removed = await self._claim_in(scope, runner, limit, claimed, last=True)
        except BaseException:
            for run, _ in claimed:
                run.runner.return_drone(run.drone)
            raise
        # jobs failed as undecodable count as progress, so the fetcher claims again at once
        return self._launch(claimed) + removed

    async def _claim_in(
        self, scope: Scope, runner: _SwarmRunner, limit: int, claimed: list[tuple[_Run, UpdateOutcome]], *, last: bool
    ) -> int:
        """Claim up to ``limit`` jobs for ``runner`` in ``scope`` and move them to Executing.

        The runs (with their drones taken) are appended to ``claimed``; the caller launches them
        once the transaction committed, or gives the drones back if it failed. A claimed job whose
        stored call cannot be decoded fails here, in the same transaction (retrying cannot help, and
        left in the queue it would come first again and again); returns how many did.
        """
        env = self.environment
        entries = await scope.tx.queue_claim(QueueClaim(runner.groups, limit, self.id, with_records=True))
        if not entries:
            return 0
        now_mono = time.monotonic()
        jobs: list[BackgroundJob] = []
        started: list[_Run] = []
        undecodable: list[BackgroundJob] = []
        try:
            for entry in entries:
                record = entry.record
                if record is None:
                    continue
                job = job_from_record(record, env.name, env.codec)
                jobs.append(job)
                if not isinstance(job.state, Enqueued) or job.execution_key != entry.execution_id:
                    continue  # stale entry: saved unchanged, which releases the lock
                problem = job.invocation.problem
                if problem is not None:
                    await elect(job, _undecodable_failure(problem), env, scope.jobs)
                    undecodable.append(job)
                    continue
                if not runner.free_drones:
                    # more claimed than drones (prefetch): put it back at once, keeping its place in line
                    due = max(entry.execute_after, entry.enqueued_at)
                    await elect(job, Enqueued(delay_until=due, reason="returned: no free drone"), env, scope.jobs)
                    continue
                drone = runner.take_drone()
                executing = Executing(colony=self.name, swarm=runner.path, drone=drone, due_at=entry.execute_after)
                run = self._new_run(job, runner, drone, entry, now_mono)
                started.append(run)
                if not await elect(job, executing, env, scope.jobs):
                    started.pop()
                    runner.return_drone(drone)  # a handler elected something else: saved and released, not run
            outcomes = await save_locked_many(
                jobs, self.id, scope, keep_lock=lambda job: isinstance(job.state, Executing), last=last
            )
        except BaseException:
            for run in started:
                runner.return_drone(run.drone)
            raise
        by_id = {job.id: outcome for job, outcome in zip(jobs, outcomes, strict=True)}
        claimed.extend((run, by_id.get(run.job.id, UpdateOutcome.NOT_FOUND)) for run in started)
        for job in undecodable:
            _log.warning("job %s cannot run and failed: %s", job.id, job.invocation.problem)
        return sum(1 for job in undecodable if by_id.get(job.id) is UpdateOutcome.SAVED)

    def _launch(self, claimed: list[tuple[_Run, UpdateOutcome]]) -> int:
        launched = 0
        for run, outcome in claimed:
            if outcome is not UpdateOutcome.SAVED:
                run.runner.return_drone(run.drone)
                continue
            run.runner.busy[run.drone] = run
            older = self._latest.get(run.job.id)
            if older is not None and older in self._running and not older.lost:
                # claimed again, so its execution changed: the earlier run here can never write
                self._lose(older, "the job was rescued and claimed again")
            self._latest[run.job.id] = run
            self._running.add(run)
            run.task = asyncio.create_task(self._execute(run), name=f"hivemind-job-{run.job.id}")
            launched += 1
        if launched:
            self.last_progress_at = self.environment.clock.now()
        return launched

    def _new_run(self, job: BackgroundJob, runner: _SwarmRunner, drone: str, entry: ClaimedJob, now: float) -> _Run:
        env = self.environment
        locked = LockedJob(job, env.jobs, self.id)
        context = DroneJobContext(
            locked,
            colony=self.name,
            swarm=runner.path,
            drone=drone,
            log_level=env.options.job_log_level,
            logger_name=f"hivemind_jobs.job.{job.id}",
        )
        due = max(entry.execute_after, entry.enqueued_at)
        return _Run(job, runner, drone, context, due, now, now)

    # ------------------------------------------------------------------ executing
    async def _execute(self, run: _Run) -> None:
        env = self.environment
        outcome = _Outcome(run)
        run.started_at = time.monotonic()
        run.started_on = env.clock.now()
        try:
            middleware = resolve_middleware(
                run.runner.middleware, run.job.middleware, codec=env.codec, activator=env.activator, allow=self.allow
            )

            def prepare() -> Any:
                return prepare_call(
                    run.job.invocation,
                    codec=env.codec,
                    activator=env.activator,
                    allow=self.allow,
                    injections={JobContext: run.context},
                )

            assert self._executor is not None
            mediator = env.mediator
            if mediator.has_handlers(JobExecuting):
                await mediator.publish(JobExecuting(run.context))
            executor = _RunExecutor(self._executor, run)
            outcome.result = await run_pipeline(run.context, middleware, prepare, executor)
        except asyncio.CancelledError as error:
            outcome.error = error
        except Exception as error:
            outcome.error = error
        finally:
            outcome.duration = time.monotonic() - run.started_at
            run.runner.return_drone(run.drone, wake=False)
            if run.lingering:
                # the stop ended before this run did: nothing is written, its lock expires and the
                # lock monitor re-enqueues the job (its result may have come too late to be written)
                self._forget(run)
            else:
                self._outcomes.append(outcome)
                self._outcome_ready.set()
            if not run.lingering and env.mediator.has_handlers(JobExecuted):
                try:
                    executed = JobExecuted(run.context, outcome.result, outcome.error, outcome.duration)
                    await env.mediator.publish(executed)
                except Exception:
                    _log.exception("a JobExecuted handler failed for job %s", run.job.id)

    # ------------------------------------------------------------------ completing
    def _retry_policy(self, job: BackgroundJob) -> RetryPolicy:
        base = self.environment.options.retry
        stored = job.get_property(RETRY_POLICY_PROPERTY)
        if not isinstance(stored, str):
            return base
        try:
            return RetryPolicy.from_json(stored, base)
        except (ValueError, ConfigurationError):
            return base

    def _decide(self, outcome: _Outcome) -> None:
        """The states an outcome leads to (computed once per outcome)."""
        run = outcome.run
        env = self.environment
        job = run.job
        error = outcome.error
        # a job that finished anyway while a stop cancelled it gets its real outcome; one that
        # ended because of the cancel goes back to the queue (a sync job's other errors are its own)
        if run.interrupted and error is not None:
            honoured = isinstance(error, asyncio.CancelledError | JobCancelled)
            if honoured or job.invocation.is_async:
                reason = f"shutdown: colony {self.name} stopped before the job finished"
                outcome.states = [Enqueued(reason=reason)]
                return
        if run.stop_state is not None and error is not None:
            outcome.states = [dataclasses.replace(run.stop_state)]
            return
        if error is None:
            result = outcome.result
            try:
                encoded = env.codec.encode(result, path="job result")
            except SerializationError as problem:
                outcome.notes.append(
                    JobLogRow(
                        job.id, logging.WARNING, f"the result was stored as its repr: {problem}", "hivemind_jobs.drone"
                    )
                )
                result = encoded = repr(result)
            unstorable = nested_text_problem(encoded, sys.maxsize)
            if unstorable is not None:  # NUL or a lone surrogate: no backend compares such state text alike
                outcome.notes.append(
                    JobLogRow(
                        job.id,
                        logging.WARNING,
                        f"the result was stored as its repr: {unstorable}",
                        "hivemind_jobs.drone",
                    )
                )
                result = encoded = repr(result)
            oversized = env.options.limits.oversized_result(encoded)
            if oversized is not None:  # the job's side effects happened: it succeeds, without the value
                result, warning = oversized
                outcome.notes.append(JobLogRow(job.id, logging.WARNING, warning, "hivemind_jobs.drone"))
            lead = (run.started_on or env.clock.now()) - run.due_at
            outcome.states = [
                Succeeded(
                    result=result,
                    duration=timedelta(seconds=outcome.duration),
                    overhead=timedelta(seconds=max(0.0, run.started_at - run.claimed_at)),
                    lead_time=max(timedelta(0), lead),
                )
            ]
            return
        if isinstance(error, asyncio.CancelledError):
            error = JobCancelled(f"job {job.id} was cancelled")
        failed = Failed.from_exception(error)
        failed.message, failed.traceback = env.options.limits.exception_text(failed.message, failed.traceback)
        outcome.states = [failed]
        policy = self._retry_policy(job)
        retries = job.get_property(RETRIES_PROPERTY, 0)
        retries = retries if isinstance(retries, int) else 0
        if policy.should_retry(retries, error):
            delay = policy.delay_for(retries + 1)
            outcome.states.append(
                Enqueued(
                    delay=delay,  # measured on the database clock when the retry is saved
                    reason=f"retry {retries + 1} of {policy.max_retries} in {delay.total_seconds():.3g} s",
                )
            )
            outcome.properties[RETRIES_PROPERTY] = retries + 1
        elif policy.is_fatal(error):
            failed.reason = "fatal error: not retried"
        else:
            failed.reason = f"gave up after {retries} retries"

    async def _completion_loop(self) -> None:
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            while self._outcomes:
                batch = self._outcomes[: self.options.completion_batch]
                del self._outcomes[: len(batch)]
                self._writing = True
                try:
                    await self._complete(batch)
                except Exception:  # never lose the completer: these jobs' locks expire and they are rescued
                    _log.exception("colony %s could not complete %d jobs", self.name, len(batch))
                    for outcome in batch:
                        self._forget(outcome.run)
                finally:
                    self._writing = False

    async def _complete(self, batch: list[_Outcome]) -> None:
        for outcome in batch:
            if not outcome.states and not outcome.run.lost:
                self._decide(outcome)
        attempt = 0
        lock_timeout = self.environment.options.lock_timeout.total_seconds()
        first_try = time.monotonic()
        while True:
            try:
                await self._write_outcomes(batch, reload=attempt > 0)
                break
            except Exception as error:
                attempt += 1
                if time.monotonic() - first_try > lock_timeout:
                    _log.error(
                        "colony %s could not write %d job outcomes for %.0f s (%s); their locks expire and the "
                        "lock monitor re-enqueues them",
                        self.name,
                        len(batch),
                        lock_timeout,
                        error,
                        exc_info=not isinstance(error, HiveMindError),
                    )
                    break
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.8, 1.2))
        for outcome in batch:
            self._forget(outcome.run)
        for runner in self._runners:
            if runner.free_drones:
                runner.slot_free.set()
        self.completion_generation += 1
        self.last_progress_at = self.environment.clock.now()

    async def _write_outcomes(self, batch: list[_Outcome], *, reload: bool) -> None:
        env = self.environment
        holder = self.id
        # Fail closed at the write too, not only when the heartbeat thread gets round to it: a run
        # whose lock went unconfirmed too long (this process was stopped, say) may have been rescued.
        fail_after = env.options.lock_timeout.total_seconds() * (1 - self.options.lock_safety)
        now = time.monotonic()
        for outcome in batch:
            run = outcome.run
            if not run.lost and now - run.last_confirmed > fail_after:
                self._lose(run, f"its lock could not be confirmed for {now - run.last_confirmed:.1f} s")
        writable = [outcome for outcome in batch if not outcome.run.lost]
        for outcome in batch:
            if outcome.run.lost:
                _log.warning(
                    "job %s: the lock of colony %s was lost while it ran; its outcome is dropped (the job was or will "
                    "be rescued and run again)",
                    outcome.run.job.id,
                    self.name,
                )
        logs: list[JobLogRow] = []
        for outcome in batch:
            logs.extend(outcome.run.context.buffer.take())
            logs.extend(outcome.notes)
        claimed: list[tuple[_Run, UpdateOutcome]] = []
        try:
            async with write_scope(env) as scope:
                if logs:
                    await scope.tx.job_log_insert(logs)
                jobs = await self._apply_outcomes(writable, scope, reload=reload)
                refill = [runner for runner in self._runners if runner.free_drones and not self.stopping.is_set()]
                results = await save_locked_many(jobs, holder, scope, keep_lock=lambda job: False, last=not refill)
                for runner in refill:
                    # ack and fetch: the drones these jobs freed get new jobs in the same transaction
                    await self._claim_in(scope, runner, len(runner.free_drones), claimed, last=False)
        except BaseException:
            for run, _ in claimed:
                run.runner.return_drone(run.drone)
            for outcome in batch:
                outcome.run.context.buffer.put_back([row for row in logs if row.job_id == outcome.run.job.id])
            raise
        self._launch(claimed)
        for job, result in zip(jobs, results, strict=True):
            if result is not UpdateOutcome.SAVED:
                _log.warning(
                    "job %s: outcome not written, %s (another execution owns the job now)", job.id, result.value
                )
                continue
            self.processed += 1
            state = job.state
            if isinstance(state, Succeeded):
                self.succeeded += 1
            elif isinstance(state, Failed):
                self.failed += 1

    async def _apply_outcomes(self, outcomes: list[_Outcome], scope: Scope, *, reload: bool) -> list[BackgroundJob]:
        env = self.environment
        if reload:
            records = {r.id: r for r in await scope.tx.job_get_many([o.run.job.id for o in outcomes])}
        jobs: list[BackgroundJob] = []
        for outcome in outcomes:
            job = outcome.run.job
            if reload:
                record = records.get(job.id)
                if record is None:
                    continue
                job = job_from_record(record, env.name, env.codec)
                outcome.run.job = job
            for name, value in outcome.properties.items():
                job._set_property(name, value)
            for template in outcome.states:
                await elect(job, dataclasses.replace(template), env, scope.jobs)
            jobs.append(job)
        return jobs

    # ------------------------------------------------------------------ watching running jobs
    async def _watch_loop(self) -> None:
        """Cancel requests and job logs of running jobs. Their locks are renewed, and given up when
        they cannot be confirmed in time, by the heartbeat threads (:mod:`.heartbeat`), not here: a
        job that blocks this loop must not let its own lock, or any other, expire."""
        options = self.options
        # a hung database delays cancel requests by at most this much, never the next look
        bound = self.environment.options.lock_timeout.total_seconds() * (1 - options.lock_safety)
        while True:
            await asyncio.sleep(options.watch_interval.total_seconds())
            runs = [run for run in self._running if not run.lost]
            if not runs:
                continue
            try:
                await asyncio.wait_for(self._watch(runs), timeout=bound)
            except Exception as error:
                _log.warning(
                    "colony %s could not look for cancel requests or write job logs: %s",
                    self.name,
                    error if str(error) else f"no answer within {bound:.1f} s",
                    exc_info=not isinstance(error, HiveMindError | TimeoutError),
                )

    async def _watch(self, runs: list[_Run]) -> None:
        env = self.environment
        ids = tuple(run.job.id for run in runs)
        logs = [row for run in runs for row in run.context.buffer.take()]
        try:
            async with write_scope(env) as scope:
                actions = await scope.tx.job_action_list(JobActionList(ids))
                if actions:
                    await scope.tx.job_action_delete([action.id for action in actions])
                if logs:
                    await scope.tx.job_log_insert(logs)
        except BaseException:
            for run in runs:
                run.context.buffer.put_back([row for row in logs if row.job_id == run.job.id])
            raise
        for action in actions:
            target = next((run for run in runs if run.job.id == action.job_id and not run.lost), None)
            if target is None or action.kind != "stop":
                continue
            try:
                payload = json.loads(action.payload)
                row = StateRow(
                    0, payload["state"], env.clock.now(), payload.get("reason"), json.dumps(payload["fields"])
                )
                state = state_from_row(row, env.codec)
            except (ValueError, KeyError, TypeError):
                continue
            state.sequence = 0
            state.elected_at = None
            target.stop_state = state
            target.context.buffer.add(logging.WARNING, f"stop requested by {action.requested_by}: {state.name}")
            target.cancel(hard=False)

    def _forget(self, run: _Run) -> None:
        self._running.discard(run)
        if self._latest.get(run.job.id) is run:
            del self._latest[run.job.id]

    def _lose(self, run: _Run, why: str) -> None:
        """Give a run up: nothing more is written for it. The heartbeat thread may have flagged it
        lost already (while this loop was blocked); this is where it is logged and cancelled."""
        run.lost = True
        _log.warning("job %s: %s; cancelling it (nothing more is written for this execution)", run.job.id, why)
        run.cancel(hard=True)

    # ------------------------------------------------------------------ state
    def describe(self) -> dict[str, Any]:
        return {
            "environment": self.environment.name,
            "properties": dict(self.properties),
            "swarms": [runner.describe() for runner in self._runners],
            "daemons": self._supervisor.describe() if self._supervisor is not None else [],
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "rescued": self.rescued,
            "running": len(self._running),
        }

    async def _sync_state(self) -> None:
        supervisor = self._supervisor
        logs = list(supervisor.pending_logs) if supervisor is not None else []
        async with write_scope(self.environment) as scope:
            await scope.tx.colony_upsert(
                ColonyUpsert(
                    self.id,
                    self.name,
                    self.host,
                    self.pid,
                    self.status,
                    json.dumps(self.describe(), separators=(",", ":")),
                    self.last_progress_at,
                )
            )
            if logs:
                await scope.tx.daemon_log_insert(logs)
            await self.environment.check_clock(scope.tx)  # after the writes: the transaction is under way
        if supervisor is not None:
            del supervisor.pending_logs[: len(logs)]

    def _builtin_daemons(self) -> list[DaemonSpec]:
        from hivemind_jobs.daemons import colony_cleanup_daemon, lock_monitor_daemon, maintenance_daemon
        from hivemind_jobs.daemons.scheduler import scheduler_daemon

        return [
            DaemonSpec("hm.colony-state", _state_daemon, RestartPolicy.ALWAYS, priority=-10, restart_delay=1.0),
            DaemonSpec("hm.lock-monitor", lock_monitor_daemon, RestartPolicy.ALWAYS, priority=-5, restart_delay=1.0),
            DaemonSpec(
                "hm.colony-cleanup", colony_cleanup_daemon, RestartPolicy.ALWAYS, priority=-5, restart_delay=5.0
            ),
            DaemonSpec("hm.scheduler", scheduler_daemon, RestartPolicy.ALWAYS, priority=-5, restart_delay=1.0),
            DaemonSpec("hm.maintenance", maintenance_daemon, RestartPolicy.ALWAYS, priority=-5, restart_delay=5.0),
        ]


async def _state_daemon(ctx: DaemonContext) -> None:
    colony: Colony = ctx.colony
    interval = colony.options.state_sync_interval.total_seconds()
    while not await ctx.sleep(interval):
        try:
            await colony._sync_state()
        except HiveMindError as error:
            ctx.log.warning("could not write the colony state: %s", error)
