"""``hivemind jobs``: list, inspect, count, requeue and delete background jobs from the shell.

The jobs are those of one environment, named like ``hivemind db`` does: a storage URL with an
environment and a table prefix (``--url``/``--env``/``--prefix``), or an application's HiveMind
(``--app module:attribute``). Filters (``--state``, ``--queue``, ``--priority``, ``--property``,
``--since``, ``--until``) become one query of :mod:`hivemind_jobs.query`.

Every error is one line ``Error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import enum
import functools
import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

import hivemind_jobs as hm
from hivemind_jobs.cli.db import NO_TARGET, DbCommandError, _one_line, _reported, _safe_url
from hivemind_jobs.cli.views import age_text, due_at, plural
from hivemind_jobs.cli.worker import load_app
from hivemind_jobs.client.jobs import BackgroundJobClient, CancelResult, DeleteResult, JobLogEntry
from hivemind_jobs.core.names import DEFAULT_ENVIRONMENT, validate_queue_name, validate_state_name
from hivemind_jobs.core.priority import coerce_priority
from hivemind_jobs.core.states import registered_states
from hivemind_jobs.environment import Environment
from hivemind_jobs.errors import HiveMindError
from hivemind_jobs.query import MAX_IN_VALUES, MAX_PAGE, Condition, parse_order
from hivemind_jobs.query.order import decode_cursor
from hivemind_jobs.query.text import parse_duration, typed_value
from hivemind_jobs.storage.sqlite.backend import SQLiteStorage

__all__ = ["Filters", "jobs", "parse_moment", "parse_property", "typed_value"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_INT = re.compile(r"[+-]?\d+")
_PRIORITY_NAMES = ", ".join(priority.name.lower() for priority in hm.Priority)
_TEXT_WIDTH = 60
#: log records read per query
_LOG_PAGE = 1000
#: the width of tables written to a pipe or file: wide enough that rows are never wrapped
_PIPE_WIDTH = 10_000


def _bad(option: str, value: str, message: str) -> DbCommandError:
    return DbCommandError(f"{option} {value!r}: {message}")


def _job_id(text: str) -> int:
    """A job id given on the command line (a positive whole number)."""
    if not _INT.fullmatch(text.strip()) or int(text) <= 0:
        raise DbCommandError(f"job id {text!r}: not a job id (a positive whole number such as 12)")
    return int(text)


def _positive(option: str, text: str) -> int:
    if not _INT.fullmatch(text.strip()) or int(text) <= 0:
        raise _bad(option, text, "expected a positive whole number")
    return int(text)


def _job_ids(command: str, texts: tuple[str, ...], filters: Filters | None, all_jobs: bool) -> list[int]:
    """The ids given to ``command`` (in order, each once); ids exclude filters and --all."""
    if texts and ((filters is not None and filters.given) or all_jobs):
        raise DbCommandError(f"give {command} either job ids or filters (or --all), not both; ids: {' '.join(texts)}")
    ids = list(dict.fromkeys(_job_id(text) for text in texts))
    if len(ids) > MAX_IN_VALUES:
        raise DbCommandError(f"at most {MAX_IN_VALUES} job ids at once (got {len(ids)}); use filters for more")
    return ids


# ----------------------------------------------------------------------------- parsing values


def parse_property(spec: str) -> Condition:
    """``name=value`` (typed, see :func:`typed_value`) or ``name=~pattern`` (``*``: any characters)."""
    name, equals, raw = spec.partition("=")
    if not equals or not name:
        raise _bad("--property", spec, "expected NAME=VALUE or NAME=~PATTERN, e.g. --property tenant=acme")
    try:
        if raw.startswith("~"):
            return hm.prop(name).like(raw[1:])
        return hm.prop(name) == typed_value(raw)
    except (HiveMindError, ValueError) as error:
        raise _bad("--property", spec, str(error)) from None


def parse_moment(option: str, text: str, now: datetime) -> datetime:
    """A duration meaning that long before ``now``, or an ISO-8601 datetime with offset."""
    try:
        duration = parse_duration(text)
        if duration is not None:
            return now - duration
    except OverflowError:
        raise _bad(option, text, "that is further back than any date") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(
            option,
            text,
            "expected a duration such as 30m, 2h, 7d or 1h30m (units s, m, h, d, w) "
            "or an ISO-8601 datetime with offset such as 2024-05-01T12:00:00+00:00",
        ) from None
    if moment.tzinfo is None:
        raise _bad(option, text, "the datetime needs a UTC offset, e.g. 2024-05-01T12:00:00Z or +02:00")
    return moment


def parse_priority(option: str, text: str) -> hm.Priority:
    try:
        return coerce_priority(int(text) if text.isdigit() else text)
    except HiveMindError:
        raise _bad(option, text, f"not a priority; use one of {_PRIORITY_NAMES} or 0-4 (0 runs first)") from None


def _state_name(text: str) -> str:
    """A registered state name written in another case becomes that name (``failed``: Failed)."""
    known = registered_states()
    if text in known:
        return text
    matches = [name for name in known if name.lower() == text.lower()]
    return matches[0] if len(matches) == 1 else text


# ----------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """The filter options of a command; all given ones must hold, repeated ones are alternatives
    (except ``--property``, where each must hold)."""

    states: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    @property
    def given(self) -> bool:
        return any((self.states, self.queues, self.priorities, self.properties, self.functions, self.since, self.until))

    def condition(self, now: datetime) -> Condition | None:
        """The query (None without filters), or a one-line error naming the bad option."""
        parts: list[Condition] = []
        if self.states:
            parts.append(self._states())
        if self.queues:
            parts.append(self._queues())
        if self.functions:
            parts.append(self._functions())
        if self.priorities:
            parts.append(hm.job.priority.in_([parse_priority("--priority", text) for text in self.priorities]))
        parts.extend(parse_property(spec) for spec in self.properties)
        parts.extend(self._created(now))
        return hm.where(*parts) if parts else None

    def _states(self) -> Condition:
        names = []
        for text in self.states:
            try:
                names.append(validate_state_name(_state_name(text)))
            except HiveMindError as error:
                raise _bad("--state", text, str(error)) from None
        return hm.state.is_(*names)

    def _queues(self) -> Condition:
        exact: list[str] = []
        alternatives: list[Condition] = []
        for text in self.queues:
            try:
                if "*" in text:
                    validate_queue_name(text.replace("*", "x"))
                    alternatives.append(hm.job.queue.like(text))
                else:
                    exact.append(validate_queue_name(text))
            except HiveMindError as error:
                raise _bad("--queue", text, str(error)) from None
        if exact:
            alternatives.append(hm.job.queue.in_(exact))
        return hm.any_of(*alternatives)

    def _functions(self) -> Condition:
        alternatives: list[Condition] = []
        for text in self.functions:
            try:
                alternatives.append(hm.job.function.like(text) if "*" in text else hm.job.function == text)
            except HiveMindError as error:
                raise _bad("--function", text, str(error)) from None
        return hm.any_of(*alternatives)

    def _created(self, now: datetime) -> list[Condition]:
        since = parse_moment("--since", self.since, now) if self.since is not None else None
        until = parse_moment("--until", self.until, now) if self.until is not None else None
        if since is not None and until is not None and since >= until:
            raise DbCommandError(
                f"--since {self.since!r} is not before --until {self.until!r}, so no job could match; swap them?"
            )
        parts: list[Condition] = []
        for option, text, moment in (("--since", self.since, since), ("--until", self.until, until)):
            if moment is None or text is None:
                continue
            try:
                parts.append(hm.job.created_at >= moment if option == "--since" else hm.job.created_at < moment)
            except HiveMindError as error:
                raise _bad(option, text, str(error)) from None
        return parts


def _filter_options(command: F) -> F:
    """Adds the filter options; the command receives them as ``filters: Filters``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        filters = Filters(
            states=kwargs.pop("states"),
            queues=kwargs.pop("queues"),
            priorities=kwargs.pop("priorities"),
            properties=kwargs.pop("properties"),
            functions=kwargs.pop("functions"),
            since=kwargs.pop("since"),
            until=kwargs.pop("until"),
        )
        return command(*args, filters=filters, **kwargs)

    options = [
        click.option(
            "--state",
            "states",
            multiple=True,
            metavar="NAME",
            help="Current state, e.g. Failed or failed (repeat: any of).",
        ),
        click.option(
            "--queue",
            "queues",
            multiple=True,
            metavar="QUEUE",
            help="Queue; with * a pattern, e.g. mail* (repeat: any of).",
        ),
        click.option(
            "--function",
            "functions",
            multiple=True,
            metavar="NAME",
            help="Function as module:qualname, e.g. myapp.jobs:send_mail; with * a pattern, e.g. 'myapp.mail:*' "
            "(repeat: any of).",
        ),
        click.option(
            "--priority",
            "priorities",
            multiple=True,
            metavar="P",
            help=f"Priority: {_PRIORITY_NAMES} or 0-4 (repeat: any of).",
        ),
        click.option(
            "--property",
            "properties",
            multiple=True,
            metavar="NAME=VALUE",
            help="Property equals VALUE: true/false is a bool, 42 an int, 4.2 a float, an ISO-8601 datetime with "
            'offset a datetime (one without offset is refused), "quoted" or anything else text; '
            "NAME=~PATTERN matches text with * as any characters (repeat: all must hold).",
        ),
        click.option(
            "--since",
            metavar="WHEN",
            default=None,
            help="Created at or after WHEN: a duration ago (30m, 2h, 7d, 1h30m) or an ISO-8601 datetime with offset.",
        ),
        click.option("--until", metavar="WHEN", default=None, help="Created before WHEN (like --since)."),
    ]
    result: Any = wrapper
    for option in reversed(options):
        result = option(result)
    return result  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- the environment


