"""``hivemind queues pause / resume / list`` on SQLite, PostgreSQL and MariaDB.

Jobs are created through the library, the command runs in-process (click's runner) against the same
database, and what it changed is read back through the library.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from click.testing import CliRunner, Result

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli
from tests import sample_jobs

T = TypeVar("T")


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["queues", *args])
    if result.exit_code not in (0, 2) or (result.exception and not isinstance(result.exception, SystemExit)):
        raise AssertionError(f"hivemind queues {shlex.join(args)} crashed:\n{result.output}") from result.exception
    return result


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr == "", result.stderr
    return result.stdout


def error(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "", result.stdout
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def with_hive(url: str, work: Callable[[hm.HiveMind], Awaitable[T]]) -> T:
    async def run() -> T:
        async with hm.HiveMind(url) as hive:
            return await work(hive)

    return asyncio.run(run())


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
    assert lines[0].split() == ["queue", "ready", "delayed", "paused", "since", "(UTC)", "reason"]
    table = {line.split()[0]: line.split() for line in lines[1:]}
    assert table["reports"][1:3] == ["1", "1"] and table["reports"][-2:] == ["month", "end"]
    assert table["global"] == ["global", "1", "0", "-"]

    assert ok("resume", "reports", "--url", db_url) == "resumed queue 'reports'\n"
    assert ok("resume", "reports", "--url", db_url) == "queue 'reports' was not paused\n"
    assert ok("resume", "empty", "--url", db_url) == "resumed queue 'empty'\n"
    assert paused(db_url) == []
    assert ok("list", "--url", db_url).count("-") == 2  # no pause shown


def test_bad_input_is_one_line_and_changes_nothing(db_url: str) -> None:
    with_hive(db_url, lambda hive: hive.queues.paused())
    assert "queue name" in error("pause", "no spaces", "--url", db_url)
    assert "queue name" in error("resume", "a/b", "--url", db_url)
    assert "--reason" in error("pause", "reports", "--reason", "x" * 1001, "--url", db_url)
    assert paused(db_url) == []
    assert ok("list", "--url", db_url) == "no queues hold jobs and none is paused\n"
