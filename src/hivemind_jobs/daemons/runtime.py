"""Daemons: long-running async functions a colony supervises (user ones and built-in maintenance).

A daemon is ``async def daemon(ctx: DaemonContext) -> None``. It should loop until
``ctx.stopping`` is set (or until it is cancelled). Daemons start in ascending ``priority`` groups
and stop in descending ones; their restart policy decides what happens when they return or raise.
Their log records at or above ``log_level`` are persisted with the colony (``daemon_log``).

A daemon sees its colony through :class:`DaemonHost`, the part of it daemons may use: this package
never imports the colony (the colony imports it, for its built-in daemons).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from hivemind_jobs.core.names import validate_swarm_name
from hivemind_jobs.errors import ConfigurationError
from hivemind_jobs.storage.protocol import DaemonLogRow

if TYPE_CHECKING:
    from hivemind_jobs.environment import Environment

__all__ = [
    "DaemonContext",
    "DaemonFunction",
    "DaemonHost",
    "DaemonOptions",
    "DaemonSpec",
    "DaemonStatus",
    "DaemonSupervisor",
    "RestartPolicy",
]

_log = logging.getLogger("hivemind_jobs.colony")
_daemon_logger_parent = logging.getLogger("hivemind_jobs.daemon")

DaemonFunction = Callable[["DaemonContext"], Awaitable[Any]]


class RestartPolicy(enum.Enum):
    """What a colony does when a daemon's function returns or raises."""

    NEVER = "never"
    ON_FAILURE = "on_failure"  # restart after an exception
    ALWAYS = "always"  # restart after an exception or a return


class DaemonStatus(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"  # waiting out the restart delay
    FINISHED = "finished"  # returned (not restarted)
    FAULTED = "faulted"  # raised (not restarted)
    STOPPED = "stopped"


class DaemonOptions(Protocol):
    """The colony options the built-in daemons read (:class:`~hivemind_jobs.ColonyOptions` has them)."""

    @property
    def colony_cleanup_interval(self) -> timedelta: ...

    @property
    def stale_colony_after(self) -> timedelta: ...

    @property
    def max_rescues(self) -> int: ...

    @property
    def scheduler_interval(self) -> timedelta: ...

    @property
    def maintenance_interval(self) -> timedelta: ...

    @property
    def maintenance_batch(self) -> int: ...

    @property
    def maintenance_concurrency(self) -> int: ...

    def monitor_every(self, lock_timeout: timedelta) -> float:
        """Seconds between two lock-monitor passes."""
        ...


class DaemonHost(Protocol):
    """The colony a daemon runs in, as daemons see it: who it is, its environment and options, and
    the count of rescued jobs the lock monitor adds to (the :class:`~hivemind_jobs.Colony` itself)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def environment(self) -> Environment: ...

    @property
    def options(self) -> DaemonOptions: ...

    rescued: int


@dataclass(frozen=True)
class DaemonSpec:
    name: str
    function: DaemonFunction
    restart: RestartPolicy = RestartPolicy.ON_FAILURE
    priority: int = 0
    restart_delay: float = 1.0
    log_level: int = logging.WARNING

    def __post_init__(self) -> None:
        validate_swarm_name(self.name)
        if not callable(self.function):
            raise ConfigurationError(f"daemon {self.name!r}: function must be an async callable")
        if not isinstance(self.restart, RestartPolicy):
            raise ConfigurationError(f"daemon {self.name!r}: restart must be a RestartPolicy")
        if self.restart_delay < 0:
            raise ConfigurationError(f"daemon {self.name!r}: restart_delay must be >= 0")


class _DaemonLogHandler(logging.Handler):
    def __init__(self, colony_id: str, daemon: str, level: int, sink: list[DaemonLogRow]) -> None:
        super().__init__(level)
        self._colony_id = colony_id
        self._daemon = daemon
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        self._sink.append(DaemonLogRow(self._colony_id, self._daemon, record.levelno, message))


class DaemonContext:
    """What a running daemon gets: its name, colony, a persisted logger and the stop signal."""

    def __init__(self, spec: DaemonSpec, colony: DaemonHost, stopping: asyncio.Event, sink: list[DaemonLogRow]) -> None:
        self.name = spec.name
        self.colony = colony
        self.stopping = stopping
        logger = logging.Logger(f"hivemind_jobs.daemon.{spec.name}", min(spec.log_level, logging.INFO))
        logger.parent = _daemon_logger_parent
        logger.addHandler(_DaemonLogHandler(colony.id, spec.name, spec.log_level, sink))
        self.log = logger

    async def sleep(self, seconds: float) -> bool:
        """Sleep, waking early when the colony stops; True when it is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, seconds))
        return self.stopping.is_set()


