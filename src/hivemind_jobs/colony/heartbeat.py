"""Job-lock heartbeats that a blocked event loop cannot starve, and fail-closed on time.

Two threads per running colony, neither of which needs the event loop:

- the *renewer* renews the locks of the colony's running jobs every heartbeat interval on a
  connection of its own (:meth:`Storage.lock_renewer`), each renewal bounded by a deadline, and
  records per run the monotonic time at which the last confirmed renewal was *sent* (the database
  stamps the lock no earlier than that);
- the *watchdog* gives up every run whose lock has gone unconfirmed for ``lock_timeout * (1 -
  lock_safety)``, measured from that time: it flags the run lost at once (an outcome of a lost run is
  never written, even if the loop is blocked now) and asks the loop to cancel it, which happens as
  soon as the loop runs again. It also pings the loop and logs one WARNING per stall longer than
  ``ColonyOptions.loop_stall_warning``, naming the async job that holds the loop.

Another colony's lock monitor rescues a job only after its lock is older than the lock timeout, so a
colony whose database stops answering (down, or the network silently dropping everything) has
cancelled its drones before anyone else can run their jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

from hivemind_jobs.errors import HiveMindError
from hivemind_jobs.storage.protocol import JobHeartbeat

if TYPE_CHECKING:
    from hivemind_jobs.colony.runtime import ColonyRuntime, Run
    from hivemind_jobs.storage.protocol import LockRenewer

__all__ = ["Heartbeats"]

_log = logging.getLogger("hivemind_jobs.colony")


class Heartbeats:
    """The renewer and watchdog threads of one running colony (start on its loop, stop when it ends)."""

    def __init__(self, runtime: ColonyRuntime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        lock_timeout = runtime.environment.options.lock_timeout
        options = runtime.options
        self.lock_timeout = lock_timeout
        self.interval = options.heartbeat_every(lock_timeout)
        self.fail_after = lock_timeout.total_seconds() * (1 - options.lock_safety)
        #: a renewal that hangs gives up in time for one more try before its runs must be given up
        self.deadline = self.fail_after / 2
        stall = options.loop_stall_warning
        self.stall_after = stall.total_seconds() if stall is not None else None
        checks = [self.fail_after / 10, 0.1] + ([self.stall_after / 4] if self.stall_after else [])
        self.tick = max(0.005, min(checks))
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._renewer: LockRenewer | None = None
        #: when the outstanding loop ping was sent (None: answered), and whether its stall was reported
        self._ping_lock = threading.Lock()
        self._ping_sent: float | None = None
        self._stall_reported = False
        #: renewals that failed in a row (the first is logged, and the recovery)
        self.failures = 0
        self.renewed = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._renewer = self.runtime.environment.storage.lock_renewer()
        name = self.runtime.name
        self._threads = [
            threading.Thread(target=self._renew_loop, name=f"hivemind-heartbeat-{name}", daemon=True),
            threading.Thread(target=self._watch_loop, name=f"hivemind-lock-watchdog-{name}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        """Stop both threads (a renewal in flight ends within its deadline; the renewer then closes)."""
        self._stopped.set()
        threads, self._threads = self._threads, []
        timeout = self.deadline + 2.0
        for thread in threads:
            await asyncio.to_thread(thread.join, timeout)

    def detach(self) -> None:
        """Let both threads end by themselves, soon, without waiting for them (they are daemon
        threads): from any thread, once the runs a stop left behind have ended."""
        self._stopped.set()

    # ------------------------------------------------------------------ runs
    def _runs(self) -> list[Run]:
        """The colony's runs whose locks are still held (a snapshot: the loop changes the set)."""
        for _ in range(10):
            try:
                return [run for run in tuple(self.runtime.running) if not run.lost]
            except RuntimeError:  # changed size during the copy
                continue
        return []

    def _give_up(self, run: Run, why: str) -> None:
        if run.lost:
            return
        # flagged here, so its outcome is dropped even while the loop cannot run; the loop logs it
        # and cancels the drone as soon as it gets control
        run.lost = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing is left to cancel
            self.loop.call_soon_threadsafe(self.runtime.lose, run, why)

    # ------------------------------------------------------------------ renewing
    def _renew_loop(self) -> None:
        renewer = self._renewer
        assert renewer is not None
        try:
            wait = self.interval
            while not self._stopped.wait(wait):
                wait = self.interval
                runs = self._runs()
                if not runs:
                    continue
                if not self._renew(renewer, runs):
                    wait = min(self.interval, 0.1)  # a new connection at once, not a heartbeat later
        finally:
            with contextlib.suppress(Exception):
                renewer.close()

    def _renew(self, renewer: LockRenewer, runs: list[Run]) -> bool:
        runtime = self.runtime
        ids = tuple(sorted({run.job.id for run in runs}))
        sent = time.monotonic()
        try:
            alive = renewer.renew(JobHeartbeat(ids, runtime.id, self.lock_timeout), self.deadline)
        except Exception as error:
            self.failures += 1
            if self.failures == 1:
                _log.warning(
                    "colony %s could not renew the locks of %d running job(s) (%s); it retries, and gives up "
                    "each job whose lock stays unconfirmed for %.1f s",
                    runtime.name,
                    len(ids),
                    error,
                    self.fail_after,
                    exc_info=not isinstance(error, HiveMindError),
                )
            return False
        if self.failures:
            _log.info("colony %s renews its job locks again after %d failed tries", runtime.name, self.failures)
            self.failures = 0
        self.renewed += 1
        for run in runs:
            if run.job.id in alive:
                run.last_confirmed = max(run.last_confirmed, sent)
            elif not run.lost and (run.task is None or not run.task.done()):
                # a run that ended may have released its lock with its outcome already
                self._give_up(run, "its lock expired or was taken over")
        return True

    # ------------------------------------------------------------------ watching
    def _watch_loop(self) -> None:
        last = time.monotonic()
        while not self._stopped.wait(self.tick):
            now = time.monotonic()
            for run in self._runs():
                unconfirmed = now - run.last_confirmed
                if unconfirmed > self.fail_after:
                    self._give_up(run, f"its lock could not be confirmed for {unconfirmed:.1f} s")
            if self.stall_after is not None:
                # this thread itself did not run for a while (the process was stopped or the
                # machine suspended): the loop is not to blame, so its ping starts over
                self._check_loop(now, fresh=now - last > self.stall_after)
            last = now

    def _check_loop(self, now: float, *, fresh: bool) -> None:
        assert self.stall_after is not None
        with self._ping_lock:
            sent = self._ping_sent
            if sent is None or fresh:
                self._ping_sent = now
                self._stall_reported = False
            elif now - sent < self.stall_after or self._stall_reported:
                return
            else:
                self._stall_reported = True
        if sent is None or fresh:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self.loop.call_soon_threadsafe(self._pong, now)
            return
        _log.warning(
            "colony %s: the event loop has not run for %.1f s; %s. Async jobs share the loop with every other "
            "job, the cancel requests and the daemons of this colony: move blocking work (time.sleep, blocking "
            "I/O, long computations) to a sync job (it runs in a thread) or out of the loop (asyncio.to_thread)",
            self.runtime.name,
            now - sent,
            self._blocking_jobs(),
        )

    def _pong(self, sent: float) -> None:
        with self._ping_lock:
            if self._ping_sent == sent:
                self._ping_sent = None
            reported = self._stall_reported
        if reported:
            _log.info("colony %s: the event loop runs again after %.1f s", self.runtime.name, time.monotonic() - sent)

    def _blocking_jobs(self) -> str:
        """Which job holds the loop: the run whose task is current on it, else the async runs in progress."""
        try:
            current = asyncio.current_task(self.loop)
        except RuntimeError:
            current = None
        runs = [run for run in tuple(self.runtime.running) if run.task is not None and not run.task.done()]
        for run in runs:
            if run.task is current:
                return f"job {run.job.id} ({_target(run)}) is running on it"
        running = [run for run in runs if run.job.invocation.is_async]
        if running:
            named = ", ".join(f"job {run.job.id} ({_target(run)})" for run in running)
            return f"async job(s) in progress: {named}"
        if current is not None:
            return f"no async job is in progress; the loop is held by task {current.get_name()!r}"
        return "no async job is in progress"


def _target(run: Run) -> str:
    invocation = run.job.invocation
    method = getattr(invocation, "method", None)
    return f"{invocation.target}.{method}" if method else invocation.target
