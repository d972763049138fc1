"""The worker's line per job outcome (logger ``hivemind_jobs.worker``) with the job's fields, and
the same fields on records emitted while a job runs (``hm.JobContextFilter``), on every backend."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from tests.worker import jobs
from tests.worker.conftest import colony_of

FIELDS = ("job_id", "function", "queue", "environment", "colony", "attempt", "execution_id")


def worker_lines(caplog: pytest.LogCaptureFixture) -> dict[int, list[logging.LogRecord]]:
    lines: dict[int, list[logging.LogRecord]] = {}
    for record in caplog.records:
        if record.name == "hivemind_jobs.worker":
            lines.setdefault(record.job_id, []).append(record)  # type: ignore[attr-defined]
    return lines


async def test_each_outcome_is_one_line_with_the_jobs_fields(
    whive: hm.HiveMind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hivemind_jobs.worker")
    ok = await whive.jobs.options(queue="sums").create(jobs.add, 1, 2)
    once = hm.RetryPolicy(max_retries=1, delays=[timedelta(0)])
    retried = await whive.jobs.options(retry=once).create(jobs.boom, "bad value")
    final = await whive.jobs.create(jobs.boom, "no retries here")
    colony = colony_of(whive)
    colony.swarm("sums", drones=1, queues=["sums"], work_on_global=False)
    await colony.run(burst=True)

    lines = worker_lines(caplog)
    [succeeded] = lines[ok]
    assert succeeded.levelno == logging.INFO
    assert succeeded.getMessage().startswith(f"job {ok} tests.worker.jobs:add succeeded in ")
    assert succeeded.getMessage().endswith(" ms")
    fields = {name: getattr(succeeded, name) for name in FIELDS}
    execution_id = fields.pop("execution_id")
    assert fields == {
        "job_id": ok,
        "function": "tests.worker.jobs:add",
        "queue": "sums",
        "environment": "main",
        "colony": "test",
        "attempt": 1,
    }
    assert isinstance(execution_id, str) and len(execution_id) == 36  # the run's execution id
    assert succeeded.duration_ms >= 0  # type: ignore[attr-defined]

    first, second = lines[retried]
    assert first.levelno == logging.WARNING
    assert "failed (builtins.ValueError: bad value), retry 1 of 1 at " in first.getMessage()
    assert first.getMessage().endswith(" UTC")
    assert (first.attempt, second.attempt) == (1, 2)  # type: ignore[attr-defined]
    assert second.levelno == logging.ERROR
    assert second.getMessage().endswith("failed (builtins.ValueError: bad value), gave up after 1 retries")
    [gave_up] = lines[final]
    assert gave_up.levelno == logging.ERROR and "gave up after 0 retries" in gave_up.getMessage()
    assert set(lines) == {ok, retried, final}  # one line per outcome, nothing else on this logger
    # the retry due at once was claimed again by the batch that wrote the failure: not a rescue
    assert not [record for record in caplog.records if "claimed again" in record.getMessage()]


async def test_records_emitted_inside_a_job_carry_its_fields(
    whive: hm.HiveMind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(hm.JobContextFilter())
    job_id = await whive.jobs.create(jobs.logs_inside, "hello")
    logging.getLogger("tests.worker.inside").warning("outside any job")
    await colony_of(whive).run(burst=True)
    inside = [record for record in caplog.records if record.getMessage() == "inside: hello"]
    assert [(record.job_id, record.function, record.attempt) for record in inside] == [  # type: ignore[attr-defined]
        (job_id, "tests.worker.jobs:logs_inside", 1)
    ]
    [outside] = [record for record in caplog.records if record.getMessage() == "outside any job"]
    assert not hasattr(outside, "job_id")


def test_the_json_formatter_writes_one_object_per_record() -> None:
    record = logging.LogRecord("hivemind_jobs.worker", logging.INFO, __file__, 1, "job %s done", (7,), None)
    record.job_id = 7
    record.function = "m:f"
    record.duration_ms = 1.5
    data = json.loads(hm.JsonLogFormatter().format(record))
    assert data["message"] == "job 7 done" and data["level"] == "INFO" and data["logger"] == "hivemind_jobs.worker"
    assert (data["job_id"], data["function"], data["duration_ms"]) == (7, "m:f", 1.5)
    assert data["time"].endswith("+00:00") and "queue" not in data
    try:
        raise ValueError("broken")
    except ValueError:
        import sys

        failing = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    assert "ValueError: broken" in json.loads(hm.JsonLogFormatter().format(failing))["exception"]


async def test_failures_are_logged_when_info_lines_are_off(
    whive: hm.HiveMind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hivemind_jobs.worker")
    ok = await whive.jobs.create(jobs.add, 1, 2)
    failed = await whive.jobs.create(jobs.boom, "at warning level")
    await colony_of(whive).run(burst=True)
    lines = worker_lines(caplog)
    assert ok not in lines  # no success line below INFO
    [gave_up] = lines[failed]
    assert gave_up.levelno == logging.ERROR and "gave up after 0 retries" in gave_up.getMessage()


async def test_a_written_outcome_is_published_as_job_ended(whive: hm.HiveMind) -> None:
    ended: list[hm.JobEnded] = []
    whive.mediator.subscribe(hm.JobEnded, ended.append)
    ok = await whive.jobs.options(queue="sums").create(jobs.add, 1, 2)
    once = hm.RetryPolicy(max_retries=1, delays=[timedelta(0)])
    retried = await whive.jobs.options(retry=once).create(jobs.boom, "bad value")
    colony = colony_of(whive)
    colony.swarm("sums", drones=1, queues=["sums"], work_on_global=False)
    await colony.run(burst=True)
    seen = sorted((event.job.id, event.outcome, event.state.name, event.job.queue) for event in ended)
    assert seen == sorted(
        [
            (ok, "succeeded", "Succeeded", "sums"),
            (retried, "retried", "Enqueued", "global"),
            (retried, "failed", "Failed", "global"),
        ]
    )
    for event in ended:
        assert event.colony == "test"
        assert event.duration >= 0 and event.lead_time >= 0
        assert (event.error is None) == (event.outcome == "succeeded")
    [failure] = [event for event in ended if event.outcome == "failed"]
    assert isinstance(failure.error, ValueError) and str(failure.error) == "bad value"
