"""``hivemind``: the command-line entry point."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from types import TracebackType

import click

import hivemind_jobs
from hivemind_jobs.cli.settings import default_map, install, setting_key
from hivemind_jobs.config import CONFIG_ENV, find_config
from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.errors import ConfigurationError


@click.group()
@click.version_option(hivemind_jobs.__version__, prog_name="hivemind")
@click.option(
    "--config",
    "config_path",
    default=None,
    metavar="FILE",
    envvar=CONFIG_ENV,
    show_envvar=True,
    help="Settings file (TOML; default: ./hivemind.toml, else [tool.hivemind] in ./pyproject.toml).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """HiveMind: persistent, distributed background jobs.

    Settings come from flags, then HIVEMIND_* environment variables (HIVEMIND_URL, HIVEMIND_APP,
    HIVEMIND_ENV, HIVEMIND_LOG_LEVEL, every worker option), then the settings file;
    `hivemind config` shows what applies and where it came from.
    """
    try:
        config = find_config(config_path)
    except ConfigurationError as error:
        raise click.UsageError(redact_secrets(str(error))) from None
    assert isinstance(ctx.command, click.Group)
    ctx.default_map = default_map(ctx.command, config)
    ctx.obj = config


@cli.command()
@click.option(
    "--db",
    "database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file to use (default: a new file in a temporary directory).",
)
def demo(database: Path | None) -> None:
    """Show the job engine at work on embedded SQLite (no server needed)."""
    from hivemind_jobs.cli.demo import main as run_demo

    if database is not None and database.exists():
        raise click.UsageError(f"{database} already exists; the demo starts from an empty database")
    run_demo(database)


def _register() -> None:
    from hivemind_jobs.cli.colonies import colonies
    from hivemind_jobs.cli.dashboard import dashboard
    from hivemind_jobs.cli.db import db
    from hivemind_jobs.cli.jobs import jobs
    from hivemind_jobs.cli.queues import queues
    from hivemind_jobs.cli.recurring import recurring
    from hivemind_jobs.cli.watch import watch
    from hivemind_jobs.cli.worker import worker

    cli.add_command(worker)
    cli.add_command(colonies)
    cli.add_command(dashboard)
    cli.add_command(db)
    cli.add_command(jobs)
    assert jobs.commands["watch"] is watch  # registered on the group by its module
    cli.add_command(recurring)
    cli.add_command(queues)
    cli.add_command(config_command)
    install(cli)


@click.command("config")
@click.argument("command", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.pass_context
def config_command(ctx: click.Context, command: tuple[str, ...], as_json: bool) -> None:
    """Show the settings COMMAND (default: worker) would run with, and where each came from."""
    import json

    root = ctx.find_root()
    path = command or ("worker",)
    current: click.Context = root
    target: click.Command = root.command
    for name in path:
        if not isinstance(target, click.Group) or name not in target.commands:
            raise click.UsageError(f"no command {' '.join(path)!r}; try: hivemind config worker")
        target = target.commands[name]
        current = target.make_context(name, [], parent=current, resilient_parsing=True)
    config = root.obj
    rows = []
    for param in target.params:
        key = setting_key(path, param)
        if key is None or param.name is None:
            continue
        source = current.get_parameter_source(param.name)
        origin = (
            {
                click.core.ParameterSource.COMMANDLINE: "flag",
                click.core.ParameterSource.ENVIRONMENT: f"environment {param.envvar}",
                click.core.ParameterSource.DEFAULT_MAP: f"file {config.describe()}",
            }.get(source, "default")
            if source is not None
            else "default"
        )
        value = current.params.get(param.name)
        shown = redact_secrets(value) if isinstance(value, str) else value
        rows.append({"setting": key, "value": list(shown) if isinstance(shown, tuple) else shown, "from": origin})
    if as_json:
        click.echo(json.dumps({"command": " ".join(path), "config_file": config.describe(), "settings": rows}))
        return
    click.echo(f"# hivemind {' '.join(path)}; settings file: {config.describe()}")
    for row in rows:
        click.echo(f"{row['setting']} = {row['value']!r}  ({row['from']})")


_register()


def _print_without_secrets(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    sys.stderr.write(redact_secrets("".join(traceback.format_exception(kind, error, trace))))


def main(args: list[str] | None = None, *, prog_name: str | None = None) -> None:
    """Run ``hivemind`` on ``args`` (default: the process's arguments), exiting with its status;
    ``prog_name`` names the command in help and usage (``manage.py hivemind``, ``flask hivemind``)."""
    # an error no command reports as one line (a bug, an application's own failure) still prints
    # its traceback, but a connection string in it shows no password
    sys.excepthook = _print_without_secrets
    cli(args=args, prog_name=prog_name)
