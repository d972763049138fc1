"""``hivemind queues``: pause and resume queues, and list them with what waits in each.

The queues are those of one environment, named like ``hivemind jobs`` does (``--url`` with
``--env``/``--prefix``, or ``--app module:attribute``). The environment is opened, never migrated.
A pause is stored: every colony of the environment stops claiming from the queue within its poll
interval, and its jobs wait, in their order, until it is resumed.

Every error is one line ``Error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import click
from rich.table import Table
from rich.text import Text

from hivemind_jobs.cli.db import DbCommandError
from hivemind_jobs.cli.jobs import Source, _bad, _console, _echo_json, _source_options, _when, run_in_environment
from hivemind_jobs.client.queues import MAX_REASON
from hivemind_jobs.core.names import validate_queue_name
from hivemind_jobs.core.text import text_problem
from hivemind_jobs.environment import Environment
from hivemind_jobs.errors import HiveMindError

__all__ = ["queues"]


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue as ``list`` shows it: its waiting jobs (all priorities) and its pause."""

    queue: str
    ready: int
    delayed: int
    paused_at: datetime | None
    reason: str | None


def _queue(text: str) -> str:
    try:
        return validate_queue_name(text)
    except HiveMindError as error:
        raise DbCommandError(str(error)) from None


def _reason(text: str) -> str:
    problem = text_problem(text, MAX_REASON)
    if problem is not None:
        raise _bad("--reason", text, problem)
    return text


@click.group()
def queues() -> None:
    """Pause and resume the queues of one environment, and list them.

    A paused queue keeps its jobs Enqueued, in their order; no colony claims from it until it is
    resumed (jobs already running finish normally).
    """


@queues.command(short_help="Stop colonies from claiming the queue's jobs.")
@click.argument("name", metavar="NAME")
@click.option("--reason", default=None, metavar="TEXT", help=f"Why, shown by list ({MAX_REASON} characters at most).")
@_source_options
def pause(source: Source, name: str, reason: str | None) -> None:
    """Pause the queue NAME: every colony stops claiming its jobs within its poll interval. Pausing a
    paused queue changes nothing (its first reason is kept)."""
    queue = _queue(name)
    why = _reason(reason) if reason is not None else None

    async def change(environment: Environment) -> bool:
        return await environment.queues.pause(queue, reason=why)

    if run_in_environment(source, change):
        click.echo(f"paused queue {queue!r}")
    else:
        click.echo(f"queue {queue!r} was paused already")


@queues.command(short_help="Let colonies claim the queue's jobs again.")
@click.argument("name", metavar="NAME")
@_source_options
def resume(source: Source, name: str) -> None:
    """Resume the queue NAME: its jobs run again, in their order. Resuming a queue that is not
    paused changes nothing."""
    queue = _queue(name)

    async def change(environment: Environment) -> bool:
        return await environment.queues.resume(queue)

    if run_in_environment(source, change):
        click.echo(f"resumed queue {queue!r}")
    else:
        click.echo(f"queue {queue!r} was not paused")


@queues.command("list", short_help="List the queues: waiting jobs and pauses.")
@click.option("--json", "as_json", is_flag=True, help='Print {"queues": [...]} only.')
@_source_options
def list_queues(source: Source, as_json: bool) -> None:
    """List the queues that hold jobs or are paused, by name: jobs ready and delayed, and when and
    why a paused one was paused."""

    async def fetch(environment: Environment) -> list[QueueRow]:
        stats = await environment.jobs.queue_stats()
        paused = {item.queue: item for item in await environment.queues.paused()}
        counts: dict[str, list[int]] = {}
        for stat in stats:
            found = counts.setdefault(stat.queue, [0, 0])
            found[0] += stat.ready
            found[1] += stat.delayed
        rows = []
        for queue in sorted(set(counts) | set(paused)):
            ready, delayed = counts.get(queue, [0, 0])
            pause = paused.get(queue)
            rows.append(
                QueueRow(
                    queue,
                    ready,
                    delayed,
                    pause.paused_at if pause is not None else None,
                    pause.reason if pause is not None else None,
                )
            )
        return rows

    rows = run_in_environment(source, fetch)
    if as_json:
        _echo_json(
            {
                "queues": [
                    {
                        "queue": row.queue,
                        "ready": row.ready,
                        "delayed": row.delayed,
                        "paused": row.paused_at is not None,
                        "paused_at": row.paused_at.isoformat() if row.paused_at is not None else None,
                        "reason": row.reason,
                    }
                    for row in rows
                ]
            }
        )
        return
    if not rows:
        click.echo("no queues hold jobs and none is paused")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("queue", "ready", "delayed", "paused since (UTC)", "reason"):
        table.add_column(column, justify="right" if column in ("ready", "delayed") else "left")
    for row in rows:
        table.add_row(
            Text(row.queue),
            Text(str(row.ready)),
            Text(str(row.delayed)),
            Text(_when(row.paused_at)),
            Text(row.reason or ""),
        )
    _console().print(table)
