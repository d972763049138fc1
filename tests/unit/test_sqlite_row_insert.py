"""Batch inserts on SQLite write many rows per statement, bound by position: the same rows as one
statement per row with named parameters."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hivemind_jobs.storage.sql import SQL
from hivemind_jobs.storage.sqlite.operations import _insert_rows, _RowInsert, _values_row

TABLE = """CREATE TABLE t (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, size INTEGER, seen_at INTEGER, until INTEGER, note TEXT
)"""
UPSERT = SQL(
    "INSERT INTO t (id, name, size, seen_at, until, note)\n"
    "VALUES (:id, :name, :size, :now, COALESCE(:until, :now), CASE WHEN :size IS NULL THEN NULL ELSE :name END)\n"
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, size = excluded.size;"
)


def rows(count: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"n{i + offset}", "size": None if i % 3 == 0 else i * 7, "now": 1000 + i, "until": None}
        if i % 2
        else {"id": i, "name": f"n{i + offset}", "size": i, "now": 5, "until": 99 + i}
        for i in range(count)
    ]


def table(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(TABLE)
    return connection


@pytest.mark.parametrize("count", [1, 2, 250, 251, 777])
def test_many_rows_per_statement_write_what_one_statement_per_row_writes(tmp_path: Path, count: int) -> None:
    expected, actual = table(tmp_path / "expected.db"), table(tmp_path / "actual.db")
    expected.executemany(UPSERT, rows(count))
    _insert_rows(actual, UPSERT, rows(count))
    assert (
        actual.execute("SELECT * FROM t ORDER BY id").fetchall()
        == expected.execute("SELECT * FROM t ORDER BY id").fetchall()
    )
    # the conflict clause still applies to every row of a statement
    expected.executemany(UPSERT, rows(count, offset=1))
    _insert_rows(actual, UPSERT, rows(count, offset=1))
    after = actual.execute("SELECT * FROM t ORDER BY id").fetchall()
    assert after == expected.execute("SELECT * FROM t ORDER BY id").fetchall()
    assert len(after) == count and after[0][1] == "n1"


def test_each_row_binds_its_own_numbered_parameters() -> None:
    insert = _RowInsert(UPSERT)
    text = insert.text(3)
    assert text.count("VALUES") == 1 and text.endswith("excluded.size")
    # five distinct names, each bound once per row however often the row uses it
    assert "(?1, ?2, ?3, ?4, COALESCE(?5, ?4)" in text and "(?6, ?7, ?8, ?9, COALESCE(?10, ?9)" in text
    assert "ELSE ?12 END)" in text and "?15" in text and "?16" not in text
    assert insert.values(rows(2)[1]) == (1, "n1", 7, 1001, None)


@pytest.mark.parametrize("count", [2, 250, 251, 600])
def test_rows_sharing_parameters_bind_them_once_and_write_what_each_row_would(tmp_path: Path, count: int) -> None:
    shared = {"size": 5, "now": 77, "until": None}
    own = ("id", "name")
    each = [{"id": i, "name": f"n{i}", **shared} for i in range(count)]
    expected, actual = table(tmp_path / "expected.db"), table(tmp_path / "actual.db")
    expected.executemany(UPSERT, each)
    _RowInsert(UPSERT).run_shared(actual, shared, own, [value for row in each for value in (row["id"], row["name"])])
    assert (
        actual.execute("SELECT * FROM t ORDER BY id").fetchall()
        == expected.execute("SELECT * FROM t ORDER BY id").fetchall()
    )
    assert actual.execute("SELECT COUNT(*), MIN(note), MAX(until) FROM t").fetchone() == (count, "n0", 77)


def test_shared_parameters_are_numbered_once_for_every_row() -> None:
    text = _RowInsert(UPSERT).shared_text(2, ("id", "name"))
    # size, now, until shared (?1-?3); each row's id and name after them
    assert "(?4, ?5, ?1, ?2, COALESCE(?3, ?2), CASE WHEN ?1 IS NULL THEN NULL ELSE ?5 END)" in text
    assert "(?6, ?7, ?1, ?2, COALESCE(?3, ?2), CASE WHEN ?1 IS NULL THEN NULL ELSE ?7 END)" in text
    with pytest.raises(ValueError, match="not the parameters"):
        _RowInsert(UPSERT).run_shared(sqlite3.connect(":memory:"), {"size": 1}, ("id", "name"), [1, "a"])


def test_statements_it_cannot_rewrite_are_refused() -> None:
    with pytest.raises(ValueError, match="string literals"):
        _RowInsert(SQL("INSERT INTO t (id, name) VALUES (:id, 'x:y')"))
    with pytest.raises(ValueError, match="not an INSERT"):
        _values_row("UPDATE t SET name = :name")
    with pytest.raises(ValueError, match="unbalanced"):
        _values_row("INSERT INTO t (id) VALUES (:id")
