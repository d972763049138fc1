"""Drones: each claimed job runs in a task of its own, through its middleware onion, and hands its
outcome to the completer.

Async jobs run on the event loop; sync jobs run in the colony's bounded pool of daemon threads
(:class:`SyncJobThreads`), which a stop can leave behind (a thread cannot be cancelled, and one that
ignores its cancel must not keep the process alive).

An activator with a ``scope(context, cls)`` method (:class:`~hivemind_jobs.ScopedActivator`) gets
a scope per execution: the drone enters it around the middleware and the job, and the job's
instance is activated by the activator it yields. Without that method nothing of it is done.

A run with a timeout (its job's, its swarm's or the environment's) has a timer: when it fires, an
async job is cancelled and a sync job sees ``ctx.cancelled``. A run that has not ended
``ColonyOptions.timeout_grace`` later has its drone written off: the swarm gets a fresh drone (and
the thread pool one more thread) while the run keeps its lock, and its outcome (Failed,
``TimeoutError``) is written only once its code has returned, so no second run can overlap it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextlib import AbstractAsyncContextManager
from typing import Any, ParamSpec, TypeAlias, TypeVar

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.colony.events import JobExecuted, JobExecuting
from hivemind_jobs.colony.execution import DroneJobContext
from hivemind_jobs.colony.processes import ProcessPool
from hivemind_jobs.colony.runtime import ColonyRuntime, Outcome, Run, SwarmRunner
from hivemind_jobs.core.invocation import Activator, PreparedCall, job_class, prepare_call
from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.joblog import enter_job, leave_job
from hivemind_jobs.core.timeouts import TIMEOUT_PROPERTY, effective_timeout, stored_timeout
from hivemind_jobs.middleware.pipeline import resolve_middleware, run_pipeline
from hivemind_jobs.storage.protocol import ClaimedJob, UpdateOutcome

__all__ = ["Drones", "SyncJobThreads"]

_log = logging.getLogger("hivemind_jobs.colony")

_P = ParamSpec("_P")
_T = TypeVar("_T")
#: an activator's optional ``scope(context, cls)``, entered around each execution
_Scope: TypeAlias = Callable[[JobContext, type | None], AbstractAsyncContextManager[Activator]]


class SyncJobThreads(Executor):
    """A bounded pool of daemon threads for sync jobs.

    ``ThreadPoolExecutor`` threads are joined when the interpreter exits, so one sync job that
    ignores its cancel would keep a stopped worker process alive until the job ends. These threads
    are not: a stop gives such a job up with its lock kept, and the process can exit.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._shut_down:
                raise RuntimeError("the colony's sync-job threads are shut down")
            self._work.put((future, functools.partial(fn, *args, **kwargs)))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def add_thread(self) -> None:
        """Allow one more thread (one of the pool's threads runs a job that went on past its timeout)."""
        with self._lock:
            self._max_workers += 1

    def remove_thread(self) -> None:
        """Undo :meth:`add_thread` (that job returned; its thread serves the pool again)."""
        with self._lock:
            self._max_workers -= 1

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                self._work.put(None)  # for the next thread
                return
            future, call = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as error:
                    future.set_exception(error)
                    del error
                else:
                    future.set_result(result)
                    del result
            del future, call
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut_down = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            self._work.put(None)
        if wait:
            for thread in list(self._threads):
                thread.join()


class _RunExecutor(Executor):
    """Hands one run's sync calls to the colony's threads and remembers them on the run, so that
    a stop knows whether a thread still runs the job."""

    def __init__(self, pool: Executor, run: Run) -> None:
        self._pool = pool
        self._run = run

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future = self._pool.submit(fn, *args, **kwargs)
        self._run.threads.append(future)
        return future


def _raising(error: Exception) -> Callable[[], PreparedCall]:
    def prepare() -> PreparedCall:
        raise error

    return prepare


