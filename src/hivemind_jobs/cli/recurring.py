"""``hivemind recurring``: list, inspect, trigger, pause, resume and delete recurring jobs.

The recurring jobs are those of one environment, named like ``hivemind jobs`` does (``--url`` with
``--env``/``--prefix``, or ``--app module:attribute``); with ``--app`` the application's calendars
explain the schedules that name them. The environment is opened, never migrated.

Every error is one line ``Error: ...`` on stderr and exit status 2 (a declined ``delete`` exits 1).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from hivemind_jobs.cli.db import DbCommandError
from hivemind_jobs.cli.jobs import (
    Source,
    _bad,
    _console,
    _echo_json,
    _shown_value,
    _source_options,
    _when,
    plain,
    run_in_environment,
)
from hivemind_jobs.core.invocation import Invocation
from hivemind_jobs.core.text import text_problem
from hivemind_jobs.environment import Environment
from hivemind_jobs.errors import HiveMindError, SerializationError
from hivemind_jobs.recurring.client import RecurringNotFoundError
from hivemind_jobs.recurring.model import RecurringJob, validate_recurring_id
from hivemind_jobs.storage.protocol import RecurringEventRecord

__all__ = ["recurring"]


#: the states a recurring job can be in (the scheduler's, not a background job's)
STATES = ("Enqueued", "Executing", "Idle")
#: the most history entries ``show --history`` prints (the client reads at most this many)
MAX_HISTORY = 10_000
#: a pause reason is a note for people, not a document
MAX_REASON = 1_000


class NotConfirmedError(click.ClickException):
    """``delete`` was not confirmed: nothing was done, exit status 1 (2 means bad input)."""

    exit_code = 1


# ----------------------------------------------------------------------------- input


def _recurring_id(text: str) -> str:
    try:
        return validate_recurring_id(text)
    except HiveMindError as error:
        raise DbCommandError(str(error)) from None


def _state(text: str) -> str:
    """``idle`` or ``Idle`` becomes ``Idle``; anything else is an error naming the three states."""
    for name in STATES:
        if name.lower() == text.lower():
            return name
    raise _bad("--state", text, f"not a recurring job state; use one of {', '.join(STATES)}")


def _id_prefix(text: str) -> str:
    """A prefix ids can start with (an empty one matches every id)."""
    if text:
        try:
            validate_recurring_id(text)
        except HiveMindError as error:
            raise _bad("--id-prefix", text, f"no recurring job id starts like that: {error}") from None
    return text


def _reason(text: str) -> str:
    problem = text_problem(text, MAX_REASON)
    if problem is not None:
        raise _bad("--reason", text, problem)
    return text


def _history_count(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_HISTORY:
        raise _bad("--history", text, f"expected how many entries to show, 0 to {MAX_HISTORY}")
    return int(text)


def _timeout(text: str) -> timedelta:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0 or seconds > timedelta.max.total_seconds():
        raise _bad("--timeout", text, "expected seconds to wait for a running occurrence, e.g. 30 or 0.5")
    return timedelta(seconds=seconds)


# ----------------------------------------------------------------------------- the environment


@dataclass(frozen=True)
class Shown:
    """A recurring job with what the environment says about it: its schedule in words (its
    calendars are the environment's) and the newest history entries."""

    job: RecurringJob
    explanation: str
    history: list[RecurringEventRecord]


async def _shown(environment: Environment, job: RecurringJob, history: int = 0) -> Shown:
    events = await environment.recurring.history(job.id, limit=history) if history else []
    return Shown(job, job.schedule.explain(environment.calendars), events)


# ----------------------------------------------------------------------------- plain values


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _invocation(job: RecurringJob) -> Invocation | None:
    """The stored call, or None when it cannot be read (the rest of the job still can)."""
    try:
        return Invocation.from_json(job.definition.invocation)
    except SerializationError:
        return None


def _fields(event: RecurringEventRecord) -> Any:
    try:
        return json.loads(event.fields)
    except ValueError:
        return event.fields


def _summary(shown: Shown) -> dict[str, Any]:
    job = shown.job
    return {
        "id": job.id,
        "state": job.state,
        "state_reason": job.state_reason,
        "schedule": shown.explanation,
        "next_run": _iso(job.next_run),
        "last_outcome": job.stats.last_outcome,
        "runs": job.stats.runs,
        "queue": job.queue,
        "priority": job.priority.name.lower(),
        "function": job.display_name,
        "job_id": job.job_id,
    }


def _event_dict(event: RecurringEventRecord) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "name": event.name,
        "message": event.message,
        "fields": _fields(event),
        "created_at": _iso(event.created_at),
    }


