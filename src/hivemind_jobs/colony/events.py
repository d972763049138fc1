"""Events a colony publishes through its environment's mediator (observe them with ``subscribe``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hivemind_jobs.client.context import JobContext
    from hivemind_jobs.colony.colony import Colony

__all__ = ["ColonyStatusChanged", "JobExecuted", "JobExecuting"]


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