@dataclass(frozen=True)
class Source:
    """Where the jobs are: a storage URL (with environment and prefix) or an application."""

    url: str | None
    app_path: str | None
    environment: str | None
    prefix: str | None


def _source_options(command: F) -> F:
    """Adds ``--url``/``--env``/``--prefix``/``--app``; the command receives ``source: Source``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        source = Source(kwargs.pop("url"), kwargs.pop("app_path"), kwargs.pop("environment"), kwargs.pop("prefix"))
        return command(*args, source=source, **kwargs)

    options = [
        click.option(
            "--url",
            default=None,
            metavar="URL",
            help="Storage URL: sqlite:///path.db, "
            "postgresql://user@host:port/db?schema=name, mysql://user@host:port/db.",
        ),
        click.option(
            "--env",
            "environment",
            default=None,
            metavar="NAME",
            help=f"Environment (default: {DEFAULT_ENVIRONMENT!r}, with --app the app's default one).",
        ),
        click.option("--prefix", default=None, metavar="PREFIX", help="Table prefix with --url (default: hm_<env>_)."),
        click.option(
            "--app",
            "app_path",
            default=None,
            metavar="MODULE:ATTR",
            help="An application's HiveMind (or Colony) to use instead of --url.",
        ),
    ]
    result: Any = wrapper
    for option in reversed(options):
        result = option(result)
    return result  # type: ignore[no-any-return]


def _environment(source: Source) -> Environment:
    """The (unopened) environment the command works on."""
    if source.app_path is not None:
        if source.url is not None:
            raise DbCommandError("give either --url or --app, not both")
        if source.prefix is not None:
            raise DbCommandError("--prefix goes with --url; with --app the app's environments set their prefixes")
        with _reported(None):
            app = load_app(source.app_path)
            hive: hm.HiveMind = app if isinstance(app, hm.HiveMind) else app.hive
            return hive.env(source.environment)
    if source.url is None:
        raise DbCommandError(NO_TARGET)
    url = source.url
    with _reported(url):
        try:
            environment = source.environment if source.environment is not None else DEFAULT_ENVIRONMENT
            hive = hm.HiveMind(url, environment=environment, table_prefix=source.prefix)
        except HiveMindError:
            raise
        except ValueError as error:  # urllib's own complaints (a port that is not a number, ...)
            raise DbCommandError(f"invalid storage URL {_safe_url(url)!r}: {_one_line(error, url)}") from error
    return hive.env()


def _check_exists(environment: Environment) -> None:
    """A job command reads an existing SQLite file; it does not create an empty one."""
    storage = environment.storage
    if isinstance(storage, SQLiteStorage) and not storage.path.exists():
        raise DbCommandError(
            f"no SQLite database at {storage.path}; name the application's database with --url sqlite:///PATH "
            "or --app module:attribute"
        )


def _run(source: Source, action: Callable[[BackgroundJobClient], Awaitable[T]]) -> T:
    """Open the environment, run ``action`` on its jobs, close it; errors as one line, exit 2."""
    return run_in_environment(source, lambda environment: action(environment.jobs))


def run_in_environment(source: Source, action: Callable[[Environment], Awaitable[T]]) -> T:
    """Open the environment, run ``action`` on it, close it; errors as one line, exit 2."""
    environment = _environment(source)
    _check_exists(environment)

    async def call() -> T:
        await environment.open()
        try:
            return await action(environment)
        finally:
            await environment.close()

    with _reported(source.url, environment.info.url):
        return asyncio.run(call())


# ----------------------------------------------------------------------------- plain values


def plain(value: Any) -> Any:
    """``value`` as plain JSON: datetimes ISO-8601, durations in seconds, UUIDs and decimals as
    text, bytes as base64, enums by value, dataclasses as objects; anything else as its text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    return str(value)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _shown_value(value: Any) -> str:
    """A property value as ``--property`` takes it (text that would read as another type is quoted)."""
    if isinstance(value, str):
        try:
            reads_as_text = typed_value(value) == value and not value.startswith("~")
        except ValueError:
            reads_as_text = False
        return value if reads_as_text and value and not any(char.isspace() for char in value) else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _properties_text(properties: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={_shown_value(value)}" for name, value in sorted(properties.items()))


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_WIDTH else text[: _TEXT_WIDTH - 3] + "..."


def _job_summary(job: hm.BackgroundJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "queue": job.queue,
        "priority": job.priority.name.lower(),
        "state": job.state.name,
        "reason": job.state.reason,
        "created_at": _iso(job.created_at),
        "modified_at": _iso(job.modified_at),
        "due_at": _iso(due_at(job.state)),
        "properties": plain(dict(job.properties)),
        "function": job.invocation.display_name,
        "target": job.invocation.target,
        "method": job.invocation.method,
        "locked_by": job.locked_by,
    }


def _state_dict(state: hm.State) -> dict[str, Any]:
    return {
        "sequence": state.sequence,
        "name": state.name,
        "reason": state.reason,
        "elected_at": _iso(state.elected_at),
        "fields": plain(state.persisted_fields()),
    }


def _job_details(job: hm.BackgroundJob) -> dict[str, Any]:
    invocation = job.invocation
    lock = job.lock
    return {
        "id": job.id,
        "environment": job.environment,
        "queue": job.queue,
        "priority": job.priority.name.lower(),
        "priority_value": int(job.priority),
        "state": _state_dict(job.state),
        "states": [_state_dict(state) for state in job.states],
        "properties": plain(dict(job.properties)),
        "invocation": {
            "function": invocation.display_name,
            "target": invocation.target,
            "method": invocation.method,
            "is_async": invocation.is_async,
            "args": plain(dict(invocation.arguments)),
            "problem": invocation.problem,
            "stored": invocation.raw if invocation.problem is not None else None,
        },
        "lock": (
            None
            if lock is None
            else {"owner": lock.owner, "locked_at": _iso(lock.locked_at), "heartbeat": _iso(lock.heartbeat)}
        ),
        "execution_id": str(job.execution_id),
        "created_at": _iso(job.created_at),
        "modified_at": _iso(job.modified_at),
    }


def _console() -> Console:
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=_PIPE_WIDTH)


