"""``hivemind worker`` logging in a real worker process: a line per job outcome as text or JSON
with the job's fields, ``--quiet-jobs``, ``--log-config`` (dictConfig from JSON or TOML) and the
one-line errors for a bad level or config."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hivemind_jobs as hm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path: Path) -> str:
    (tmp_path / "logging_app.py").write_text(
        textwrap.dedent(
            f"""
            import logging

            import hivemind_jobs as hm

            no_retries = hm.Options(retry=hm.RetryPolicy(max_retries=0))
            hive = hm.HiveMind("sqlite:///{tmp_path / "app.db"}", options=no_retries)


            def double(n: int) -> int:
                logging.getLogger("logging_app").info("doubling %s", n)
                return n * 2


            def broken() -> None:
                raise KeyError("missing")
            """
        )
    )
    return "logging_app:hive"


def enqueue(tmp_path: Path) -> list[int]:
    sys.path.insert(0, str(tmp_path))
    try:
        import logging_app  # type: ignore[import-not-found]

        async def create() -> list[int]:
            async with hm.HiveMind(f"sqlite:///{tmp_path / 'app.db'}") as hive:
                return [await hive.jobs.create(logging_app.double, 21), await hive.jobs.create(logging_app.broken)]

        return asyncio.run(create())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("logging_app", None)


def worker(tmp_path: Path, app: str, *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    command = [sys.executable, "-m", "hivemind_jobs.cli", "worker", app, "--burst", "--allow", "logging_app", *options]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_text_lines_name_each_outcome(tmp_path: Path, app: str) -> None:
    ok, failed = enqueue(tmp_path)
    result = worker(tmp_path, app)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(f"INFO hivemind_jobs.worker: job {ok} logging_app:double succeeded in " in line for line in lines)
    assert any(
        f"ERROR hivemind_jobs.worker: job {failed} logging_app:broken failed (builtins.KeyError: 'missing'), "
        "gave up after 0 retries" in line
        for line in lines
    ), result.stderr
    assert any("INFO logging_app: doubling 21" in line for line in lines)


def test_json_lines_carry_the_job_fields(tmp_path: Path, app: str) -> None:
    ok, failed = enqueue(tmp_path)
    result = worker(tmp_path, app, "--log-format", "json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    outcomes = {record["job_id"]: record for record in records if record["logger"] == "hivemind_jobs.worker"}
    assert outcomes[ok]["level"] == "INFO" and outcomes[failed]["level"] == "ERROR"
    assert outcomes[ok]["function"] == "logging_app:double" and outcomes[ok]["queue"] == "global"
    assert outcomes[ok]["environment"] == "main" and outcomes[ok]["attempt"] == 1
    assert outcomes[ok]["duration_ms"] >= 0 and len(outcomes[ok]["execution_id"]) == 36
    [inside] = [record for record in records if record["logger"] == "logging_app"]
    assert inside["message"] == "doubling 21" and inside["job_id"] == ok  # the job's fields, from its thread


def test_quiet_jobs_leaves_the_outcome_lines_out(tmp_path: Path, app: str) -> None:
    enqueue(tmp_path)
    result = worker(tmp_path, app, "--quiet-jobs")
    assert result.returncode == 0, result.stderr
    assert "hivemind_jobs.worker" not in result.stderr
    assert "colony stopped after 2 jobs" in result.stderr


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_log_config_file_configures_logging(tmp_path: Path, app: str, suffix: str) -> None:
    ok, _ = enqueue(tmp_path)
    out = tmp_path / "jobs.log"
    settings = {
        "version": 1,
        "formatters": {"json": {"()": "hivemind_jobs.JsonLogFormatter"}},
        "filters": {"job": {"()": "hivemind_jobs.JobContextFilter"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(out), "formatter": "json"}},
        "loggers": {"hivemind_jobs.worker": {"handlers": ["file"], "level": "INFO"}},
    }
    config = tmp_path / f"logging{suffix}"
    if suffix == ".json":
        config.write_text(json.dumps(settings))
    else:
        config.write_text(
            textwrap.dedent(
                f"""
                version = 1
                [formatters.json]
                "()" = "hivemind_jobs.JsonLogFormatter"
                [handlers.file]
                class = "logging.FileHandler"
                filename = "{out}"
                formatter = "json"
                [loggers."hivemind_jobs.worker"]
                handlers = ["file"]
                level = "INFO"
                """
            )
        )
    result = worker(tmp_path, app, "--log-config", str(config))
    assert result.returncode == 0, result.stderr
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert {record["job_id"] for record in written} == {ok, ok + 1}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--log-level", "LOUD"], "'LOUD' is no logging level"),
        (["--log-config", "missing.json"], "missing.json: No such file or directory"),
        (["--log-config", "logging.ini"], "a logging config is a .json, .toml, .yaml or .yml file"),
        (["--log-config", "bad.json"], "bad.json: not valid JSON"),
        (["--log-config", "old.json"], "with version: 1 is expected"),
    ],
)
def test_bad_logging_options_fail_in_one_line(tmp_path: Path, app: str, options: list[str], message: str) -> None:
    (tmp_path / "logging.ini").write_text("[loggers]\n")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "old.json").write_text('{"version": 2}')
    result = worker(tmp_path, app, *options)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
