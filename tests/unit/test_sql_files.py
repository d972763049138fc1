"""The SQL files of each dialect: named queries, migrations and their parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hivemind_jobs
from hivemind_jobs.storage.sql import load_migrations, parse_named_queries, read_named_queries, split_statements

PACKAGE_ROOT = Path(hivemind_jobs.__file__).parent


#: dialects whose operations are written once (storage/server/operations.py) must name the same queries
SERVER_DIALECTS = ("postgres", "mysql")
#: queries only one server dialect has, with the reason
#: postgres: LISTEN/NOTIFY wake-ups (MySQL has none), the planner settings of the claim and the
#: set-based (unnest) forms of batch writes, used by name + "_set"
DIALECT_ONLY = {
    "postgres": {
        "queue_notify",
        "queue_claim_prepare",
        "job_insert_set",
        "job_state_insert_set",
        "job_property_upsert_set",
        "queue_upsert_set",
    }
}


def test_every_dialect_folder_is_known() -> None:
    dialects = {path.name for path in (PACKAGE_ROOT / "storage").iterdir() if (path / "sql").is_dir()}
    assert dialects == {"sqlite", *SERVER_DIALECTS}


def test_server_dialects_define_the_same_queries() -> None:
    names = {
        dialect: set(read_named_queries(f"hivemind_jobs.storage.{dialect}")) - DIALECT_ONLY.get(dialect, set())
        for dialect in SERVER_DIALECTS
    }
    reference = names[SERVER_DIALECTS[0]]
    for dialect, queries in names.items():
        assert queries == reference, f"{dialect} differs: {queries ^ reference}"


@pytest.mark.parametrize("dialect", ["sqlite", *SERVER_DIALECTS])
def test_every_named_query_is_used(dialect: str) -> None:
    queries = read_named_queries(f"hivemind_jobs.storage.{dialect}")
    sources = "".join(path.read_text("utf-8") for path in (PACKAGE_ROOT / "storage").rglob("*.py"))
    unused = {
        name for name in queries if f'"{name}"' not in sources and not (name.endswith("_set") and name[:-4] in queries)
    }
    assert not unused, f"named queries never used: {unused}"


def test_sql_only_formats_the_table_prefix() -> None:
    for path in (PACKAGE_ROOT / "storage").rglob("*.sql"):
        text = path.read_text("utf-8")
        placeholders = set(re.findall(r"\{[^}]*\}", text))
        assert placeholders <= {"{p}"}, f"{path} formats {placeholders}"


@pytest.mark.parametrize("dialect", ["sqlite", *SERVER_DIALECTS])
def test_migrations_are_numbered_without_gaps(dialect: str) -> None:
    migrations = load_migrations(f"hivemind_jobs.storage.{dialect}")
    assert [migration.version for migration in migrations] == list(range(1, len(migrations) + 1))
    assert all(migration.statements("hm_x_") for migration in migrations)


def test_query_file_parser() -> None:
    text = "-- name: first\nSELECT 1;\n-- a comment\n-- name: second\nSELECT\n  2\n"
    assert parse_named_queries(text, "t") == {"first": "SELECT 1", "second": "SELECT\n  2"}
    with pytest.raises(hivemind_jobs.SchemaError, match="twice"):
        parse_named_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "t")
    with pytest.raises(hivemind_jobs.SchemaError, match="empty"):
        parse_named_queries("-- name: a\n-- nothing\n", "t")
    assert split_statements("CREATE TABLE a (x INT);\n-- c\nCREATE INDEX i ON a (x);\n") == [
        "CREATE TABLE a (x INT)",
        "CREATE INDEX i ON a (x)",
    ]