def _jobs_table(page: list[hm.BackgroundJob]) -> Table:
    """The jobs of ``ls``: every column on one line; on a terminal too narrow for them only the
    function and the properties are cut, with an ellipsis (piped output is never cut, see
    :func:`_console`)."""
    headers = ("id", "queue", "priority", "state", "due (UTC)", "created (UTC)", "modified (UTC)")
    rows = [
        (
            str(job.id),
            job.queue,
            job.priority.name.lower(),
            job.state.name,
            _when(due_at(job.state)),
            _when(job.created_at),
            _when(job.modified_at),
            job.invocation.display_name,
            _clip(_properties_text(job.properties)),
        )
        for job in page
    ]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for index, column in enumerate(headers):
        # as wide as their widest cell: the terminal's width is taken from the last two columns
        width = max([len(column), *(len(row[index]) for row in rows)])
        table.add_column(column, justify="right" if column == "id" else "left", no_wrap=True, min_width=width)
    table.add_column("function", no_wrap=True, overflow="ellipsis", min_width=12)
    table.add_column("properties", no_wrap=True, overflow="ellipsis", min_width=10)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _echo_json(document: Any) -> None:
    click.echo(json.dumps(document, ensure_ascii=False))


def _now() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- commands


@click.group()
def jobs() -> None:
    """List, inspect, count, wait for, watch, requeue, cancel and delete the jobs of one environment.

    The database is named like `hivemind db` does: --url URL with --env and --prefix, or --app
    module:attribute for an application's HiveMind (or HIVEMIND_URL / HIVEMIND_APP, or the settings
    file); without any of them the command says what to pass. Errors print one
    line `Error: ...` on stderr and exit with status 2.

    \b
    Filters (ls, count, requeue, cancel, delete; all given ones must hold):
      --state Failed --state Deleted   current state is any of them
      --queue mail --queue 'report*'   queue is any of them (* is any characters)
      --priority high --priority 0     priority is any of them (critical high normal low none, 0-4)
      --property tenant=acme           text; n=5 int; price=4.5 float; urgent=true bool;
      --property 'due=2024-05-01T00:00:00Z'   datetime (an offset is required);
      --property 'code="42"'           quoted: text;  name=~'acme*' a pattern over text
      --since 2h --until 30m           created in that window (s m h d w, or ISO-8601 with offset)
    """


