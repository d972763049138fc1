"""Named SQL queries and numbered migrations, read from each dialect's ``.sql`` files.

A query file holds blocks introduced by ``-- name: <query_name>``; every dialect defines the same
names, so an operation uses the same queries on every backend (a test checks it, and lists the few
that only some dialects need, each with its reason). Table names are written ``"{p}job"`` (quoted
in the dialect's way) and ``{p}`` is replaced by the environment's validated table prefix; nothing
else is ever formatted into SQL. Values are always bound parameters, written ``:name``.

Migrations are files ``migrations/NNNN_description.sql``; statements end with ``;`` at the end of
a line.

Every name written after ``{p}`` (tables, indexes, constraints) is known from the files, so the
longest table prefix a server accepts is derived from them (:func:`max_table_prefix`), and opening an
environment first checks that none of the names it would create is already taken by another set of
tables, ignoring case as SQLite and MySQL/MariaDB do (:func:`check_table_names`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final, NewType

from hivemind_jobs.core.names import validate_table_prefix
from hivemind_jobs.errors import ConfigurationError, SchemaError

__all__ = [
    "IDENTIFIER_LIMITS",
    "OWNER_MIGRATION",
    "SQL",
    "Migration",
    "QueryBook",
    "check_owner",
    "check_table_names",
    "load_migrations",
    "longest_prefixed_name",
    "max_table_prefix",
    "owner_version",
    "parse_named_queries",
    "prefixed_names",
    "split_statements",
    "to_numbered",
    "to_pyformat",
]

#: SQL text that came from the project's own .sql files (never built from values).
SQL = NewType("SQL", str)

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z][a-z0-9_]*)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_PREFIX_TOKEN = "{p}"  # noqa: S105 - a placeholder in SQL files, not a secret
_PREFIXED = re.compile(r"\{p\}([A-Za-z0-9_]+)")
_VERSION_TABLE = "schema_version"

#: the longest identifier each server engine accepts: PostgreSQL counts bytes (63; longer names are
#: silently cut, so two could become one), MySQL/MariaDB characters (64; longer is error 1059).
#: Prefixes are ASCII, so bytes and characters are the same here.
IDENTIFIER_LIMITS: Final = {"postgresql": 63, "mysql": 64}
#: the migration that creates the table recording which environment owns a set of tables
OWNER_MIGRATION: Final = "schema_owner"


def to_pyformat(sql: str) -> str:
    """``:name`` placeholders as the server drivers' ``%(name)s`` (literal ``%`` doubled)."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def to_numbered(sql: str) -> tuple[str, list[str]]:
    """``:name`` placeholders as SQLite's numbered ``?N`` (a name used twice keeps its number), and
    the names in number order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"?{names.index(match.group(1)) + 1}"

    return _PARAM.sub(number, sql), names


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


@functools.cache
def prefixed_names(package: str) -> frozenset[str]:
    """Every name the package's SQL writes after ``{p}``: tables, indexes and constraints."""
    texts = [migration.sql for migration in load_migrations(package)]
    texts.extend(read_named_queries(package).values())
    return frozenset(name for text in texts for name in _PREFIXED.findall(text))


def longest_prefixed_name(package: str) -> str:
    """The longest name written after ``{p}`` in the package's SQL (ties: the first in order)."""
    return max(sorted(prefixed_names(package)), key=len)


def max_table_prefix(package: str, dialect: str) -> int:
    """The longest table prefix whose every generated identifier fits the dialect's limit."""
    return IDENTIFIER_LIMITS[dialect] - len(longest_prefixed_name(package))


def owner_version(migrations: Sequence[Migration]) -> int:
    """The schema version from which the owner table exists."""
    for migration in migrations:
        if migration.name == OWNER_MIGRATION:
            return migration.version
    raise SchemaError(f"no migration named {OWNER_MIGRATION!r}")


def check_table_names(
    package: str, environment: str, prefix: str, existing: Iterable[str], *, where: str, fold_case: bool = False
) -> bool:
    """Refuse to go on when a name this environment's tables use is taken by another object.

    ``existing`` holds the names of the tables, indexes and constraints already in the database
    (or schema). Names are compared ignoring case: SQLite treats ``hm_TenantA_job`` and
    ``hm_tenanta_job`` as one table and MySQL/MariaDB their constraint names as one, so the second
    environment would share (SQLite) or half-create (MariaDB, errno 121) tables. Before this
    environment's version table exists, every name it would create must be free; after, only the
    exact names are its own. ``fold_case``: the server stores names in lower case
    (``lower_case_table_names=1``), so exact case cannot be told from the catalog (the owner table
    tells it, see :func:`check_owner`). Returns whether the version table exists.

    Raises ConfigurationError before anything is created.
    """
    own = {prefix + name for name in prefixed_names(package)}
    wanted = {name.lower() for name in own}
    found = sorted({name for name in existing if name.lower() in wanted})

    def key(name: str) -> str:
        return name.lower() if fold_case else name

    own_keys = {key(name) for name in own}
    version_table = key(prefix + _VERSION_TABLE)
    exists = any(key(name) == version_table for name in found)
    taken = [name for name in found if key(name) not in own_keys] if exists else found
    if not taken:
        return exists
    others = sorted(
        {name[: -len(_VERSION_TABLE)] for name in taken if name.lower().endswith(_VERSION_TABLE)} - {prefix}
    )
    shown = ", ".join(taken[:5]) + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
    if others:
        owners = ", ".join(repr(other) for other in others)
        reason = (
            f"the HiveMind tables with prefix {owners} are already there ({shown}), and names that differ only in "
            "case are one table on SQLite and one constraint name on MySQL/MariaDB"
        )
    else:
        reason = f"objects with names its tables need are already there ({shown}; case is ignored)"
    raise ConfigurationError(
        f"cannot use table prefix {prefix!r} for environment {environment!r} in {where}: {reason}. Nothing was "
        "created. Give the environment another name or another table_prefix"
    )


def check_owner(row: Sequence[object] | None, environment: str, prefix: str, *, where: str) -> None:
    """Refuse tables recorded as another prefix's (``row``: the owner table's environment, prefix)."""
    if row is None or row[1] == prefix:
        return
    raise ConfigurationError(
        f"cannot use table prefix {prefix!r} for environment {environment!r} in {where}: these tables belong to "
        f"environment {row[0]!r} with table prefix {row[1]!r} (the database does not tell the two apart). "
        "Give the environment another name or another table_prefix"
    )
