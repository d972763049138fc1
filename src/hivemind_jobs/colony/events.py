"""Events a colony publishes through its environment's mediator (observe them with ``subscribe``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hivemind_jobs.client.context import JobContext
    from hivemind_jobs.colony.colony import Colony
    from hivemind_jobs.core.job import BackgroundJob
    from hivemind_jobs.core.states import State

__all__ = ["ColonyStatusChanged", "JobEnded", "JobExecuted", "JobExecuting"]


@dataclass(frozen=True, slots=True)
class ColonyStatusChanged:
    colony: Colony
    status: str


@dataclass(frozen=True, slots=True)
class JobExecuting:
    """A drone is about to run the job (it is Executing and locked by the colony)."""

    context: JobContext


@dataclass(frozen=True, slots=True)
class JobExecuted:
    """The job returned or raised; its outcome is written next (in a batch)."""

    context: JobContext
    result: Any
    error: BaseException | None
    duration: float


@dataclass(frozen=True, slots=True)
class JobEnded:
    """A run's outcome is written (its transaction committed): what metrics and traces count.

    ``outcome`` is one of ``succeeded``, ``failed`` (no retry left, or not retried), ``retried``
    (failed and enqueued again), ``stopped`` (a client stopped it), ``requeued`` (returned to its
    queue unfinished, at a shutdown) or ``ended`` (any other state a handler elected). ``job`` is
    the job as it was claimed; ``state`` the state it is in now; ``duration`` how long it ran and
    ``lead_time`` how long it waited between due and started, in seconds.
    """

    job: BackgroundJob
    colony: str
    outcome: str
    state: State
    duration: float
    lead_time: float
    error: BaseException | None
