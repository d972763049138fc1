"""``hivemind jobs requeue / delete / cancel ID...``, ``show --logs --data``, ``wait`` and
``watch --once`` on SQLite, PostgreSQL and MariaDB.

Jobs are created through the API, the command runs in-process (click's runner) against the same
database, and what it printed or changed is checked against the API.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

import hivemind_jobs as hm
from tests import sample_jobs
from tests.cli.support import Command, with_hive

_COMMAND = Command("jobs")
invoke, ok, error = _COMMAND.invoke, _COMMAND.ok, _COMMAND.error


T = TypeVar("T")
RELEASE = threading.Event()


async def hold(number: int) -> int:
    """Runs until the test releases it or its drone is asked to stop it."""
    await asyncio.to_thread(RELEASE.wait, 30)
    return number


def state(url: str, job_id: int) -> str:
    async def fetch(hive: hm.HiveMind) -> str:
        return (await hive.jobs.get(job_id)).state.name

    return with_hive(url, fetch)


def three_jobs(url: str) -> tuple[int, int, int]:
    """An Enqueued job, a Failed one and a Deleted one."""

    async def work(hive: hm.HiveMind) -> tuple[int, int, int]:
        waiting = await hive.jobs.options(queue="mail").create(sample_jobs.add, 1, 2)
        failed = await hive.jobs.create(sample_jobs.hello_world, "x")
        await hive.jobs.change_state(failed, hm.Failed.from_exception(ValueError("no paper"), reason="gave up"))
        deleted = await hive.jobs.create(sample_jobs.do_stuff)
        await hive.jobs.delete(deleted)
        return waiting, failed, deleted

    return with_hive(url, work)


# ----------------------------------------------------------------------------- by id


def test_delete_requeue_and_cancel_by_id(db_url: str) -> None:
    waiting, failed, deleted = three_jobs(db_url)

    assert ok("cancel", str(waiting), "--url", db_url) == f"job {waiting} cancelled: it is Idle now\n"
    assert state(db_url, waiting) == "Idle"
    refused = invoke("cancel", str(failed), "--url", db_url, "--json")
    assert refused.exit_code == 1
    assert json.loads(refused.stdout) == {
        "jobs": [
            {"id": failed, "outcome": "not_cancelled", "done": False, "detail": "it is Failed, not waiting or running"}
        ]
    }

    result = invoke("delete", str(failed), str(deleted), "--url", db_url, "--reason", "cleanup")
    assert result.exit_code == 1  # one of them was deleted already
    assert result.stdout.splitlines() == [f"job {failed} deleted", f"job {deleted} not deleted: it was deleted already"]
    assert state(db_url, failed) == "Deleted"

    document = json.loads(ok("requeue", str(failed), str(waiting), "--to-queue", "again", "--url", db_url, "--json"))
    assert [(item["id"], item["outcome"], item["done"]) for item in document["jobs"]] == [
        (failed, "requeued", True),
        (waiting, "requeued", True),
    ]
    assert state(db_url, failed) == state(db_url, waiting) == "Enqueued"
    ids = json.loads(ok("ls", "--url", db_url, "--queue", "again", "--json"))["jobs"]
    assert sorted(item["id"] for item in ids) == sorted([failed, waiting])


def test_cancel_by_filters(db_url: str) -> None:
    waiting, failed, deleted = three_jobs(db_url)
    assert "cancel needs filters" in error("cancel", "--url", db_url)
    assert ok("cancel", "--url", db_url, "--all") == (
        "cancelled 1 job; stop requested for 0 running jobs; 0 not cancelled (finished or locked meanwhile)\n"
    )
    assert [state(db_url, job_id) for job_id in (waiting, failed, deleted)] == ["Idle", "Failed", "Deleted"]
    ok("requeue", str(waiting), "--url", db_url)
    document = json.loads(ok("cancel", "--url", db_url, "--queue", "mail", "--json"))
    assert document == {"cancelled": 1, "stop_requested": 0, "not_cancelled": 0}


async def _cancel_while_running(url: str) -> tuple[int, str, str]:
    RELEASE.clear()
    options = hm.ColonyOptions(poll_interval=timedelta(milliseconds=50), watch_interval=timedelta(milliseconds=50))
    async with hm.HiveMind(url) as hive:
        job_id = await hive.jobs.create(hold, 1)
        colony = hive.colony(name="cancel", allow=hm.AllowList(modules=[__name__]), options=options)
        colony.swarm("main", drones=1, queues=["global"])
        try:
            async with colony:
                for _ in range(200):
                    if isinstance((await hive.jobs.get(job_id)).state, hm.Executing):
                        break
                    await asyncio.sleep(0.05)
                printed = (await asyncio.to_thread(invoke, "cancel", str(job_id), "--url", url)).stdout
                final = ""
                for _ in range(200):
                    final = (await hive.jobs.get(job_id)).state.name
                    if final != "Executing":
                        break
                    await asyncio.sleep(0.05)
        finally:
            RELEASE.set()
    return job_id, printed, final


def test_cancel_stops_a_running_job(db_url: str) -> None:
    job_id, printed, final = asyncio.run(_cancel_while_running(db_url))
    assert printed == f"job {job_id} stop requested: it is running; its drone stops it (then Idle)\n"
    assert final == "Idle"


def test_by_id_bad_input_changes_nothing(db_url: str) -> None:
    waiting, failed, _deleted = three_jobs(db_url)
    for command in ("requeue", "delete", "cancel"):
        assert "no job 999999 in environment 'main'; nothing was changed" in error(
            command, str(waiting), "999999", "--url", db_url
        )
        assert "job id 'abc': not a job id" in error(command, "abc", "--url", db_url)
        assert "job id '0': not a job id" in error(command, "0", "--url", db_url)
        assert f"give {command} either job ids or filters" in error(
            command, str(waiting), "--state", "Failed", "--url", db_url
        )
        assert "either job ids or filters" in error(command, str(waiting), "--all", "--url", db_url)
    assert "no jobs 999998, 999999" in error("delete", "999999", "999998", "--url", db_url)
    assert (state(db_url, waiting), state(db_url, failed)) == ("Enqueued", "Failed")


# ----------------------------------------------------------------------------- show


def test_show_logs_tail_data_and_due_time(db_url: str) -> None:
    async def work(hive: hm.HiveMind) -> tuple[int, int]:
        job_id = await hive.jobs.create(sample_jobs.hello_world, "logs")
        for number in range(5):
            await hive.jobs.add_log(job_id, f"line {number}", logger="app.jobs")
        await hive.jobs.add_log(job_id, "it broke", exception=ValueError("bad ink"))
        await hive.jobs.set_data(job_id, "report", {"pages": 12, "text": "x" * 200})
        retry = hm.Enqueued(delay=timedelta(minutes=10), reason="retry 1 of 3 in 600 s")
        await hive.jobs.change_state(job_id, hm.Failed.from_exception(ValueError("bad ink")))
        await hive.jobs.change_state(job_id, retry)
        other = await hive.jobs.create(sample_jobs.do_stuff)
        return job_id, other

    job_id, other = with_hive(db_url, work)
    text = ok("show", str(job_id), "--url", db_url, "--logs", "--data", "report")
    lines = text.splitlines()
    due_line = next(line for line in lines if line.startswith("  due: "))
    assert "(in 9 min" in due_line or "(in 10 min" in due_line
    assert "  reason: retry 1 of 3 in 600 s" in lines
    history = lines[lines.index("history (oldest first):") + 1 : lines.index("data:")]
    assert [line.split()[:2] for line in history if line.startswith("  #")] == [
        ["#0", "Created"],
        ["#1", "Enqueued"],
        ["#2", "Failed"],
        ["#3", "Enqueued"],
    ]
    assert lines[lines.index("data:") - 1] == "data items: report (222 chars)"  # {"pages":12,"text":"x...x"}
    data_line = lines[lines.index("data:") + 1]
    assert data_line.startswith('  report = {"pages": 12, "text": "xxx') and data_line.endswith("...")
    logs = lines[lines.index("logs (6 log lines):") + 1 :]
    assert logs[0].endswith("INFO app.jobs: line 0") and any(line.endswith("ValueError: bad ink") for line in logs)

    tail = ok("show", str(job_id), "--url", db_url, "--tail", "2").splitlines()
    assert "logs (last 2 log lines):" in tail
    after = tail[tail.index("logs (last 2 log lines):") + 1 :]
    assert after[0].endswith("INFO app.jobs: line 4") and "it broke" in after[1]

    document = json.loads(ok("show", str(job_id), "--url", db_url, "--json", "--tail", "3", "--data", "report"))
    assert [entry["message"] for entry in document["logs"]] == ["line 3", "line 4", "it broke"]
    assert document["logs"][2]["exception_type"] == "builtins.ValueError"
    assert document["data"] == {"report": {"pages": 12, "text": "x" * 200}}
    assert document["data_items"] == {"report": 222}
    assert [state["name"] for state in document["states"]] == ["Created", "Enqueued", "Failed", "Enqueued"]

    plain = ok("show", str(other), "--url", db_url, "--logs").splitlines()
    assert plain[-1] == "logs: none" and not any(line.startswith("data items") for line in plain)
    assert "--tail 'x': expected a positive whole number" in error("show", str(job_id), "--tail", "x", "--url", db_url)
    assert "--data 'nothing': job" in error("show", str(job_id), "--data", "nothing", "--url", db_url)
    assert "job id 'twelve'" in error("show", "twelve", "--url", db_url)


# ----------------------------------------------------------------------------- ls


def test_ls_shows_the_function_and_when_a_retry_is_due(db_url: str) -> None:
    async def work(hive: hm.HiveMind) -> tuple[int, int]:
        plain = await hive.jobs.create(sample_jobs.add, 1, 2)
        method = await hive.jobs.create(hm.instance(sample_jobs.ConsoleWriterJob).run, "hi")
        await hive.jobs.change_state(method, hm.Enqueued(delay_until=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)))
        return plain, method

    plain, method = with_hive(db_url, work)
    lines = ok("ls", "--url", db_url).splitlines()
    assert lines[0].split()[4:6] == ["due", "(UTC)"] and lines[0].split()[-2:] == ["function", "properties"]
    rows = {int(line.split()[0]): line.split() for line in lines[1:]}
    assert rows[plain][4] == "-" and rows[plain][-1] == "tests.sample_jobs:add"
    assert rows[method][4:6] == ["2030-01-02", "03:04:05"]
    assert rows[method][-1] == "tests.sample_jobs:ConsoleWriterJob.run"
    listed = {item["id"]: item for item in json.loads(ok("ls", "--url", db_url, "--json"))["jobs"]}
    assert listed[method]["due_at"] == "2030-01-02T03:04:05+00:00" and listed[plain]["due_at"] is None
    assert (listed[method]["target"], listed[method]["method"]) == ("tests.sample_jobs:ConsoleWriterJob", "run")


# ----------------------------------------------------------------------------- wait


def test_wait_prints_the_result_and_exits_by_outcome(db_url: str) -> None:
    async def work(hive: hm.HiveMind) -> tuple[int, int, int, int]:
        done = await hive.jobs.create(sample_jobs.add, 40, 2)
        await hive.jobs.change_state(done, hm.Succeeded(result=42))
        failed = await hive.jobs.create(sample_jobs.add, 1, 1)
        await hive.jobs.change_state(failed, hm.Failed.from_exception(ValueError("no luck")))
        deleted = await hive.jobs.create(sample_jobs.add, 1, 1)
        await hive.jobs.delete(deleted, reason="not wanted")
        waiting = await hive.jobs.create(sample_jobs.add, 1, 1)
        return done, failed, deleted, waiting

    done, failed, deleted, waiting = with_hive(db_url, work)
    assert ok("wait", str(done), "--url", db_url) == "42\n"
    assert json.loads(ok("wait", str(done), "--url", db_url, "--json")) == {
        "id": done,
        "outcome": "succeeded",
        "state": "Succeeded",
        "result": 42,
        "error": None,
    }

    result = invoke("wait", str(failed), "--url", db_url)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"Error: background job {failed} failed with builtins.ValueError: no luck\n"
    as_json = invoke("wait", str(failed), "--url", db_url, "--json")
    assert as_json.exit_code == 1
    assert (json.loads(as_json.stdout)["outcome"], json.loads(as_json.stdout)["state"]) == ("failed", "Failed")

    result = invoke("wait", str(deleted), "--url", db_url, "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["outcome"] == "deleted"
    assert "was deleted (not wanted)" in json.loads(result.stdout)["error"]

    result = invoke("wait", str(waiting), "--url", db_url, "--timeout", "0.2")
    assert result.exit_code == 3 and result.stdout == ""
    assert (
        result.stderr == f"Error: background job {waiting} did not finish within 0.2 s; it goes on, wait again later\n"
    )
    timed_out = invoke("wait", str(waiting), "--url", db_url, "--timeout", "0", "--json")
    assert timed_out.exit_code == 3 and json.loads(timed_out.stdout)["outcome"] == "timeout"

    assert "background job 999999 does not exist" in error("wait", "999999", "--url", db_url)
    for bad in ("soon", "-1", "nan", "inf"):
        assert f"--timeout '{bad}': expected seconds" in error("wait", str(waiting), "--timeout", bad, "--url", db_url)
    assert "job id '1.5'" in error("wait", "1.5", "--url", db_url)


# ----------------------------------------------------------------------------- watch


def test_watch_once_shows_states_queues_throughput_and_failures(db_url: str) -> None:
    async def work(hive: hm.HiveMind) -> int:
        await hive.jobs.options(queue="mail").create_many([hm.call(sample_jobs.add, n, n) for n in range(3)])
        await hive.jobs.options(queue="mail", delay=timedelta(hours=1)).create(sample_jobs.add, 0, 0)
        failed = await hive.jobs.options(queue="reports").create(sample_jobs.hello_world, "x")
        await hive.jobs.change_state(failed, hm.Failed.from_exception(KeyError("missing column")))
        return failed

    failed = with_hive(db_url, work)
    document = json.loads(ok("watch", "--once", "--interval", "0.1", "--json", "--url", db_url))
    assert document["counts"] == {"Enqueued": 4, "Failed": 1} and document["total"] == 5
    assert document["finished"] == 1 and document["throughput_per_second"] == 0.0
    assert document["queues"] == [{"queue": "mail", "ready": 3, "delayed": 1, "paused": False}]
    (failure,) = document["latest_failures"]
    assert (failure["id"], failure["queue"], failure["function"]) == (
        failed,
        "reports",
        "tests.sample_jobs:hello_world",
    )
    assert (failure["exception_type"], failure["message"]) == ("builtins.KeyError", "'missing column'")

    text = ok("watch", "--once", "--interval", "0.1", "--url", db_url)
    assert "5 jobs, 1 finished; 0.0 jobs/s" in text
    assert "4 (1 delayed)" in text and "mail" in text
    assert f"{failed}" in text and "builtins.KeyError: 'missing column'" in text
    assert "--interval '0': expected seconds" in error("watch", "--once", "--interval", "0", "--url", db_url)


@pytest.mark.parametrize("command", ["cancel 1", "wait 1", "watch --once"])
def test_new_commands_need_a_database(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "no database given: pass --url URL or --app module:attribute" in error(*command.split())
