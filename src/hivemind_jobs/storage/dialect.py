"""What differs between SQLite, PostgreSQL and MySQL/MariaDB when a condition becomes SQL.

:mod:`hivemind_jobs.storage.compiler` writes the SQL every database understands; where the
databases disagree (binding a time, reading a JSON field, matching a pattern, comparing row
values, locking the rows a search returns, planning a property subquery) it asks the
:class:`Dialect` the backend supplies. One instance per backend: :data:`SQLITE`,
:data:`POSTGRES`, :data:`MYSQL`.

A dialect writes only fixed keywords and placeholders; every value, pattern and JSON path goes
through the ``bind`` function it is handed, which registers a bound parameter and returns its
placeholder.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

from hivemind_jobs.core.clock import to_microseconds

__all__ = [
    "MYSQL",
    "POSTGRES",
    "SQLITE",
    "Bind",
    "Dialect",
    "JsonField",
    "MySQLDialect",
    "PostgresDialect",
    "SQLiteDialect",
]

#: registers a value as a bound parameter; its placeholder (``:q3``)
Bind = Callable[[Any], str]


class JsonField(NamedTuple):
    """How SQL reads one top-level key of a JSON object column."""

    #: the key's JSON type name; never NULL (a missing key reads as the null type)
    kind: str
    #: the key's value as text, compared by code point
    value: str
    #: the literal the database uses as type name of strings
    text: str
    #: the literal the database uses as type name of null (and of a missing key)
    null: str


class Dialect(abc.ABC):
    """The SQL one database needs where the databases disagree."""

    #: the database's name (``Capabilities.dialect``)
    name: ClassVar[str]
    #: appended to a search that locks its rows: lock them, skipping rows other transactions
    #: hold (empty where a write transaction already holds the whole database)
    locking_clause: ClassVar[str] = ""
    #: ``(a, b) > (x, y)`` compares row values and the planner turns it into an index range
    row_values: ClassVar[bool] = True
    #: "the job has a property row matching ..." as a correlated ``EXISTS`` rather than an
    #: uncorrelated ``j.id IN (SELECT ...)``
    correlated_property_exists: ClassVar[bool] = False

    @abc.abstractmethod
    def bind_dt(self, value: datetime) -> Any:
        """An aware datetime as the driver binds it for the timestamp columns."""

    @abc.abstractmethod
    def json_field(self, column: str, key: str, bind: Bind) -> JsonField:
        """The top-level ``key`` (an identifier) of the JSON object in ``column``."""

    @abc.abstractmethod
    def like(self, column: str, parts: list[str | None], bind: Bind) -> str:
        """A never-NULL predicate: ``column`` matches ``parts`` (literal text pieces and ``None``
        for "any characters", as :func:`~hivemind_jobs.query.conditions.like_parts` splits a
        pattern), case-sensitively and by code point."""

    def __repr__(self) -> str:
        return f"<Dialect {self.name}>"


class SQLiteDialect(Dialect):
    """SQLite: times as integer microseconds, the JSON1 functions, GLOB for patterns."""

    name = "sqlite"

    def bind_dt(self, value: datetime) -> Any:
        return to_microseconds(value)

    def json_field(self, column: str, key: str, bind: Bind) -> JsonField:
        path = bind(f'$."{key}"')
        return JsonField(
            kind=f"COALESCE(json_type({column}, {path}), 'null')",
            value=f"json_extract({column}, {path})",
            text="'text'",
            null="'null'",
        )

    def like(self, column: str, parts: list[str | None], bind: Bind) -> str:
        # GLOB: case-sensitive like the servers' binary collations
        glob = "".join("*" if part is None else "".join(f"[{c}]" if c in "*?[" else c for c in part) for part in parts)
        return f"({column} GLOB {bind(glob)})"


class PostgresDialect(Dialect):
    """PostgreSQL: aware timestamps, jsonb operators, the "C" collation, ``FOR UPDATE OF j``."""

    name = "postgresql"
    locking_clause = " FOR UPDATE OF j SKIP LOCKED"
    # PostgreSQL plans a correlated EXISTS as a semi-join (or anti-join) at the top level and as
    # an index probe per row under OR/NOT, where an uncorrelated IN would become a hashed subplan
    # that falls back to rescanning once it outgrows work_mem.
    correlated_property_exists = True

    def bind_dt(self, value: datetime) -> Any:
        return value

    def json_field(self, column: str, key: str, bind: Bind) -> JsonField:
        name = bind(key)
        return JsonField(
            kind=f"COALESCE(jsonb_typeof(CAST({column} AS jsonb) -> CAST({name} AS text)), 'null')",
            value=f'((CAST({column} AS jsonb) ->> CAST({name} AS text)) COLLATE "C")',
            text="'string'",
            null="'null'",
        )

    def like(self, column: str, parts: list[str | None], bind: Bind) -> str:
        return f"({column} LIKE {bind(_like_escaped(parts))} ESCAPE '!')"


class MySQLDialect(Dialect):
    """MySQL/MariaDB: naive UTC datetimes, ``JSON_EXTRACT``, a binary no-pad collation, and no
    index range from row-value comparisons."""

    name = "mysql"
    locking_clause = " FOR UPDATE SKIP LOCKED"
    row_values = False

    def bind_dt(self, value: datetime) -> Any:
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def json_field(self, column: str, key: str, bind: Bind) -> JsonField:
        extract = f"JSON_EXTRACT({column}, {bind(f'$.{key}')})"
        return JsonField(
            kind=f"COALESCE(JSON_TYPE({extract}), 'NULL')",
            value=f"(JSON_UNQUOTE({extract}) COLLATE utf8mb4_nopad_bin)",
            text="'STRING'",
            null="'NULL'",
        )

    def like(self, column: str, parts: list[str | None], bind: Bind) -> str:
        # MariaDB's own range scan for LIKE 'prefix%' ends the range below characters beyond
        # U+FFFF, missing 'a😀' for 'a%'. So the LIKE is hidden from the range optimizer and the
        # index range is spelled out: [prefix, the next string after every string starting with prefix).
        like = f"CONCAT({column}, '') LIKE {bind(_like_escaped(parts))} ESCAPE '!'"
        prefix = parts[0] if parts and parts[0] is not None else ""
        if not prefix:
            return f"({like})"
        bounds = f"{column} >= {bind(prefix)}"
        following = _following_prefix(prefix)
        if following is not None:
            bounds += f" AND {column} < {bind(following)}"
        return f"({bounds} AND {like})"


def _like_escaped(parts: list[str | None]) -> str:
    """A LIKE pattern (escape character ``!``) matching ``parts``."""
    return "".join("%" if part is None else "".join(f"!{c}" if c in "!%_" else c for c in part) for part in parts)


def _following_prefix(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` in code point order
    (None when ``prefix`` is all U+10FFFF)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # surrogates are not characters
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


SQLITE: Dialect = SQLiteDialect()
POSTGRES: Dialect = PostgresDialect()
MYSQL: Dialect = MySQLDialect()
