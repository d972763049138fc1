"""``hivemind``: the command-line entry point."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from types import TracebackType

import click

import hivemind_jobs
from hivemind_jobs.core.text import redact_secrets


@click.group()
@click.version_option(hivemind_jobs.__version__, prog_name="hivemind")
def cli() -> None:
    """HiveMind: persistent, distributed background jobs."""


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
    from hivemind_jobs.cli.db import db
    from hivemind_jobs.cli.jobs import jobs
    from hivemind_jobs.cli.queues import queues
    from hivemind_jobs.cli.recurring import recurring
    from hivemind_jobs.cli.worker import colonies, worker

    cli.add_command(worker)
    cli.add_command(colonies)
    cli.add_command(db)
    cli.add_command(jobs)
    cli.add_command(recurring)
    cli.add_command(queues)


_register()


def _print_without_secrets(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    sys.stderr.write(redact_secrets("".join(traceback.format_exception(kind, error, trace))))


def main() -> None:
    # an error no command reports as one line (a bug, an application's own failure) still prints
    # its traceback, but a connection string in it shows no password
    sys.excepthook = _print_without_secrets
    cli()
