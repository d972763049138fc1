"""The colony: one worker process's swarms of drones and its daemons, under one task group.

How a job travels through a colony:

1. A swarm's fetcher (:mod:`.fetcher`) claims at most as many due jobs as it has free drones (plus
   the prefetch), in its queue-group order, and in the *same transaction* moves each one to
   Executing (the colony holds the job lock; the new execution id is the fencing token).
2. A drone (:mod:`.drone`) runs the job (middleware onion, async on the loop, sync in the thread pool).
3. The completer (:mod:`.completer`) writes outcomes in batches: Succeeded, Failed (then Enqueued
   again when the retry policy says so), the state a client asked for when it cancelled the job, or
   Enqueued after a shutdown. Every write is fenced by (job id, execution id, lock holder): a drone
   that lost its lock never overwrites the outcome of a re-run.
4. A heartbeat thread (:mod:`.heartbeat`) renews the locks of running jobs (batched) on a connection
   of its own, so a job that blocks the event loop cannot starve them; a job whose lock cannot be
   confirmed in time is cancelled and writes nothing (fail closed, checked by a thread too). The
   watcher (:mod:`.watcher`) picks up cancel requests, writes job logs and keeps the colony's
   record. The lock-monitor daemon of any colony rescues jobs of colonies that died.

These parts share one :class:`~.runtime.ColonyRuntime`; :class:`Colony` configures them, runs them
as one task group and stops them in two phases (drain within the grace period, then cancel; all
within one budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from hivemind_jobs.colony.completer import Completer
from hivemind_jobs.colony.drone import Drones, SyncJobThreads
from hivemind_jobs.colony.events import ColonyStatusChanged
from hivemind_jobs.colony.fetcher import ChangeWatch, Fetcher
from hivemind_jobs.colony.heartbeat import Heartbeats
from hivemind_jobs.colony.options import ColonyOptions, RestartPolicy
from hivemind_jobs.colony.pauses import PauseWatch
from hivemind_jobs.colony.processes import ProcessPool
from hivemind_jobs.colony.runtime import ColonyRuntime, ColonyStatus, Run, SwarmRunner
from hivemind_jobs.colony.swarm import QueueSpec, Swarm
from hivemind_jobs.colony.watcher import Watcher
from hivemind_jobs.core.invocation import AllowList
from hivemind_jobs.core.job import Middleware, PropertyType, property_type_of
from hivemind_jobs.core.names import validate_property_name, validate_swarm_name
from hivemind_jobs.core.retry import RESCUES_PROPERTY, RETRIES_PROPERTY
from hivemind_jobs.daemons import colony_cleanup_daemon, lock_monitor_daemon, maintenance_daemon, scheduler_daemon
from hivemind_jobs.daemons.runtime import DaemonFunction, DaemonSpec, DaemonSupervisor
from hivemind_jobs.errors import ConfigurationError, HiveMindError

if TYPE_CHECKING:
    from hivemind_jobs.environment import Environment

__all__ = ["RESCUES_PROPERTY", "RETRIES_PROPERTY", "Colony", "ColonyHost", "ColonyStatus"]

_log = logging.getLogger("hivemind_jobs.colony")

#: after a second stop signal, the whole rest of the stop gets at most this long
_FAST_STOP_SECONDS = 0.5
#: a task cancelled during a stop is cancelled again this often while it has not ended: a driver
#: may first wait for its own clean-up (psycopg cancels the query on the server, up to seconds) and
#: a second cancel cuts that short
_RECANCEL_EVERY = 0.3


class ColonyHost(Protocol):
    """What a colony needs of the application object that builds it (a
    :class:`~hivemind_jobs.HiveMind`): the environment it works for."""

    def env(self, name: str | None = None) -> Environment: ...


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


class _Parts:
    """The parts of one run of a colony, and their tasks."""

    def __init__(self, runtime: ColonyRuntime, threads: SyncJobThreads) -> None:
        self.threads = threads
        self.drones = Drones(runtime, threads)
        self.fetchers = [Fetcher(runtime, runner, self.drones) for runner in runtime.runners]
        self.completer = Completer(runtime, self.drones, self.fetchers)
        self.changes = ChangeWatch(runtime)
        self.pauses = PauseWatch(runtime)
        #: the fetchers' tasks, then the completer's, the watcher's, the pause watch's and the change watch's
        self.tasks: list[asyncio.Task[None]] = []


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
        hive: ColonyHost,
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
        env = hive.env(environment)
        self._runtime = ColonyRuntime(
            env,
            name=validate_swarm_name(name) if name is not None else None,
            options=options or ColonyOptions(),
            allow=allow or AllowList(),
            properties=_colony_properties(properties or {}),
        )
        self._watcher = Watcher(self._runtime)
        self._roots: list[Swarm] = []
        self._swarm_names: set[str] = set()
        self._daemon_specs: list[DaemonSpec] = []
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._fast_stop = False
        #: when the stop was asked for, and when a fast one (monotonic): the stop's budget counts from these
        self._stop_at: float | None = None
        self._fast_at: float | None = None

    def __repr__(self) -> str:
        return f"<Colony {self.name!r} id={self.id} {self.status}>"

    # ------------------------------------------------------------------ what it is
    @property
    def environment(self) -> Environment:
        return self._runtime.environment

    @property
    def id(self) -> str:
        """``{host}:{pid}:{random}``: the lock holder of every job it runs."""
        return self._runtime.id

    @property
    def name(self) -> str:
        return self._runtime.name

    @property
    def host(self) -> str:
        return self._runtime.host

    @property
    def pid(self) -> int:
        return self._runtime.pid

    @property
    def options(self) -> ColonyOptions:
        return self._runtime.options

    @options.setter
    def options(self, options: ColonyOptions) -> None:
        self._runtime.options = options

    @property
    def allow(self) -> AllowList:
        return self._runtime.allow

    @property
    def properties(self) -> Mapping[str, str | int | float | bool]:
        return self._runtime.properties

    @property
    def status(self) -> str:
        """One of :class:`ColonyStatus`."""
        return self._runtime.status

    @property
    def stopping(self) -> asyncio.Event:
        """Set from the moment a stop is asked for until the next run starts."""
        return self._runtime.stopping

    # ------------------------------------------------------------------ counters
    @property
    def processed(self) -> int:
        """Outcomes written (over every run of this colony)."""
        return self._runtime.processed

    @property
    def succeeded(self) -> int:
        return self._runtime.succeeded

    @property
    def failed(self) -> int:
        return self._runtime.failed

    @property
    def rescued(self) -> int:
        """Jobs its lock monitor rescued (of any colony)."""
        return self._runtime.rescued

    @rescued.setter
    def rescued(self, count: int) -> None:
        self._runtime.rescued = count

    @property
    def completion_generation(self) -> int:
        return self._runtime.completion_generation

    @property
    def last_progress_at(self) -> datetime | None:
        """When it last launched jobs or wrote outcomes."""
        return self._runtime.last_progress_at

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
        timeout: timedelta | None = None,
        execution: str | None = None,
    ) -> Swarm:
        """Add a root swarm (it also works the ``global`` queue unless ``work_on_global=False``).

        ``timeout`` bounds each run of its jobs (and its sub-swarms') that have no timeout of their
        own, over the environment's ``Options.timeout``. ``execution="process"`` runs its sync jobs
        in child processes, one per drone (``"thread"``, the default: in the colony's threads).
        """
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
            timeout=timeout,
            execution=execution,
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
        return self._runtime.completing

    @property
    def running_jobs(self) -> dict[int, str]:
        """Job id -> drone of the jobs running now."""
        return self._runtime.running_jobs

    def describe(self) -> dict[str, Any]:
        """Its state, as its record in the storage shows it."""
        return self._runtime.describe()

    # ------------------------------------------------------------------ pausing swarms
    def pause_swarm(self, name: str) -> None:
        """Stop the swarm ``name`` (its path, ``parent/child`` for a sub-swarm) from claiming jobs, in
        this colony only and until :meth:`resume_swarm` (not stored: a restarted colony runs it).
        Its drones finish what they run; its queues stay open to other swarms and colonies."""
        self._runtime.paused_swarms.add(self._swarm_path(name))
        self._runtime.apply_pauses()

    def resume_swarm(self, name: str) -> None:
        """Let the swarm ``name`` claim jobs again, at once."""
        self._runtime.paused_swarms.discard(self._swarm_path(name))
        self._runtime.apply_pauses()

    @property
    def paused_swarms(self) -> frozenset[str]:
        """The paths of the swarms paused with :meth:`pause_swarm`."""
        return frozenset(self._runtime.paused_swarms)

    def _swarm_path(self, name: str) -> str:
        paths = [swarm.path for swarm in self.swarms]
        if name not in paths:
            raise ConfigurationError(
                f"colony {self.name!r} has no swarm {name!r}; its swarms are {', '.join(paths) or 'none'} "
                "(a sub-swarm is named by its path, parent/child)"
            )
        return name

    def _builtin_daemons(self) -> list[DaemonSpec]:
        return [
            DaemonSpec(
                "hm.colony-state", self._watcher.state_daemon, RestartPolicy.ALWAYS, priority=-10, restart_delay=1.0
            ),
            DaemonSpec("hm.lock-monitor", lock_monitor_daemon, RestartPolicy.ALWAYS, priority=-5, restart_delay=1.0),
            DaemonSpec(
                "hm.colony-cleanup", colony_cleanup_daemon, RestartPolicy.ALWAYS, priority=-5, restart_delay=5.0
            ),
            DaemonSpec("hm.scheduler", scheduler_daemon, RestartPolicy.ALWAYS, priority=-5, restart_delay=1.0),
            DaemonSpec("hm.maintenance", maintenance_daemon, RestartPolicy.ALWAYS, priority=-5, restart_delay=5.0),
        ]

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
        runtime = self._runtime
        watcher = self._watcher
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
        threads = SyncJobThreads(self.options.sync_threads or max(1, total_drones), f"hivemind-{self.name}")
        runtime.runners = [SwarmRunner(swarm) for swarm in self.swarms if swarm.drones > 0]
        runtime.apply_pauses()
        parts = _Parts(runtime, threads)
        removers.append(self.environment.add_wake_listener(parts.changes.on_wake))
        removers.append(self.environment.add_pause_listener(parts.pauses.on_change))
        runtime.supervisor = DaemonSupervisor(self, self._builtin_daemons() + self._daemon_specs)
        heartbeats = Heartbeats(runtime, loop)
        try:
            heartbeats.start()
            for runner in runtime.runners:
                if runner.swarm.run_execution() == "process":
                    runner.processes = ProcessPool(
                        runner.swarm.drones,
                        environment=self.environment,
                        allow=self.allow,
                        start_method=self.options.process_start_method,
                        name=runner.path,
                    )
                    await runner.processes.start()
            await watcher.sync_state()
            await runtime.supervisor.start()
            try:  # before the first claim: a paused queue is never claimed from by a starting colony
                await parts.pauses.run_once()
            except HiveMindError as error:
                _log.warning("colony %s could not read the paused queues (%s); retrying", self.name, error)
            parts.tasks = [
                asyncio.create_task(fetcher.run(), name=f"hivemind-fetch-{fetcher.runner.path}")
                for fetcher in parts.fetchers
            ]
            parts.tasks.append(asyncio.create_task(parts.completer.run(), name="hivemind-completer"))
            parts.tasks.append(asyncio.create_task(watcher.run(), name="hivemind-watcher"))
            parts.tasks.append(asyncio.create_task(parts.pauses.run(), name="hivemind-pauses"))
            if self.options.change_check_interval is not None:
                parts.tasks.append(asyncio.create_task(parts.changes.run(), name="hivemind-changes"))
            await self._set_status(ColonyStatus.RUNNING)
            with contextlib.suppress(HiveMindError):
                await watcher.sync_state()  # visible as running at once, not at the first periodic sync
            self._started.set()
            _log.info(
                "colony %s (%s) running %s in %s",
                self.name,
                self.id,
                f"{total_drones} drone{'s' if total_drones != 1 else ''}",
                f"{len(runtime.runners)} swarm{'s' if len(runtime.runners) != 1 else ''}",
            )
            if burst:
                await watcher.wait_until_drained()
            else:
                await self.stopping.wait()
        finally:
            if self._stop_at is None:  # burst mode ended, or a failure: the stop starts now
                self._stop_at = time.monotonic()
            await self._set_status(ColonyStatus.STOPPING)
            self.stopping.set()
            lingering: list[Run] = []
            try:
                lingering = await self._shutdown(parts)
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
        self._runtime.status = status
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

    async def _shutdown(self, parts: _Parts) -> list[Run]:
        """Stop every stage within one budget; returns the runs given up with their locks kept."""
        runtime = self._runtime
        options = self.options
        until = self._stop_deadline
        tasks = parts.tasks
        fetchers = tasks[: len(parts.fetchers)]
        await _cancel_within(fetchers, until)
        # drain: running jobs get the grace period
        await _wait_tasks(self._run_tasks(), lambda: min(self._grace_deadline(), until()))
        for run in list(runtime.running):
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
        lingering = [run for run in runtime.running if run.task is not None and not run.task.done()]
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
        while (runtime.outcomes or runtime.writing) and time.monotonic() < until():
            runtime.outcome_ready.set()
            await asyncio.sleep(0.02)
        await _cancel_within(tasks[len(parts.fetchers) :], until)
        if runtime.outcomes:
            _log.error(
                "colony %s stopped with %d job outcomes unwritten (database unreachable); their locks expire and "
                "the lock monitor re-enqueues them",
                self.name,
                len(runtime.outcomes),
            )
        if runtime.supervisor is not None:
            supervisor = runtime.supervisor
            # three priority groups of built-in daemons (user daemons, maintenance, colony state)
            per_group = max(0.0, until() - time.monotonic()) / 3
            await _within(supervisor.stop(timeout=per_group), until, f"colony {self.name}: stopping daemons")
        await self._set_status(ColonyStatus.STOPPED)
        await _within(self._watcher.sync_state(), until, f"colony {self.name}: writing its stopped state")
        parts.threads.shutdown(wait=False, cancel_futures=True)
        for runner in runtime.runners:
            if runner.processes is not None:
                await _within(runner.processes.close(until), until, f"colony {self.name}: stopping child processes")
        _log.info("colony %s stopped (%d jobs processed)", self.name, self.processed)
        return lingering

    def _run_tasks(self) -> list[asyncio.Task[None]]:
        return [run.task for run in self._runtime.running if run.task is not None and not run.task.done()]

    def _heartbeat_until_done(self, heartbeats: Heartbeats, lingering: list[Run]) -> None:
        """Keep renewing the locks of runs a stop gave up until each has ended (then the heartbeat
        threads stop) or the process exits (then the locks expire and the jobs are rescued)."""
        running = self._runtime.running
        waits: list[Future[Any] | asyncio.Future[Any]] = []
        for run in lingering:
            busy = [future for future in run.threads if not future.done()]
            if busy:
                waits.extend(busy)
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
                running.discard(run)
            heartbeats.detach()

        if not waits:
            ended(None)
        for wait in waits:
            wait.add_done_callback(ended)
