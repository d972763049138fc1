"""``hivemind db``: create, upgrade and inspect the HiveMind tables of a database.

``status`` and ``upgrade`` connect on their own (the storage is never opened, so a schema behind
the code is no error here); ``sql`` only prints the DDL and needs no connection. The tables are
named by a storage URL, an environment and a table prefix (``--url``/``--env``/``--prefix``), or
by the environments of an application's HiveMind (``--app module:attribute``).

Every error is one line on stderr and exit status 2; ``status`` exits 1 while migrations are
pending, so deploy scripts can test it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import click

import hivemind_jobs as hm
from hivemind_jobs.cli.views import plural
from hivemind_jobs.cli.worker import load_app
from hivemind_jobs.core.names import DEFAULT_ENVIRONMENT, validate_environment_name, validate_table_prefix
from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.errors import HiveMindError, StorageError
from hivemind_jobs.storage import Storage, open_storage, redact_url
from hivemind_jobs.storage.protocol import SchemaStatus

__all__ = ["db"]

F = TypeVar("F", bound=Callable[..., Any])
#: top-level modules of the database drivers whose errors are reported like HiveMind's own
_DRIVER_MODULES = frozenset({"sqlite3", "psycopg", "psycopg_pool", "pymysql", "asyncmy", "aiomysql"})
#: loggers of the drivers: their warnings are kept for the error message, not printed
_DRIVER_LOGGERS = ("psycopg", "asyncmy", "aiomysql")
_POOL_PREFIX = re.compile(r"^error connecting in '[^']*': ")
EXIT_PENDING = 1
EXIT_ERROR = 2
#: what a command that reads a database says when nothing names one (flag, variable or file)
NO_TARGET = (
    "no database given: pass --url URL or --app module:attribute "
    "(or set HIVEMIND_URL or HIVEMIND_APP, or url or app in hivemind.toml)"
)


class DbCommandError(click.ClickException):
    """A one-line ``Error: ...`` on stderr, exit status 2 (1 is taken: migrations pending); any
    password in the message is shown as ``***``."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(redact_secrets(message))


@dataclass(frozen=True)
class Target:
    """One environment's tables: where they are and the (unopened) storage reaching them."""

    environment: str
    table_prefix: str
    url: str  # without password
    storage: Storage

    @property
    def title(self) -> str:
        tables = f"tables {self.table_prefix}*" if self.table_prefix else "no table prefix"
        return f"environment {self.environment!r} ({tables}) in {self.url}"


def _safe_url(url: str) -> str:
    """``redact_url``, and a URL too broken to redact is not shown at all."""
    try:
        return redact_url(url)
    except ValueError:
        return "<unparseable URL>"


def _passwords(url: str | None) -> list[str]:
    """The passwords ``url`` gives (user info, ``?password=``), as written and percent-decoded (a
    driver may quote either), longest first."""
    if url is None:
        return []
    try:
        parts = urlsplit(url)
        given = [parts.password or ""]
    except ValueError:
        return []
    for key, values in parse_qs(parts.query).items():
        if key.lower().endswith(("password", "passwd", "pwd")):
            given.extend(values)
    found = {form for password in given if password for form in (password, unquote(password))}
    return sorted(found, key=len, reverse=True)


def _one_line(error: BaseException | str, url: str | None) -> str:
    text = str(error)
    message = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    if not message and isinstance(error, BaseException):
        message = type(error).__name__
    message = redact_secrets(message)
    for password in _passwords(url):
        message = message.replace(password, "***")
    return message


def _is_driver_error(error: BaseException) -> bool:
    return type(error).__module__.partition(".")[0] in _DRIVER_MODULES


