"""The completer: writes the outcomes of finished runs in batches, and (ack and fetch) refills the drones they freed.

An outcome becomes states once (:meth:`Completer.decide`): Succeeded; Failed (with a
``TimeoutError`` when the run reached its timeout, whatever it returned), then Enqueued again
when the retry decision (:func:`~hivemind_jobs.core.retry.decide_retry`) says so; the state a client
asked for when it stopped the job; or Enqueued after a shutdown. A batch is one transaction: the
job logs, the fenced saves (job id, execution id, lock holder: a drone that lost its lock never
overwrites the outcome of a re-run) and a claim for every swarm with free drones (ack and fetch).
Without ack and fetch (``ColonyOptions.ack_and_fetch``; by default on storages with several writers)
the fetchers claim for the freed drones in transactions of their own, while the batch is written.
Nothing is written for a run whose lock went unconfirmed too long: the write fails closed too, not
only the heartbeat thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from hivemind_jobs.client.context import JobCancelled
from hivemind_jobs.colony.drone import Drones
from hivemind_jobs.colony.events import JobEnded
from hivemind_jobs.colony.fetcher import Fetcher
from hivemind_jobs.colony.outcome_log import log_outcome, outcome_kind
from hivemind_jobs.colony.processes import JobProcessError
from hivemind_jobs.colony.runtime import ColonyRuntime, Outcome, Run
from hivemind_jobs.core.ids import new_execution_key
from hivemind_jobs.core.job import BackgroundJob, property_type_of
from hivemind_jobs.core.joblog import log_job_event
from hivemind_jobs.core.retry import RETRIES_PROPERTY, RETRY_POLICY_PROPERTY, decide_retry, retry_policy_of
from hivemind_jobs.core.states import Enqueued, Executing, Failed, State, Succeeded
from hivemind_jobs.core.text import nested_text_problem, redact_secrets, storable_text
from hivemind_jobs.errors import HiveMindError, SerializationError
from hivemind_jobs.lifecycle.changes import has_unsaved_changes, set_property
from hivemind_jobs.lifecycle.machine import continue_after_save, elect, save_locked_many, transitions_observed
from hivemind_jobs.lifecycle.records import encode_state_fields, job_from_record
from hivemind_jobs.lifecycle.unit import UnitOfWork
from hivemind_jobs.storage.protocol import JobLogRow, JobUpdate, PropertyRow, QueuePointer, StateRow, UpdateOutcome

__all__ = ["Completer"]

_log = logging.getLogger("hivemind_jobs.colony")


#: the states an outcome can be written with directly (others are elected: a stop may ask for any)
_DIRECT_STATES = (Succeeded, Failed, Enqueued)


def _direct(outcome: Outcome) -> bool:
    """Whether an outcome can be written without electing it on its job: its states are the usual
    ends of a run, and its job has no change of its own waiting to be saved."""
    job = outcome.run.job
    return (
        isinstance(job.state, Executing)
        and not has_unsaved_changes(job)
        and all(type(state) in _DIRECT_STATES for state in outcome.states)
    )


class Completer:
    """Writes outcomes: :meth:`run` until cancelled, or step it with :meth:`run_once`."""

    def __init__(self, runtime: ColonyRuntime, drones: Drones, fetchers: Sequence[Fetcher]) -> None:
        self.runtime = runtime
        self.drones = drones
        #: the swarms' fetchers, whose free drones a batch refills in its own transaction
        self.fetchers = tuple(fetchers)

    async def run(self) -> None:
        runtime = self.runtime
        ready = runtime.outcome_ready
        while True:
            await ready.wait()
            ready.clear()
            while runtime.outcomes:
                await self.run_once()

    async def run_once(self) -> int:
        """Write one batch of the waiting outcomes (at most ``completion_batch``); returns its size.

        A batch that cannot be written is retried with backoff until the lock timeout, then given
        up (its jobs' locks expire and the lock monitor re-enqueues them); this never raises.
        """
        runtime = self.runtime
        batch = runtime.outcomes[: runtime.options.completion_batch]
        if not batch:
            return 0
        del runtime.outcomes[: len(batch)]
        runtime.writing = True
        try:
            for outcome in batch:
                if not outcome.states and not outcome.run.lost:
                    self.decide(outcome)
            attempt = 0
            lock_timeout = runtime.environment.options.lock_timeout.total_seconds()
            first_try = time.monotonic()
            while True:
                try:
                    await self._write(batch, reload=attempt > 0)
                    break
                except Exception as error:
                    attempt += 1
                    if time.monotonic() - first_try > lock_timeout:
                        _log.error(
                            "colony %s could not write %d job outcomes for %.0f s (%s); their locks expire and "
                            "the lock monitor re-enqueues them",
                            runtime.name,
                            len(batch),
                            lock_timeout,
                            error,
                            exc_info=not isinstance(error, HiveMindError),
                        )
                        break
                    await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.8, 1.2))
            for outcome in batch:
                runtime.forget(outcome.run)
            for fetcher in self.fetchers:
                if fetcher.runner.free_drones:
                    fetcher.runner.slot_free.set()
            runtime.completion_generation += 1
            runtime.last_progress_at = runtime.environment.clock.now()
        except Exception:  # never lose the completer: these jobs' locks expire and they are rescued
            _log.exception("colony %s could not complete %d jobs", runtime.name, len(batch))
            for outcome in batch:
                runtime.forget(outcome.run)
        finally:
            runtime.writing = False
        return len(batch)

    # ------------------------------------------------------------------ deciding
    def decide(self, outcome: Outcome) -> None:
        """The states an outcome leads to (computed once per outcome)."""
        run = outcome.run
        runtime = self.runtime
        env = runtime.environment
        job = run.job
        error = outcome.error
        if run.timed_out:
            # whatever it returned or raised once cancelled: a run that reached its timeout failed
            timed_out = TimeoutError(f"job {job.id} ran longer than its timeout of {run.timeout:g} s")
            if error is not None and not isinstance(error, asyncio.CancelledError):
                timed_out.__cause__ = error
            self._fail(outcome, timed_out)
            return
        # a job that finished anyway while a stop cancelled it gets its real outcome; one that
        # ended because of the cancel goes back to the queue (a sync job's other errors are its own)
        if run.interrupted and error is not None:
            honoured = isinstance(error, asyncio.CancelledError | JobCancelled)
            if honoured or job.invocation.is_async:
                reason = f"shutdown: colony {runtime.name} stopped before the job finished"
                outcome.states = [Enqueued(reason=reason)]
                return
        if run.stop_state is not None and error is not None:
            outcome.states = [dataclasses.replace(run.stop_state)]
            return
        if error is None:
            result = outcome.result
            try:
                encoded = env.codec.encode(result, path="job result")
            except SerializationError as problem:
                outcome.notes.append(
                    JobLogRow(
                        job.id, logging.WARNING, f"the result was stored as its repr: {problem}", "hivemind_jobs.drone"
                    )
                )
                result = encoded = repr(result)
            unstorable = nested_text_problem(encoded, sys.maxsize)
            if unstorable is not None:  # NUL or a lone surrogate: no backend compares such state text alike
                outcome.notes.append(
                    JobLogRow(
                        job.id,
                        logging.WARNING,
                        f"the result was stored as its repr: {unstorable}",
                        "hivemind_jobs.drone",
                    )
                )
                result = encoded = repr(result)
            oversized = env.options.limits.oversized_result(encoded)
            if oversized is not None:  # the job's side effects happened: it succeeds, without the value
                result, warning = oversized
                outcome.notes.append(JobLogRow(job.id, logging.WARNING, warning, "hivemind_jobs.drone"))
            elif encoded is not None:
                outcome.encoded_result = encoded  # stored as encoded here, not encoded again
            lead = (run.started_on or env.clock.now()) - run.due_at
            outcome.states = [
                Succeeded(
                    result=result,
                    duration=timedelta(seconds=outcome.duration),
                    overhead=timedelta(seconds=max(0.0, run.started_at - run.claimed_at)),
                    lead_time=max(timedelta(0), lead),
                )
            ]
            return
        if isinstance(error, asyncio.CancelledError):
            error = JobCancelled(f"job {job.id} was cancelled")
        self._fail(outcome, error)

    def _fail(self, outcome: Outcome, error: BaseException) -> None:
        """Failed with ``error``, then Enqueued again when the job's retry policy says so."""
        env = self.runtime.environment
        job = outcome.run.job
        if isinstance(error, JobProcessError):  # raised in a child process: its own type and traceback
            failed = Failed(
                exception_type=error.exception_type,
                message=storable_text(redact_secrets(error.message)),
                traceback=storable_text(redact_secrets(error.traceback_text)),
                exception=error,
            )
        else:
            failed = Failed.from_exception(error)
        failed.message, failed.traceback = env.options.limits.exception_text(failed.message, failed.traceback)
        outcome.states = [failed]
        policy = retry_policy_of(job.get_property(RETRY_POLICY_PROPERTY), env.options.retry)
        retries = job.get_property(RETRIES_PROPERTY, 0)
        retries = retries if isinstance(retries, int) else 0
        decision = decide_retry(policy, retries, error)
        if isinstance(decision, Enqueued):
            outcome.states.append(decision)
            outcome.properties[RETRIES_PROPERTY] = retries + 1
        else:
            failed.reason = decision

    # ------------------------------------------------------------------ writing
    async def _write(self, batch: list[Outcome], *, reload: bool) -> None:
        runtime = self.runtime
        env = runtime.environment
        holder = runtime.id
        # Fail closed at the write too, not only when the heartbeat thread gets round to it: a run
        # whose lock went unconfirmed too long (this process was stopped, say) may have been rescued.
        fail_after = env.options.lock_timeout.total_seconds() * (1 - runtime.options.lock_safety)
        now = time.monotonic()
        for outcome in batch:
            run = outcome.run
            if not run.lost and now - run.last_confirmed > fail_after:
                runtime.lose(run, f"its lock could not be confirmed for {now - run.last_confirmed:.1f} s")
        writable = [outcome for outcome in batch if not outcome.run.lost]
        by_job = {outcome.run.job.id: outcome for outcome in writable}
        for outcome in batch:
            if outcome.run.lost:
                _log.warning(
                    "job %s: the lock of colony %s was lost while it ran; its outcome is dropped (the job was or will "
                    "be rescued and run again)",
                    outcome.run.job.id,
                    runtime.name,
                )
        logs: list[JobLogRow] = []
        for outcome in batch:
            logs.extend(outcome.run.context.buffer.take())
            logs.extend(outcome.notes)
        claimed: list[tuple[Run, UpdateOutcome]] = []
        direct: list[Outcome] = []
        written: list[UpdateOutcome] = []
        try:
            async with env.jobs.unit_of_work() as scope:
                if logs:
                    await scope.tx.job_log_insert(logs)
                refill: list[Fetcher] = []
                if runtime.ack_and_fetch and not runtime.stopping.is_set():
                    refill = [fetcher for fetcher in self.fetchers if fetcher.runner.free_drones]
                if not reload and not transitions_observed(scope):
                    rest: list[Outcome] = []
                    for outcome in writable:
                        (direct if _direct(outcome) else rest).append(outcome)
                    writable = rest
                jobs = await self._apply(writable, scope, reload=reload)
                results = await save_locked_many(
                    jobs, holder, scope, keep_lock=lambda job: False, last=not refill and not direct
                )
                if direct:
                    written = await self._write_direct(direct, scope, last=not refill)
                for fetcher in refill:
                    # ack and fetch: the drones these jobs freed get new jobs in the same transaction
                    # (the last claim may commit it with its own statement)
                    last = fetcher is refill[-1]
                    await fetcher.claim_in(scope, len(fetcher.runner.free_drones), claimed, last=last)
        except BaseException:
            for run, _ in claimed:
                run.runner.return_drone(run.drone)
            for outcome in batch:
                outcome.run.context.buffer.put_back([row for row in logs if row.job_id == outcome.run.job.id])
            raise
        for outcome in batch:  # written: a job claimed again just now (a retry due at once) is no rescue
            runtime.forget(outcome.run)
        self.drones.launch(claimed)
        ends: list[tuple[int, State, UpdateOutcome]] = [
            (job.id, job.state, result) for job, result in zip(jobs, results, strict=True)
        ]
        ends += [
            (outcome.run.job.id, outcome.states[-1], result) for outcome, result in zip(direct, written, strict=True)
        ]
        clock_now = env.clock.now()
        published: list[JobEnded] | None = [] if env.mediator.has_handlers(JobEnded) else None
        for job_id, state, result in ends:
            ended = by_job.get(job_id)
            try:  # the batch is committed: nothing here may fail it (it would be written again)
                if ended is not None and result is not UpdateOutcome.SAVED:
                    why = f"outcome not written, {result.value} (another execution owns the job now)"
                    log_job_event(logging.WARNING, ended.run.job, runtime.name, why)
                elif ended is not None:
                    log_outcome(ended, runtime.name, clock_now)
                    if published is not None and ended.states:
                        published.append(self._ended(ended, state, clock_now))
            except Exception:
                _log.exception("job %s: its outcome line could not be logged", job_id)
            if result is not UpdateOutcome.SAVED:
                continue
            runtime.processed += 1
            if isinstance(state, Succeeded):
                runtime.succeeded += 1
            elif isinstance(state, Failed):
                runtime.failed += 1
        for event in published or ():
            try:
                await env.mediator.publish(event)
            except Exception:
                _log.exception("a JobEnded handler failed for job %s", event.job.id)

    def _ended(self, outcome: Outcome, state: State, now: datetime) -> JobEnded:
        """The event of an outcome written with ``state`` as the job's state now."""
        run = outcome.run
        lead = ((run.started_on or now) - run.due_at).total_seconds()
        return JobEnded(
            run.job, self.runtime.name, outcome_kind(outcome), state, outcome.duration, max(lead, 0.0), outcome.error
        )

    async def _write_direct(self, outcomes: list[Outcome], scope: UnitOfWork, *, last: bool) -> list[UpdateOutcome]:
        """Write outcomes without electing them on their jobs (no handler sees transitions): the
        same history rows, properties and queue entry as an election and a save, fenced the same
        way (holder, execution id, lock freshness), in one ``job_update_many``."""
        env = self.runtime.environment
        codec = env.codec
        holder = self.runtime.id
        lock_timeout = env.options.lock_timeout
        now = env.clock.now()
        updates: list[JobUpdate] = []
        for outcome in outcomes:
            job = outcome.run.job
            sequence = job.state.sequence
            rows = []
            state: State | None = None
            for state in outcome.states:  # the decided states are rows as they are, not applied to the job
                sequence += 1
                encoded = None
                if outcome.encoded_result is not None and isinstance(state, Succeeded):
                    encoded = {"result": outcome.encoded_result}
                fields = encode_state_fields(state, codec, encoded)
                rows.append(StateRow(sequence, state.name, now, state.reason, fields))
            execution_id = new_execution_key()
            pointer = None
            if isinstance(state, Enqueued):
                pointer = QueuePointer(job.queue, int(job.priority), execution_id, state.delay_until, delay=state.delay)
                scope.enqueued.add(job.queue)
            properties = tuple(
                PropertyRow(name, property_type_of(name, value), value) for name, value in outcome.properties.items()
            )
            updates.append(
                JobUpdate(
                    job_id=job.id,
                    holder=holder,
                    expected_execution_id=job.execution_key,
                    lock_timeout=lock_timeout,
                    queue=job.queue,
                    priority=int(job.priority),
                    execution_id=execution_id,
                    new_states=tuple(rows),
                    set_properties=properties,
                    enqueue=pointer,
                    release_lock=True,
                )
            )
        if last:
            scope.last_operation()
        results = await scope.tx.job_update_many(updates)
        for update, result in zip(updates, results, strict=True):
            if result.outcome is UpdateOutcome.SAVED and (result.children or result.fired):
                await continue_after_save(update.job_id, update.new_states[-1].name, result, scope)
        return [result.outcome for result in results]

    async def _apply(self, outcomes: list[Outcome], scope: UnitOfWork, *, reload: bool) -> list[BackgroundJob]:
        """Elect the outcomes' states on their jobs (reloaded first on a write retry)."""
        env = self.runtime.environment
        if reload:
            records = {r.id: r for r in await scope.tx.job_get_many([o.run.job.id for o in outcomes])}
        jobs: list[BackgroundJob] = []
        for outcome in outcomes:
            job = outcome.run.job
            if reload:
                record = records.get(job.id)
                if record is None:
                    continue
                job = job_from_record(record, env.name, env.codec)
                outcome.run.job = job
            for name, value in outcome.properties.items():
                set_property(job, name, value)
            for template in outcome.states:
                await elect(job, dataclasses.replace(template), scope)
            jobs.append(job)
        return jobs
