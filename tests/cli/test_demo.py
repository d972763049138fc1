"""``hivemind demo`` runs as a real process on embedded SQLite, says what happened, and leaves a
consistent database."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

import hivemind_jobs
from hivemind_jobs.cli.main import cli

#: 3 first kinds + 3 mail + retried + 2 delayed + 4 reports + archive + timed + skipped + 400 quick
SUCCEEDED = 416


def test_demo_runs_in_a_real_process(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "hivemind_jobs.cli", "demo", "--db", str(database)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    assert took < 25, f"the demo took {took:.1f} s"
    assert "Traceback" not in completed.stderr, completed.stderr
    out = completed.stdout

    def line(pattern: str) -> re.Match[str]:
        match = re.search(pattern, out, re.MULTILINE)
        assert match is not None, f"no line matches {pattern!r} in:\n{out}"
        return match

    # creation: 419 jobs, and a call that does not bind is refused before anything is written
    line(r"refused before writing anything: .*send_welcome_mail: argument 'address': expected str, got int 42$")
    line(r"created 419 jobs in queues global, mail, images, billing and reports")
    # progress without a terminal: plain lines, then the final view
    line(r"^ +\d+\.\d s +\d+/419 settled +\(")
    line(r"^419/419 jobs settled")
    assert len(re.findall(r"cancel job #\d+ while it runs: requested", out)) == 2
    # the summary: jobs by state, and where they ran
    line(rf"│ Succeeded +│ +{SUCCEEDED} │")
    line(r"│ Failed +│ +1 │")
    line(r"│ Idle +│ +2 │")
    line(r"│ main/reports +│ +\d+ │")
    line(r"throughput: 400 quick jobs in \d+\.\d\d s = [\d,]+ jobs/s")
    line(r"queue latency of the quick jobs .*: p50 \d+ ms, p95 \d+ ms, max \d+ ms")
    # each kind of job, and the sub-swarm running the reports queue
    line(r"│ #\d+ +│ resize_image +│ async +│ images ")
    line(r"│ #\d+ +│ ThumbnailService\.build +│ instance method +│ images ")
    line(r"│ #\d+ +│ render_report +│ sync +│ reports +│ NORMAL +│ reports\.drone-\d +│ report Q1 rendered")
    line(r"mail queue, in the order run: CRITICAL, NORMAL, LOW$")
    # failed once, retried by its own policy, succeeded
    line(
        r"retried #\d+: Created -> Enqueued -> Executing -> Failed -> "
        r"Enqueued \(retry 1 of 3 in 0\.5 s\) -> Executing -> Succeeded$"
    )
    line(r"charged 42\.00 EUR on attempt 2; retries: 1$")
    assert int(line(r"due again at [\d:.]+ UTC, started (-?\d+) ms after that")[1]) >= 0
    # cancelled while running, async and sync: Idle within about the watch interval
    for kind in ("async", "sync"):
        line(
            rf"cancelled while running \({kind}\) #\d+: Created -> Enqueued -> Executing -> Idle \(no longer needed\)$"
        )
    stopped = [int(ms) for ms in re.findall(r"final state Idle, (\d+) ms after the request", out)]
    assert len(stopped) == 2 and all(ms < 3000 for ms in stopped), stopped
    # the continuation ran after its parent succeeded
    continuation = line(
        r"continuation #(\d+): Created -> Awaiting -> Enqueued \(parent job (\d+) reached Succeeded\) -> "
        r"Executing -> Succeeded$"
    )
    assert int(continuation[2]) < int(continuation[1])
    # delayed jobs start when due, never before
    for seconds in (2, 3):
        line(rf"delayed {seconds} s #\d+: Created -> Enqueued -> Executing -> Succeeded$")
    delays = re.findall(r"due (\d\.\d) s after its creation, started (-?\d+) ms after that", out)
    assert [due for due, _ in delays] == ["2.0", "3.0"]
    assert all(0 <= int(late) < 1000 for _, late in delays), delays
    # an election handler and middleware
    line(r"refused by an election handler #\d+: .* -> Failed \(tenant has not paid its bill; execution refused\)$")
    line(r"skipped by middleware #\d+: Succeeded, result 'skipped: maintenance'$")
    line(r"job log #\d+ \[INFO\] resize took [\d.]+ ms$")
    line(r"job log #\d+ \[WARNING\] tenant acme is in maintenance: job skipped$")
    line(r"colony demo \(.*\) stopped: swarm main with 8 drones, swarm main/reports with 2 drones$")
    line(r"^demo finished in \d+\.\d s$")

    with sqlite3.connect(database) as connection:
        states = dict(connection.execute('SELECT state_name, COUNT(*) FROM "hm_main_job" GROUP BY state_name'))
        locked = connection.execute('SELECT COUNT(*) FROM "hm_main_job" WHERE locked_by IS NOT NULL').fetchone()[0]
        queued = connection.execute('SELECT COUNT(*) FROM "hm_main_queue"').fetchone()[0]
        colonies = connection.execute('SELECT name, status FROM "hm_main_colony"').fetchall()
    assert states == {"Succeeded": SUCCEEDED, "Failed": 1, "Idle": 2}
    assert locked == 0 and queued == 0
    assert colonies == [("demo", "stopped")]


def test_demo_refuses_an_existing_database(tmp_path: Path) -> None:
    existing = tmp_path / "taken.db"
    existing.write_text("")
    result = CliRunner().invoke(cli, ["demo", "--db", str(existing)])
    assert result.exit_code != 0 and "already exists" in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and hivemind_jobs.__version__ in result.output
