"""``hivemind worker`` timing flags: lock timeout, heartbeat interval, max rescues, graceful stop, shutdown timeout."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli
from hivemind_jobs.cli.worker import SETTINGS, WorkerSettingError, parse_settings


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"timing_app_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from datetime import timedelta

            import hivemind_jobs as hm

            hive = hm.HiveMind("sqlite:///{tmp_path / "timing.db"}")
            tuned = hm.HiveMind(
                "sqlite:///{tmp_path / "tuned.db"}", options=hm.Options(lock_timeout=timedelta(seconds=20))
            )


            def configured():
                colony = hive.colony(
                    name="configured",
                    allow=hm.AllowList(modules=["{name}"]),
                    options=hm.ColonyOptions(graceful_stop=timedelta(seconds=7), max_rescues=5),
                )
                colony.swarm("main", drones=1)
                return colony
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[hm.ColonyOptions, hm.Options]]:
    """The options of every colony the worker runs, as they are when it starts."""
    seen: list[tuple[hm.ColonyOptions, hm.Options]] = []
    run = hm.Colony.run

    async def recording_run(self: hm.Colony, **kwargs: Any) -> None:
        seen.append((self.options, self.environment.options))
        await run(self, **kwargs)

    monkeypatch.setattr(hm.Colony, "run", recording_run)
    return seen


def _worker(*args: str) -> Result:
    return CliRunner().invoke(cli, ["worker", *args, "--burst"])


def _error(*args: str) -> str:
    """The one-line error of a worker that must not start (exit status 2, nothing on stdout)."""
    result = _worker(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "", result.stdout
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result.stderr.removeprefix("Error: ").rstrip("\n")


def test_each_flag_reaches_the_colony_or_its_environment(
    app_module: str, started: list[tuple[hm.ColonyOptions, hm.Options]]
) -> None:
    result = _worker(
        f"{app_module}:hive",
        "--lock-timeout", "5",
        "--heartbeat-interval", "0.75",
        "--max-rescues", "7",
        "--graceful-stop", "2.5",
        "--shutdown-timeout", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((colony, environment),) = started
    assert environment.lock_timeout == timedelta(seconds=5)
    assert colony.heartbeat_interval == timedelta(seconds=0.75)
    assert colony.max_rescues == 7
    assert colony.graceful_stop == timedelta(seconds=2.5)
    assert colony.shutdown_timeout == timedelta(seconds=4)
    # the rest of the environment's options are the app's, replaced field by field
    assert environment.retry == hm.Options().retry


def test_without_flags_the_defaults_and_the_apps_options_stay(
    app_module: str, started: list[tuple[hm.ColonyOptions, hm.Options]]
) -> None:
    assert _worker(f"{app_module}:hive").exit_code == 0
    assert _worker(f"{app_module}:tuned").exit_code == 0
    (colony, environment), (_, tuned) = started
    defaults = hm.ColonyOptions()
    assert (colony.heartbeat_interval, colony.max_rescues) == (defaults.heartbeat_interval, defaults.max_rescues)
    assert (colony.graceful_stop, colony.shutdown_timeout) == (defaults.graceful_stop, defaults.shutdown_timeout)
    assert environment.lock_timeout == hm.Options().lock_timeout
    assert tuned.lock_timeout == timedelta(seconds=20)


def test_flags_change_only_what_they_name_on_a_configured_colony(
    app_module: str, started: list[tuple[hm.ColonyOptions, hm.Options]]
) -> None:
    result = _worker(f"{app_module}:configured", "--max-rescues", "0", "--lock-timeout", "3")
    assert result.exit_code == 0, result.output
    ((colony, environment),) = started
    assert colony.max_rescues == 0
    assert colony.graceful_stop == timedelta(seconds=7)  # the colony's own, not the flag's default
    assert environment.lock_timeout == timedelta(seconds=3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lock-timeout", "0.5"], "--lock-timeout '0.5': must be at least 1 second"),
        (["--lock-timeout", "soon"], "--lock-timeout 'soon': expected a number of seconds, e.g. 30 or 0.5"),
        (["--heartbeat-interval", "0"], "--heartbeat-interval '0': must be more than 0 seconds"),
        (["--heartbeat-interval", "inf"], "--heartbeat-interval 'inf': expected a finite number of seconds"),
        (["--max-rescues", "-1"], "--max-rescues '-1': must be 0 or more"),
        (["--max-rescues", "2.5"], "--max-rescues '2.5': expected a whole number (0 or more)"),
        (["--graceful-stop", "-3"], "--graceful-stop '-3': must be more than 0 seconds"),
        (["--shutdown-timeout", "0"], "--shutdown-timeout '0': must be more than 0 seconds"),
        (["--shutdown-timeout", "1e30"], "--shutdown-timeout '1e30': too many seconds"),
    ],
)
def test_a_bad_value_is_a_one_line_error(
    app_module: str, started: list[tuple[hm.ColonyOptions, hm.Options]], args: list[str], message: str
) -> None:
    assert _error(f"{app_module}:hive", *args) == message
    assert started == []


def test_a_heartbeat_too_slow_for_the_lock_timeout_is_refused(
    app_module: str, started: list[tuple[hm.ColonyOptions, hm.Options]]
) -> None:
    message = _error(f"{app_module}:hive", "--lock-timeout", "4", "--heartbeat-interval", "3")
    assert message.startswith("--heartbeat-interval 3 s is too long for a lock timeout of 4 s: renew locks at least")
    assert "every 3 s (the lock timeout less its 25% safety margin)" in message
    # against the app's own lock timeout (20 s: at most 15 s) when only the heartbeat is given
    message = _error(f"{app_module}:tuned", "--heartbeat-interval", "16")
    assert "too long for a lock timeout of 20 s" in message
    assert started == []
    assert _worker(f"{app_module}:tuned", "--heartbeat-interval", "14").exit_code == 0
    assert started[0][0].heartbeat_interval == timedelta(seconds=14)


def test_configuration_keys_are_the_flags_names() -> None:
    assert [setting.flag for setting in SETTINGS] == [
        "--lock-timeout", "--heartbeat-interval", "--max-rescues", "--graceful-stop", "--shutdown-timeout",
    ]  # fmt: skip
    parsed = parse_settings({"lock_timeout": 90, "max_rescues": 1, "graceful_stop": None}, flags=False)
    assert parsed == {"lock_timeout": timedelta(seconds=90), "max_rescues": 1}
    with pytest.raises(WorkerSettingError, match=r"^heartbeat_interval -1: must be more than 0 seconds$"):
        parse_settings({"heartbeat_interval": -1}, flags=False)
    with pytest.raises(WorkerSettingError, match=r"^max_rescues True: expected a number$"):
        parse_settings({"max_rescues": True}, flags=False)
    with pytest.raises(WorkerSettingError, match=r"unknown worker setting\(s\) lock_timout; known: lock_timeout, "):
        parse_settings({"lock_timout": 5}, flags=False)
