"""``hivemind dashboard``: the standalone server, started as a user would, over a demo database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import hivemind_jobs as hm
from tests import sample_jobs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hivemind_jobs", "dashboard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_until_up(url: str, process: subprocess.Popen[str]) -> httpx.Response:
    for _ in range(150):
        if process.poll() is not None:
            raise AssertionError(f"the dashboard exited: {process.communicate()}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the dashboard did not answer")


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    return out, err


def test_serves_the_jobs_of_a_database(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"

    async def seed() -> int:
        async with hm.HiveMind(f"sqlite:///{database}") as hive:
            return await hive.jobs.create(sample_jobs.hello_world, "from the demo")

    job_id = asyncio.run(seed())
    port = free_port()
    process = start("--url", f"sqlite:///{database}", "--port", str(port))
    try:
        overview = wait_until_up(f"http://127.0.0.1:{port}/", process)
        assert overview.status_code == 200 and "Enqueued" in overview.text
        job = httpx.get(f"http://127.0.0.1:{port}/jobs/{job_id}", timeout=5)
        assert "from the demo" in job.text and "Requeue" in job.text
    finally:
        out, err = stop(process)
    assert f"HiveMind dashboard on http://127.0.0.1:{port}/" in out
    assert "warning" not in err


def test_another_address_warns_and_read_only_serves_no_action(tmp_path: Path) -> None:
    database = tmp_path / "other.db"
    asyncio.run(_create(database))
    port = free_port()
    process = start("--url", f"sqlite:///{database}", "--host", "0.0.0.0", "--port", str(port))
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", process)
    finally:
        _, err = stop(process)
    assert "warning: the dashboard on 0.0.0.0" in err and "no login" in err

    port = free_port()
    process = start("--url", f"sqlite:///{database}", "--read-only", "--port", str(port))
    try:
        page = wait_until_up(f"http://127.0.0.1:{port}/jobs", process)
        assert "read-only" in page.text and 'method="post"' not in page.text
        refused = httpx.post(f"http://127.0.0.1:{port}/jobs/1/delete", timeout=5)
        assert refused.status_code == 403
    finally:
        stop(process)


async def _create(database: Path) -> None:
    async with hm.HiveMind(f"sqlite:///{database}") as hive:
        await hive.jobs.create(sample_jobs.do_stuff)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "sqlite:///{missing}"], "no SQLite database at"),
        (["tests.sample_jobs:add"], "is a function of (a), not a HiveMind"),
        (["tests.sample_jobs:nothing"], "nothing"),
        (["--url", "sqlite:///x.db", "tests.sample_jobs:hive"], "--url and --prefix name a storage"),
    ],
)
def test_bad_targets_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    args = [arg.replace("{missing}", str(tmp_path / "missing.db")) for arg in args]
    result = subprocess.run(
        [sys.executable, "-m", "hivemind_jobs", "dashboard", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr
