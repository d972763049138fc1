"""The context of one execution in a colony, and the buffer its job's log records wait in.

Async jobs run on the event loop (cancelled with asyncio cancellation); sync jobs run in the
colony's bounded thread pool and see cancellation through ``ctx.cancelled``. Both run with the
job's context active (the middleware pipeline, :mod:`hivemind_jobs.middleware.pipeline`, activates
it), so :func:`~hivemind_jobs.current_job` works in deep code and in threads.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import traceback
from typing import TYPE_CHECKING

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.client.locked import LockedJob
from hivemind_jobs.core.limits import Limits
from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.storage.protocol import JobLogRow

if TYPE_CHECKING:
    from hivemind_jobs.client.jobs import BackgroundJobClient
    from hivemind_jobs.core.job import BackgroundJob

__all__ = ["DroneJobContext", "LogBuffer"]

_job_logger_parent = logging.getLogger("hivemind_jobs.job")
_event_guard = threading.Lock()


class LogBuffer:
    """A job's log rows (at or above its level) waiting for the colony to write them.

    Rows are cut to the environment's :class:`Limits` as they come in: a job that logs a huge
    message (or an exception with a huge text) keeps running, its row ends with a marker.
    """

    __slots__ = ("_guard", "_rows", "job_id", "level", "limits")

    def __init__(self, job_id: int, level: int, limits: Limits | None = None) -> None:
        self.job_id = job_id
        self.level = level
        self.limits = limits if limits is not None else Limits()
        self._rows: list[JobLogRow] = []
        self._guard = threading.Lock()

    def append(self, row: JobLogRow) -> None:
        row = _within_limits(row, self.limits)
        with self._guard:
            self._rows.append(row)

    def add(self, level: int, message: str) -> None:
        if level >= self.level:
            self.append(JobLogRow(self.job_id, level, message, "hivemind_jobs.drone"))

    def take(self) -> list[JobLogRow]:
        if not self._rows:
            return []
        with self._guard:
            rows, self._rows = self._rows, []
        return rows

    def put_back(self, rows: list[JobLogRow]) -> None:
        """Rows whose write failed go back in front (nothing is dropped; upstream lost them)."""
        if rows:
            with self._guard:
                self._rows[:0] = rows


def _within_limits(row: JobLogRow, limits: Limits) -> JobLogRow:
    message = limits.log_message(row.message)
    exception_message, traceback_text = limits.exception_text(row.exception_message, row.traceback)
    if message is row.message and exception_message is row.exception_message and traceback_text is row.traceback:
        return row
    return dataclasses.replace(row, message=message, exception_message=exception_message, traceback=traceback_text)


class _BufferHandler(logging.Handler):
    """Turns a job logger's records into rows of its :class:`LogBuffer`."""

    def __init__(self, buffer: LogBuffer) -> None:
        super().__init__(buffer.level)
        self._buffer = buffer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the job
            message = f"{record.msg!r} % {record.args!r}"
        error = record.exc_info[1] if record.exc_info else None
        kind = type(error) if error is not None else None
        self._buffer.append(
            JobLogRow(
                job_id=self._buffer.job_id,
                level=record.levelno,
                message=redact_secrets(message),
                logger=record.name,
                exception_type=f"{kind.__module__}.{kind.__qualname__}" if kind is not None else None,
                exception_message=redact_secrets(str(error)) if error is not None else None,
                traceback=redact_secrets("".join(traceback.format_exception(error))) if error is not None else None,
            )
        )


class DroneJobContext(JobContext):
    """The context of one execution.

    Most jobs never look at their context: the :class:`LockedJob` and the logger are built on
    first use.
    """

    def __init__(
        self,
        job: BackgroundJob,
        client: BackgroundJobClient,
        holder: str,
        *,
        colony: str,
        swarm: str,
        drone: str,
        log_level: int,
        limits: Limits,
    ) -> None:
        self._job = job
        self._client = client
        self._holder = holder
        self._locked: LockedJob | None = None
        self._colony = colony
        self._swarm = swarm
        self._drone = drone
        self._cancelled: threading.Event | None = None
        self.buffer = LogBuffer(job.id, log_level, limits)
        self._log_level = log_level
        self._logger: logging.Logger | None = None

    @property
    def job(self) -> LockedJob:
        locked = self._locked
        if locked is None:
            locked = self._locked = LockedJob(self._job, self._client, self._holder)
        return locked

    @property
    def colony(self) -> str:
        return self._colony

    @property
    def swarm(self) -> str:
        return self._swarm

    @property
    def drone(self) -> str:
        return self._drone

    def move_to(self, drone: str) -> None:
        """The run goes to ``drone`` (the one it was claimed for was written off before it started)."""
        self._drone = drone

    @property
    def log(self) -> logging.Logger:
        logger = self._logger
        if logger is None:  # most jobs never log: build the logger on first use
            logger = logging.Logger(f"hivemind_jobs.job.{self._job.id}", self._log_level)
            logger.parent = _job_logger_parent
            logger.addHandler(_BufferHandler(self.buffer))
            self._logger = logger
        return logger

    @property
    def cancelled(self) -> threading.Event:
        event = self._cancelled
        if event is None:  # made on first use (most jobs never look), once even across threads
            with _event_guard:
                if self._cancelled is None:
                    self._cancelled = threading.Event()
                event = self._cancelled
        return event
