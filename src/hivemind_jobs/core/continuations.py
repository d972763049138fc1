"""Continuations: a job that waits for another job (its parent) to reach a state of choice."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from hivemind_jobs.core.names import validate_state_name
from hivemind_jobs.core.states import Deleted, Executing, Failed, State, Succeeded
from hivemind_jobs.errors import ConfigurationError

__all__ = ["After", "Continue", "ContinueOn"]


class Continue(enum.Flag):
    """Parent states a continuation waits for.

    ``FINISHED`` is Succeeded or Failed. ``ANY`` means any *final* state (Succeeded, Failed, Deleted, or a
    custom final state), that is "whatever the outcome"; it is not "any state at all", which would
    release the child as soon as it is created.
    """

    SUCCEEDED = enum.auto()
    FAILED = enum.auto()
    DELETED = enum.auto()
    EXECUTING = enum.auto()
    ANY = enum.auto()
    FINISHED = SUCCEEDED | FAILED


_FLAG_STATES: dict[Continue, type[State]] = {
    Continue.SUCCEEDED: Succeeded,
    Continue.FAILED: Failed,
    Continue.DELETED: Deleted,
    Continue.EXECUTING: Executing,
}

ContinueOn = Continue | str | type[State] | Iterable[Continue | str | type[State]]


@dataclass(frozen=True)
class After:
    """Create the job in Awaiting; enqueue it once ``parent_id`` reaches a state in ``on``.

    ``delay`` postpones the child after the trigger. ``delete_on_other_state`` deletes the child when
    the parent reaches a final state that is not in ``on`` (the child will never run then).
    """

    parent_id: int
    on: ContinueOn = Continue.SUCCEEDED
    delay: timedelta | None = None
    delete_on_other_state: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.parent_id, int) or isinstance(self.parent_id, bool) or self.parent_id <= 0:
            raise ConfigurationError(f"After(parent_id=...) needs a job id (a positive int), got {self.parent_id!r}")
        if self.delay is not None and (not isinstance(self.delay, timedelta) or self.delay < timedelta(0)):
            raise ConfigurationError(f"After(delay=...) must be a non-negative timedelta, got {self.delay!r}")
        self.on_states()  # validate eagerly

    def on_states(self) -> list[str] | None:
        """The parent state names that trigger the child; None means any final state."""
        on: object = self.on
        if isinstance(on, Continue | str | type):
            items: list[object] = [on]
        elif isinstance(on, Iterable):
            items = list(on)
        else:
            raise ConfigurationError(f"After(on=...) takes Continue flags, state names or State classes, got {on!r}")
        names: list[str] = []
        for item in items:
            if isinstance(item, Continue):
                if Continue.ANY in item:
                    return None
                names.extend(state.state_name for flag, state in _FLAG_STATES.items() if flag in item)
            elif isinstance(item, str):
                names.append(validate_state_name(item))
            elif isinstance(item, type) and issubclass(item, State):
                names.append(item.state_name)
            else:
                raise ConfigurationError(
                    f"After(on=...) takes Continue flags, state names or State classes, got {item!r}"
                )
        if not names:
            raise ConfigurationError("After(on=...) names no state; use Continue.SUCCEEDED, Continue.ANY, ...")
        return sorted(set(names))