def _check_paging(order: str, after: str | None, page_number: int | None) -> None:
    """``--order``, ``--after`` and ``--page`` checked before anything is read."""
    try:
        parsed = parse_order(order)
    except HiveMindError as error:
        raise _bad("--order", order, str(error)) from None
    if after is None:
        return
    if page_number is not None:
        raise DbCommandError("give either --after CURSOR or --page N, not both")
    if not parsed.keyset:
        raise _bad("--after", after, f"--order {order} has no cursor; page through it with --page N")
    try:
        decode_cursor(parsed, after)
    except HiveMindError:
        raise _bad(
            "--after",
            after,
            f"not a cursor printed by `hivemind jobs ls --order {order}` (a cursor continues the order it came from)",
        ) from None


@jobs.command("ls", short_help="List the jobs matching the filters, newest first.")
@click.option(
    "--order",
    default="-created",
    show_default=True,
    metavar="ORDER",
    help="id, created, modified, queue, priority or property:NAME; a leading - sorts descending.",
)
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, MAX_PAGE), help="Jobs per page (at most 10000)."
)
@click.option("--after", default=None, metavar="CURSOR", help="Continue after a previous page (its printed cursor).")
@click.option(
    "--page", "page_number", default=None, type=click.IntRange(min=1), help="Page number (for --order property:NAME)."
)
@click.option("--json", "as_json", is_flag=True, help='Print {"jobs": [...], "next_cursor": ...} only.')
@_filter_options
@_source_options
def list_jobs(
    source: Source,
    filters: Filters,
    order: str,
    limit: int,
    after: str | None,
    page_number: int | None,
    as_json: bool,
) -> None:
    """List the jobs matching the filters, newest first; a full page prints how to get the next one."""
    condition = filters.condition(_now())
    _check_paging(order, after, page_number)

    async def fetch(client: BackgroundJobClient) -> hm.JobPage:
        return await client.search(condition, order_by=order, limit=limit, page=page_number, after=after)

    page = _run(source, fetch)
    if as_json:
        _echo_json({"jobs": [_job_summary(job) for job in page.jobs], "next_cursor": page.next_cursor})
        return
    if not page.jobs:
        click.echo("no jobs match the filters" if filters.given else "no jobs")
        return
    _console().print(_jobs_table(page.jobs))
    if page.next_cursor is not None:
        click.echo(f"next page: run the same command with --after {page.next_cursor}")
    elif len(page.jobs) == limit:
        click.echo(f"more jobs may follow: run the same command with --page {(page_number or 1) + 1}")


