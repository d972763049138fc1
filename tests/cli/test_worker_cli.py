"""``hivemind worker`` and ``hivemind colonies`` through click's runner (in-process)."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli
from hivemind_jobs.cli.worker import parse_swarm


def test_swarm_specs_are_parsed_and_checked() -> None:
    assert parse_swarm("main:8") == (["main"], 8, [])
    assert parse_swarm("main/reports:2:reports,critical=0") == (["main", "reports"], 2, ["reports", ("critical", 0)])
    for bad in ["main", "main:x", ":3", "main:2:q=high"]:
        with pytest.raises(click.BadParameter):
            parse_swarm(bad)


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cli_app_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import hivemind_jobs as hm

            hive = hm.HiveMind("sqlite:///{tmp_path / "cli.db"}")


            def double(n: int) -> int:
                return n * 2


            def not_a_hive() -> int:
                return 1


            RAN = []


            def a_job(n: int) -> None:
                RAN.append(n)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_worker_burst_runs_the_apps_jobs_and_colonies_lists_it(app_module: str, tmp_path: Path) -> None:
    module = __import__(app_module)

    async def enqueue() -> list[int]:
        async with module.hive:
            return await module.hive.jobs.create_many([hm.call(module.double, n) for n in range(5)])

    ids = asyncio.run(enqueue())
    runner = CliRunner()
    result = runner.invoke(
        cli, ["worker", f"{app_module}:hive", "--swarm", "main:2", "--swarm", "main/sub:1:other", "--burst"]
    )
    assert result.exit_code == 0, result.output
    assert "colony stopped after 5 jobs" in result.output

    async def results() -> list[object]:
        async with hm.HiveMind(f"sqlite:///{tmp_path / 'cli.db'}") as hive:
            return [(await hive.jobs.get(job_id)).state.result for job_id in ids]  # type: ignore[attr-defined]

    assert asyncio.run(results()) == [0, 2, 4, 6, 8]
    listed = runner.invoke(cli, ["colonies", "--url", f"sqlite:///{tmp_path / 'cli.db'}", "--json"])
    assert listed.exit_code == 0, listed.output
    colonies = json.loads(listed.output)
    assert len(colonies) == 1 and colonies[0]["status"] == "stopped"
    assert [swarm["name"] for swarm in colonies[0]["state"]["swarms"]] == ["main", "main/sub"]
    table = runner.invoke(cli, ["colonies", "--app", f"{app_module}:hive"])
    assert table.exit_code == 0 and "stopped" in table.output


def test_worker_refuses_bad_apps_and_specs(app_module: str) -> None:
    runner = CliRunner()
    cases = {
        "nocolon": "expected module:attribute",
        f"{app_module}:missing": "has no attribute",
        f"{app_module}:not_a_hive": "expected a HiveMind",
        f"{app_module}:a_job": "is a function of (n), not a HiveMind",
        f"{app_module}:hm": "is a module; expected a HiveMind",
        "no_such_module_xyz:hive": "cannot import",
    }
    for app, message in cases.items():
        result = runner.invoke(cli, ["worker", app, "--burst"])
        assert result.exit_code == 2 and message in result.output, (app, result.output)
        assert "Traceback" not in result.output
    assert __import__(app_module).RAN == []  # a job function named as APP is refused, not run
    result = runner.invoke(cli, ["worker", f"{app_module}:hive", "--swarm", "ghost/child:1", "--burst"])
    assert result.exit_code == 2 and "define swarm 'ghost'" in result.output
    result = runner.invoke(cli, ["colonies"])
    assert result.exit_code == 2 and "no database given: pass --url URL or --app" in result.output
