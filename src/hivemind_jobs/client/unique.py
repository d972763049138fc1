"""Unique jobs: the :class:`Unique` option and the keys it gives jobs.

A unique key's row (``{p}job_unique``) names the job holding the key, the state names it holds it
in and until when it holds it whatever its state (the period). Creating a unique job locks that row
in the create's transaction (inserting it when missing): the key is free when the row is new, its
job no longer exists, has left those states and the period has passed; then the new job takes the
row over. Otherwise the create answers the holder's id (or raises :class:`DuplicateJobError`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from hivemind_jobs.core.invocation import Invocation
from hivemind_jobs.core.states import State, is_final_state, state_class
from hivemind_jobs.errors import ConfigurationError

__all__ = ["Unique", "unique_key"]

_MAX_KEY = 200
_CONFLICTS = ("existing", "raise")


@dataclass(frozen=True)
class Unique:
    """Create at most one job per key while the holder is in ``states`` or within ``period``.

    ``key``: the key (up to 200 characters; ``{name}`` fields are filled with the job's arguments
    by parameter name); None: the function and its encoded arguments. ``states``: state classes or
    names the holder keeps the key in (None: every state that is not final). ``period``: how long
    after its creation the holder keeps the key whatever its state. ``on_conflict``: ``"existing"``
    answers the holder's id, ``"raise"`` raises :class:`DuplicateJobError`.
    """

    key: str | None = None
    period: timedelta | None = None
    states: Iterable[type[State] | str] | None = None
    on_conflict: Literal["existing", "raise"] = "existing"

    def __post_init__(self) -> None:
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            raise ConfigurationError(f"Unique key must be a non-empty string or None, got {self.key!r}")
        if self.period is not None and (not isinstance(self.period, timedelta) or self.period <= timedelta(0)):
            raise ConfigurationError(f"Unique period must be a positive timedelta or None, got {self.period!r}")
        if self.on_conflict not in _CONFLICTS:
            raise ConfigurationError(f"Unique on_conflict must be 'existing' or 'raise', got {self.on_conflict!r}")
        object.__setattr__(self, "states", self.state_names())

    def state_names(self) -> tuple[str, ...]:
        """The state names the holder keeps the key in (checked: registered states only)."""
        if self.states is None:
            return ()
        names: list[str] = []
        for entry in self.states:
            name = entry if isinstance(entry, str) else getattr(entry, "state_name", None)
            if not isinstance(name, str) or state_class(name) is None:
                raise ConfigurationError(
                    f"Unique states must be state classes such as Enqueued or their names, got {entry!r}"
                )
            if "," in name:
                raise ConfigurationError(f"Unique states: a state name cannot contain a comma, got {name!r}")
            names.append(name)
        return tuple(sorted(set(names)))

    def holds(self, state_name: str | None) -> bool:
        """Whether a holder in ``state_name`` keeps the key (None: the holder no longer exists)."""
        if state_name is None:
            return False
        if self.states is None or not tuple(self.states):
            return not is_final_state(state_name)
        return state_name in tuple(self.states)


def unique_key(unique: Unique, invocation: Invocation) -> str:
    """The stored key of a job: the user's key (its ``{name}`` fields filled from the arguments), or
    a hash of the function and its encoded arguments."""
    if unique.key is None:
        digest = hashlib.sha256(invocation.to_json().encode()).hexdigest()
        target = invocation.target if invocation.method is None else f"{invocation.target}.{invocation.method}"
        return f"call:{target}:{digest}" if len(target) < 100 else f"call:{digest}"
    key = unique.key
    if "{" in key:
        try:
            key = key.format_map({name: _field(value) for name, value in invocation.arguments.items()})
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise ConfigurationError(
                f"Unique key {unique.key!r} names {error} which is not a plain argument of the job; use "
                "{parameter_name} fields only"
            ) from None
    if len(key) > _MAX_KEY:
        raise ConfigurationError(f"Unique key {key[:40]!r}... is {len(key)} characters; at most {_MAX_KEY}")
    return f"key:{key}"


def _field(value: Any) -> str:
    """A formatted argument is its string only: no attribute or index lookups on arbitrary objects."""
    return str(value)
