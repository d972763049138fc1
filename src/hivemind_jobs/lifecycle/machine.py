"""Elections, saves and continuation triggers: the rules every state change goes through.

Changing state *applies* the state (history, sequence, new execution id), raises
:class:`JobStateApplied`, then asks :class:`StateElection`; an answer is applied and elected in
turn, at most ``max_election_hops`` times. Saving writes the job with everything the new state
implies in one transaction: its queue entry, its link to a parent it waits on (checked against the
parent's state inside the same transaction, so a parent that already finished releases the child
at once) and the release of its own waiting children.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.job import BackgroundJob, LockInfo
from hivemind_jobs.core.states import Awaiting, Deleted, Enqueued, Executing, State, is_final_state
from hivemind_jobs.errors import (
    InvalidTransitionError,
    JobLockReleasedError,
    JobLockStaleError,
    JobNotFoundError,
    StateElectionLoopError,
)
from hivemind_jobs.lifecycle.records import NewJobs, job_from_record, job_to_insert, job_to_update, state_to_row
from hivemind_jobs.lifecycle.unit import ElectionScope, LifecycleEvent, LifecycleEvents, UnitOfWork
from hivemind_jobs.storage.protocol import (
    ClaimStart,
    ClaimStarted,
    ContinuationLink,
    ContinuationMark,
    JobGet,
    JobInsert,
    JobLockRelease,
    JobRecord,
    JobUpdated,
    StoredHistory,
    UpdateOutcome,
)

__all__ = [
    "CONTINUATION_REQUESTER",
    "continue_after_save",
    "creation_observed",
    "decide",
    "elect",
    "ensure_locked",
    "insert_new",
    "job_started_by_claim",
    "release_lock",
    "save_locked",
    "save_locked_many",
    "save_new",
    "start_claimed",
    "started_by_claim",
    "transitions_observed",
]

#: the lock holder used while a parent's transition releases its children (inside one transaction)
CONTINUATION_REQUESTER = "hivemind:continuations"

Decision = Literal["trigger", "delete", "wait", "stale"]


async def elect(job: BackgroundJob, state: State, unit: ElectionScope) -> bool:
    """Apply ``state`` and run the election; True when ``state`` is still the job's state at the end."""
    env = unit.env
    events = unit.events
    limit = env.options.max_election_hops
    chain = [state.name]
    current = state
    while True:
        previous = job._apply_state(current, election_time(current, env.clock.now()))
        if events.observes(LifecycleEvent.STATE_APPLIED):
            await events.state_applied(job, current, previous)
        if not events.observes(LifecycleEvent.ELECTION):
            return job.state is state
        answer = await events.election(job, previous, current)
        if answer is None or answer is current:
            return job.state is state
        if not isinstance(answer, State):
            raise TypeError(f"a StateElection handler answered {answer!r}; answer a State or None")
        chain.append(answer.name)
        if len(chain) > limit:
            raise StateElectionLoopError(
                f"election of {state.name} for job {job._id} did not settle after {limit} hops "
                f"({' -> '.join(chain)}); a StateElection handler keeps answering new states. "
                "Make it answer None once its state is elected, or raise Options.max_election_hops"
            )
        current = answer


def decide(child: State, parent_id: int, parent_state: str) -> Decision:
    """What a parent reaching ``parent_state`` means for a child in state ``child``."""
    if not isinstance(child, Awaiting) or child.parent_id != parent_id:
        return "stale"
    final = is_final_state(parent_state)
    matches = final if child.on_states is None else parent_state in child.on_states
    if matches:
        return "trigger"
    if child.delete_on_other_state and final:
        return "delete"
    return "wait"


async def _apply_decision(
    child: BackgroundJob, decision: Decision, parent_id: int, parent_state: str, unit: UnitOfWork
) -> None:
    awaiting = child.state
    assert isinstance(awaiting, Awaiting)
    if decision == "trigger":
        reason = f"parent job {parent_id} reached {parent_state}"
        # relative: due ``delay`` after the trigger by the database clock, whatever this node's clock says
        await elect(child, Enqueued(delay=awaiting.delay or None, reason=reason), unit)
    else:
        reason = f"parent job {parent_id} ended in {parent_state}, which this continuation does not wait for"
        await elect(child, Deleted(reason=reason), unit)


async def _resolve_awaiting(job: BackgroundJob, unit: UnitOfWork) -> None:
    """An Awaiting job whose parent already reached a matching state moves on before it is written."""
    state = job.state
    if not isinstance(state, Awaiting):
        return
    if job._id is not None and state.parent_id == job._id:
        raise InvalidTransitionError(f"job {job._id} cannot wait for itself")
    parent = await unit.tx.job_get(JobGet(state.parent_id, for_update=True))
    if parent is None:
        raise JobNotFoundError(state.parent_id, unit.env.name)
    parent_state = parent.states[-1].name
    decision = decide(state, parent.id, parent_state)
    if decision in ("trigger", "delete"):
        await _apply_decision(job, decision, parent.id, parent_state, unit)


