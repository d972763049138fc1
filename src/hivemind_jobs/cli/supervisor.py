"""``hivemind worker --processes N``: one supervisor process keeping N colony processes running.

Each child is a plain ``hivemind worker`` process (same app, same options, its own connections),
started with ``subprocess`` and named ``<name>-<i>``. The supervisor:

- starts the children in their own sessions, so a terminal's Ctrl-C (sent to the whole foreground
  process group) reaches the supervisor only, and each child gets each stop signal exactly once;
- forwards SIGTERM/SIGINT to every child (a second signal too: the colonies then skip the grace
  period), waits up to the colonies' stop budget plus an allowance for the process exit, then
  SIGKILLs the children still running; it exits 0 when every child stopped cleanly, 1 otherwise;
- restarts a child that exits while no stop was asked for, after a delay that doubles while the
  child keeps dying soon after its start (so a child that fails at start does not spin); a child
  that exits with status 2 (a usage or setting error: it would fail the same way again) stops the
  whole group with status 2; with ``--burst``, a child that exits 0 has drained its work and is
  not restarted;
- holds the write end of a pipe per child: when the supervisor dies, even by SIGKILL, the child
  reads end-of-file there and stops gracefully (:func:`watch_supervisor`) instead of running on
  as an orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from types import FrameType

__all__ = ["EXIT_ALLOWANCE", "PROCESS_ENV", "Supervisor", "watch_supervisor"]

_log = logging.getLogger("hivemind_jobs.cli.supervisor")

#: set in every child's environment to its number, 1..N (a Colony factory can name its colony with it)
PROCESS_ENV = "HIVEMIND_WORKER_PROCESS"
#: the exit status of a child that cannot start with its options (click's usage errors, bad settings)
_USAGE_ERROR = 2
#: a colony's process exits this long at most after its stop budget (closing the storage, leftover
#: tasks, the interpreter's exit, a loaded machine); then the supervisor kills it
EXIT_ALLOWANCE = 3.0
#: after a second stop signal the colonies stop within about half a second
_FAST_STOP = 0.5
#: how often the supervisor looks at its children and at the signals it received
_TICK = 0.05


@dataclasses.dataclass
class _Child:
    """One slot of the group: the process running in it now (None while it waits for a restart)."""

    index: int
    label: str
    process: subprocess.Popen[bytes] | None = None
    #: the supervisor's end of the child's pipe (closed when the child is reaped)
    pipe: int | None = None
    started_at: float = 0.0
    #: deaths in a row, each soon after the child's start (the restart delay doubles with each)
    quick_deaths: int = 0
    restart_at: float | None = None
    #: a burst child that drained its work and exited 0
    done: bool = False
    #: the exit status seen during the stop (negative: the signal that ended it)
    stop_status: int | None = None


class Supervisor:
    """Runs ``count`` children, ``command(index, fd)`` giving the command line of child ``index``
    (1..count) that watches the pipe ``fd`` (see the module docstring for what it does)."""

    def __init__(
        self,
        command: Callable[[int, int], list[str]],
        count: int,
        *,
        labels: Callable[[int], str],
        stop_budget: float,
        burst: bool = False,
        env: Mapping[str, str] | None = None,
        restart_delay: float = 1.0,
        max_restart_delay: float = 30.0,
        stable_after: float = 10.0,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be 1 or more, got {count}")
        self.command = command
        self.children = [_Child(index, labels(index)) for index in range(1, count + 1)]
        #: how long the children get between the first stop signal and SIGKILL
        self.stop_budget = stop_budget
        self.burst = burst
        self.env = dict(os.environ if env is None else env)
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        #: a child that lived this long before it died is restarted after the shortest delay
        self.stable_after = stable_after
        #: told the pid of each child that exited while the group runs (before its restart)
        self.on_exit = on_exit
        self._signals: list[int] = []

    # ------------------------------------------------------------------ running
    def run(self) -> int:
        """Start the children and supervise them until a stop signal (or, with burst, until all drained)."""
        previous = {number: signal.signal(number, self._on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            _log.info("supervisor (pid %d) starting %d colony processes", os.getpid(), len(self.children))
            for child in self.children:
                self._start(child)
            return self._supervise()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            for child in self.children:
                self._close_pipe(child)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        self._signals.append(number)

    def _supervise(self) -> int:
        while not self._signals:
            now = time.monotonic()
            for child in self.children:
                if child.process is not None:
                    status = child.process.poll()
                    if status is not None and self._exited(child, status, now) == _USAGE_ERROR:
                        _log.error(
                            "%s cannot start with these options (exit status 2): stopping every colony", child.label
                        )
                        self._stop()
                        return _USAGE_ERROR
                elif child.restart_at is not None and now >= child.restart_at:
                    self._start(child)
            if self.burst and all(child.done for child in self.children):
                _log.info("every colony process drained its work")
                return 0
            time.sleep(_TICK)
        return self._stop()

    def _start(self, child: _Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        read_end, write_end = os.pipe()
        try:
            child.process = subprocess.Popen(  # noqa: S603 - this interpreter with this command's own arguments, no shell
                self.command(child.index, read_end),
                env={**self.env, PROCESS_ENV: str(child.index)},
                pass_fds=(read_end,),
                start_new_session=True,
            )
        except OSError as error:
            os.close(write_end)
            _log.error("cannot start %s: %s", child.label, error)
            self._schedule_restart(child, time.monotonic())
            return
        finally:
            os.close(read_end)
        child.pipe = write_end
        _log.info("started %s (pid %d)", child.label, child.process.pid)

    def _exited(self, child: _Child, status: int, now: float) -> int:
        """Reap a child that exited on its own; returns its status."""
        assert child.process is not None
        pid = child.process.pid
        child.process = None
        self._close_pipe(child)
        if self.on_exit is not None:
            self.on_exit(pid)
        if self.burst and status == 0:
            child.done = True
            _log.info("%s (pid %d) drained its work and exited", child.label, pid)
            return status
        if status != _USAGE_ERROR:
            delay = self._schedule_restart(child, now)
            _log.warning("%s (pid %d) %s; restarting it in %.1f s", child.label, pid, _describe(status), delay)
        return status

    def _schedule_restart(self, child: _Child, now: float) -> float:
        if now - child.started_at < self.stable_after:
            child.quick_deaths += 1
        else:
            child.quick_deaths = 1
        delay: float = min(self.restart_delay * 2.0 ** (child.quick_deaths - 1), self.max_restart_delay)
        child.restart_at = now + delay
        return delay

    # ------------------------------------------------------------------ stopping
    def _stop(self) -> int:
        """Forward the stop signals to the children, kill what still runs after the budget; the exit status."""
        number = self._signals[0] if self._signals else signal.SIGTERM
        forwarded = max(1, len(self._signals))
        live = [child for child in self.children if child.process is not None]
        _log.info("%s: stopping %d colony processes", signal.Signals(number).name, len(live))
        for child in live:
            self._signal(child, number)
        deadline = time.monotonic() + self.stop_budget
        while live and time.monotonic() < deadline:
            if len(self._signals) > forwarded:  # another signal: the colonies skip the grace period
                forwarded = len(self._signals)
                deadline = min(deadline, time.monotonic() + _FAST_STOP + EXIT_ALLOWANCE)
                for child in live:
                    self._signal(child, self._signals[-1])
            time.sleep(_TICK)
            live = [child for child in live if not self._reaped_in_stop(child)]
        for child in live:
            assert child.process is not None
            _log.error(
                "%s (pid %d) still runs %.1f s after the stop signal: killing it",
                child.label,
                child.process.pid,
                self.stop_budget,
            )
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
        for child in live:
            assert child.process is not None
            child.stop_status = child.process.wait()
            child.process = None
            self._close_pipe(child)
        failed = [child for child in self.children if child.stop_status not in (None, 0)]
        for child in failed:
            assert child.stop_status is not None
            _log.warning("%s %s during the stop", child.label, _describe(child.stop_status))
        _log.info("supervisor stopped")
        return 1 if failed else 0

    def _signal(self, child: _Child, number: int) -> None:
        assert child.process is not None
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(number)

    def _reaped_in_stop(self, child: _Child) -> bool:
        assert child.process is not None
        status = child.process.poll()
        if status is None:
            return False
        child.stop_status = status
        child.process = None
        self._close_pipe(child)
        return True

    def _close_pipe(self, child: _Child) -> None:
        if child.pipe is not None:
            with contextlib.suppress(OSError):
                os.close(child.pipe)
            child.pipe = None


def _describe(status: int) -> str:
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-status).name}"
        return f"was killed by signal {-status}"
    return f"exited with status {status}"


def watch_supervisor(loop: asyncio.AbstractEventLoop, fd: int, on_gone: Callable[[], None]) -> Callable[[], None]:
    """Call ``on_gone`` once the supervisor holding the other end of the pipe ``fd`` is gone (the
    pipe reads end-of-file); returns the function that stops watching and closes ``fd``."""
    watching = True

    def stop_watching() -> None:
        nonlocal watching
        if watching:
            watching = False
            loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def readable() -> None:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            _log.warning("the supervisor process is gone: stopping this colony")
            stop_watching()
            on_gone()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    return stop_watching