def _details(shown: Shown) -> dict[str, Any]:
    job = shown.job
    stats = job.stats
    invocation = _invocation(job)
    return {
        "id": job.id,
        "environment": job.environment,
        "function": job.display_name,
        "invocation": (
            None
            if invocation is None
            else {
                "target": invocation.target,
                "method": invocation.method,
                "is_async": invocation.is_async,
                "args": plain(dict(invocation.arguments)),
            }
        ),
        "state": job.state,
        "state_reason": job.state_reason,
        "next_run": _iso(job.next_run),
        "job_id": job.job_id,
        "schedule": {"explanation": shown.explanation, "definition": plain(job.schedule.to_json())},
        "queue": job.queue,
        "priority": job.priority.name.lower(),
        "priority_value": int(job.priority),
        "properties": plain(dict(job.properties)),
        "settings": job.settings.to_json(),
        "stats": {
            "runs": stats.runs,
            "succeeded": stats.succeeded,
            "failed": stats.failed,
            "misfired": stats.misfired,
            "skipped": stats.skipped,
            "last_scheduled": _iso(stats.last_scheduled),
            "last_started": _iso(stats.last_started),
            "last_completed": _iso(stats.last_completed),
            "last_outcome": stats.last_outcome,
            "last_job_id": stats.last_job_id,
        },
        "created_at": _iso(job.created_at),
        "modified_at": _iso(job.modified_at),
        "history": [_event_dict(event) for event in shown.history],
    }


# ----------------------------------------------------------------------------- text


def _table(rows: list[Shown]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "state", "schedule", "next run (UTC)", "last outcome", "runs", "queue"):
        table.add_column(column, justify="right" if column == "runs" else "left", no_wrap=column != "schedule")
    for shown in rows:
        job = shown.job
        table.add_row(
            Text(job.id),
            Text(job.state),
            Text(shown.explanation),
            Text(_when(job.next_run)),
            Text(job.stats.last_outcome or "-"),
            Text(str(job.stats.runs)),
            Text(job.queue),
        )
    return table