def _state_lines(state: hm.State, indent: str) -> list[str]:
    lines = []
    if state.reason:
        lines.append(f"{indent}reason: {state.reason}")
    for name, value in state.persisted_fields().items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(plain(value), ensure_ascii=False)
        if "\n" in text:
            lines.append(f"{indent}{name}:")
            lines.extend(f"{indent}  {line}" for line in text.rstrip("\n").splitlines())
        else:
            lines.append(f"{indent}{name}: {text}")
    return lines


def _show_text(job: hm.BackgroundJob) -> list[str]:
    invocation = job.invocation
    lock = job.lock
    lines = [
        f"job {job.id} in environment {job.environment!r}",
        f"function:   {invocation.display_name}{' (async)' if invocation.is_async else ''}",
    ]
    lines.extend(f"  {name} = {json.dumps(value, ensure_ascii=False)}" for name, value in invocation.arguments.items())
    if invocation.problem is not None:
        # a stored call this build cannot decode: say why, and show the text as stored
        lines.append(f"  cannot run: {invocation.problem}")
        lines.append(f"  stored: {_clip(json.dumps(invocation.raw, ensure_ascii=False))}")
    lines += [
        f"queue:      {job.queue}",
        f"priority:   {job.priority.name.lower()} ({int(job.priority)})",
        f"state:      {job.state.name} since {_when(job.state.elected_at)} UTC",
        *_due_lines(job.state, "  "),
        *_state_lines(job.state, "  "),
        f"created:    {_when(job.created_at)} UTC",
        f"modified:   {_when(job.modified_at)} UTC",
        "locked by:  "
        + (
            "-"
            if lock is None
            else f"{lock.owner} since {_when(lock.locked_at)} UTC (heartbeat {_when(lock.heartbeat)})"
        ),
        "properties:" + ("" if job.properties else " -"),
    ]
    lines.extend(f"  {name}={_shown_value(value)}" for name, value in sorted(job.properties.items()))
    lines.append("history (oldest first):")
    for state in job.states:
        lines.append(f"  #{state.sequence} {state.name} at {_when(state.elected_at)} UTC")
        if state is not job.state:
            lines.extend(_due_lines(state, "      "))
            lines.extend(_state_lines(state, "      "))
    return lines


def _due_lines(state: hm.State, indent: str) -> list[str]:
    """When an Enqueued state with a delay (a retry, a delayed job) is, or was, due."""
    due = due_at(state)
    if due is None:
        return []
    now = _now()
    when = f"in {age_text(due - now)}" if due > now else f"{age_text(now - due)} ago"
    return [f"{indent}due: {_when(due)} UTC ({when})"]


def _log_dict(entry: JobLogEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "created_at": _iso(entry.created_at),
        "level": entry.level_name,
        "logger": entry.logger,
        "message": entry.message,
        "exception_type": entry.exception_type,
        "exception_message": entry.exception_message,
        "traceback": entry.traceback,
    }


def _log_lines(entry: JobLogEntry) -> list[str]:
    logger = f" {entry.logger}:" if entry.logger else ""
    lines = [f"  {_when(entry.created_at)} {entry.level_name}{logger} {entry.message}"]
    if entry.traceback:
        lines.extend(f"    {line}" for line in entry.traceback.rstrip("\n").splitlines())
    elif entry.exception_type:
        lines.append(f"    {entry.exception_type}: {entry.exception_message or ''}")
    return lines


async def _job_logs(client: BackgroundJobClient, job_id: int, tail: int | None) -> list[JobLogEntry]:
    """The job's log records, oldest first; with ``tail`` only the last ``tail`` of them."""
    kept: collections.deque[JobLogEntry] = collections.deque(maxlen=tail)
    after = 0
    while True:
        page = await client.get_logs(job_id, after_id=after, limit=_LOG_PAGE)
        kept.extend(page)
        if len(page) < _LOG_PAGE:
            return list(kept)
        after = page[-1].id


def _abbreviated(value: Any) -> str:
    return _clip(json.dumps(plain(value), ensure_ascii=False))


@jobs.command(short_help="Show one job in detail, with its history and logs.")
@click.argument("job_id", metavar="ID")
@click.option("--logs", "show_logs", is_flag=True, help="Also show the job's log lines (oldest first).")
@click.option("--tail", default=None, metavar="N", help="Only the last N log lines (implies --logs).")
@click.option(
    "--data",
    "data_names",
    multiple=True,
    metavar="NAME",
    help="Also show the job data item NAME (values abbreviated; --json prints them whole). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the job (and its logs and data items) as one JSON object.")
