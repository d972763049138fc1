"""What the worker runtime (colonies, daemons) uses from the client layer.

Not public API: the colony package needs the same rules as the client (elections, fenced and
batched saves, continuation triggers) inside transactions it opens itself.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from hivemind_jobs.client._records import job_from_record, state_from_row
from hivemind_jobs.client._state_machine import Scope, elect, save_locked_many

if TYPE_CHECKING:
    from hivemind_jobs.client.environment import Environment, Transaction

__all__ = ["Scope", "elect", "job_from_record", "save_locked_many", "state_from_row", "write_scope"]


def write_scope(
    environment: Environment, *, implicit: bool = True, transaction: Transaction | None = None
) -> AbstractAsyncContextManager[Scope]:
    """A write transaction of ``environment`` with a client bound to it (committed on clean exit);
    ``implicit=False`` when the caller runs more operations after a job save. With ``transaction``
    (a client transaction), the scope is that transaction: nothing commits at its end."""
    jobs = environment.jobs if transaction is None else transaction.jobs
    return jobs._write_scope(implicit=implicit)
