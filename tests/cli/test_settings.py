"""Settings from flags, ``HIVEMIND_*`` variables and a settings file, the same way for every
command (flag > variable > file > default); ``hivemind config``; ``HiveMind.from_env`` and
``HiveMind.from_config``."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli
from tests.sample_jobs import add

#: each command that names its storage, as run with a JSON output
TARGETED = [
    ["colonies", "--json"],
    ["db", "status", "--json"],
    ["jobs", "ls", "--json"],
    ["queues", "list", "--json"],
    ["recurring", "ls", "--json"],
]
#: a URL of no backend: a command that used it fails
BROKEN = "nosuchdb://nowhere/hive"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in ("HIVEMIND_URL", "HIVEMIND_APP", "HIVEMIND_ENV", "HIVEMIND_CONFIG", "HIVEMIND_POLL_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def good_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'good.db'}"

    async def create() -> None:
        async with hm.HiveMind(url) as hive:
            await hive.jobs.create(add, 1)

    asyncio.run(create())
    return url


@pytest.mark.parametrize("command", TARGETED, ids=lambda command: " ".join(command[:-1]))
def test_every_command_takes_its_storage_flag_over_variable_over_file(
    runner: CliRunner, tmp_path: Path, good_url: str, command: list[str]
) -> None:
    settings = tmp_path / "hivemind.toml"
    settings.write_text(f'url = "{good_url}"\n')
    assert runner.invoke(cli, command).exit_code == 0  # the file's URL
    settings.write_text(f'url = "{BROKEN}"\n')
    assert runner.invoke(cli, command).exit_code != 0  # the file is read: its URL is broken now
    assert runner.invoke(cli, command, env={"HIVEMIND_URL": good_url}).exit_code == 0  # the variable wins
    result = runner.invoke(cli, [*command, "--url", good_url], env={"HIVEMIND_URL": BROKEN})
    assert result.exit_code == 0, result.output  # the flag wins over both


def test_the_settings_file_can_be_pyproject_or_named(runner: CliRunner, tmp_path: Path, good_url: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n\n[tool.hivemind]\nurl = "{good_url}"\n')
    listed = runner.invoke(cli, ["jobs", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.output)["jobs"]) == 1
    named = tmp_path / "elsewhere.toml"
    named.write_text(f'url = "{BROKEN}"\n')
    assert runner.invoke(cli, ["--config", str(named), "jobs", "ls", "--json"]).exit_code != 0
    assert runner.invoke(cli, ["jobs", "ls", "--json"], env={"HIVEMIND_CONFIG": str(named)}).exit_code != 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('colour = "blue"\n', "unknown setting(s) colour"),
        ("url = \n", "is not valid TOML"),
        ("[worker]\ndrones = 2\n", "'worker' is a table"),
    ],
)
def test_a_bad_settings_file_fails_in_one_line(runner: CliRunner, tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "hivemind.toml").write_text(text)
    result = runner.invoke(cli, ["jobs", "ls"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_config_shows_each_setting_and_where_it_came_from(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "hivemind.toml").write_text('poll_interval = 0.5\ndrones = 8\nswarm = "main:2"\napp = "myapp:hive"\n')
    result = runner.invoke(cli, ["config", "--json"], env={"HIVEMIND_POLL_INTERVAL": "0.25"})
    assert result.exit_code == 0, result.output
    shown = {row["setting"]: (row["value"], row["from"]) for row in json.loads(result.output)["settings"]}
    assert shown["poll_interval"] == (0.25, "environment HIVEMIND_POLL_INTERVAL")  # the variable over the file
    assert shown["drones"] == (8, f"file {tmp_path / 'hivemind.toml'}")
    assert shown["swarm"] == (["main:2"], f"file {tmp_path / 'hivemind.toml'}")
    assert shown["app"] == ("myapp:hive", f"file {tmp_path / 'hivemind.toml'}")
    assert shown["log_level"] == ("INFO", "default")
    secret = runner.invoke(
        cli, ["config", "jobs", "ls"], env={"HIVEMIND_URL": "postgresql://app:s3cret@db.internal/jobs"}
    )
    assert secret.exit_code == 0, secret.output
    assert "s3cret" not in secret.output
    assert "url = 'postgresql://app:***@db.internal/jobs'  (environment HIVEMIND_URL)" in secret.output
    assert runner.invoke(cli, ["config", "nothing"]).exit_code == 2


def test_the_worker_takes_its_app_and_options_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "settings_app.py").write_text(
        textwrap.dedent(
            f"""
            import hivemind_jobs as hm

            hive = hm.HiveMind("sqlite:///{tmp_path / "app.db"}")


            def triple(n: int) -> int:
                return n * 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import settings_app  # type: ignore[import-not-found]

    async def create() -> int:
        async with settings_app.hive:
            return await settings_app.hive.jobs.create(settings_app.triple, 5)

    job_id = asyncio.run(create())
    try:
        missing = runner.invoke(cli, ["worker", "--burst"])
        assert missing.exit_code == 2 and "set HIVEMIND_APP" in missing.output
        env = {"HIVEMIND_APP": "settings_app:hive", "HIVEMIND_BURST": "1", "HIVEMIND_ALLOW": "settings_app"}
        result = runner.invoke(cli, ["worker"], env=env)
        assert result.exit_code == 0, result.output
        assert "colony stopped after 1 job\n" in result.output

        async def result_of() -> object:
            async with hm.HiveMind(f"sqlite:///{tmp_path / 'app.db'}") as hive:
                return (await hive.jobs.get(job_id)).state.result  # type: ignore[attr-defined]

        assert asyncio.run(result_of()) == 15
    finally:
        sys.modules.pop("settings_app", None)


def test_applications_read_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("HIVEMIND_URL", "HIVEMIND_ENV", "HIVEMIND_PREFIX", "HIVEMIND_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "hivemind.toml").write_text(f'url = "sqlite:///{tmp_path / "file.db"}"\nenv = "reports"\n')
    from_file = hm.HiveMind.from_config()
    assert from_file.default_environment == "reports"
    assert from_file.env().info.url.endswith("file.db")
    monkeypatch.setenv("HIVEMIND_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("HIVEMIND_PREFIX", "jobs_")
    both = hm.HiveMind.from_config()
    assert both.env().info.url.endswith("env.db") and both.default_environment == "reports"
    assert both.env().info.table_prefix == "jobs_"
    only_env = hm.HiveMind.from_env(options=hm.Options(lock_timeout=hm.Options().lock_timeout))
    assert only_env.default_environment == "main" and only_env.env().info.url.endswith("env.db")
    with hm.SyncHiveMind.from_config() as blocking:  # the blocking twin reads the same settings
        assert blocking.hive.default_environment == "reports"
        assert blocking.jobs.count() == 0
    with pytest.raises(hm.ConfigurationError, match="not valid TOML"):
        (tmp_path / "broken.toml").write_text("url = \n")
        hm.HiveMind.from_config(tmp_path / "broken.toml")
