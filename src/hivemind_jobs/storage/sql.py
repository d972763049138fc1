"""Named SQL queries and numbered migrations, read from each dialect's ``.sql`` files.

A query file holds blocks introduced by ``-- name: <query_name>``; every dialect defines the same
names (a test checks it). Table names are written ``"{p}job"`` (quoted in the dialect's way) and
``{p}`` is replaced by the environment's validated table prefix; nothing else is ever formatted
into SQL. Values are always bound parameters, written ``:name``.

Migrations are files ``migrations/NNNN_description.sql``; statements end with ``;`` at the end of
a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import NewType

from hivemind_jobs.core.names import validate_table_prefix
from hivemind_jobs.errors import SchemaError

__all__ = [
    "SQL",
    "Migration",
    "QueryBook",
    "load_migrations",
    "parse_named_queries",
    "split_statements",
    "to_pyformat",
]

#: SQL text that came from the project's own .sql files (never built from values).
SQL = NewType("SQL", str)

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z][a-z0-9_]*)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_PREFIX_TOKEN = "{p}"  # noqa: S105 - a placeholder in SQL files, not a secret


def to_pyformat(sql: str) -> str:
    """``:name`` placeholders as the server drivers' ``%(name)s`` (literal ``%`` doubled)."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def parse_named_queries(text: str, source: str) -> dict[str, str]:
    """Split a query file into ``{name: sql}``; duplicate or empty queries are errors."""
    queries: dict[str, str] = {}
    matches = list(_NAME_LINE.finditer(text))
    if not matches:
        raise SchemaError(f"{source}: no '-- name: ...' blocks found")
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = "\n".join(
            line for line in text[match.end() : end].strip().splitlines() if not line.lstrip().startswith("--")
        ).strip()
        body = body.removesuffix(";").strip()
        name = match.group(1)
        if not body:
            raise SchemaError(f"{source}: query {name!r} is empty")
        if name in queries:
            raise SchemaError(f"{source}: query {name!r} is defined twice")
        queries[name] = body
    return queries


def _substitute(sql: str, prefix: str, namespace: str | None = None, quote: str = '"') -> SQL:
    """Fill in the table prefix; with a ``namespace`` (a PostgreSQL schema, a MySQL database)
    every quoted table name is also qualified: ``"{p}job"`` becomes ``"ns"."prefix_job"``."""
    if namespace is not None:
        sql = sql.replace(quote + _PREFIX_TOKEN, f"{quote}{namespace}{quote}.{quote}{_PREFIX_TOKEN}")
    return SQL(sql.replace(_PREFIX_TOKEN, prefix))


class QueryBook(Mapping[str, SQL]):
    """The named queries of one dialect with one environment's table prefix filled in."""

    def __init__(
        self, queries: Mapping[str, str], prefix: str, *, namespace: str | None = None, quote: str = '"'
    ) -> None:
        validate_table_prefix(prefix)
        self.prefix = prefix
        self.namespace = namespace
        self.quote = quote
        self._queries = {name: _substitute(sql, prefix, namespace, quote) for name, sql in queries.items()}

    def table(self, name: str) -> str:
        """The quoted (and qualified) name of this environment's table ``name`` (``"job"``)."""
        return _substitute(f"{self.quote}{_PREFIX_TOKEN}{name}{self.quote}", self.prefix, self.namespace, self.quote)

    @classmethod
    def load(cls, package: str, prefix: str) -> QueryBook:
        return cls(read_named_queries(package), prefix)

    def __getitem__(self, name: str) -> SQL:
        try:
            return self._queries[name]
        except KeyError:
            raise KeyError(f"no SQL query named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def __len__(self) -> int:
        return len(self._queries)


_cache: dict[str, dict[str, str]] = {}


def read_named_queries(package: str) -> dict[str, str]:
    """All named queries in ``<package>/sql/*.sql`` (cached per package)."""
    if package not in _cache:
        queries: dict[str, str] = {}
        folder = resources.files(package).joinpath("sql")
        for entry in sorted(folder.iterdir(), key=lambda item: item.name):
            if not entry.name.endswith(".sql"):
                continue
            for name, sql in parse_named_queries(entry.read_text("utf-8"), f"{package}/sql/{entry.name}").items():
                if name in queries:
                    raise SchemaError(f"{package}: query {name!r} is defined in more than one file")
                queries[name] = sql
        _cache[package] = queries
    return _cache[package]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, prefix: str, namespace: str | None = None, quote: str = '"') -> list[SQL]:
        return [_substitute(statement, prefix, namespace, quote) for statement in split_statements(self.sql)]


def split_statements(sql: str) -> list[str]:
    """Statements separated by ``;`` at the end of a line (comment lines are dropped)."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().removesuffix(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def load_migrations(package: str) -> list[Migration]:
    """The migrations in ``<package>/migrations``, ordered; versions must be 1, 2, 3... without gaps."""
    folder = resources.files(package).joinpath("migrations")
    migrations = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            migrations.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
        elif entry.name.endswith(".sql"):
            raise SchemaError(f"{package}/migrations/{entry.name} is not named NNNN_description.sql")
    migrations.sort(key=lambda migration: migration.version)
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise SchemaError(f"{package}: migration {expected:04d} is missing (found {migration.version:04d})")
    return migrations
