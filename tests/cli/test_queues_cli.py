"""``hivemind queues pause / resume / list`` on SQLite, PostgreSQL and MariaDB.

Jobs are created through the library, the command runs in-process (click's runner) against the same
database, and what it changed is read back through the library.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import hivemind_jobs as hm
from tests import sample_jobs
from tests.cli.support import Command, with_hive

_COMMAND = Command("queues", statuses=(0, 2))
invoke, ok, error = _COMMAND.invoke, _COMMAND.ok, _COMMAND.error


T = TypeVar("T")


def paused(url: str) -> list[tuple[str, str | None]]:
    async def fetch(hive: hm.HiveMind) -> list[tuple[str, str | None]]:
        return [(item.queue, item.reason) for item in await hive.queues.paused()]

    return with_hive(url, fetch)


def test_pause_resume_and_list(db_url: str) -> None:
    async def seed(hive: hm.HiveMind) -> None:
        await hive.jobs.options(queue="reports").create(sample_jobs.add, 1, 2)
        await hive.jobs.options(queue="reports", delay=timedelta(hours=1)).create(sample_jobs.add, 1, 2)
        await hive.jobs.create(sample_jobs.add, 3, 4)

    with_hive(db_url, seed)
    assert ok("pause", "reports", "--reason", "month end", "--url", db_url) == "paused queue 'reports'\n"
    assert ok("pause", "reports", "--url", db_url) == "queue 'reports' was paused already\n"
    assert ok("pause", "empty", "--url", db_url) == "paused queue 'empty'\n"
    assert paused(db_url) == [("empty", None), ("reports", "month end")]

    document = json.loads(ok("list", "--json", "--url", db_url))
    rows = {row["queue"]: row for row in document["queues"]}
    assert list(rows) == ["empty", "global", "reports"]
    assert (rows["reports"]["ready"], rows["reports"]["delayed"], rows["reports"]["paused"]) == (1, 1, True)
    assert rows["reports"]["reason"] == "month end" and rows["reports"]["paused_at"]
    assert (rows["global"]["ready"], rows["global"]["paused"], rows["global"]["paused_at"]) == (1, False, None)
    assert (rows["empty"]["ready"], rows["empty"]["paused"]) == (0, True)

    lines = ok("list", "--url", db_url).splitlines()
    assert lines[0].split() == [
        "queue",
        "ready",
        "delayed",
        "by",
        "priority",
        "oldest",
        "due",
        "paused",
        "since",
        "(UTC)",
        "reason",
    ]
    table = {line.split()[0]: line for line in lines[1:]}
    assert table["reports"].split()[1:5] == ["1", "1", "normal", "1+1"]
    assert table["reports"].endswith("month end")
    assert table["global"].split()[1:5] == ["1", "0", "normal", "1"] and table["global"].split()[-3:] == [
        "s",
        "ago",
        "-",
    ]

    assert ok("resume", "reports", "--url", db_url) == "resumed queue 'reports'\n"
    assert ok("resume", "reports", "--url", db_url) == "queue 'reports' was not paused\n"
    assert ok("resume", "empty", "--url", db_url) == "resumed queue 'empty'\n"
    assert paused(db_url) == []
    assert all(row["paused_at"] is None for row in json.loads(ok("list", "--json", "--url", db_url))["queues"])


def test_bad_input_is_one_line_and_changes_nothing(db_url: str) -> None:
    with_hive(db_url, lambda hive: hive.queues.paused())
    assert "queue name" in error("pause", "no spaces", "--url", db_url)
    assert "queue name" in error("resume", "a/b", "--url", db_url)
    assert "--reason" in error("pause", "reports", "--reason", "x" * 1001, "--url", db_url)
    assert paused(db_url) == []
    assert ok("list", "--url", db_url) == "no queues hold jobs and none is paused\n"


def test_list_shows_depth_by_priority_and_the_oldest_due_job(db_url: str) -> None:
    async def seed(hive: hm.HiveMind) -> None:
        mail = hive.jobs.options(queue="mail")
        await mail.options(priority="high").create(sample_jobs.add, 1, 2)
        await mail.options(priority="high").create(sample_jobs.add, 1, 2)
        await mail.options(priority="low").create(sample_jobs.add, 1, 2)
        await mail.options(priority="low", delay=timedelta(hours=2)).create(sample_jobs.add, 1, 2)
        retried = await mail.create(sample_jobs.add, 1, 2)
        await hive.jobs.change_state(retried, hm.Enqueued(delay=timedelta(minutes=30), reason="retry 1 of 3"))
        await hive.jobs.options(queue="later", delay=timedelta(days=1)).create(sample_jobs.add, 1, 2)

    before = datetime.now(UTC)
    with_hive(db_url, seed)
    after = datetime.now(UTC)
    rows = {row["queue"]: row for row in json.loads(ok("list", "--json", "--url", db_url))["queues"]}
    assert list(rows) == ["later", "mail"]
    mail = rows["mail"]
    assert (mail["ready"], mail["delayed"], mail["paused"]) == (3, 2, False)
    assert mail["priorities"] == [
        {"priority": "high", "value": 1, "ready": 2, "delayed": 0},
        {"priority": "normal", "value": 2, "ready": 0, "delayed": 1},
        {"priority": "low", "value": 3, "ready": 1, "delayed": 1},
    ]
    oldest = datetime.fromisoformat(mail["oldest_due_at"])
    assert before - timedelta(seconds=1) <= oldest <= after  # the first high job, due when it was created
    assert 0 <= mail["oldest_due_age_seconds"] < 60
    later = rows["later"]
    assert (later["ready"], later["delayed"], later["oldest_due_at"], later["oldest_due_age_seconds"]) == (
        0,
        1,
        None,
        None,
    )
    table = {line.split()[0]: line for line in ok("list", "--url", db_url).splitlines()[1:]}
    assert table["mail"].split()[1:7] == ["3", "2", "high", "2,", "normal", "0+1,"]
    assert "low 1+1" in table["mail"] and " s ago" in table["mail"]
    assert table["later"].split()[1:6] == ["0", "1", "normal", "0+1", "-"]
