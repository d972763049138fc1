"""The worker's line per job outcome (see :mod:`hivemind_jobs.core.joblog` for the logger, the
job's fields and the filter that adds them to records emitted in a job)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hivemind_jobs.core.joblog import WORKER_LOGGER, log_job_event
from hivemind_jobs.core.states import Enqueued, Failed, State, Succeeded

if TYPE_CHECKING:
    from hivemind_jobs.colony.runtime import Outcome, Run

__all__ = ["log_outcome", "outcome_kind"]

_log = logging.getLogger(WORKER_LOGGER)


def log_outcome(outcome: Outcome, colony: str, now: Any) -> None:
    """The line of an outcome the completer wrote (``now``: the clock, for a retry's due time).
    A success, the common case, costs one level check when INFO is off; the other outcomes are
    logged at their own level."""
    states = outcome.states
    if not states:
        return
    run = outcome.run
    duration_ms = round(outcome.duration * 1000, 3)
    if isinstance(states[0], Succeeded):
        if _log.isEnabledFor(logging.INFO):
            log_job_event(logging.INFO, run.job, colony, f"succeeded in {duration_ms:.1f} ms", duration_ms=duration_ms)
        return
    level, message = _describe(states, run, now)
    log_job_event(level, run.job, colony, message, duration_ms=duration_ms)


def outcome_kind(outcome: Outcome) -> str:
    """The word :class:`~hivemind_jobs.colony.events.JobEnded` gives an outcome the completer wrote."""
    states = outcome.states
    first, last = states[0], states[-1]
    if isinstance(first, Succeeded):
        return "succeeded"
    if isinstance(first, Failed):
        return "retried" if isinstance(last, Enqueued) and len(states) > 1 else "failed"
    if outcome.run.stop_state is not None:
        return "stopped"
    if isinstance(last, Enqueued):
        return "requeued"
    return "ended"


def _describe(states: list[State], run: Run, now: Any) -> tuple[int, str]:
    """The level and text of an outcome that is not a success."""
    first, last = states[0], states[-1]
    if isinstance(first, Failed):
        failure = f"failed ({first.exception_type}: {_short(first.message)})"
        if isinstance(last, Enqueued) and len(states) > 1:
            due = now + (last.delay or timedelta(0))
            retry = (last.reason or "retry").split(" in ")[0]
            return logging.WARNING, f"{failure}, {retry} at {due:%H:%M:%S} UTC"
        return logging.ERROR, f"{failure}, {first.reason or 'not retried'}"
    if run.stop_state is not None:
        return logging.WARNING, f"stopped by request: now {last.name}"
    if isinstance(last, Enqueued):
        return logging.WARNING, f"returned to its queue ({last.reason or 'not finished'})"
    return logging.INFO, f"ended as {last.name}"


def _short(message: str | None, limit: int = 200) -> str:
    text = " ".join((message or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
