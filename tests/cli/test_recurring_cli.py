"""``hivemind recurring ls / show / trigger / pause / resume / delete`` on SQLite, PostgreSQL and MariaDB.

Recurring jobs are created through the library, the command runs in-process (click's runner)
against the same database, and what it printed or changed is read back through the library.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli
from tests import sample_jobs
from tests.cli.support import Command, with_hive

_COMMAND = Command("recurring", statuses=(0, 1, 2))
invoke, ok, error = _COMMAND.invoke, _COMMAND.ok, _COMMAND.error


T = TypeVar("T")
DAILY = hm.cron("30 1 * * *", tz="America/New_York")
LS_KEYS = {
    "id",
    "state",
    "state_reason",
    "schedule",
    "next_run",
    "last_outcome",
    "runs",
    "queue",
    "priority",
    "function",
    "job_id",
}


def get(url: str, recurring_id: str) -> hm.RecurringJob | None:
    async def fetch(hive: hm.HiveMind) -> hm.RecurringJob | None:
        return await hive.recurring.try_get(recurring_id)

    return with_hive(url, fetch)


def seed(url: str) -> None:
    """``report-daily`` (cron in New York, queue reports, a property), ``report-weekly`` (with a
    calendar) and ``tick`` (every five minutes, paused)."""

    async def work(hive: hm.HiveMind) -> None:
        recurring = hive.recurring
        await recurring.options(queue="reports", priority="high", properties={"tenant": "acme"}).create_or_update(
            "report-daily", DAILY, sample_jobs.add, 1
        )
        weekly = hm.cron("0 6 * * *").only_during("monday")
        await recurring.options(keep_logs=None, misfire="skip").create_or_update(
            "report-weekly", weekly, sample_jobs.hello_world, "week"
        )
        await recurring.create_or_update("tick", hm.every(minutes=5), sample_jobs.do_stuff)
        assert await recurring.pause("tick", reason="maintenance window")

    with_hive(url, work)


def start(url: str, job_id: int) -> None:
    """Play a worker that has started the occurrence (and holds no lock)."""

    async def work(hive: hm.HiveMind) -> None:
        await hive.jobs.change_state(job_id, hm.Executing(colony="test", swarm="main", drone="d1"))

    with_hive(url, work)


# ----------------------------------------------------------------------------- ls


def test_ls_prints_a_table_by_id(db_url: str) -> None:
    seed(db_url)
    lines = ok("ls", "--url", db_url).splitlines()
    assert lines[0].split() == ["id", "state", "schedule", "next", "run", "(UTC)", "last", "outcome", "runs", "queue"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == ["report-daily", "report-weekly", "tick"]
    daily = get(db_url, "report-daily")
    assert daily is not None and daily.next_run is not None
    next_run = daily.next_run.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert rows["report-daily"].split() == [
        "report-daily",
        "Enqueued",
        *["at", "01:30", "every", "day", "in", "America/New_York"],
        *next_run.split(),
        "-",
        "0",
        "reports",
    ]
    assert "only during monday (Mon)" in rows["report-weekly"]
    assert rows["tick"].split() == ["tick", "Idle", "every", "5", "minutes", "-", "-", "0", "global"]


def test_ls_filters_and_json(db_url: str) -> None:
    seed(db_url)
    document = json.loads(ok("ls", "--url", db_url, "--json"))
    assert set(document) == {"recurring_jobs"}
    listed = {item["id"]: item for item in document["recurring_jobs"]}
    assert list(listed) == ["report-daily", "report-weekly", "tick"]
    assert all(set(item) == LS_KEYS for item in listed.values())
    daily = get(db_url, "report-daily")
    assert daily is not None and daily.next_run is not None
    assert listed["report-daily"] == {
        "id": "report-daily",
        "state": "Enqueued",
        "state_reason": None,
        "schedule": "at 01:30 every day in America/New_York",
        "next_run": daily.next_run.astimezone(UTC).isoformat(),
        "last_outcome": None,
        "runs": 0,
        "queue": "reports",
        "priority": "high",
        "function": "tests.sample_jobs:add",
        "job_id": None,
    }
    assert listed["report-daily"]["next_run"].endswith("+00:00")
    assert listed["tick"]["state_reason"] == "maintenance window" and listed["tick"]["next_run"] is None

    def ids(*args: str) -> list[str]:
        return [item["id"] for item in json.loads(ok("ls", "--url", db_url, "--json", *args))["recurring_jobs"]]

    assert ids("--id-prefix", "report-") == ["report-daily", "report-weekly"]
    assert ids("--state", "Idle") == ["tick"]
    assert ids("--state", "enqueued") == ["report-daily", "report-weekly"]
    assert ids("--state", "executing") == []
    assert ids("--id-prefix", "report-w", "--state", "ENQUEUED") == ["report-weekly"]
    assert ok("ls", "--url", db_url, "--id-prefix", "nothing") == "no recurring jobs match the filters\n"


def test_ls_of_an_environment_without_recurring_jobs(db_url: str) -> None:
    seed(db_url)
    assert json.loads(ok("ls", "--url", db_url, "--env", "other", "--json")) == {"recurring_jobs": []}
    assert ok("ls", "--url", db_url, "--env", "other") == "no recurring jobs\n"


# ----------------------------------------------------------------------------- show


def test_show_prints_everything(db_url: str) -> None:
    seed(db_url)
    lines = ok("show", "report-daily", "--url", db_url).splitlines()
    daily = get(db_url, "report-daily")
    assert daily is not None and daily.next_run is not None
    assert lines[0] == "recurring job 'report-daily' in environment 'main'"
    for expected in (
        "function:   tests.sample_jobs:add",
        "  a = 1",
        "schedule:   at 01:30 every day in America/New_York",
        "state:      Enqueued",
        f"next run:   {daily.next_run.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
        "running:    -",
        "queue:      reports",
        "priority:   high (1)",
        "  tenant=acme",
        "  misfire:           run_once (threshold 1m)",
        "  next run base:     scheduled",
        "  states kept:       the newest 100, none older than 14d",
        "  logs kept:         the newest 1000",
        "  runs:              0 (succeeded 0, failed 0)",
        "  last outcome:      -",
        "history (newest first):",
    ):
        assert expected in lines, expected
    history = lines[lines.index("history (newest first):") + 1 :]
    assert [line.split()[3:5] for line in history] == [["state", "Enqueued"], ["state", "Scheduling"]]
    assert history[1].endswith(" created")

    tick = ok("show", "tick", "--url", db_url, "--history", "1").splitlines()
    assert "state:      Idle (maintenance window)" in tick and "next run:   -" in tick
    assert tick[tick.index("history (newest first):") + 1 :][0].endswith("state Idle maintenance window")
    assert len(tick[tick.index("history (newest first):") + 1 :]) == 1
    assert not any(
        line.startswith("history") for line in ok("show", "tick", "--url", db_url, "--history", "0").splitlines()
    )
    weekly = ok("show", "report-weekly", "--url", db_url).splitlines()
    assert "  logs kept:         all" in weekly and "  misfire:           skip (threshold 1m)" in weekly


def test_show_json_after_runs_with_states_and_logs(db_url: str) -> None:
    async def work(hive: hm.HiveMind) -> int:
        recurring = hive.recurring.options(misfire="skip", misfire_threshold=timedelta(0))
        await recurring.create_or_update("tick", hm.every(seconds=1), sample_jobs.add, 1)
        job_id = await recurring.trigger("tick")
        await hive.jobs.change_state(job_id, hm.Executing(colony="test", swarm="main", drone="d1"))
        await hive.jobs.change_state(job_id, hm.Succeeded())
        await recurring.run_pass()  # records the run
        due = (await recurring.get("tick")).next_run
        assert due is not None
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.3)
        await recurring.run_pass()  # late by more than the threshold of 0: misfired, skipped, logged
        return job_id

    job_id = with_hive(db_url, work)
    document = json.loads(ok("show", "tick", "--url", db_url, "--json"))
    job = get(db_url, "tick")
    assert job is not None and job.next_run is not None
    assert set(document) == {
        "id",
        "environment",
        "function",
        "invocation",
        "state",
        "state_reason",
        "next_run",
        "job_id",
        "schedule",
        "queue",
        "priority",
        "priority_value",
        "properties",
        "settings",
        "stats",
        "created_at",
        "modified_at",
        "history",
    }
    assert document["id"] == "tick" and document["environment"] == "main"
    assert document["invocation"] == {
        "target": "tests.sample_jobs:add",
        "method": None,
        "is_async": False,
        "args": {"a": 1},
    }
    assert (document["state"], document["state_reason"], document["job_id"]) == ("Enqueued", None, None)
    assert datetime.fromisoformat(document["next_run"]) == job.next_run
    assert document["schedule"] == {
        "explanation": "every second",
        "definition": {"kind": "interval", "seconds": 1, "tz": "UTC", "only_during": [], "not_during": []},
    }
    assert (document["queue"], document["priority"], document["priority_value"]) == ("global", "normal", 2)
    assert document["settings"]["misfire"] == "skip" and document["settings"]["misfire_threshold"] == 0
    assert document["settings"]["state_retention"] == 14 * 86_400
    stats = document["stats"]
    assert (stats["runs"], stats["succeeded"], stats["failed"], stats["misfired"]) == (1, 1, 0, 1)
    assert stats["skipped"] >= 1 and stats["last_outcome"] == "Succeeded" and stats["last_job_id"] == job_id
    for name in ("last_scheduled", "last_started", "last_completed"):
        assert datetime.fromisoformat(stats[name]) == getattr(job.stats, name)
        assert stats[name].endswith("+00:00")
    assert datetime.fromisoformat(document["created_at"]) == job.created_at
    assert datetime.fromisoformat(document["modified_at"]) == job.modified_at
    history = document["history"]
    assert all(set(event) == {"id", "kind", "name", "message", "fields", "created_at"} for event in history)
    assert [event["id"] for event in history] == sorted((event["id"] for event in history), reverse=True)
    logs = [event for event in history if event["kind"] == "log"]
    assert len(logs) == 1 and logs[0]["name"] == "WARNING" and logs[0]["message"].startswith("misfired: ")
    triggered = [event for event in history if event["message"] == "triggered"]
    assert triggered[0]["name"] == "Executing" and triggered[0]["fields"] == {"job_id": job_id}
    assert history[-1]["name"] == "Scheduling"

    text = ok("show", "tick", "--url", db_url).splitlines()
    assert "  runs:              1 (succeeded 1, failed 0)" in text
    assert f"  last outcome:      Succeeded (job {job_id})" in text
    assert any(" log WARNING misfired: " in line for line in text)
    assert len(json.loads(ok("show", "tick", "--url", db_url, "--json", "--history", "2"))["history"]) == 2
    assert json.loads(ok("show", "tick", "--url", db_url, "--json", "--history", "0"))["history"] == []


# ----------------------------------------------------------------------------- actions


def test_trigger_prints_the_job_id_and_refuses_while_running(db_url: str) -> None:
    seed(db_url)
    output = ok("trigger", "report-daily", "--url", db_url)
    job_id = int(output)
    assert output == f"{job_id}\n"

    async def occurrence(hive: hm.HiveMind) -> hm.BackgroundJob:
        return await hive.jobs.get(job_id)

    job = with_hive(db_url, occurrence)
    assert job.state.name == "Enqueued" and job.queue == "reports"
    assert job.properties["hm.recurring_id"] == "report-daily" and job.properties["tenant"] == "acme"
    daily = get(db_url, "report-daily")
    assert daily is not None and (daily.state, daily.job_id, daily.stats.runs) == ("Executing", job_id, 1)
    message = error("trigger", "report-daily", "--url", db_url)
    assert f"recurring job 'report-daily' is running (job {job_id}); one occurrence runs at a time" in message
    listed = json.loads(ok("ls", "--url", db_url, "--json", "--state", "Executing"))["recurring_jobs"]
    assert [(item["id"], item["job_id"], item["runs"]) for item in listed] == [("report-daily", job_id, 1)]
    assert f"running:    job {job_id}" in ok("show", "report-daily", "--url", db_url).splitlines()

    paused = int(ok("trigger", "tick", "--url", db_url))  # a paused job can still be run by hand
    tick = get(db_url, "tick")
    assert tick is not None and (tick.state, tick.job_id) == ("Idle", paused)


def test_pause_and_resume(db_url: str) -> None:
    seed(db_url)
    assert ok("pause", "report-daily", "--url", db_url, "--reason", "quarter end") == (
        "paused recurring job 'report-daily'\n"
    )
    daily = get(db_url, "report-daily")
    assert daily is not None
    assert (daily.state, daily.state_reason, daily.next_run) == ("Idle", "quarter end", None)
    assert ok("pause", "report-daily", "--url", db_url) == "recurring job 'report-daily' was paused already\n"
    assert ok("pause", "report-weekly", "--url", db_url) == "paused recurring job 'report-weekly'\n"
    weekly = get(db_url, "report-weekly")
    assert weekly is not None and (weekly.state, weekly.state_reason) == ("Idle", "paused")

    output = ok("resume", "report-daily", "--url", db_url)
    daily = get(db_url, "report-daily")
    assert daily is not None and daily.state == "Enqueued" and daily.next_run is not None
    assert daily.next_run > datetime.now(UTC) and daily.state_reason is None
    assert output == (
        f"resumed recurring job 'report-daily'; next run {daily.next_run.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
    )
    assert daily.next_run.astimezone(DAILY.zone).strftime("%H:%M") == "01:30"
    assert ok("resume", "report-daily", "--url", db_url) == "recurring job 'report-daily' was not paused\n"
    history = json.loads(ok("show", "report-daily", "--url", db_url, "--json", "--history", "2"))["history"]
    assert [(event["name"], event["message"]) for event in history] == [
        ("Enqueued", "resumed"),
        ("Idle", "quarter end"),
    ]


def test_delete_asks_first(db_url: str) -> None:
    seed(db_url)
    for answer in (None, "n\n", "\n"):
        result = invoke("delete", "tick", "--url", db_url, answer=answer)
        assert result.exit_code == 1 and result.stdout == ""
        assert "Delete recurring job 'tick' (every 5 minutes) and its history? [y/N]:" in result.stderr
        assert result.stderr.splitlines()[-1] == (
            "Error: recurring job 'tick' was not deleted; pass --yes to delete without asking"
        )
        assert get(db_url, "tick") is not None

    result = invoke("delete", "tick", "--url", db_url, answer="y\n")
    assert result.exit_code == 0 and result.stdout == "deleted recurring job 'tick'\n"
    assert get(db_url, "tick") is None

    assert ok("delete", "report-weekly", "--url", db_url, "--yes") == "deleted recurring job 'report-weekly'\n"
    assert get(db_url, "report-weekly") is None
    assert [item["id"] for item in json.loads(ok("ls", "--url", db_url, "--json"))["recurring_jobs"]] == [
        "report-daily"
    ]
    # asking needs the job: an unknown one is an error before any question
    assert "no recurring job 'tick' in environment 'main'" in error("delete", "tick", "--url", db_url)
    assert "no recurring job 'tick' in environment 'main'" in error("delete", "tick", "--url", db_url, "--yes")


def test_delete_waits_for_or_cancels_the_running_occurrence(db_url: str) -> None:
    seed(db_url)
    waiting = int(ok("trigger", "report-weekly", "--url", db_url))
    # an occurrence that has not started is cancelled, and the question says so
    result = invoke("delete", "report-weekly", "--url", db_url, answer="y\n")
    assert f"Its occurrence that has not started (job {waiting}) is cancelled." in result.stderr
    assert result.exit_code == 0 and get(db_url, "report-weekly") is None

    running = int(ok("trigger", "report-daily", "--url", db_url))
    start(db_url, running)
    result = invoke("delete", "report-daily", "--url", db_url, answer="n\n")
    assert f"Its running occurrence (job {running}) is waited for." in result.stderr
    message = error("delete", "report-daily", "--url", db_url, "--yes", "--timeout", "0.3")
    assert f"its run (job {running}) did not end within" in message
    daily = get(db_url, "report-daily")
    assert daily is not None and daily.job_id == running
    assert ok("delete", "report-daily", "--url", db_url, "--yes", "--cancel-running", "--timeout", "10") == (
        "deleted recurring job 'report-daily'\n"
    )
    assert get(db_url, "report-daily") is None

    async def occurrences(hive: hm.HiveMind) -> list[str]:
        return [(await hive.jobs.get(job_id)).state.name for job_id in (waiting, running)]

    assert with_hive(db_url, occurrences) == ["Idle", "Idle"]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "ghost"], "no recurring job 'ghost' in environment 'main'"),
        (["trigger", "ghost"], "no recurring job 'ghost' in environment 'main'"),
        (["pause", "ghost"], "no recurring job 'ghost' in environment 'main'"),
        (["resume", "ghost"], "no recurring job 'ghost' in environment 'main'"),
        (["delete", "ghost", "--yes"], "no recurring job 'ghost' in environment 'main'"),
        (["show", "no way"], "invalid recurring job id 'no way': use 1-200 characters"),
        (["trigger", "_x"], "invalid recurring job id '_x'"),
        (
            ["ls", "--state", "Failed"],
            "--state 'Failed': not a recurring job state; use one of Enqueued, Executing, Idle",
        ),
        (["ls", "--state", ""], "--state '': not a recurring job state"),
        (["ls", "--id-prefix", "a b"], "--id-prefix 'a b': no recurring job id starts like that"),
        (["pause", "tick", "--reason", "a\x00b"], "--reason 'a\\x00b': text must not contain NUL characters"),
        (["pause", "report-daily", "--reason", "a\x00b"], "text must not contain NUL characters"),
        (["pause", "report-daily", "--reason", "\udcff"], "text is not valid Unicode (lone surrogate)"),
        (["pause", "report-daily", "--reason", "x" * 1001], "text of 1001 characters is longer than 1000"),
        (["show", "tick", "--history", "-1"], "--history '-1': expected how many entries to show, 0 to 10000"),
        (["show", "tick", "--history", "10001"], "--history '10001': expected how many"),
        (["show", "tick", "--history", "many"], "--history 'many': expected how many"),
        (["delete", "tick", "--yes", "--timeout", "soon"], "--timeout 'soon': expected seconds to wait"),
        (["delete", "tick", "--yes", "--timeout", "-1"], "--timeout '-1': expected seconds"),
        (["delete", "tick", "--yes", "--timeout", "nan"], "--timeout 'nan': expected seconds"),
        (["ls", "--env", "a b"], "invalid environment name 'a b'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(db_url: str, args: list[str], message: str) -> None:
    seed(db_url)

    def snapshot() -> list[tuple[str, str, str | None, datetime | None, int]]:
        jobs = [get(db_url, recurring_id) for recurring_id in ("report-daily", "report-weekly", "tick")]
        return [(job.id, job.state, job.state_reason, job.next_run, job.stats.runs) for job in jobs if job is not None]

    before = snapshot()
    assert message in error(*args, "--url", db_url)
    assert snapshot() == before and len(before) == 3


def test_no_database_file_is_an_error_and_creates_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert error("ls").startswith("Error: no database given: pass --url URL or --app module:attribute")
    assert "no SQLite database at" in error("show", "tick", "--url", f"sqlite:///{tmp_path / 'missing.db'}")
    assert "no SQLite database at" in error("delete", "tick", "--url", f"sqlite:///{tmp_path / 'missing.db'}")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- choosing the environment


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An application whose default environment registers a calendar its schedules name."""
    name = f"recurring_cli_app_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import hivemind_jobs as hm

            hive = hm.HiveMind("sqlite:///{tmp_path / "app.db"}")
            hive.env().calendars.register("office_days", hm.WeekdayCalendar(["tue", "wed"]))
            hive.add_environment("reports", "sqlite:///{tmp_path / "app.db"}", table_prefix="rep_")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_app_calendars_explain_the_schedules(app_module: str, tmp_path: Path) -> None:
    module: Any = __import__(app_module)

    async def create() -> None:
        async with module.hive as hive:
            schedule = hm.cron("0 8 * * *").only_during("office_days")
            await hive.recurring.create_or_update("standup", schedule, sample_jobs.do_stuff)
            await hive.env("reports").recurring.create_or_update("report", hm.every(hours=1), sample_jobs.do_stuff)

    asyncio.run(create())
    app = f"{app_module}:hive"
    listed = json.loads(ok("ls", "--app", app, "--json"))["recurring_jobs"]
    assert [(item["id"], item["schedule"]) for item in listed] == [
        ("standup", "at 08:00 every day in UTC, only during office_days (Tue, Wed)")
    ]
    # without the application its calendar is only a name
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert "schedule:   at 08:00 every day in UTC, only during office_days" in ok("show", "standup", "--url", url)
    reports = json.loads(ok("ls", "--app", app, "--env", "reports", "--json"))["recurring_jobs"]
    assert [(item["id"], item["schedule"]) for item in reports] == [("report", "every hour")]
    assert [
        item["id"] for item in json.loads(ok("ls", "--url", url, "--prefix", "rep_", "--json"))["recurring_jobs"]
    ] == ["report"]
    assert "either --url or --app" in error("ls", "--app", app, "--url", url)


def test_help_lists_the_commands() -> None:
    text = ok("--help")
    for command in ("ls", "show", "trigger", "pause", "resume", "delete"):
        assert f"  {command} " in text
    assert "recurring" in CliRunner().invoke(cli, ["--help"]).stdout
