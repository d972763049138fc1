"""The job events and requests raised through the mediator.

Events are observed by every handler; ``StateElection`` is a request: handlers are asked in
priority order and the first one that answers with a state replaces the elected state (which is
then applied and elected in turn). Handlers that run inside a save get ``jobs``, a client bound to
the same transaction, so whatever they write commits or rolls back with the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.states import State
from hivemind_jobs.lifecycle.unit import LifecycleEvent
from hivemind_jobs.mediator import Mediator, Request

if TYPE_CHECKING:
    from hivemind_jobs.client.jobs import BackgroundJobClient

__all__ = ["JobSaved", "JobSaving", "JobStateApplied", "MediatorEvents", "StateElection"]


@dataclass(frozen=True, slots=True)
class JobStateApplied:
    """A state was pushed on the job's history (before the election asks whether it stays)."""

    job: BackgroundJob
    state: State
    previous: State | None
    environment: str


@dataclass(frozen=True, slots=True)
class JobSaving:
    """The job is about to be written (inside the transaction)."""

    job: BackgroundJob
    is_creation: bool
    jobs: BackgroundJobClient


@dataclass(frozen=True, slots=True)
class JobSaved:
    """The job was written (inside the transaction, before commit)."""

    job: BackgroundJob
    is_creation: bool
    state_changed: bool
    jobs: BackgroundJobClient


@dataclass(frozen=True, slots=True)
class StateElection(Request[State]):
    """Ask handlers whether ``elected`` stays the job's state; answer another state to replace it.

    The answer is applied on top of ``elected`` (both stay in the history) and elected in turn,
    up to the environment's ``max_election_hops``. Answer None to pass.
    """

    job: BackgroundJob
    previous: State | None
    elected: State
    jobs: BackgroundJobClient


_EVENT_CLASSES: dict[LifecycleEvent, type] = {
    LifecycleEvent.STATE_APPLIED: JobStateApplied,
    LifecycleEvent.ELECTION: StateElection,
    LifecycleEvent.SAVING: JobSaving,
    LifecycleEvent.SAVED: JobSaved,
}


class MediatorEvents:
    """The lifecycle's event port, raising the events above through an environment's mediator;
    handlers get ``jobs``, a client bound to the unit's transaction."""

    __slots__ = ("_environment", "_jobs", "_mediator")

    def __init__(self, mediator: Mediator, environment: str, jobs: BackgroundJobClient) -> None:
        self._mediator = mediator
        self._environment = environment
        self._jobs = jobs

    def observes(self, event: LifecycleEvent) -> bool:
        return self._mediator.has_handlers(_EVENT_CLASSES[event])

    async def state_applied(self, job: BackgroundJob, state: State, previous: State | None) -> None:
        await self._mediator.publish(JobStateApplied(job, state, previous, self._environment))

    async def election(self, job: BackgroundJob, previous: State | None, elected: State) -> object:
        return await self._mediator.request(StateElection(job, previous, elected, self._jobs))

    async def saving(self, job: BackgroundJob, is_creation: bool) -> None:
        await self._mediator.publish(JobSaving(job, is_creation, self._jobs))

    async def saved(self, job: BackgroundJob, is_creation: bool, state_changed: bool) -> None:
        await self._mediator.publish(JobSaved(job, is_creation, state_changed, self._jobs))
