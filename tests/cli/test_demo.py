"""``hivemind demo`` runs as a real process on embedded SQLite and leaves a consistent database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import hivemind_jobs
from hivemind_jobs.cli.main import cli


def test_demo_runs_in_a_real_process(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    completed = subprocess.run(
        [sys.executable, "-m", "hivemind_jobs.cli", "demo", "--db", str(database)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "refused before writing anything" in out
    assert "claimed: #5 billing/CRITICAL, #7 billing/HIGH, #6 billing/LOW" in out
    assert "tenant has not paid its bill" in out
    assert "enqueued because: parent job 10 reached Succeeded" in out
    assert "second requester refused" in out
    with sqlite3.connect(database) as connection:
        states = dict(connection.execute('SELECT state_name, COUNT(*) FROM "hm_main_job" GROUP BY state_name'))
        queued = connection.execute('SELECT COUNT(*) FROM "hm_main_queue"').fetchone()[0]
    assert states == {"Succeeded": 9, "Failed": 1, "Deleted": 1, "Idle": 1}
    assert queued == 0  # the cancelled delayed job left the queue


def test_demo_refuses_an_existing_database(tmp_path: Path) -> None:
    existing = tmp_path / "taken.db"
    existing.write_text("")
    result = CliRunner().invoke(cli, ["demo", "--db", str(existing)])
    assert result.exit_code != 0 and "already exists" in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and hivemind_jobs.__version__ in result.output