@_source_options
def show(
    source: Source,
    job_id: str,
    show_logs: bool,
    tail: str | None,
    data_names: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show one job: function and arguments, queue, priority, its state (with when a retry or a
    delayed job is due), its history (each state with time and reason), properties, lock, the names
    of its data items; with --logs its log lines, with --data NAME a data item's value.

    An unknown ID is an error (exit status 2).
    """
    number = _job_id(job_id)
    last = _positive("--tail", tail) if tail is not None else None
    with_logs = show_logs or last is not None

    async def fetch(
        client: BackgroundJobClient,
    ) -> tuple[hm.BackgroundJob, list[JobLogEntry], dict[str, Any], dict[str, int]]:
        job = await client.get(number)
        items = await client.list_data(number)
        logs = await _job_logs(client, number, last) if with_logs else []
        missing = object()
        data = {}
        for name in data_names:
            try:
                value = await client.try_get_data(number, name, default=missing)
            except HiveMindError as error:
                raise _bad("--data", name, str(error)) from None
            if value is missing:
                raise _bad("--data", name, f"job {number} has no data item {name!r}")
            data[name] = value
        return job, logs, data, items

    job, logs, data, items = _run(source, fetch)
    if as_json:
        document = _job_details(job)
        document["data_items"] = items
        if with_logs:
            document["logs"] = [_log_dict(entry) for entry in logs]
        if data_names:
            document["data"] = plain(data)
        _echo_json(document)
        return
    for line in _show_text(job):
        click.echo(line)
    if items:
        click.echo("data items: " + ", ".join(f"{name} ({plural(size, 'char')})" for name, size in items.items()))
    if data_names:
        click.echo("data:")
        for name, value in data.items():
            click.echo(f"  {name} = {_abbreviated(value)}")
    if with_logs:
        shown = f"last {plural(len(logs), 'log line')}" if last is not None else plural(len(logs), "log line")
        click.echo(f"logs ({shown}):" if logs else "logs: none")
        for entry in logs:
            for line in _log_lines(entry):
                click.echo(line)


@jobs.command()
@click.option("--json", "as_json", is_flag=True, help='Print {"count": N}.')
@_filter_options
@_source_options
def count(source: Source, filters: Filters, as_json: bool) -> None:
    """Count the jobs matching the filters (all jobs without filters)."""
    condition = filters.condition(_now())

    async def fetch(client: BackgroundJobClient) -> int:
        return await client.count(condition)

    number = _run(source, fetch)
    if as_json:
        _echo_json({"count": number})
    else:
        click.echo(str(number))


def _bulk_condition(command: str, filters: Filters, all_jobs: bool) -> Condition | None:
    """The filters' query; without filters only with --all, so a typo cannot reach every job."""
    if all_jobs and filters.given:
        raise DbCommandError(f"--all means every job; give either --all or filters to {command}, not both")
    if not all_jobs and not filters.given:
        raise DbCommandError(
            f"{command} needs filters (--state, --queue, --priority, --property, --since, --until) "
            f"or --all to {command} every job"
        )
    return filters.condition(_now())


def _report_bulk(verb: str, result: hm.BulkResult, as_json: bool) -> None:
    if as_json:
        _echo_json({"changed": result.changed, "unchanged": result.unchanged, "batches": result.batches})
        return
    click.echo(
        f"{verb} {plural(result.changed, 'job')}; {result.unchanged} left unchanged; "
        f"{plural(result.batches, 'batch', 'batches')}"
    )


@dataclass(frozen=True)
class Outcome:
    """What a command did to one job given by id: ``done`` when it did what was asked."""

    job_id: int
    outcome: str
    done: bool
    detail: str | None = None

    def line(self) -> str:
        return f"job {self.job_id} {self.outcome}" + (f": {self.detail}" if self.detail else "")

    def document(self) -> dict[str, Any]:
        return {"id": self.job_id, "outcome": self.outcome.replace(" ", "_"), "done": self.done, "detail": self.detail}


async def _check_known(client: BackgroundJobClient, ids: list[int]) -> None:
    """Every id names a job of the environment, or nothing is changed (exit status 2)."""
    page = await client.search(hm.job.id.in_(ids), order_by="id", limit=len(ids))
    missing = sorted(set(ids) - {job.id for job in page.jobs})
    if missing:
        where = client.environment.name
        names = ", ".join(map(str, missing))
        raise DbCommandError(
            f"no job {names} in environment {where!r}; nothing was changed"
            if len(missing) == 1
            else f"no jobs {names} in environment {where!r}; nothing was changed"
        )


def _report_outcomes(outcomes: list[Outcome], as_json: bool) -> None:
    """One line (or JSON object) per job; exit status 1 when some job was not changed as asked."""
    if as_json:
        _echo_json({"jobs": [outcome.document() for outcome in outcomes]})
    else:
        for outcome in outcomes:
            click.echo(outcome.line())
    if not all(outcome.done for outcome in outcomes):
        click.get_current_context().exit(EXIT_NOT_DONE)


def _locked_detail(job: hm.BackgroundJob | None) -> str:
    if job is None:
        return "it no longer exists"
    return f"locked by {job.locked_by} (running); cancel it first" if job.locked_by else f"it is {job.state.name}"


_BY_ID_HELP = """
    \b
    Exit status:
      0  every job given by id was changed (or the filters' jobs were)
      1  some job given by id is not in a state that allows it (each is reported)
      2  error: bad option or id, an id that names no job (then nothing is changed), database
"""

#: some job given by id was not changed as asked (each one is reported)
EXIT_NOT_DONE = 1


@jobs.command(short_help="Enqueue jobs again, by id or by filters.")
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--to-queue", default=None, metavar="QUEUE", help="Move them to this queue.")
@click.option("--to-priority", default=None, metavar="P", help=f"Give them this priority ({_PRIORITY_NAMES}, 0-4).")
@click.option("--all", "all_jobs", is_flag=True, help="Requeue every job (required when no filter or id is given).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"changed": N, "unchanged": N, "batches": N}; with ids {"jobs": [{"id", "outcome", ...}]}.',
)
@_filter_options
@_source_options
def requeue(
    source: Source,
    filters: Filters,
    job_ids: tuple[str, ...],
    to_queue: str | None,
    to_priority: str | None,
    all_jobs: bool,
    as_json: bool,
) -> None:
    """Enqueue jobs again (failed, succeeded, idle or deleted ones run once more), optionally in
    another queue or priority: the jobs given by ID (`hivemind jobs requeue 12 15`), or those
    matching the filters, or --all.

    Jobs locked by a worker (running ones) are skipped: by filters they are not counted, by id
    they are reported.
    """
    if to_queue is not None:
        try:
            validate_queue_name(to_queue)
        except HiveMindError as error:
            raise _bad("--to-queue", to_queue, str(error)) from None
    priority = parse_priority("--to-priority", to_priority) if to_priority is not None else None
    ids = _job_ids("requeue", job_ids, filters, all_jobs)
    if ids:

        async def requeue_each(client: BackgroundJobClient) -> list[Outcome]:
            await _check_known(client, ids)
            outcomes = []
            for job_id in ids:
                result = await client.requeue_where(hm.job.id == job_id, queue=to_queue, priority=priority)
                if result.changed:
                    outcomes.append(Outcome(job_id, "requeued", done=True))
                else:
                    detail = _locked_detail(await client.try_get(job_id))
                    outcomes.append(Outcome(job_id, "not requeued", done=False, detail=detail))
            return outcomes

        _report_outcomes(_run(source, requeue_each), as_json)
        return
    condition = _bulk_condition("requeue", filters, all_jobs)

    async def change(client: BackgroundJobClient) -> hm.BulkResult:
        return await client.requeue_where(condition, queue=to_queue, priority=priority)

    _report_bulk("requeued", _run(source, change), as_json)


requeue.help = (requeue.help or "") + _BY_ID_HELP


_DELETE_OUTCOMES = {
    DeleteResult.DELETED: ("deleted", True, None),
    DeleteResult.REQUESTED: ("stop requested", True, "it is running; its drone stops it and deletes it"),
    DeleteResult.ALREADY_DELETED: ("not deleted", False, "it was deleted already"),
}


@jobs.command(short_help="Delete (soft) jobs, by id or by filters.")
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--reason", default=None, help="Reason recorded with the Deleted state (default: deleted).")
@click.option("--all", "all_jobs", is_flag=True, help="Delete every job (required when no filter or id is given).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"changed": N, "unchanged": N, "batches": N}; with ids {"jobs": [{"id", "outcome", ...}]}.',
)
@_filter_options
@_source_options
def delete(
    source: Source, filters: Filters, job_ids: tuple[str, ...], reason: str | None, all_jobs: bool, as_json: bool
) -> None:
    """Move jobs to the Deleted state (kept until retention removes them): the jobs given by ID
    (`hivemind jobs delete 12 15`), or those matching the filters, or --all.

    By id, a running job is stopped by its drone and then deleted; by filters, jobs locked by a
    worker (running ones) are skipped and not counted, and jobs already deleted are left unchanged.
    """
    ids = _job_ids("delete", job_ids, filters, all_jobs)
    if ids:

        async def delete_each(client: BackgroundJobClient) -> list[Outcome]:
            await _check_known(client, ids)
            outcomes = []
            for job_id in ids:
                try:
                    result = await client.delete(job_id, reason=reason)
                except hm.JobLockedError:
                    outcomes.append(
                        Outcome(job_id, "not deleted", done=False, detail=_locked_detail(await client.try_get(job_id)))
                    )
                    continue
                outcome, done, detail = _DELETE_OUTCOMES[result]
                outcomes.append(Outcome(job_id, outcome, done=done, detail=detail))
            return outcomes

        _report_outcomes(_run(source, delete_each), as_json)
        return
    condition = _bulk_condition("delete", filters, all_jobs)

    async def change(client: BackgroundJobClient) -> hm.BulkResult:
        return await client.delete_where(condition, reason=reason)

    _report_bulk("deleted", _run(source, change), as_json)


delete.help = (delete.help or "") + _BY_ID_HELP

#: the states a job can be cancelled in (the client's cancel moves the others nowhere)
_CANCELLABLE = ("Enqueued", "Awaiting", "Executing")


async def _cancel_one(client: BackgroundJobClient, job_id: int, reason: str | None) -> Outcome:
    try:
        result = await client.cancel(job_id, reason=reason)
    except hm.JobLockedError:
        return Outcome(job_id, "not cancelled", done=False, detail=_locked_detail(await client.try_get(job_id)))
    except hm.JobNotFoundError:
        return Outcome(job_id, "not cancelled", done=False, detail="it no longer exists")
    if result is CancelResult.CANCELLED:
        return Outcome(job_id, "cancelled", done=True, detail="it is Idle now")
    if result is CancelResult.REQUESTED:
        return Outcome(job_id, "stop requested", done=True, detail="it is running; its drone stops it (then Idle)")
    job = await client.try_get(job_id)
    state = job.state.name if job is not None else "gone"
    return Outcome(job_id, "not cancelled", done=False, detail=f"it is {state}, not waiting or running")


@jobs.command(short_help="Stop running jobs and park waiting ones (Idle), by id or by filters.")
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--reason", default=None, help="Reason recorded with the Idle state (default: cancelled).")
@click.option("--all", "all_jobs", is_flag=True, help="Cancel every waiting or running job (when no filter or id).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"jobs": [{"id", "outcome", "done", "detail"}]}; by filters '
    '{"cancelled": N, "stop_requested": N, "not_cancelled": N}.',
)
@_filter_options
@_source_options
def cancel(
    source: Source, filters: Filters, job_ids: tuple[str, ...], reason: str | None, all_jobs: bool, as_json: bool
) -> None:
    """Cancel jobs that have not finished: a waiting one (Enqueued or Awaiting) becomes Idle at
    once; for a running one (Executing) its drone is asked to stop it, and it becomes Idle when
    the drone has stopped it (within the colony's watch interval). Cancelled jobs are kept and can
    be requeued. The jobs are given by ID (`hivemind jobs cancel 12 15`), or by the filters (only
    their waiting and running jobs are looked at), or --all.

    To remove a job instead, use `hivemind jobs delete` (it stops a running job first, too).
    """
    ids = _job_ids("cancel", job_ids, filters, all_jobs)
    if ids:

        async def cancel_each(client: BackgroundJobClient) -> list[Outcome]:
            await _check_known(client, ids)
            return [await _cancel_one(client, job_id, reason) for job_id in ids]

        _report_outcomes(_run(source, cancel_each), as_json)
        return
    given = _bulk_condition("cancel", filters, all_jobs)
    condition = hm.where(*(part for part in (given, hm.state.is_(*_CANCELLABLE)) if part is not None))

    async def cancel_matching(client: BackgroundJobClient) -> Counter[str]:
        counts: Counter[str] = Counter()
        after: str | None = None
        while True:
            page = await client.search(condition, order_by="id", limit=_CANCEL_PAGE, after=after)
            for job in page.jobs:
                counts[(await _cancel_one(client, job.id, reason)).outcome] += 1
            if page.next_cursor is None:
                return counts
            after = page.next_cursor

    counts = _run(source, cancel_matching)
    cancelled, requested, refused = counts["cancelled"], counts["stop requested"], counts["not cancelled"]
    if as_json:
        _echo_json({"cancelled": cancelled, "stop_requested": requested, "not_cancelled": refused})
        return
    click.echo(
        f"cancelled {plural(cancelled, 'job')}; stop requested for {plural(requested, 'running job')}; "
        f"{refused} not cancelled (finished or locked meanwhile)"
    )


cancel.help = (cancel.help or "") + _BY_ID_HELP

#: jobs read per query while cancelling by filters
_CANCEL_PAGE = 500
#: ``wait``: the job failed, was deleted or ended in another final state
EXIT_FAILED = 1
#: ``wait``: the job did not finish within --timeout
EXIT_TIMEOUT = 3


def _timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise _bad("--timeout", text, "expected seconds, a number of 0 or more such as 30 or 0.5")
    return seconds


@jobs.command(short_help="Wait for a job to finish and print its result.")
@click.argument("job_id", metavar="ID")
@click.option(
    "--timeout", default=None, metavar="SECONDS", help="Give up after this many seconds (default: wait until it ends)."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"id", "outcome", "state", "result", "error"} (for every outcome but an error).',
)
@_source_options
def wait(source: Source, job_id: str, timeout: str | None, as_json: bool) -> None:
    """Wait until the job ID reaches a final state; print its result as JSON when it succeeded.

    A failure that is retried is waited through; a cancelled (Idle) job is waited for until it
    runs again or the timeout. Waiting changes nothing.

    \b
    Exit status:
      0  the job succeeded (its result is printed, as JSON)
      1  it failed, was deleted or ended in another final state (the error is printed)
      2  error: bad option or id, no such job, database
      3  it did not finish within --timeout (it goes on)
    """
    number = _job_id(job_id)
    seconds = _timeout(timeout) if timeout is not None else None

    async def wait_for(client: BackgroundJobClient) -> dict[str, Any]:
        try:
            result = await client.wait(number, timeout=seconds)
        except hm.JobWaitTimeoutError as error:
            return {"id": number, "outcome": "timeout", "state": None, "result": None, "error": str(error)}
        except hm.JobFailedError as error:
            return {"id": number, "outcome": "failed", "state": error.state, "result": None, "error": str(error)}
        except hm.JobDeletedError as error:
            return {"id": number, "outcome": "deleted", "state": error.state, "result": None, "error": str(error)}
        except hm.JobNotSucceededError as error:
            return {"id": number, "outcome": "not_succeeded", "state": error.state, "result": None, "error": str(error)}
        return {"id": number, "outcome": "succeeded", "state": "Succeeded", "result": plain(result), "error": None}

    document = _run(source, wait_for)
    if as_json:
        _echo_json(document)
    elif document["outcome"] == "succeeded":
        _echo_json(document["result"])
    else:
        click.echo(f"Error: {_one_line(document['error'], source.url)}", err=True)
    if document["outcome"] == "timeout":
        click.get_current_context().exit(EXIT_TIMEOUT)
    if document["outcome"] != "succeeded":
        click.get_current_context().exit(EXIT_FAILED)
