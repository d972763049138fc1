"""``hivemind jobs show / ls / requeue / delete`` on a job whose stored call cannot be decoded,
on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json

import pytest

import hivemind_jobs as hm
from tests import backends, sample_jobs
from tests.cli.test_jobs_cli import get, ok, with_hive

CORRUPTIONS = [
    pytest.param("invocation", "{not json", "stored invocation is not valid JSON", id="invocation-not-json"),
    pytest.param(
        "invocation",
        '{"v": 99, "target": "tests.sample_jobs:add", "args": {"a": 1}}',
        "format version 99",
        id="invocation-future-version",
    ),
    pytest.param("middleware", '[{"priority": 1}]', "stored middleware entry 0 has no type", id="middleware-malformed"),
]


def _create(url: str) -> tuple[int, int]:
    async def work(hive: hm.HiveMind) -> tuple[int, int]:
        broken = await hive.jobs.options(properties={"case": "broken"}).create(sample_jobs.add, 1)
        fine = await hive.jobs.options(properties={"case": "fine"}).create(sample_jobs.add, 2)
        return broken, fine

    return with_hive(url, work)


@pytest.mark.parametrize(("column", "stored", "problem"), CORRUPTIONS)
def test_an_undecodable_job_can_be_shown_listed_requeued_and_deleted(
    db_url: str, column: str, stored: str, problem: str
) -> None:
    broken, fine = _create(db_url)
    assert column in ("invocation", "middleware")  # a column name, never input
    backends.raw(db_url, f"UPDATE {{job}} SET {column} = ? WHERE id = ?", stored, broken)

    lines = ok("show", str(broken), "--url", db_url).stdout.splitlines()
    assert lines[0] == f"job {broken} in environment 'main'"
    cannot = [line for line in lines if line.startswith("  cannot run: ")]
    assert len(cannot) == 1 and problem in cannot[0], lines
    assert any(line.startswith("  stored: ") for line in lines)
    document = json.loads(ok("show", str(broken), "--url", db_url, "--json").stdout)
    assert problem in document["invocation"]["problem"]
    if column == "invocation":
        assert document["invocation"]["stored"] == stored
    healthy = json.loads(ok("show", str(fine), "--url", db_url, "--json").stdout)
    assert healthy["invocation"]["problem"] is None and healthy["invocation"]["stored"] is None

    listed = json.loads(ok("ls", "--url", db_url, "--json").stdout)
    assert sorted(item["id"] for item in listed["jobs"]) == sorted([broken, fine])

    result = ok("delete", "--url", db_url, "--property", "case=broken", "--reason", "corrupt")
    assert result.stdout == "deleted 1 job; 0 left unchanged; 1 batch\n"
    deleted = get(db_url, broken)
    assert deleted.state.name == "Deleted" and deleted.state.reason == "corrupt"

    result = ok("requeue", "--url", db_url, "--property", "case=broken")
    assert result.stdout == "requeued 1 job; 0 left unchanged; 1 batch\n"
    requeued = get(db_url, broken)
    assert requeued.state.name == "Enqueued" and requeued.invocation.problem is not None
    assert get(db_url, fine).state.name == "Enqueued"
    assert str(backends.raw(db_url, f"SELECT {column} FROM {{job}} WHERE id = ?", broken)[0][0]) == stored
