"""The worker's job log lines and the job's fields on every log record emitted while it runs.

The worker logs through stdlib :mod:`logging`, logger ``hivemind_jobs.worker``: INFO for a job that
succeeded, WARNING for a failure that is retried, a job returned to its queue, cancelled or
rescued, or whose outcome could not be written, ERROR for a job that failed for good (its retries
used up, a fatal error, poison, a call that cannot be decoded). Each record carries the fields of
:data:`JOB_FIELDS` as attributes (``record.job_id`` ...), for formatters and log shippers.

While a job runs, it is in a context variable (which follows it into its sync thread);
:class:`JobContextFilter` adds its fields to any record emitted meanwhile, whatever the logger. The
library only creates records; what is shown where is the application's (or the CLI's) logging
configuration.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hivemind_jobs.core.retry import RETRIES_PROPERTY

if TYPE_CHECKING:
    from hivemind_jobs.core.job import BackgroundJob

__all__ = [
    "JOB_FIELDS",
    "WORKER_LOGGER",
    "JobContextFilter",
    "JsonLogFormatter",
    "enter_job",
    "job_fields",
    "leave_job",
    "log_job_event",
]

#: the logger of the worker's job lines
WORKER_LOGGER = "hivemind_jobs.worker"
#: the attributes every job line (and every record emitted while a job runs) carries
JOB_FIELDS = ("job_id", "function", "queue", "environment", "colony", "attempt", "execution_id")

_log = logging.getLogger(WORKER_LOGGER)
#: the job running in this context and its colony; its fields are built only when a record needs them
_running: contextvars.ContextVar[tuple[BackgroundJob, str] | None] = contextvars.ContextVar(
    "hivemind_job", default=None
)


def job_fields(job: BackgroundJob, colony: str) -> dict[str, Any]:
    """The fields of ``job`` as ``colony`` runs it (``attempt``: 1 + the retries before this run)."""
    retries = job.get_property(RETRIES_PROPERTY, 0)
    invocation = job.invocation
    return {
        "job_id": job.id,
        "function": invocation.display_name,
        "queue": job.queue,
        "environment": job.environment,
        "colony": colony,
        "attempt": (retries if isinstance(retries, int) else 0) + 1,
        "execution_id": job.execution_key,
    }


def enter_job(job: BackgroundJob, colony: str) -> contextvars.Token[tuple[BackgroundJob, str] | None]:
    """Mark the current context as running ``job`` in ``colony`` (undo with :func:`leave_job`)."""
    return _running.set((job, colony))


def leave_job(token: contextvars.Token[tuple[BackgroundJob, str] | None]) -> None:
    _running.reset(token)


class JobContextFilter(logging.Filter):
    """Adds the fields of the job running in the current context (``job_id``, ``function``,
    ``queue``, ``environment``, ``colony``, ``attempt``, ``execution_id``) to each record that does
    not have them; records emitted outside a job pass unchanged. Attach it to a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        running = _running.get()
        if running is not None:
            for name, value in job_fields(*running).items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


def log_job_event(level: int, job: BackgroundJob, colony: str, message: str, **extra: Any) -> None:
    """One line about ``job`` on the worker logger: ``job <id> <function> <message>``."""
    if not _log.isEnabledFor(level):
        return
    fields = job_fields(job, colony)
    fields.update(extra)
    _log.log(level, "job %s %s %s", job.id, fields["function"], message, extra=fields)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, for log shippers: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, the job fields and ``duration_ms`` when the record has them, ``exception`` (the
    formatted traceback) when it carries one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*JOB_FIELDS, "duration_ms"):
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)