def _span(value: timedelta) -> str:
    """``1d2h``, ``30m``, ``1.5s``: the largest units first, zero parts left out."""
    seconds = value.total_seconds()
    whole = int(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    rest = whole + (seconds - int(seconds))
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def _kept(count: int | None, retention: timedelta | None) -> str:
    newest = "all" if count is None else f"the newest {count}"
    return newest + ("" if retention is None else f", none older than {_span(retention)}")


def _event_line(event: RecurringEventRecord) -> str:
    parts = [f"  {_when(event.created_at)} UTC", event.kind, event.name]
    if event.message:
        parts.append(event.message)
    fields = _fields(event)
    if isinstance(fields, dict):
        parts.extend(f"{name}={value}" for name, value in fields.items() if value not in (None, "None"))
    elif fields:
        parts.append(str(fields))
    return " ".join(parts)


def _show_text(shown: Shown, history: int) -> list[str]:
    job = shown.job
    stats = job.stats
    settings = job.settings
    invocation = _invocation(job)
    state = job.state + (f" ({job.state_reason})" if job.state_reason else "")
    lines = [
        f"recurring job {job.id!r} in environment {job.environment!r}",
        f"function:   {job.display_name}" + ("" if invocation is None else " (async)" if invocation.is_async else ""),
    ]
    if invocation is not None:
        lines.extend(
            f"  {name} = {json.dumps(value, ensure_ascii=False)}" for name, value in invocation.arguments.items()
        )
    lines += [
        f"schedule:   {shown.explanation}",
        f"state:      {state}",
        f"next run:   {_when(job.next_run)}" + (" UTC" if job.next_run else ""),
        f"running:    {'-' if job.job_id is None else f'job {job.job_id}'}",
        f"queue:      {job.queue}",
        f"priority:   {job.priority.name.lower()} ({int(job.priority)})",
        "properties:" + ("" if job.properties else " -"),
    ]
    lines.extend(f"  {name}={_shown_value(value)}" for name, value in sorted(job.properties.items()))
    lines += [
        "settings:",
        f"  misfire:           {settings.misfire.value} (threshold {_span(settings.misfire_threshold)})",
        f"  next run base:     {settings.next_run_base.value}",
        f"  states kept:       {_kept(settings.keep_states, settings.state_retention)}",
        f"  logs kept:         {_kept(settings.keep_logs, settings.log_retention)}",
        "stats:",
        f"  runs:              {stats.runs} (succeeded {stats.succeeded}, failed {stats.failed})",
        f"  misfired:          {stats.misfired}, skipped {stats.skipped}",
        f"  last outcome:      {stats.last_outcome or '-'}"
        + ("" if stats.last_job_id is None else f" (job {stats.last_job_id})"),
        f"  last scheduled:    {_when(stats.last_scheduled)}",
        f"  last started:      {_when(stats.last_started)}",
        f"  last completed:    {_when(stats.last_completed)}",
        f"created:    {_when(job.created_at)} UTC",
        f"modified:   {_when(job.modified_at)} UTC",
    ]
    if history:
        lines.append("history (newest first):" if shown.history else "history: -")
        lines.extend(_event_line(event) for event in shown.history)
    return lines


# ----------------------------------------------------------------------------- commands


@click.group()
def recurring() -> None:
    """List, inspect, trigger, pause, resume and delete the recurring jobs of one environment.

    The database is named like `hivemind jobs` does: --url URL with
    --env and --prefix (the table prefix), or --app module:attribute for an application's HiveMind
    (whose calendars then explain the schedules). `ls --id-prefix` filters by recurring job id;
    --prefix stays the table prefix, as in `hivemind jobs`. Times are UTC. Errors print one line
    `Error: ...` on stderr and exit with status 2.
    """


@recurring.command("ls", short_help="List the recurring jobs by id.")
@click.option("--id-prefix", "id_prefix", default="", metavar="TEXT", help="Only ids starting with TEXT.")
@click.option("--state", default=None, metavar="STATE", help="Only this state: Enqueued, Executing or Idle.")
@click.option("--json", "as_json", is_flag=True, help='Print {"recurring_jobs": [...]} only.')
@_source_options
def list_recurring(source: Source, id_prefix: str, state: str | None, as_json: bool) -> None:
    """List the recurring jobs by id: state, schedule, next run, last outcome, runs and queue."""
    prefix = _id_prefix(id_prefix)
    wanted = _state(state) if state is not None else None

    async def fetch(environment: Environment) -> list[Shown]:
        found = await environment.recurring.list(prefix=prefix or None, state=wanted)
        return [await _shown(environment, job) for job in found]

    rows = run_in_environment(source, fetch)
    if as_json:
        _echo_json({"recurring_jobs": [_summary(shown) for shown in rows]})
        return
    if not rows:
        click.echo("no recurring jobs match the filters" if prefix or wanted else "no recurring jobs")
        return
    _console().print(_table(rows))


@recurring.command(short_help="Show one recurring job in detail.")
@click.argument("recurring_id", metavar="ID")
@click.option(
    "--history",
    "history_text",
    default="20",
    show_default=True,
    metavar="N",
    help=f"Show the newest N history entries, states and logs (0 to {MAX_HISTORY}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the recurring job as one JSON object.")
@_source_options
def show(source: Source, recurring_id: str, history_text: str, as_json: bool) -> None:
    """Show one recurring job: what it runs, its schedule explained, state, next run, settings,
    statistics and its newest history entries.

    An unknown ID is an error (exit status 2).
    """
    _recurring_id(recurring_id)
    history = _history_count(history_text)

    async def fetch(environment: Environment) -> Shown:
        return await _shown(environment, await environment.recurring.get(recurring_id), history)

    shown = run_in_environment(source, fetch)
    if as_json:
        _echo_json(_details(shown))
        return
    for line in _show_text(shown, history):
        click.echo(line)


@recurring.command(short_help="Run an occurrence now; prints its job id.")
@click.argument("recurring_id", metavar="ID")
@_source_options
def trigger(source: Source, recurring_id: str) -> None:
    """Enqueue an occurrence of the recurring job now (a paused one too) and print its background
    job id; the schedule is not changed. Refused while an occurrence runs (one at a time)."""
    _recurring_id(recurring_id)

    async def change(environment: Environment) -> int:
        return await environment.recurring.trigger(recurring_id)

    click.echo(str(run_in_environment(source, change)))


@recurring.command(short_help="Stop scheduling it (Idle).")
@click.argument("recurring_id", metavar="ID")
@click.option(
    "--reason",
    default=None,
    help=f"Why, kept as the Idle state's reason (default: paused; {MAX_REASON} characters at most).",
)
@_source_options
def pause(source: Source, recurring_id: str, reason: str | None) -> None:
    """Stop scheduling the recurring job (state Idle, no next run); a running occurrence finishes.
    Pausing a paused job changes nothing."""
    _recurring_id(recurring_id)
    why = _reason(reason) if reason is not None else None

    async def change(environment: Environment) -> bool:
        return await environment.recurring.pause(recurring_id, reason=why)

    if run_in_environment(source, change):
        click.echo(f"paused recurring job {recurring_id!r}")
    else:
        click.echo(f"recurring job {recurring_id!r} was paused already")


@recurring.command(short_help="Schedule it again from now.")
@click.argument("recurring_id", metavar="ID")
@_source_options
def resume(source: Source, recurring_id: str) -> None:
    """Schedule the paused recurring job again from now (missed occurrences are not run).
    Resuming a job that is not paused changes nothing."""
    _recurring_id(recurring_id)

    async def change(environment: Environment) -> RecurringJob | None:
        if not await environment.recurring.resume(recurring_id):
            return None
        return await environment.recurring.get(recurring_id)

    resumed = run_in_environment(source, change)
    if resumed is None:
        click.echo(f"recurring job {recurring_id!r} was not paused")
    else:
        click.echo(f"resumed recurring job {recurring_id!r}; next run {_when(resumed.next_run)} UTC")


async def _delete_question(environment: Environment, recurring_id: str, cancel_running: bool) -> str:
    """What ``delete`` asks: the job, its schedule and what happens to an occurrence it has."""
    shown = await _shown(environment, await environment.recurring.get(recurring_id))
    question = f"Delete recurring job {recurring_id!r} ({shown.explanation}) and its history?"
    job_id = shown.job.job_id
    if job_id is None:
        return question
    occurrence = await environment.jobs.try_get(job_id)
    if occurrence is not None and occurrence.state.name == "Executing":
        fate = "cancelled first" if cancel_running else "waited for"
        return f"{question} Its running occurrence (job {job_id}) is {fate}."
    return f"{question} Its occurrence that has not started (job {job_id}) is cancelled."


@recurring.command(short_help="Delete it and its history.")
@click.argument("recurring_id", metavar="ID")
@click.option("--cancel-running", is_flag=True, help="Cancel a running occurrence instead of waiting for it to end.")
@click.option(
    "--timeout",
    "timeout_text",
    default="30",
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for a running occurrence to end (or to stop, with --cancel-running).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_source_options
def delete(source: Source, recurring_id: str, cancel_running: bool, timeout_text: str, yes: bool) -> None:
    """Delete the recurring job and its history, after asking (unless --yes).

    A running occurrence is waited for (at most --timeout) or, with --cancel-running, cancelled
    first; an occurrence that has not started is cancelled. Answering no exits with status 1.
    """
    _recurring_id(recurring_id)
    timeout = _timeout(timeout_text)
    if not yes:
        question = run_in_environment(
            source, lambda environment: _delete_question(environment, recurring_id, cancel_running)
        )
        try:
            confirmed = click.confirm(question, default=False, err=True)
        except click.Abort:  # no answer (end of input)
            click.echo(err=True)
            confirmed = False
        if not confirmed:
            raise NotConfirmedError(
                f"recurring job {recurring_id!r} was not deleted; pass --yes to delete without asking"
            )

    async def change(environment: Environment) -> None:
        client = environment.recurring.options(
            on_running="cancel" if cancel_running else "wait", update_timeout=timeout
        )
        if not await client.delete(recurring_id):
            raise RecurringNotFoundError(recurring_id, environment.name)

    run_in_environment(source, change)
    click.echo(f"deleted recurring job {recurring_id!r}")
