"""Hooks an extension adds to an environment (tracing, for one): around each job creation, and
around each execution.

A :data:`CreateHook` is called with the :class:`JobCreation` of one ``create`` or ``create_many``
call before anything is written and returns a context manager entered around the write: it may add
properties stored with every job of the call (a trace context, say), sees the error when the write
fails, and finds the new ids in :attr:`JobCreation.ids` when it exits. Execution hooks are job
middleware instances (``async def __call__(self, context, input, call_next)``) that every colony of
the environment runs outermost, around the swarm's and the job's own middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from hivemind_jobs.core.job import PropertyValue

__all__ = ["CreateHook", "JobCreation"]


@dataclass(slots=True)
class JobCreation:
    """The jobs one call creates: environment, queue, the ``module:qualname`` of each job's
    function; the properties hooks add (stored with each job) and, once written, their ids."""

    environment: str
    queue: str
    functions: tuple[str, ...]
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)


CreateHook = Callable[[JobCreation], AbstractContextManager[object]]
