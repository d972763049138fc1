"""The unit of work every state change runs in, and the port its lifecycle events go out through.

A :class:`UnitOfWork` is one storage transaction of one environment together with what the
lifecycle rules need around it: the environment's services (codec, clock, options, mediator) and
the :class:`LifecycleEvents` port that raises the job events. The client, the colony, the daemons
and the recurring engine all open units the same way (:class:`UnitOpener`) and hand them to the
rules in :mod:`hivemind_jobs.lifecycle.machine`; none of them reaches into another's internals.

The events themselves (``JobSaving``, ``StateElection``, ...) carry a job client bound to the
unit's transaction, so they are defined by the client; the lifecycle only asks the port whether
anyone listens and tells it what happened.
"""

from __future__ import annotations

import enum
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.states import State
from hivemind_jobs.storage.protocol import Transaction

if TYPE_CHECKING:
    from hivemind_jobs.lifecycle.services import EnvironmentServices

__all__ = ["ElectionScope", "LifecycleEvent", "LifecycleEvents", "Outside", "UnitOfWork", "UnitOpener"]


class LifecycleEvent(enum.Enum):
    """The moments of a job's lifecycle the port reports."""

    STATE_APPLIED = "state_applied"  # a state was pushed on the history (before its election)
    ELECTION = "election"  # handlers may answer another state
    SAVING = "saving"  # about to be written, inside the transaction
    SAVED = "saved"  # written, inside the transaction


class LifecycleEvents(Protocol):
    """Where the lifecycle rules report what happens to a job (implemented by the client)."""

    def observes(self, event: LifecycleEvent) -> bool:
        """Whether anyone listens to ``event`` now (the rules skip building what nobody reads)."""
        ...

    async def state_applied(self, job: BackgroundJob, state: State, previous: State | None) -> None: ...

    async def election(self, job: BackgroundJob, previous: State | None, elected: State) -> object:
        """The state a handler answers in place of ``elected`` (None: it stays)."""
        ...

    async def saving(self, job: BackgroundJob, is_creation: bool) -> None: ...

    async def saved(self, job: BackgroundJob, is_creation: bool, state_changed: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class UnitOfWork:
    """One storage transaction of one environment, with the services and the event port the
    lifecycle rules use inside it.

    ``implicit`` units were opened for a single call: their last operation can commit in the same
    round trip (see :meth:`last_operation`).
    """

    env: EnvironmentServices
    tx: Transaction
    events: LifecycleEvents
    implicit: bool = False
    #: queues that received a job in this transaction (drones are woken once it commits)
    enqueued: set[str] = field(default_factory=set)

    def last_operation(self, *, unless_observed: LifecycleEvent | None = None) -> None:
        """The next operation ends this call: let it commit too, unless handlers still have to run."""
        if not self.implicit:
            return
        if unless_observed is not None and self.events.observes(unless_observed):
            return
        self.tx.commit_after_next()


class ElectionScope(Protocol):
    """What an election needs: the environment's services and the event port (no transaction:
    a state is elected in memory, and written by the save that follows)."""

    @property
    def env(self) -> EnvironmentServices: ...

    @property
    def events(self) -> LifecycleEvents: ...


@dataclass(frozen=True, slots=True)
class Outside:
    """An election scope outside any transaction (a locked job's in-memory state change)."""

    env: EnvironmentServices
    events: LifecycleEvents


class UnitOpener(Protocol):
    """Opens units of work (the job client does, bound to its transaction or to a new one)."""

    def unit_of_work(self, *, implicit: bool = True) -> AbstractAsyncContextManager[UnitOfWork]:
        """A write transaction as a unit of work (committed on a clean exit of a new transaction);
        ``implicit=False`` when the caller runs more operations after a job save."""
        ...
