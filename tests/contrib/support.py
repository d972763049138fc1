"""What the integration tests share: worker processes run like ``hivemind worker`` is run, polled
until a condition holds (with the worker's output on failure), and stopped gracefully."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

import hivemind_jobs as hm

REPO = Path(__file__).resolve().parents[2]
#: test-scale polling and graceful stop
FAST = ("--poll-interval", "0.1", "--graceful-stop", "2")


class Process:
    """A worker process whose output goes to a file."""

    def __init__(self, command: Sequence[str], log: Path, *, cwd: Path, env: Mapping[str, str]) -> None:
        self.log = log
        environment = {**os.environ, **env}
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                list(command), cwd=cwd, env=environment, stdout=sink, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then the exit status (the process is killed if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def hivemind_worker(arguments: Sequence[str], log: Path, *, cwd: Path = REPO, env: Mapping[str, str]) -> Process:
    """``hivemind worker ARGUMENTS`` (the package of this checkout)."""
    return Process([sys.executable, "-m", "hivemind_jobs.cli", "worker", *arguments], log, cwd=cwd, env=env)


def flask_command(arguments: Sequence[str], log: Path, *, cwd: Path = REPO, env: Mapping[str, str]) -> Process:
    """``flask ARGUMENTS``."""
    return Process([sys.executable, "-m", "flask", *arguments], log, cwd=cwd, env=env)


def wait_for(check: Callable[[], bool], what: str, *, timeout: float = 20, output: Callable[[], str] = str) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds with ``output()``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}\n{output()}")
        time.sleep(0.05)


def job_state(url: str, job_id: int) -> hm.BackgroundJob:
    """The job as stored, read through a hive of its own."""
    with hm.SyncHiveMind(url) as hive:
        return hive.jobs.get(job_id)