class Drones:
    """Starts the runs the fetchers and the completer claimed, and executes each one."""

    def __init__(self, runtime: ColonyRuntime, threads: Executor) -> None:
        self.runtime = runtime
        #: where sync jobs run (:class:`SyncJobThreads` in a colony)
        self.threads = threads
        #: the environment's activator last seen, and its ``scope`` (None: it has none)
        self._activator: Activator | None = None
        self._activator_scope: _Scope | None = None

    def new_run(self, job: BackgroundJob, runner: SwarmRunner, drone: str, entry: ClaimedJob, now: float) -> Run:
        """The run of a job just claimed for ``drone`` (``now``: the monotonic time of the claim)."""
        runtime = self.runtime
        env = runtime.environment
        options = env.options
        context = DroneJobContext(
            job,
            env.jobs,
            runtime.id,
            colony=runtime.name,
            swarm=runner.path,
            drone=drone,
            log_level=options.job_log_level,
            limits=options.limits,
        )
        execute_after, enqueued_at = entry.execute_after, entry.enqueued_at
        due = execute_after if execute_after >= enqueued_at else enqueued_at
        return Run(job, runner, drone, context, due, now, now)

    def launch(self, claimed: list[tuple[Run, UpdateOutcome]]) -> int:
        """Start a task for every run whose claim was saved (the others give their drone back);
        returns how many started."""
        runtime = self.runtime
        launched = 0
        for run, outcome in claimed:
            runner = run.runner
            if outcome is not UpdateOutcome.SAVED:
                runner.give_back(run.drone)
                continue
            fresh = runner.renamed.get(run.drone)
            if fresh is not None:  # its drone was written off while the claim was in flight
                run.move_to(fresh)
            drone = run.drone
            if drone not in runner.ahead:
                runner.busy[drone] = run
                runner.claiming.discard(drone)
            else:  # claimed ahead: starts now if its drone is parked, else when the runs before it end
                runner.adopt(run)
            older = runtime.latest.get(run.job.id)
            if older is not None and older in runtime.running and not older.lost:
                # claimed again, so its execution changed: the earlier run here can never write
                runtime.lose(older, "the job was rescued and claimed again")
            runtime.latest[run.job.id] = run
            runtime.running.add(run)
            run.task = asyncio.create_task(self.execute(run), name=f"hivemind-job-{run.job.id}")
            launched += 1
        if launched:
            runtime.last_progress_at = runtime.environment.clock.now()
        return launched

    async def execute(self, run: Run) -> None:
        """Run the job through its middleware; its outcome goes to the completer (unless a stop gave
        the run up meanwhile)."""
        runtime = self.runtime
        if run.after is not None:
            try:
                await run.after
            except asyncio.CancelledError as error:
                self._cancelled_while_held(run, error)
                return
        env = runtime.environment
        allow = runtime.allow
        outcome = Outcome(run)
        run.started_at = time.monotonic()
        run.started_on = env.clock.now()
        job = run.job
        # the job's fields on every record emitted while it runs (JobContextFilter), in this task
        # and in the thread of a sync job (the pipeline runs it in a copy of this context)
        token = enter_job(job, runtime.name)
        own_timeout = job.get_property(TIMEOUT_PROPERTY)
        if own_timeout is not None or run.runner.timeout is not None or env.options.timeout is not None:
            run.timeout = effective_timeout(stored_timeout(own_timeout), run.runner.timeout, env.options.timeout)
            if run.timeout is not None:
                run.timer = asyncio.get_running_loop().call_later(run.timeout, self._time_out, run)
        try:
            if run.runner.middleware or job.middleware or env.middleware:
                middleware = resolve_middleware(
                    run.runner.middleware,
                    job.middleware,
                    codec=env.codec,
                    activator=env.activator,
                    allow=allow,
                    outer=env.middleware,
                )
            else:
                middleware = []
            invocation = job.invocation
            codec, activator = env.codec, env.activator
            injections: dict[type, object] = {JobContext: run.context}

            def prepare() -> Any:
                # reads ``activator`` when it runs: inside an execution scope, the scope's activator
                return prepare_call(invocation, codec=codec, activator=activator, allow=allow, injections=injections)

            mediator = env.mediator
            if mediator.has_handlers(JobExecuting):
                await mediator.publish(JobExecuting(run.context))
            executor = _RunExecutor(self.threads, run)
            processes = run.runner.processes
            if processes is not None and not invocation.is_async:
                stored = invocation.to_json()

                async def in_process(call: PreparedCall) -> Any:  # resolved here too: the allow list is checked twice
                    return await processes.run(run, stored)

                outcome.result = await run_pipeline(run.context, middleware, prepare, executor, in_process)
            elif (scope := self._scope_of(activator)) is None:
                outcome.result = await run_pipeline(run.context, middleware, prepare, executor)
            else:
                try:
                    cls = job_class(invocation, allow)
                except Exception as error:
                    # raised where it is raised without a scope: by prepare(), inside the middleware
                    outcome.result = await run_pipeline(run.context, middleware, _raising(error), executor)
                else:
                    async with scope(run.context, cls) as activator:
                        outcome.result = await run_pipeline(run.context, middleware, prepare, executor)
        except asyncio.CancelledError as error:
            outcome.error = error
        except Exception as error:
            outcome.error = error
        finally:
            outcome.duration = time.monotonic() - run.started_at
            if run.timer is not None:
                run.timer.cancel()
                run.timer = None
            if run.drone_lost:  # its drone was replaced already; the extra thread is not needed any more
                if run.extra_thread and isinstance(self.threads, SyncJobThreads):
                    self.threads.remove_thread()
            else:
                # with ack and fetch the completer refills it when it writes the outcome; otherwise
                # the fetcher claims for it at once, while the outcome is being written
                run.runner.note_run_time(outcome.duration)
                run.runner.release(run.drone, wake=not runtime.ack_and_fetch)
            if run.lingering:
                # the stop ended before this run did: nothing is written, its lock expires and the
                # lock monitor re-enqueues the job (its result may have come too late to be written)
                runtime.forget(run)
            else:
                runtime.outcomes.append(outcome)
                runtime.outcome_ready.set()
            if not run.lingering and env.mediator.has_handlers(JobExecuted):
                try:
                    executed = JobExecuted(run.context, outcome.result, outcome.error, outcome.duration)
                    await env.mediator.publish(executed)
                except Exception:
                    _log.exception("a JobExecuted handler failed for job %s", run.job.id)
            leave_job(token)

    def _cancelled_while_held(self, run: Run, error: asyncio.CancelledError) -> None:
        """A run claimed ahead was cancelled (a stop, a client's request) before it started: its
        drone stays with the run it waited for, and its outcome is the cancel's."""
        runtime = self.runtime
        runner = run.runner
        held = runner.held.get(run.drone, [])
        if run in held:
            held.remove(run)
            if not held:
                del runner.held[run.drone]
        elif runner.busy.get(run.drone) is run:  # handed its drone just before the cancel
            runner.release(run.drone, wake=not runtime.ack_and_fetch)
        if run.lingering:
            runtime.forget(run)
            return
        runtime.outcomes.append(Outcome(run, error=error))
        runtime.outcome_ready.set()

    def _scope_of(self, activator: Activator) -> _Scope | None:
        """The activator's ``scope`` method, or None when it has none (looked up once per activator)."""
        if activator is not self._activator:
            self._activator_scope = getattr(activator, "scope", None)
            self._activator = activator
        return self._activator_scope

    def _time_out(self, run: Run) -> None:
        """The run reached its timeout: cancel it (a sync job in a thread sees ``ctx.cancelled``) and
        give it the grace period to end."""
        run.timer = None
        task = run.task
        if task is None or task.done() or run.lost or run.lingering:
            return
        run.timed_out = True
        if ProcessPool.kill(run):  # a process can be stopped for real: its run ends once it is gone
            _log.warning("job %s reached its timeout of %g s; killing its process", run.job.id, run.timeout)
            run.context.buffer.add(
                logging.WARNING, f"the job reached its timeout of {run.timeout:g} s; its process was killed"
            )
            return
        in_thread = run.in_thread()
        _log.warning("job %s reached its timeout of %g s; cancelling it", run.job.id, run.timeout)
        run.context.buffer.add(logging.WARNING, f"the job reached its timeout of {run.timeout:g} s and was cancelled")
        for future in run.threads:
            future.cancel()  # only a call still waiting for a thread: it never starts
        # a thread cannot be cancelled: cancelling the task would free the job while its code still runs
        run.cancel(hard=not in_thread)
        grace = self.runtime.options.timeout_grace.total_seconds()
        run.timer = asyncio.get_running_loop().call_later(grace, self._write_off, run)

    def _write_off(self, run: Run) -> None:
        """The run went on past its timeout's grace period: its drone is written off and the swarm
        gets a fresh one. The run keeps its lock (its heartbeats go on) until its code returns; only
        then is its outcome written, so the job cannot run twice at once."""
        run.timer = None
        task = run.task
        if task is None or task.done() or run.lost or run.lingering:
            return
        run.drone_lost = True
        if run.threads and isinstance(self.threads, SyncJobThreads):
            self.threads.add_thread()  # the new drone's sync jobs must not wait for the stuck thread
            run.extra_thread = True
        fresh = run.runner.replace_drone(run.drone)
        _log.warning(
            "job %s is still running %g s after its timeout; drone %s is written off (%s replaces it); the job "
            "keeps its lock until its code returns, then it is recorded as failed (TimeoutError)",
            run.job.id,
            self.runtime.options.timeout_grace.total_seconds(),
            run.drone,
            fresh,
        )
