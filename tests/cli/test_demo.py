"""``hivemind demo`` runs as a real process on embedded SQLite and leaves a consistent database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

import hivemind_jobs
from hivemind_jobs.cli.main import cli


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
    assert completed.returncode == 0, completed.stderr
    assert time.monotonic() - started < 25
    out = completed.stdout
    assert "refused before writing anything" in out
    assert "mail queue, in the order run: CRITICAL, NORMAL, LOW" in out
    assert "Failed -> Enqueued (retry 1 of 3 in 0.5 s) -> Executing -> Succeeded" in out
    assert "charged 42.00 EUR on attempt 2; retries: 1" in out
    assert "Executing -> Idle (export no longer needed)" in out
    assert "Awaiting -> Enqueued (parent job 10 reached Succeeded) -> Executing -> Succeeded" in out
    assert "tenant has not paid its bill" in out
    assert "skipped: maintenance" in out and "resize took" in out
    assert "(never before)" in out and "throughput:" in out and "p95" in out
    with sqlite3.connect(database) as connection:
        states = dict(connection.execute('SELECT state_name, COUNT(*) FROM "hm_main_job" GROUP BY state_name'))
        locked = connection.execute('SELECT COUNT(*) FROM "hm_main_job" WHERE locked_by IS NOT NULL').fetchone()[0]
        queued = connection.execute('SELECT COUNT(*) FROM "hm_main_queue"').fetchone()[0]
        colonies = connection.execute('SELECT name, status FROM "hm_main_colony"').fetchall()
    assert states == {"Succeeded": 412, "Failed": 1, "Idle": 1}
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
