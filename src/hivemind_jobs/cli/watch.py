"""``hivemind jobs watch``: a live view of one environment's jobs.

Every ``--interval`` seconds it reads the jobs by state (one count query), the waiting jobs by queue
(the queue statistics) and the latest failures (one search), and shows them with the throughput:
jobs finished (Succeeded or Failed) per second since the previous reading. The table of states is
the one ``hivemind demo`` shows. Reading changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

import hivemind_jobs as hm
from hivemind_jobs.cli.jobs import (
    Source,
    _bad,
    _console,
    _echo_json,
    _iso,
    _source_options,
    _when,
    jobs,
    run_in_environment,
)
from hivemind_jobs.cli.views import plural, state_counts_table
from hivemind_jobs.environment import Environment

__all__ = ["Reading", "watch"]

#: the states shown first, in the order a job goes through them (others follow when counted)
STATE_COLUMNS = ("Enqueued", "Awaiting", "Executing", "Succeeded", "Failed", "Idle", "Deleted")
#: what counts as finished for the throughput
FINISHED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class QueueLine:
    queue: str
    ready: int
    delayed: int
    paused: bool


@dataclass(frozen=True)
class Reading:
    """What one refresh read, and the throughput since the reading before it (None: first one)."""

    at: datetime
    monotonic: float
    counts: dict[str, int]
    queues: list[QueueLine]
    failures: list[hm.BackgroundJob]
    throughput: float | None = None

    @property
    def finished(self) -> int:
        return sum(self.counts.get(name, 0) for name in FINISHED)

    def after(self, previous: Reading | None) -> Reading:
        """This reading with the throughput since ``previous`` (a count that went down, as when
        retention removed finished jobs, counts as none finished)."""
        if previous is None:
            return self
        elapsed = max(self.monotonic - previous.monotonic, 1e-3)
        rate = max(self.finished - previous.finished, 0) / elapsed
        return Reading(self.at, self.monotonic, self.counts, self.queues, self.failures, rate)

    def document(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "counts": dict(sorted(self.counts.items())),
            "total": sum(self.counts.values()),
            "finished": self.finished,
            "throughput_per_second": None if self.throughput is None else round(self.throughput, 3),
            "queues": [
                {"queue": line.queue, "ready": line.ready, "delayed": line.delayed, "paused": line.paused}
                for line in self.queues
            ],
            "latest_failures": [_failure(job) for job in self.failures],
        }


def _failure(job: hm.BackgroundJob) -> dict[str, Any]:
    state = job.state
    return {
        "id": job.id,
        "queue": job.queue,
        "function": job.invocation.display_name,
        "failed_at": _iso(state.elected_at),
        "reason": state.reason,
        "exception_type": getattr(state, "exception_type", None),
        "message": getattr(state, "message", None),
    }


async def read(environment: Environment, failures: int) -> Reading:
    client = environment.jobs
    counts = await client.count_by_state()
    lines: dict[str, list[int]] = {}
    paused: set[str] = set()
    for stat in await client.queue_stats():
        found = lines.setdefault(stat.queue, [0, 0])
        found[0] += stat.ready
        found[1] += stat.delayed
        if stat.paused:
            paused.add(stat.queue)
    queues = [QueueLine(name, ready, delayed, name in paused) for name, (ready, delayed) in sorted(lines.items())]
    latest = await client.search(hm.state.is_("Failed"), order_by="-modified", limit=failures) if failures else None
    return Reading(datetime.now(UTC), time.monotonic(), counts, queues, list(latest.jobs) if latest else [])


def view(reading: Reading, title: str) -> Group:
    total = sum(reading.counts.values())
    rate = "-" if reading.throughput is None else f"{reading.throughput:,.1f}"
    heading = Text.assemble(
        (title, "bold"),
        f"  {_when(reading.at)} UTC  {plural(total, 'job')}, {reading.finished} finished; ",
        (f"{rate} jobs/s", "bold"),
        " finished since the last refresh",
    )
    delayed = sum(line.delayed for line in reading.queues)
    states = state_counts_table(
        reading.counts, STATE_COLUMNS, {"Enqueued": f"({delayed} delayed)"} if delayed else None
    )
    queues = Table(title="waiting by queue", title_justify="left", show_edge=False)
    for column in ("queue", "ready", "delayed", "paused"):
        queues.add_column(column, justify="left" if column in ("queue", "paused") else "right", no_wrap=True)
    for line in reading.queues:
        queues.add_row(line.queue, str(line.ready), str(line.delayed), "paused" if line.paused else "")
    failures = Table(title="latest failures", title_justify="left", show_edge=False)
    for column in ("id", "failed (UTC)", "queue", "function"):
        failures.add_column(column, justify="right" if column == "id" else "left", no_wrap=True)
    failures.add_column("error", no_wrap=True, overflow="ellipsis", min_width=10)
    for job in reading.failures:
        failure = _failure(job)
        error = ": ".join(part for part in (failure["exception_type"], failure["message"]) if part)
        failures.add_row(
            str(job.id),
            _when(job.state.elected_at),
            job.queue,
            failure["function"],
            (error or failure["reason"] or "").splitlines()[0] if (error or failure["reason"]) else "",
        )
    waiting = queues if reading.queues else Text("waiting by queue: no job waits")
    return Group(heading, states, waiting, failures if reading.failures else Text("latest failures: none"))


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise _bad("--interval", text, "expected seconds, a number above 0 such as 1 or 0.5")
    return seconds


@jobs.command(short_help="A live view of the jobs: by state, by queue, throughput, failures.")
@click.option("--interval", default="1", show_default=True, metavar="SECONDS", help="Seconds between refreshes.")
@click.option("--failures", default=5, show_default=True, type=click.IntRange(0, 100), help="Latest failures shown.")
@click.option("--once", is_flag=True, help="Read twice, --interval apart, show one view (with the throughput), exit.")
@click.option("--json", "as_json", is_flag=True, help="Print each refresh as one JSON object (a line each).")
@_source_options
def watch(source: Source, interval: str, failures: int, once: bool, as_json: bool) -> None:
    """Watch the jobs of an environment live until Ctrl-C: how many are in each state, what waits
    in each queue (ready now, delayed, paused), how many finished per second since the last
    refresh, and the latest failures. Output that is not a terminal gets one view per refresh.
    """
    seconds = _interval(interval)
    console = _console()
    title = "hivemind jobs watch"

    def show(reading: Reading, live: Live | None) -> None:
        if as_json:
            _echo_json(reading.document())
        elif live is not None:
            live.update(view(reading, title))
        else:
            console.print(view(reading, title))

    async def loop(environment: Environment) -> None:
        previous = await read(environment, failures)
        if once:
            await asyncio.sleep(seconds)
            show((await read(environment, failures)).after(previous), None)
            return
        live = Live(console=console, refresh_per_second=4) if console.is_terminal and not as_json else None
        with live if live is not None else contextlib.nullcontext():
            show(previous, live)
            while True:
                await asyncio.sleep(seconds)
                current = (await read(environment, failures)).after(previous)
                show(current, live)
                previous = current

    try:
        run_in_environment(source, loop)
    except KeyboardInterrupt:
        Console(stderr=True).print("stopped watching")