@dataclass(eq=False)
class _Daemon:
    spec: DaemonSpec
    status: DaemonStatus = DaemonStatus.STOPPED
    restarts: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


class DaemonSupervisor:
    """Starts, restarts and stops a colony's daemons."""

    def __init__(self, colony: DaemonHost, specs: list[DaemonSpec]) -> None:
        self._colony = colony
        self._daemons = [_Daemon(spec) for spec in specs]
        #: log rows waiting to be written with the next colony state sync
        self.pending_logs: list[DaemonLogRow] = []

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": daemon.spec.name,
                "status": daemon.status.value,
                "priority": daemon.spec.priority,
                "restart": daemon.spec.restart.value,
                "restarts": daemon.restarts,
                "last_error": daemon.last_error,
            }
            for daemon in self._daemons
        ]

    def status_of(self, name: str) -> DaemonStatus | None:
        return next((daemon.status for daemon in self._daemons if daemon.spec.name == name), None)

    def _groups(self, descending: bool) -> list[list[_Daemon]]:
        levels = sorted({daemon.spec.priority for daemon in self._daemons}, reverse=descending)
        return [[daemon for daemon in self._daemons if daemon.spec.priority == level] for level in levels]

    async def start(self) -> None:
        for group in self._groups(descending=False):
            for daemon in group:
                daemon.stopping = asyncio.Event()
                daemon.status = DaemonStatus.STARTING
                daemon.task = asyncio.create_task(self._supervise(daemon), name=f"hivemind-daemon-{daemon.spec.name}")
            await asyncio.sleep(0)  # let the group begin before the next one starts

    async def _supervise(self, daemon: _Daemon) -> None:
        spec = daemon.spec
        context = DaemonContext(spec, self._colony, daemon.stopping, self.pending_logs)
        while True:
            daemon.status = DaemonStatus.RUNNING
            failed = False
            try:
                await spec.function(context)
            except asyncio.CancelledError:
                daemon.status = DaemonStatus.STOPPED
                raise
            except Exception as error:
                failed = True
                daemon.last_error = f"{type(error).__name__}: {error}"
                context.log.error("daemon %s failed", spec.name, exc_info=error)
                _log.warning("daemon %s of colony %s failed: %s", spec.name, self._colony.name, daemon.last_error)
            if daemon.stopping.is_set():
                daemon.status = DaemonStatus.STOPPED
                return
            restart = spec.restart is RestartPolicy.ALWAYS or (failed and spec.restart is RestartPolicy.ON_FAILURE)
            if not restart:
                daemon.status = DaemonStatus.FAULTED if failed else DaemonStatus.FINISHED
                return
            daemon.status = DaemonStatus.RESTARTING
            daemon.restarts += 1
            if await context.sleep(spec.restart_delay):
                daemon.status = DaemonStatus.STOPPED
                return

    async def stop(self, timeout: float) -> None:
        """Stop groups by descending priority; each daemon gets ``timeout`` s before it is cancelled."""
        for group in self._groups(descending=True):
            tasks = []
            for daemon in group:
                daemon.stopping.set()
                if daemon.task is not None and not daemon.task.done():
                    tasks.append(daemon.task)
            if not tasks:
                continue
            deadline = time.monotonic() + timeout
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for daemon in self._daemons:
            if daemon.status in (DaemonStatus.RUNNING, DaemonStatus.STARTING, DaemonStatus.RESTARTING):
                daemon.status = DaemonStatus.STOPPED
