"""``hivemind queues``: pause and resume queues, and list them with what waits in each.

The queues are those of one environment, named like ``hivemind jobs`` does (``--url`` with
``--env``/``--prefix``, or ``--app module:attribute``). The environment is opened, never migrated.
A pause is stored: every colony of the environment stops claiming from the queue within its poll
interval, and its jobs wait, in their order, until it is resumed.

Every error is one line ``Error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table
from rich.text import Text

import hivemind_jobs as hm
from hivemind_jobs.cli.db import DbCommandError
from hivemind_jobs.cli.jobs import (
    Source,
    _bad,
    _console,
    _echo_json,
    _iso,
    _source_options,
    _when,
    run_in_environment,
)
from hivemind_jobs.cli.views import age_text
from hivemind_jobs.client.queues import MAX_REASON
from hivemind_jobs.core.names import validate_queue_name
from hivemind_jobs.core.text import text_problem
from hivemind_jobs.environment import Environment
from hivemind_jobs.errors import HiveMindError

__all__ = ["queues"]


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue as ``list`` shows it: its waiting jobs by priority, the oldest due one, its pause."""

    queue: str
    #: priority name -> (ready, delayed)
    priorities: dict[str, tuple[int, int]]
    oldest_due_at: datetime | None
    paused_at: datetime | None
    reason: str | None

    @property
    def ready(self) -> int:
        return sum(ready for ready, _ in self.priorities.values())

    @property
    def delayed(self) -> int:
        return sum(delayed for _, delayed in self.priorities.values())


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


def _row_document(row: QueueRow, now: datetime) -> dict[str, Any]:
    return {
        "queue": row.queue,
        "ready": row.ready,
        "delayed": row.delayed,
        "priorities": [
            {"priority": name, "value": int(hm.Priority[name.upper()]), "ready": ready, "delayed": delayed}
            for name, (ready, delayed) in row.priorities.items()
        ],
        "oldest_due_at": _iso(row.oldest_due_at),
        "oldest_due_age_seconds": (
            round((now - row.oldest_due_at).total_seconds(), 3) if row.oldest_due_at is not None else None
        ),
        "paused": row.paused_at is not None,
        "paused_at": _iso(row.paused_at),
        "reason": row.reason,
    }


def _priorities_text(row: QueueRow) -> str:
    parts = []
    for name, (ready, delayed) in row.priorities.items():
        parts.append(f"{name} {ready}" + (f"+{delayed}" if delayed else ""))
    return ", ".join(parts) or "-"


@queues.command("list", short_help="List the queues: depth by priority, due and delayed jobs, pauses.")
@click.option("--json", "as_json", is_flag=True, help='Print {"queues": [...]} only.')
@_source_options
def list_queues(source: Source, as_json: bool) -> None:
    """List the queues that hold waiting jobs or are paused, by name: jobs ready (due now) and
    delayed (due later: delayed jobs, retries), both by priority, how long the oldest due job has
    waited, and when and why a paused one was paused.

    In the table, "by priority" reads `high 2, normal 5+1`: 2 high-priority jobs due, 5 normal
    ones due and 1 delayed. Jobs awaiting a parent job are not in a queue yet and not counted.
    """

    async def fetch(environment: Environment) -> tuple[list[QueueRow], datetime]:
        stats = await environment.jobs.queue_stats()
        paused = {item.queue: item for item in await environment.queues.paused()}
        now = datetime.now(UTC)
        counts: dict[str, dict[str, tuple[int, int]]] = {}
        oldest: dict[str, datetime] = {}
        for stat in sorted(stats, key=lambda item: (item.queue, item.priority)):
            name = hm.Priority(stat.priority).name.lower()
            ready, delayed = counts.setdefault(stat.queue, {}).get(name, (0, 0))
            counts[stat.queue][name] = (ready + stat.ready, delayed + stat.delayed)
            if stat.oldest_due is not None and (stat.queue not in oldest or stat.oldest_due < oldest[stat.queue]):
                oldest[stat.queue] = stat.oldest_due
        rows = []
        for queue in sorted(set(counts) | set(paused)):
            by_priority = counts.get(queue, {})
            pause = paused.get(queue)
            rows.append(
                QueueRow(
                    queue,
                    by_priority,
                    oldest.get(queue),
                    pause.paused_at if pause is not None else None,
                    pause.reason if pause is not None else None,
                )
            )
        return rows, now

    rows, now = run_in_environment(source, fetch)
    if as_json:
        _echo_json({"queues": [_row_document(row, now) for row in rows]})
        return
    if not rows:
        click.echo("no queues hold jobs and none is paused")
        return
    headers = ("queue", "ready", "delayed", "by priority", "oldest due", "paused since (UTC)")
    cells = [
        (
            row.queue,
            str(row.ready),
            str(row.delayed),
            _priorities_text(row),
            f"{age_text(now - row.oldest_due_at)} ago" if row.oldest_due_at is not None else "-",
            _when(row.paused_at),
        )
        for row in rows
    ]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for index, column in enumerate(headers):
        # as wide as their widest cell: on a narrow terminal only the reason is cut
        width = max([len(column), *(len(line[index]) for line in cells)])
        table.add_column(
            column, justify="right" if column in ("ready", "delayed") else "left", no_wrap=True, min_width=width
        )
    table.add_column("reason", no_wrap=True, overflow="ellipsis", min_width=8)
    for row, line in zip(rows, cells, strict=True):
        table.add_row(*(Text(cell) for cell in line), Text(row.reason or ""))
    _console().print(table)
