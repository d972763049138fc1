"""``hivemind jobs ls / show / count / requeue / delete`` on SQLite, PostgreSQL and MariaDB.

Jobs are created through the API, the command runs in-process (click's runner) against the same
database, and what it printed or changed is checked against the API.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shlex
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

import hivemind_jobs as hm
from hivemind_jobs.cli.jobs import Filters, parse_moment, typed_value
from hivemind_jobs.cli.main import cli
from tests import sample_jobs

T = TypeVar("T")
SECRET = "s3cret-pw"
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["jobs", *args])
    if result.exit_code not in (0, 2) or (result.exception and not isinstance(result.exception, SystemExit)):
        raise AssertionError(f"hivemind jobs {shlex.join(args)} crashed:\n{result.output}") from result.exception
    return result


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr == "", result.stderr
    return result


def error(*args: str) -> str:
    """The one-line error of a command that must fail with exit status 2 (nothing on stdout)."""
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "", result.stdout
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def ls_ids(url: str, *args: str) -> list[int]:
    document = json.loads(ok("ls", "--url", url, "--json", *args).stdout)
    return [item["id"] for item in document["jobs"]]


def count(url: str, *args: str) -> int:
    return int(ok("count", "--url", url, *args).stdout)


def with_hive(url: str, work: Callable[[hm.HiveMind], Awaitable[T]], environment: str = "main") -> T:
    async def run() -> T:
        async with hm.HiveMind(url, environment=environment) as hive:
            return await work(hive)

    return asyncio.run(run())


def get(url: str, job_id: int) -> hm.BackgroundJob:
    async def fetch(hive: hm.HiveMind) -> hm.BackgroundJob:
        return await hive.jobs.get(job_id)

    return with_hive(url, fetch)


@dataclass(frozen=True)
class Seeded:
    """The jobs of :func:`seed`, by what sets them apart."""

    acme: int  # queue mail, tenant=acme, n=5 (int), urgent=true, price=4.5
    text_five: int  # queue mail-bulk, priority high, n="5" (text), due=WHEN
    failed: int  # queue reports, priority low, Failed, tenant=acme-eu
    deleted: int  # queue global, priority critical, Deleted

    @property
    def all(self) -> list[int]:
        return [self.acme, self.text_five, self.failed, self.deleted]


def seed(url: str) -> Seeded:
    async def work(hive: hm.HiveMind) -> Seeded:
        jobs = hive.jobs
        acme = await jobs.options(
            queue="mail", properties={"tenant": "acme", "n": 5, "urgent": True, "price": 4.5}
        ).create(sample_jobs.hello_world, "acme")
        text_five = await jobs.options(
            queue="mail-bulk", priority="high", properties={"tenant": "other", "n": "5", "due": WHEN}
        ).create(sample_jobs.add, 1, 2)
        failed = await jobs.options(queue="reports", priority=3, properties={"tenant": "acme-eu"}).create(
            sample_jobs.hello_world, "eu"
        )
        error = ValueError("the printer is on fire")
        await jobs.change_state(failed, hm.Failed.from_exception(error, reason="gave up"))
        deleted = await jobs.options(priority="critical").create(sample_jobs.do_stuff)
        await jobs.delete(deleted, reason="not needed")
        return Seeded(acme, text_five, failed, deleted)

    return with_hive(url, work)


# ----------------------------------------------------------------------------- ls


def test_ls_prints_a_table_of_the_jobs(db_url: str) -> None:
    jobs = seed(db_url)
    lines = ok("ls", "--url", db_url).stdout.splitlines()
    assert lines[0].split() == [
        "id",
        "queue",
        "priority",
        "state",
        "due",
        "(UTC)",
        "created",
        "(UTC)",
        "modified",
        "(UTC)",
        "function",
        "properties",
    ]
    rows = {int(line.split()[0]): line.split() for line in lines[1:]}
    assert list(rows) == sorted(jobs.all, reverse=True)  # newest first
    assert rows[jobs.acme][1:4] == ["mail", "normal", "Enqueued"]
    assert rows[jobs.acme][-4:] == ["n=5", "price=4.5", "tenant=acme", "urgent=true"]
    assert rows[jobs.text_five][1:4] == ["mail-bulk", "high", "Enqueued"]
    assert rows[jobs.text_five][-3:] == ["due=2024-05-01T12:00:00+00:00", 'n="5"', "tenant=other"]
    assert rows[jobs.failed][1:4] == ["reports", "low", "Failed"]
    assert rows[jobs.deleted][1:4] == ["global", "critical", "Deleted"]
    created = get(db_url, jobs.acme).created_at
    assert created is not None and created.astimezone(UTC).strftime("%Y-%m-%d") in rows[jobs.acme]
    assert "next page" not in "\n".join(lines)


def test_ls_filters(db_url: str) -> None:
    jobs = seed(db_url)
    assert ls_ids(db_url, "--state", "Failed") == [jobs.failed]
    assert ls_ids(db_url, "--state", "failed", "--state", "Deleted") == [jobs.deleted, jobs.failed]
    assert ls_ids(db_url, "--queue", "mail*") == [jobs.text_five, jobs.acme]
    assert ls_ids(db_url, "--queue", "mail", "--queue", "reports") == [jobs.failed, jobs.acme]
    assert ls_ids(db_url, "--queue", "mail", "--queue", "*ports") == [jobs.failed, jobs.acme]
    assert ls_ids(db_url, "--priority", "high", "--priority", "0") == [jobs.deleted, jobs.text_five]
    # property values are typed: 5 is the int property, "5" the text one
    assert ls_ids(db_url, "--property", "n=5") == [jobs.acme]
    assert ls_ids(db_url, "--property", 'n="5"') == [jobs.text_five]
    assert ls_ids(db_url, "--property", "urgent=true") == [jobs.acme]
    assert ls_ids(db_url, "--property", "urgent=false") == []
    assert ls_ids(db_url, "--property", "price=4.5") == [jobs.acme]
    assert ls_ids(db_url, "--property", "price=4") == []  # an int does not match the float property
    assert ls_ids(db_url, "--property", "due=2024-05-01T14:00:00+02:00") == [jobs.text_five]
    assert ls_ids(db_url, "--property", "due=2024-05-01T12:00:01Z") == []
    assert ls_ids(db_url, "--property", "tenant=acme") == [jobs.acme]
    assert ls_ids(db_url, "--property", "tenant=~acme*") == [jobs.failed, jobs.acme]
    assert ls_ids(db_url, "--property", "tenant=~*e*", "--property", "n=5") == [jobs.acme]
    assert ls_ids(db_url, "--property", "tenant=~acme*", "--state", "Enqueued") == [jobs.acme]
    assert ls_ids(db_url, "--order", "id") == jobs.all


def test_function_filter(db_url: str) -> None:
    jobs = seed(db_url)
    assert ls_ids(db_url, "--function", "tests.sample_jobs:hello_world") == [jobs.failed, jobs.acme]
    assert ls_ids(db_url, "--function", "tests.sample_jobs:add", "--function", "*:do_*") == [
        jobs.deleted,
        jobs.text_five,
    ]
    assert ls_ids(db_url, "--function", "tests.sample_jobs:*", "--queue", "mail*") == [jobs.text_five, jobs.acme]
    assert ls_ids(db_url, "--function", "tests.sample_jobs:hello") == []  # a name is exact; * makes a pattern
    assert count(db_url, "--function", "tests.sample_jobs:hello_world", "--state", "Failed") == 1
    # the bulk commands take the same filter
    ok("delete", "--url", db_url, "--function", "tests.sample_jobs:hello_world")
    assert ls_ids(db_url, "--state", "Deleted", "--function", "*hello_world") == [jobs.failed, jobs.acme]


def test_ls_since_and_until(db_url: str) -> None:
    jobs = seed(db_url)
    assert ls_ids(db_url, "--since", "1h") == sorted(jobs.all, reverse=True)
    assert ls_ids(db_url, "--until", "1h") == []
    assert ls_ids(db_url, "--since", "1h30m", "--until", "1m") == []
    created = get(db_url, jobs.failed).created_at
    assert created is not None
    iso = created.isoformat()
    newer = [job_id for job_id in jobs.all if (get(db_url, job_id).created_at or created) >= created]
    assert jobs.failed in newer and jobs.acme not in newer
    assert ls_ids(db_url, "--since", iso) == sorted(newer, reverse=True)
    assert jobs.failed not in ls_ids(db_url, "--until", iso) and jobs.acme in ls_ids(db_url, "--until", iso)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert ls_ids(db_url, "--since", future) == []
    assert count(db_url, "--until", future) == len(jobs.all)


def test_ls_json_round_trip(db_url: str) -> None:
    jobs = seed(db_url)
    result = ok("ls", "--url", db_url, "--json", "--order", "id")
    document = json.loads(result.stdout)  # nothing but the one JSON object on stdout
    assert set(document) == {"jobs", "next_cursor"} and document["next_cursor"] is None
    listed = {item["id"]: item for item in document["jobs"]}
    assert list(listed) == jobs.all
    for job_id, item in listed.items():
        job = get(db_url, job_id)
        assert item["queue"] == job.queue
        assert item["priority"] == job.priority.name.lower()
        assert item["state"] == job.state.name
        assert item["reason"] == job.state.reason
        assert datetime.fromisoformat(item["created_at"]) == job.created_at
        assert datetime.fromisoformat(item["modified_at"]) == job.modified_at
        assert item["function"] == job.invocation.display_name
    assert listed[jobs.acme]["properties"] == {"tenant": "acme", "n": 5, "urgent": True, "price": 4.5}
    assert listed[jobs.text_five]["properties"] == {"tenant": "other", "n": "5", "due": WHEN.isoformat()}
    assert listed[jobs.deleted]["reason"] == "not needed"


def test_paging_with_the_printed_cursor(db_url: str) -> None:
    async def create(hive: hm.HiveMind) -> list[int]:
        return await hive.jobs.create_many([hm.call(sample_jobs.add, n, n) for n in range(7)])

    created = with_hive(db_url, create)
    seen: list[int] = []
    args = ["ls", "--url", db_url, "--order", "id", "--limit", "3"]
    for _ in range(5):
        lines = ok(*args).stdout.splitlines()
        hint = [line for line in lines if line.startswith("next page")]
        seen += [int(line.split()[0]) for line in lines[1:] if line.strip() and line.split()[0].isdigit()]
        if not hint:
            break
        match = re.fullmatch(r"next page: run the same command with --after (\S+)", hint[0])
        assert match is not None, hint
        args = ["ls", "--url", db_url, "--order", "id", "--limit", "3", "--after", match.group(1)]
    assert seen == created

    first = json.loads(ok("ls", "--url", db_url, "--json", "--limit", "4").stdout)
    second = json.loads(ok("ls", "--url", db_url, "--json", "--limit", "4", "--after", first["next_cursor"]).stdout)
    assert [item["id"] for item in first["jobs"] + second["jobs"]] == created[::-1]
    assert second["next_cursor"] is None
    wrong_order = error("ls", "--url", db_url, "--order", "id", "--after", first["next_cursor"])
    assert "--after" in wrong_order and "not a cursor printed by `hivemind jobs ls --order id`" in wrong_order

    by_property = ok("ls", "--url", db_url, "--order", "property:tenant", "--limit", "7").stdout
    assert "--page 2" in by_property


# ----------------------------------------------------------------------------- show


def test_show_prints_the_details(db_url: str) -> None:
    jobs = seed(db_url)
    text = ok("show", str(jobs.failed), "--url", db_url).stdout
    lines = text.splitlines()
    assert lines[0] == f"job {jobs.failed} in environment 'main'"
    assert "function:   tests.sample_jobs:hello_world" in lines
    assert '  message = "eu"' in lines
    assert "queue:      reports" in lines and "priority:   low (3)" in lines
    assert any(line.startswith("state:      Failed since ") for line in lines)
    assert "  reason: gave up" in lines
    assert "  exception_type: builtins.ValueError" in lines
    assert "  message: the printer is on fire" in lines
    assert "  traceback:" in lines and "    ValueError: the printer is on fire" in lines
    assert "  tenant=acme-eu" in lines and "locked by:  -" in lines
    history = [line.split()[:2] for line in lines[lines.index("history (oldest first):") + 1 :]]
    assert history == [["#0", "Created"], ["#1", "Enqueued"], ["#2", "Failed"]]


def test_show_json_and_the_lock_holder(db_url: str) -> None:
    jobs = seed(db_url)

    async def lock(hive: hm.HiveMind) -> None:
        assert await hive.jobs.try_lock(jobs.text_five, requester="drone-7") is not None

    with_hive(db_url, lock)
    document = json.loads(ok("show", str(jobs.text_five), "--url", db_url, "--json").stdout)
    job = get(db_url, jobs.text_five)
    assert document["id"] == jobs.text_five and document["queue"] == "mail-bulk"
    assert document["priority"] == "high" and document["priority_value"] == 1
    assert document["state"]["name"] == "Enqueued"
    assert [state["name"] for state in document["states"]] == ["Created", "Enqueued"]
    assert document["properties"] == {"tenant": "other", "n": "5", "due": WHEN.isoformat()}
    assert document["invocation"]["function"] == "tests.sample_jobs:add"
    assert document["invocation"]["args"] == dict(job.invocation.arguments)
    assert document["lock"]["owner"] == "drone-7"
    assert datetime.fromisoformat(document["created_at"]) == job.created_at
    assert "locked by:  drone-7 since " in ok("show", str(jobs.text_five), "--url", db_url).stdout

    failed = json.loads(ok("show", str(jobs.failed), "--url", db_url, "--json").stdout)
    assert failed["state"]["reason"] == "gave up"
    assert failed["state"]["fields"]["exception_type"] == "builtins.ValueError"
    assert failed["lock"] is None


def test_show_an_unknown_job_is_an_error(db_url: str) -> None:
    seed(db_url)
    assert "background job 9999 does not exist in environment 'main'" in error("show", "9999", "--url", db_url)
    assert "job id '0': not a job id (a positive whole number" in error("show", "0", "--url", db_url)
    assert "job id 'x': not a job id" in error("show", "x", "--url", db_url)


# ----------------------------------------------------------------------------- count


def test_count(db_url: str) -> None:
    jobs = seed(db_url)
    assert count(db_url) == len(jobs.all)
    assert count(db_url, "--state", "Enqueued") == 2
    assert count(db_url, "--property", "tenant=~acme*", "--queue", "reports") == 1
    assert count(db_url, "--priority", "normal") == 1
    assert json.loads(ok("count", "--url", db_url, "--json", "--queue", "mail*").stdout) == {"count": 2}


# ----------------------------------------------------------------------------- requeue / delete


def test_requeue_moves_the_matching_jobs(db_url: str) -> None:
    jobs = seed(db_url)
    result = ok("requeue", "--url", db_url, "--state", "Failed", "--to-queue", "retry", "--to-priority", "high")
    assert result.stdout == "requeued 1 job; 0 left unchanged; 1 batch\n"
    requeued = get(db_url, jobs.failed)
    assert requeued.state.name == "Enqueued" and requeued.state.reason == "requeued"
    assert requeued.queue == "retry" and requeued.priority is hm.Priority.HIGH
    assert get(db_url, jobs.deleted).state.name == "Deleted"
    assert get(db_url, jobs.acme).queue == "mail"
    lines = ok("show", str(jobs.failed), "--url", db_url).stdout.splitlines()
    history = lines[lines.index("history (oldest first):") + 1 :]
    assert [line.split()[:2] for line in history if line.startswith("  #")][2:] == [
        ["#2", "Failed"],
        ["#3", "Enqueued"],
    ]
    assert "      exception_type: builtins.ValueError" in history and "      reason: gave up" in history

    again = json.loads(ok("requeue", "--url", db_url, "--state", "Deleted", "--json").stdout)
    assert again == {"changed": 1, "unchanged": 0, "batches": 1}
    assert get(db_url, jobs.deleted).state.name == "Enqueued"
    assert count(db_url, "--state", "Enqueued") == len(jobs.all)


def test_delete_soft_deletes_the_matching_jobs(db_url: str) -> None:
    jobs = seed(db_url)
    result = ok("delete", "--url", db_url, "--property", "tenant=~acme*", "--reason", "tenant left")
    assert result.stdout == "deleted 2 jobs; 0 left unchanged; 1 batch\n"
    for job_id in (jobs.acme, jobs.failed):
        job = get(db_url, job_id)
        assert job.state.name == "Deleted" and job.state.reason == "tenant left"
    assert get(db_url, jobs.text_five).state.name == "Enqueued"
    # already deleted: matched, left unchanged
    again = json.loads(ok("delete", "--url", db_url, "--state", "Deleted", "--json").stdout)
    assert again == {"changed": 0, "unchanged": 3, "batches": 1}


def test_requeue_and_delete_need_a_filter_or_all(db_url: str) -> None:
    jobs = seed(db_url)
    assert "requeue needs filters" in error("requeue", "--url", db_url, "--to-queue", "x")
    assert "delete needs filters" in error("delete", "--url", db_url, "--reason", "oops")
    assert "either --all or filters" in error("delete", "--url", db_url, "--all", "--state", "Failed")
    assert count(db_url, "--state", "Deleted") == 1 and count(db_url, "--queue", "x") == 0

    deleted = json.loads(ok("delete", "--url", db_url, "--all", "--json").stdout)
    assert deleted == {"changed": 3, "unchanged": 1, "batches": 1}
    assert count(db_url, "--state", "Deleted") == len(jobs.all)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "--property", "tenant"], "--property 'tenant': expected NAME=VALUE or NAME=~PATTERN"),
        (["count", "--property", "=acme"], "--property '=acme': expected NAME=VALUE"),
        (["ls", "--property", "bad name=1"], "invalid property name 'bad name'"),
        (["ls", "--property", "due=2024-05-01T10:00"], "needs a UTC offset"),
        (["ls", "--property", "n=99999999999999999999"], "does not fit a 64-bit integer"),
        (["ls", "--since", "3 days"], "--since '3 days': expected a duration such as 30m"),
        (["count", "--until", "2x"], "--until '2x': expected a duration"),
        (["ls", "--since", "2024-05-01T00:00:00"], "needs a UTC offset"),
        (["ls", "--since", "1h", "--until", "2h"], "is not before --until"),
        (["ls", "--priority", "urgent"], "--priority 'urgent': not a priority; use one of critical, high"),
        (["ls", "--priority", "7"], "--priority '7': not a priority"),
        (["requeue", "--all", "--to-priority", "asap"], "--to-priority 'asap': not a priority"),
        (["requeue", "--all", "--to-queue", "no way"], "--to-queue 'no way': invalid queue name"),
        (["ls", "--queue", "a b"], "--queue 'a b': invalid queue name"),
        (["ls", "--state", "9lives"], "--state '9lives': invalid state name"),
        (["ls", "--function", "a*\\"], "a pattern cannot end with a lone backslash"),
        (["ls", "--function", "x" * 4001], "longer than"),
        (["ls", "--order", "colour"], "--order 'colour': cannot order by 'colour'"),
        (["ls", "--after", "garbage"], "--after 'garbage': not a cursor"),
        (["ls", "--order", "property:n", "--after", "x"], "has no cursor; page through it with --page N"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(db_url: str, args: list[str], message: str) -> None:
    jobs = seed(db_url)

    def snapshot() -> list[tuple[str, str, hm.Priority]]:
        return [(job.state.name, job.queue, job.priority) for job in map(functools.partial(get, db_url), jobs.all)]

    before = snapshot()
    assert message in error(*args, "--url", db_url)
    assert snapshot() == before


def test_no_database_file_is_an_error_and_creates_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for command in ("ls", "count", "show 1", "requeue --all", "delete --all"):
        assert error(*command.split()) == (
            "Error: no database given: pass --url URL or --app module:attribute "
            "(or set HIVEMIND_URL or HIVEMIND_APP, or url or app in hivemind.toml)\n"
        )
    assert "no SQLite database at" in error("count", "--url", f"sqlite:///{tmp_path / 'missing.db'}")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_hides_the_password() -> None:
    url = f"postgresql://root:{SECRET}@127.0.0.1:1/test?connect_timeout=1"
    stderr = error("count", "--url", url)
    assert "cannot connect" in stderr and SECRET not in stderr
    assert "invalid port" in error("ls", "--url", f"mysql://root:{SECRET}@127.0.0.1:port/test")


# ----------------------------------------------------------------------------- choosing the jobs


def test_env_and_prefix_choose_the_tables(db_url: str) -> None:
    seed(db_url)

    async def create(hive: hm.HiveMind) -> int:
        return await hive.jobs.create(sample_jobs.do_stuff)

    other = with_hive(db_url, create, environment="other")
    assert ls_ids(db_url, "--env", "other") == [other]
    assert ls_ids(db_url, "--prefix", "hm_other_") == [other]
    assert count(db_url) == 4
    assert "invalid environment name 'a b'" in error("ls", "--url", db_url, "--env", "a b")
    assert "invalid environment name ''" in error("ls", "--url", db_url, "--env", "")


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"jobs_cli_app_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import hivemind_jobs as hm

            hive = hm.HiveMind("sqlite:///{tmp_path / "app.db"}")
            hive.add_environment("reports", "sqlite:///{tmp_path / "app.db"}", table_prefix="rep_")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_app_chooses_the_hive_and_its_environment(app_module: str, tmp_path: Path) -> None:
    module: Any = __import__(app_module)

    async def create() -> tuple[int, int]:
        async with module.hive as hive:
            main = await hive.jobs.create(sample_jobs.do_stuff)
            report = await hive.env("reports").jobs.options(queue="reports").create(sample_jobs.do_stuff)
            return main, report

    main, report = asyncio.run(create())
    app = f"{app_module}:hive"
    assert json.loads(ok("ls", "--app", app, "--json").stdout)["jobs"][0]["id"] == main
    reports = json.loads(ok("ls", "--app", app, "--env", "reports", "--json").stdout)["jobs"]
    assert [(item["id"], item["queue"]) for item in reports] == [(report, "reports")]
    assert "no environment 'ghost'" in error("count", "--app", app, "--env", "ghost")
    assert "--prefix goes with --url" in error("count", "--app", app, "--prefix", "x_")
    assert "either --url or --app" in error("count", "--app", app, "--url", f"sqlite:///{tmp_path / 'app.db'}")


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme", "acme"),
        ("5", 5),
        ("-12", -12),
        ("4.5", 4.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("true", True),
        ("False", False),
        ('"5"', "5"),
        ('"true"', "true"),
        ("2024-05-01", "2024-05-01"),
        ("2024-05-01T12:00:00Z", WHEN),
        ("2024-05-01T14:00+02:00", WHEN),
        ("nan", "nan"),
        ("", ""),
    ],
)
def test_property_values_are_typed(raw: str, expected: object) -> None:
    value = typed_value(raw)
    assert value == expected and type(value) is type(expected)


def test_durations_count_back_from_now() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_moment("--since", "30m", now) == now - timedelta(minutes=30)
    assert parse_moment("--since", "1h30m", now) == now - timedelta(minutes=90)
    assert parse_moment("--since", "2w", now) == now - timedelta(days=14)
    assert parse_moment("--since", "2024-04-01T00:00:00+02:00", now) == datetime(2024, 3, 31, 22, tzinfo=UTC)
    assert Filters().given is False and Filters(since="1h").given is True


def test_help_documents_the_property_syntax() -> None:
    text = ok("ls", "--help").stdout
    assert "true/false is a bool" in text and "NAME=~PATTERN" in text and "--after" in text