async def save_new(jobs: list[BackgroundJob], unit: UnitOfWork) -> None:
    """Insert new jobs (each already elected into its initial state); the unit's last operation."""
    env = unit.env
    for job in jobs:
        await _resolve_awaiting(job, unit)
        if unit.events.observes(LifecycleEvent.SAVING):
            await unit.events.saving(job, True)
    rows = [job_to_insert(job, env.codec) for job in jobs]
    unit.last_operation(unless_observed=LifecycleEvent.SAVED)
    inserted = await unit.tx.job_insert(rows)
    for job, row in zip(jobs, inserted, strict=True):
        job._mark_saved(row.id, row.created_at, row.created_at, None)
        if isinstance(job.state, Enqueued):
            unit.enqueued.add(job.queue)
        if unit.events.observes(LifecycleEvent.SAVED):
            await unit.events.saved(job, True, True)


#: every lifecycle event, listed once (iterating the enum class itself is slow on every create)
_ALL_EVENTS = tuple(LifecycleEvent)


def creation_observed(events: LifecycleEvents) -> bool:
    """Whether any handler observes a job's creation (its election, states applied, save): when none
    does, new jobs can be written from their rows (:func:`insert_new`) without electing each one."""
    return any(events.observes(event) for event in _ALL_EVENTS)


async def insert_new(new: NewJobs, rows: Sequence[JobInsert], unit: UnitOfWork) -> list[int]:
    """Insert the rows of new jobs built by ``new`` (nobody observes their creation, see
    :func:`creation_observed`); the unit's last operation. Their ids, in order."""
    unit.last_operation()
    inserted = await unit.tx.job_insert(rows)
    if new.enqueued and inserted:
        unit.enqueued.add(new.queue)
    return [row.id for row in inserted]


def _raise_for(outcome: UpdateOutcome, job: BackgroundJob, holder: str, unit: UnitOfWork) -> None:
    job_id = job.id
    if outcome is UpdateOutcome.NOT_FOUND:
        raise JobNotFoundError(job_id, unit.env.name)
    if outcome is UpdateOutcome.LOCK_EXPIRED:
        raise JobLockStaleError(
            f"the lock of {holder!r} on job {job_id} expired (no heartbeat within "
            f"{unit.env.options.lock_timeout}); nothing was saved. Call heartbeat() more often than the lock timeout"
        )
    if outcome is UpdateOutcome.EXECUTION_CHANGED:
        raise JobLockStaleError(f"job {job_id} changed since {holder!r} locked it; nothing was saved")
    raise JobLockStaleError(f"{holder!r} no longer holds the lock on job {job_id}; nothing was saved")


async def save_locked(job: BackgroundJob, holder: str, unit: UnitOfWork, *, keep_lock: bool, depth: int = 0) -> None:
    """Write a job locked by ``holder`` (fenced by execution id, holder and lock freshness)."""
    env = unit.env
    state_changed = bool(job._unsaved_states)
    if state_changed:
        await _resolve_awaiting(job, unit)
    if unit.events.observes(LifecycleEvent.SAVING):
        await unit.events.saving(job, False)
    update = job_to_update(
        job, env.codec, holder=holder, lock_timeout=env.options.lock_timeout, release_lock=not keep_lock
    )
    if depth == 0:
        unit.last_operation(unless_observed=LifecycleEvent.SAVED)
    result = await unit.tx.job_update(update)
    if result.outcome is not UpdateOutcome.SAVED:
        _raise_for(result.outcome, job, holder, unit)
    await _after_save(job, holder, keep_lock, state_changed, result, unit, depth)


async def _after_save(
    job: BackgroundJob,
    holder: str,
    keep_lock: bool,
    state_changed: bool,
    result: JobUpdated,
    unit: UnitOfWork,
    depth: int,
) -> None:
    assert result.modified_at is not None
    lock = None
    if keep_lock and job.lock is not None and result.lock_heartbeat is not None:
        lock = LockInfo(holder, job.lock.locked_at, result.lock_heartbeat)
    job._mark_saved(job.id, result.modified_at, None, lock)
    if state_changed and isinstance(job.state, Enqueued):
        unit.enqueued.add(job.queue)
    if unit.events.observes(LifecycleEvent.SAVED):
        await unit.events.saved(job, False, state_changed)
    if result.children:
        await _trigger_children(job.id, job.state.name, result.children, unit, depth)
    if result.fired:
        await _process_fired(job.id, result.fired, unit, depth)