class _LastDriverWarning(logging.Handler):
    """Keeps the drivers' last warning (psycopg's pool logs why each connection attempt failed)
    instead of letting Python print every one of them on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.message = _POOL_PREFIX.sub("", record.getMessage())


@contextmanager
def _reported(url: str | None, where: str | None = None) -> Iterator[None]:
    """HiveMind, OS and database driver errors as a one-line message and exit status 2.

    ``where`` (a URL without password) is added to driver and OS errors, which do not say it.
    """
    capture = _LastDriverWarning()
    loggers = [logging.getLogger(name) for name in _DRIVER_LOGGERS]
    saved = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(capture)
        logger.propagate = False
    try:
        yield
    except click.ClickException:
        raise
    except HiveMindError as error:
        message = _one_line(error, url)
        if capture.message and isinstance(error, StorageError):
            message += f" (last connection error: {_one_line(capture.message, url)})"
        raise DbCommandError(message) from error
    except Exception as error:
        if not isinstance(error, OSError) and not _is_driver_error(error):
            raise
        kind = "" if isinstance(error, OSError) else f"{type(error).__name__}: "
        suffix = f" ({where})" if where else ""
        raise DbCommandError(f"{kind}{_one_line(error, url)}{suffix}") from error
    finally:
        for logger, propagate in zip(loggers, saved, strict=True):
            logger.removeHandler(capture)
            logger.propagate = propagate


def _targets(url: str | None, app_path: str | None, environment: str | None, prefix: str | None) -> list[Target]:
    if url is None and app_path is None:
        raise DbCommandError(NO_TARGET)
    if url is not None and app_path is not None:
        raise DbCommandError("give either --url URL or --app module:attribute, not both")
    if app_path is not None:
        if prefix is not None:
            raise DbCommandError("--prefix goes with --url; with --app the app's environments set their prefixes")
        with _reported(None):
            app = load_app(app_path)
            hive: hm.HiveMind = app if isinstance(app, hm.HiveMind) else app.hive
            chosen = [hive.env(environment)] if environment is not None else list(hive.environments.values())
        return [Target(env.name, env.info.table_prefix, _safe_url(env.info.url), env.storage) for env in chosen]
    assert url is not None
    with _reported(url):
        name = validate_environment_name(environment if environment is not None else DEFAULT_ENVIRONMENT)
        table_prefix = validate_table_prefix(prefix if prefix is not None else f"hm_{name}_")
        try:
            storage = open_storage(url, environment=name, table_prefix=table_prefix)
        except HiveMindError:
            raise
        except ValueError as error:  # urllib's own complaints (a port that is not a number, ...)
            raise DbCommandError(f"invalid storage URL {_safe_url(url)!r}: {_one_line(error, url)}") from error
    return [Target(name, table_prefix, _safe_url(url), storage)]


def _target_options(command: F) -> F:
    options = [
        click.option(
            "--url",
            default=None,
            metavar="URL",
            help="Storage URL: sqlite:///path.db, postgresql://user@host:port/db?schema=name, "
            "mysql://user@host:port/db.",
        ),
        click.option(
            "--env",
            "environment",
            default=None,
            metavar="NAME",
            help=f"Environment (with --url default {DEFAULT_ENVIRONMENT!r}; with --app default: all of the app's).",
        ),
        click.option("--prefix", default=None, metavar="PREFIX", help="Table prefix with --url (default: hm_<env>_)."),
        click.option(
            "--app",
            "app_path",
            default=None,
            metavar="MODULE:ATTR",
            help="A HiveMind (or Colony) whose environments to use, instead of --url.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _run(url: str | None, target: Target, action: Callable[[], Awaitable[SchemaStatus]]) -> SchemaStatus:
    with _reported(url, target.url):
        return asyncio.run(_call(action))


async def _call(action: Callable[[], Awaitable[SchemaStatus]]) -> SchemaStatus:
    return await action()


@click.group()
def db() -> None:
    """Create, upgrade and inspect the HiveMind tables of a database.

    A server database (PostgreSQL, MySQL/MariaDB) is only created or upgraded by `hivemind db
    upgrade`, by a DBA running the output of `hivemind db sql`, or on open when its URL has
    auto_migrate=true. SQLite files are upgraded on open.
    """


def _status_json(target: Target, status: SchemaStatus) -> str:
    return json.dumps(
        {
            "environment": target.environment,
            "table_prefix": target.table_prefix,
            "url": target.url,
            "current": status.current,
            "latest": status.latest,
            "pending": list(status.pending),
            "up_to_date": not status.pending,
        }
    )


@db.command(short_help="Show the schema version and the pending migrations (exit 1 if any).")
@_target_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (one per line for several environments).")
def status(url: str | None, environment: str | None, prefix: str | None, app_path: str | None, as_json: bool) -> None:
    """Show the schema version of the HiveMind tables and the migrations still pending.

    \b
    Exit status:
      0  up to date
      1  migrations are pending (apply them with `hivemind db upgrade`)
      2  error: bad option, URL or name; database unreachable
    """
    targets = _targets(url, app_path, environment, prefix)
    statuses = [_run(url, target, target.storage.schema_status) for target in targets]
    for index, (target, schema) in enumerate(zip(targets, statuses, strict=True)):
        if as_json:
            click.echo(_status_json(target, schema))
            continue
        if index:
            click.echo()
        click.echo(target.title)
        click.echo(f"current version: {schema.current}")
        click.echo(f"latest version:  {schema.latest}")
        if schema.pending:
            click.echo("pending migrations:")
            for name in schema.pending:
                click.echo(f"  {name}")
            click.echo(f"{plural(len(schema.pending), 'migration')} pending: run `hivemind db upgrade` (same options)")
        else:
            click.echo("up to date")
    if any(schema.pending for schema in statuses):
        click.get_current_context().exit(EXIT_PENDING)


@db.command(short_help="Apply the pending migrations.")
@_target_options
def upgrade(url: str | None, environment: str | None, prefix: str | None, app_path: str | None) -> None:
    """Apply the pending migrations (under a database-wide lock; safe to run from several hosts)."""
    targets = _targets(url, app_path, environment, prefix)
    for index, target in enumerate(targets):
        upgraded = _run(url, target, target.storage.schema_upgrade)
        if index:
            click.echo()
        click.echo(target.title)
        for name in upgraded.applied:
            click.echo(f"applied {name}")
        if upgraded.applied:
            click.echo(f"now at schema version {upgraded.current}")
        else:
            click.echo(f"already up to date (schema version {upgraded.current})")


@db.command(short_help="Print the DDL for a DBA to review or run.")
@_target_options
@click.option(
    "--since",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="N",
    help="Only the migrations after schema version N (0: everything).",
)
def sql(url: str | None, environment: str | None, prefix: str | None, app_path: str | None, since: int) -> None:
    """Print the DDL a DBA would run (statements end with `;`; connects to nothing).

    For a server database it also sets up the schema or database and records the versions, so
    HiveMind then sees the tables as current.
    """
    targets = _targets(url, app_path, environment, prefix)
    for index, target in enumerate(targets):
        with _reported(url, target.url):
            statements = target.storage.schema_sql(since)
        if index:
            click.echo()
        click.echo(f"-- HiveMind {hm.__version__}: {target.title}")
        click.echo(f"-- migrations after schema version {since}")
        for statement in statements:
            click.echo()
            click.echo(f"{statement.strip().removesuffix(';')};")
