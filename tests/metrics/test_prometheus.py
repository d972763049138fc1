"""Prometheus metrics: counted from a colony's events and read from the database (in process),
and scraped over HTTP from real ``hivemind worker`` processes, one or several under a supervisor;
and ``--wait-for-db``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import hivemind_jobs as hm
from hivemind_jobs.daemons import rescue_expired_locks
from hivemind_jobs.prometheus import HiveMetrics
from tests.metrics import app
from tests.processes.support import REPO

ALLOW = hm.AllowList(modules=["tests.metrics"])
FAST = hm.ColonyOptions(poll_interval=timedelta(milliseconds=50), graceful_stop=timedelta(seconds=2))
FINE = "tests.metrics.app:fine"
BROKEN = "tests.metrics.app:broken"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and sorted labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


async def _seed(url: str) -> None:
    async with app.hive() as hive:
        await hive.jobs.create_many([hm.call(app.fine, n) for n in range(3)])
        await hive.jobs.create(app.broken, 1)
        await hive.jobs.options(queue="later", delay=timedelta(hours=1)).create_many(
            [hm.call(app.fine, 10), hm.call(app.fine, 11)]
        )


@pytest.fixture
def url_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(app.URL_ENV, db_url)
    return db_url


class Worker:
    def __init__(self, tmp_path: Path, url: str, *arguments: str) -> None:
        self.log = tmp_path / "worker.log"
        env = {**os.environ, app.URL_ENV: url}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "hivemind_jobs.cli", "worker", "tests.metrics.app:hive", "--allow"]
        command += ["tests.metrics", "--poll-interval", "0.1", "--graceful-stop", "1", *arguments]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def scrape_until(
        self, port: int, done: object, timeout: float = 30
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                samples = _scrape(port)
            except OSError as error:  # not serving yet
                last = error
            else:
                if done(samples):  # type: ignore[operator]
                    return samples
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited with {self.process.returncode}\n{self.output()}")
            time.sleep(0.2)
        pytest.fail(f"the metrics did not get there within {timeout} s ({last})\n{self.output()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait(timeout=10)


# ----------------------------------------------------------------------------- in process
async def test_outcomes_rescues_depth_colonies_and_drones_are_counted(url_env: str) -> None:
    registry = CollectorRegistry()
    metrics = HiveMetrics(registry)
    once = hm.Options(retry=hm.RetryPolicy(max_retries=1, delays=[timedelta(0)]), lock_timeout=timedelta(seconds=1))
    async with hm.HiveMind(url_env, options=once) as hive:
        metrics.instrument(hive)
        await hive.jobs.create_many([hm.call(app.fine, 1), hm.call(app.fine, 2)])
        await hive.jobs.options(queue="mail").create(app.broken, 3)
        await hive.jobs.options(queue="later", delay=timedelta(hours=1)).create(app.fine, 4)
        colony = hive.colony(name="counted", allow=ALLOW, options=FAST)
        colony.swarm("main", drones=3, queues=["mail"])
        await colony.run(burst=True)
        # a job whose worker died: the lock monitor rescues it
        orphan = await hive.jobs.create(app.fine, 5)
        locked = await hive.jobs.try_lock(orphan, "dead-colony")
        assert locked is not None
        await locked.change_state(hm.Executing(colony="dead", swarm="main", drone="main.drone-1"))
        await locked.save(keep_lock=True)
        await asyncio.sleep(1.1)
        assert await rescue_expired_locks(hive.env(), "monitor", max_rescues=3) == 1
        await metrics.refresh(hive, colony)
        metrics.uninstrument()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"environment": "main", **labels})

    assert value("hivemind_jobs_total", queue="global", function=FINE, outcome="succeeded") == 2
    assert value("hivemind_jobs_total", queue="mail", function=BROKEN, outcome="retried") == 1
    assert value("hivemind_jobs_total", queue="mail", function=BROKEN, outcome="failed") == 1
    assert value("hivemind_retries_total", queue="mail", function=BROKEN) == 1
    assert value("hivemind_job_duration_seconds_count", queue="global", function=FINE) == 2
    assert value("hivemind_job_duration_seconds_count", queue="mail", function=BROKEN) == 2
    assert value("hivemind_job_lead_time_seconds_count", queue="mail") == 2
    assert value("hivemind_rescues_total", queue="global", poison="false") == 1
    assert value("hivemind_queue_depth", queue="later", state="delayed") == 1
    assert value("hivemind_queue_depth", queue="global", state="ready") == 1  # the rescued job, due again
    assert value("hivemind_colonies") == 0  # the colony stopped: none reports itself running
    assert value("hivemind_drones", colony="counted", state="idle") == 3
    assert value("hivemind_drones", colony="counted", state="busy") == 0


# ----------------------------------------------------------------------------- real workers
async def test_a_worker_serves_its_metrics(url_env: str, tmp_path: Path, workers: list[Worker]) -> None:
    await _seed(url_env)
    port = _free_port()
    worker = Worker(tmp_path, url_env, "--drones", "2", "--metrics-port", str(port), "--metrics-interval", "0.2")
    workers.append(worker)

    def finished(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> bool:
        return _value(samples, "hivemind_jobs_total") == 4 and _value(samples, "hivemind_colonies") == 1

    samples = worker.scrape_until(port, finished)
    assert _value(samples, "hivemind_jobs_total", function=FINE, outcome="succeeded", queue="global") == 3
    assert _value(samples, "hivemind_jobs_total", function=BROKEN, outcome="failed") == 1
    assert _value(samples, "hivemind_job_duration_seconds_count", function=FINE) == 3
    assert _value(samples, "hivemind_job_lead_time_seconds_count") == 4
    samples = worker.scrape_until(port, lambda found: _value(found, "hivemind_queue_depth", queue="global") == 0)
    assert _value(samples, "hivemind_queue_depth", queue="later", state="delayed") == 2
    assert _value(samples, "hivemind_drones", state="idle") + _value(samples, "hivemind_drones", state="busy") == 2
    assert _value(samples, "hivemind_retries_total") == 0
    assert worker.stop() == 0


async def test_the_supervisor_serves_the_sum_of_its_processes(
    sqlite_url: str, tmp_path: Path, workers: list[Worker]
) -> None:
    os.environ[app.URL_ENV] = sqlite_url
    try:
        async with app.hive() as hive:
            await hive.jobs.create_many([hm.call(app.fine, n) for n in range(8)])
    finally:
        del os.environ[app.URL_ENV]
    port = _free_port()
    arguments = ["--processes", "2", "--drones", "2", "--metrics-port", str(port), "--metrics-interval", "0.2"]
    worker = Worker(tmp_path, sqlite_url, *arguments)
    workers.append(worker)

    def finished(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> bool:
        return _value(samples, "hivemind_jobs_total") == 8 and _value(samples, "hivemind_colonies") == 2

    samples = worker.scrape_until(port, finished, timeout=60)
    assert _value(samples, "hivemind_jobs_total", function=FINE, outcome="succeeded") == 8
    assert _value(samples, "hivemind_job_duration_seconds_count") == 8
    drones = {dict(labels)["colony"] for (name, labels) in samples if name == "hivemind_drones"}
    assert len(drones) == 2  # one colony per process, each counting its own drones
    assert _value(samples, "hivemind_drones", state="idle") + _value(samples, "hivemind_drones", state="busy") == 4
    assert worker.stop() == 0


def test_metrics_flags_are_checked(tmp_path: Path) -> None:
    for bad in (["--metrics-port", "0"], ["--metrics-port", "x"], ["--metrics-interval", "0"], ["--wait-for-db", "-1"]):
        worker = Worker(tmp_path, "sqlite:///unused.db", *bad)
        assert worker.process.wait(timeout=30) == 2, worker.output()
        assert "Invalid value for '--" in worker.output()


# ----------------------------------------------------------------------------- --wait-for-db
@pytest.mark.parametrize("url", ["postgresql://127.0.0.1:1/nothing", "mysql://root@127.0.0.1:1/nothing"])
def test_a_database_that_does_not_answer_is_waited_for_then_reported_in_one_line(tmp_path: Path, url: str) -> None:
    started = time.monotonic()
    worker = Worker(tmp_path, url, "--wait-for-db", "1.5", "--burst")
    status = worker.process.wait(timeout=30)
    took = time.monotonic() - started
    output = worker.output()
    assert status == 1, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: the database did not answer within 1.5 s: "), output
    assert output.rstrip().endswith(errors[0])  # the last line, nothing after it
    assert output.count("trying again in") >= 2  # 0.5 s, then 1.0 s
    assert took >= 1.5

    started = time.monotonic()
    worker = Worker(tmp_path, url, "--wait-for-db", "0", "--burst")
    assert worker.process.wait(timeout=30) == 1
    assert "trying again" not in worker.output()
    assert "Error: the database did not answer: " in worker.output()


def test_a_database_that_refuses_is_not_waited_for(postgres_url: str, tmp_path: Path) -> None:
    refused = postgres_url.split("?")[0].rsplit("/", 1)[0] + "/no_such_database_here"
    started = time.monotonic()
    worker = Worker(tmp_path, refused, "--burst")  # the default waits 30 s for a database that does not answer
    assert worker.process.wait(timeout=30) == 1
    assert time.monotonic() - started < 15
    assert "does not exist" in worker.output() and "trying again" not in worker.output()