_TRANSITION_EVENTS = (
    LifecycleEvent.STATE_APPLIED,
    LifecycleEvent.ELECTION,
    LifecycleEvent.SAVING,
    LifecycleEvent.SAVED,
)


def transitions_observed(unit: UnitOfWork) -> bool:
    """Whether a handler sees transitions in ``unit`` (applied, elected, saving or saved): then
    every transition goes through :func:`elect` and a save; otherwise a worker may write the rows
    of its transitions directly (:meth:`~hivemind_jobs.storage.protocol.Transaction.queue_claim_start`,
    ``job_update_many``), with the same history and the same fence."""
    observes = unit.events.observes
    return any(observes(event) for event in _TRANSITION_EVENTS)


def election_time(state: State, now: datetime) -> datetime:
    """When ``state`` is elected: ``now`` by this node's clock, but an Executing state never before
    the due time of the entry it was claimed from (the claim found the entry due by the database
    clock, which may run a little ahead of this node's)."""
    due = state.due_at if isinstance(state, Executing) else None
    return due if due is not None and due > now else now


def start_claimed(
    job: BackgroundJob, state: State, holder: str, now: datetime, codec: Codec, *, fields: str | None = None
) -> ClaimStart:
    """Apply ``state`` to a job a claim has just locked for ``holder``, with no election (nobody
    observes transitions: :func:`transitions_observed`), and take it as saved the way the claim
    writes it; returns what the claim writes (:class:`~hivemind_jobs.storage.protocol.QueueClaimStart`).
    ``fields``: the state's fields as the JSON text ``codec`` writes for them, given by a caller that
    has checked that text (a colony's template per drone): not encoded nor checked again here."""
    job._apply_state(state, election_time(state, now), text_checked=fields is not None)
    lock = job.lock
    job._mark_saved(job.id, now, None, LockInfo(holder, lock.locked_at if lock is not None else now, now))
    return ClaimStart(job.execution_key, state_to_row(state, codec, fields=fields))


def started_by_claim(
    job: BackgroundJob, state: Executing, holder: str, started: ClaimStarted, *, text_checked: bool = False
) -> None:
    """Apply ``state`` to a job a claim statement has just started itself for ``holder`` (nobody
    observes transitions), as that statement wrote it: the execution id it gave the job, elected
    and locked at the database clock's time of the claim (see ``QueueClaimStart.templates``).
    ``text_checked``: the caller has checked the text of the fields the statement wrote."""
    at = started.elected_at
    job._apply_state(state, at, started.execution_id, text_checked=text_checked)
    job._mark_saved(job.id, at, None, LockInfo(holder, at, at))


def job_started_by_claim(
    record: JobRecord, environment: str, codec: Codec, state: Executing, holder: str, started: ClaimStarted
) -> BackgroundJob:
    """The job of ``record`` in ``state``, as a claim statement has just started it for ``holder``
    (:func:`started_by_claim` on :func:`job_from_record`'s job), with its stored history left
    undecoded until someone reads it. The caller has checked the text of ``state``'s fields."""
    rows = record.states
    if isinstance(rows, StoredHistory):
        # its length told by its current state's sequence (numbered from 0); when the history is
        # decoded, its rows are counted as they come
        name, sequence, count = rows.current_name, rows.current_sequence, rows.current_sequence + 1
    else:
        name, sequence, count = rows[-1].name, rows[-1].sequence, len(rows)
    if name != "Enqueued" or state.is_applied:  # not the transition the statement makes: the usual check decides
        job = job_from_record(record, environment, codec)
        started_by_claim(job, state, holder, started, text_checked=True)
        return job
    at = started.elected_at
    state.sequence = sequence + 1
    state.elected_at = at
    job = job_from_record(
        record, environment, codec, current=state, older_count=count, execution_id=started.execution_id
    )
    job._mark_saved(job.id, at, None, LockInfo(holder, at, at))
    return job


async def continue_after_save(job_id: int, state_name: str, result: JobUpdated, unit: UnitOfWork) -> None:
    """What a save written without a job aggregate implies: the children waiting on ``job_id``
    (now in ``state_name``) are triggered, and the triggers that fired while it was locked run."""
    if result.children:
        await _trigger_children(job_id, state_name, result.children, unit, 0)
    if result.fired:
        await _process_fired(job_id, result.fired, unit, 0)


async def save_locked_many(
    jobs: Sequence[BackgroundJob],
    holder: str,
    unit: UnitOfWork,
    *,
    keep_lock: Callable[[BackgroundJob], bool],
    last: bool = True,
) -> list[UpdateOutcome]:
    """Write several jobs locked by ``holder`` in one round trip (the worker's batched saves).

    Each job is fenced on its own: a job whose lock or execution changed is not written and its
    outcome says why; the others are saved. Continuations of saved jobs are triggered as usual.
    ``last=False`` when the caller has more to do in the transaction.
    """
    env = unit.env
    updates = []
    changed = []
    for job in jobs:
        state_changed = bool(job._unsaved_states)
        if state_changed:
            await _resolve_awaiting(job, unit)
        if unit.events.observes(LifecycleEvent.SAVING):
            await unit.events.saving(job, False)
        changed.append(state_changed)
        updates.append(
            job_to_update(
                job, env.codec, holder=holder, lock_timeout=env.options.lock_timeout, release_lock=not keep_lock(job)
            )
        )
    if not updates:
        return []
    if last:
        unit.last_operation(unless_observed=LifecycleEvent.SAVED)
    results = await unit.tx.job_update_many(updates)
    for job, state_changed, update, result in zip(jobs, changed, updates, results, strict=True):
        if result.outcome is UpdateOutcome.SAVED:
            await _after_save(job, holder, not update.release_lock, state_changed, result, unit, 0)
    return [result.outcome for result in results]


async def release_lock(job_id: int, holder: str, unit: UnitOfWork, *, last: bool = False) -> bool:
    """Release ``holder``'s lock; triggers that fired while the job was locked run now."""
    if last:
        unit.last_operation()
    released = await unit.tx.job_lock_release(JobLockRelease(job_id, holder))
    if released.fired:
        await _process_fired(job_id, released.fired, unit, 0)
    return released.released


def _check_depth(depth: int, unit: UnitOfWork) -> None:
    limit = unit.env.options.max_continuation_depth
    if depth >= limit:
        raise StateElectionLoopError(
            f"continuations cascaded more than {limit} levels deep in one transaction; check for a cycle "
            "or raise Options.max_continuation_depth"
        )


async def _trigger_children(
    parent_id: int, parent_state: str, child_ids: tuple[int, ...], unit: UnitOfWork, depth: int
) -> None:
    _check_depth(depth + 1, unit)
    marks: list[ContinuationMark] = []
    for child_id in child_ids:
        record = await unit.tx.job_get(JobGet(child_id, lock_requester=CONTINUATION_REQUESTER))
        if record is None:
            marks.append(ContinuationMark(parent_id, child_id, delete=True))
            continue
        if not record.lock_acquired:
            # Someone holds the child: the trigger runs when that lock is released.
            marks.append(ContinuationMark(parent_id, child_id, fired_state=parent_state))
            continue
        child = job_from_record(record, unit.env.name, unit.env.codec)
        decision = decide(child.state, parent_id, parent_state)
        if decision == "wait":
            await release_lock(child_id, CONTINUATION_REQUESTER, unit)
            continue
        marks.append(ContinuationMark(parent_id, child_id, delete=True))
        if decision == "stale":
            await release_lock(child_id, CONTINUATION_REQUESTER, unit)
            continue
        await _apply_decision(child, decision, parent_id, parent_state, unit)
        await save_locked(child, CONTINUATION_REQUESTER, unit, keep_lock=False, depth=depth + 1)
    if marks:
        await unit.tx.continuation_mark(marks)


async def _process_fired(child_id: int, links: tuple[ContinuationLink, ...], unit: UnitOfWork, depth: int) -> None:
    """Run the triggers that fired while ``child_id`` was locked by someone else."""
    _check_depth(depth + 1, unit)
    for link in links:
        fired_state = link.fired_state
        assert fired_state is not None
        record = await unit.tx.job_get(JobGet(child_id, lock_requester=CONTINUATION_REQUESTER))
        if record is None:
            return
        if not record.lock_acquired:
            return  # locked again meanwhile: the next release handles the remaining links
        child = job_from_record(record, unit.env.name, unit.env.codec)
        decision = decide(child.state, link.parent_id, fired_state)
        if decision == "wait":
            # What fired does not release this child: wait for the parent's next transition.
            await unit.tx.continuation_mark([ContinuationMark(link.parent_id, child_id, fired_state=None)])
            await release_lock(child_id, CONTINUATION_REQUESTER, unit)
            continue
        await unit.tx.continuation_mark([ContinuationMark(link.parent_id, child_id, delete=True)])
        if decision == "stale":
            await release_lock(child_id, CONTINUATION_REQUESTER, unit)
            continue
        await _apply_decision(child, decision, link.parent_id, fired_state, unit)
        await save_locked(child, CONTINUATION_REQUESTER, unit, keep_lock=False, depth=depth + 1)


def ensure_locked(locked: bool, job_id: int) -> None:
    if not locked:
        raise JobLockReleasedError(f"this handle no longer holds the lock on job {job_id}; lock the job again")
