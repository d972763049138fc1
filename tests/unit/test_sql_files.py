"""The SQL files of each dialect: named queries, migrations and their parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hivemind_jobs
from hivemind_jobs.storage.sql import load_migrations, parse_named_queries, read_named_queries, split_statements

PACKAGE_ROOT = Path(hivemind_jobs.__file__).parent


DIALECTS = ("sqlite", "postgres", "mysql")
#: dialects whose operations are written once (storage/server/operations.py)
SERVER_DIALECTS = ("postgres", "mysql")
SERVERS = frozenset(SERVER_DIALECTS)
#: the only queries not every dialect defines: name -> (the dialects that do, why the others do not).
#: Every other query name is defined by all three, so an operation reads and writes through the same
#: query names on every backend.
DIALECT_ONLY: dict[str, tuple[frozenset[str], str]] = {
    "clock_now": (SERVERS, "SQLite's database clock is read in the connection's own thread (now_us), not by SQL"),
    "job_last_id": (
        frozenset({"sqlite"}),
        "sqlite3's executemany reports no ids: a batch's consecutive ids end at last_insert_rowid(); the servers "
        "get them from the insert itself",
    ),
    "queue_notify": (frozenset({"postgres"}), "LISTEN/NOTIFY wake-ups (MySQL and SQLite have no such channel)"),
    "queue_change_probe": (
        frozenset({"mysql"}),
        "idle colonies' probe for other processes' new jobs (PostgreSQL notifies, SQLite checks its WAL file)",
    ),
    "queue_claim_prepare": (frozenset({"postgres"}), "planner settings for the claim's index walk"),
    "job_insert_set": (frozenset({"postgres"}), "set-based (unnest) form of a batch insert, used by name + '_set'"),
    "job_state_insert_set": (frozenset({"postgres"}), "set-based (unnest) form of a batch insert"),
    "job_property_upsert_set": (frozenset({"postgres"}), "set-based (unnest) form of a batch upsert"),
    "queue_upsert_set": (frozenset({"postgres"}), "set-based (unnest) form of a batch upsert"),
    "queue_start_claimed_set": (
        SERVERS,
        "the claimed jobs started as one UPDATE (unnest on PostgreSQL, a derived table on MySQL); SQLite runs "
        "the statement per row in-process",
    ),
    "limit_lock": (
        SERVERS,
        "a limit key's row lock, taken by claims of limited jobs; SQLite's write transaction already excludes "
        "every other claim",
    ),
    "limit_try_lock": (
        SERVERS,
        "a limit key's row lock if free (a second claim in one transaction); SQLite needs no key locks",
    ),
    "job_update_set": (
        SERVERS,
        "a batch of saves as one UPDATE (unnest on PostgreSQL, a derived table on MySQL); SQLite runs the "
        "statement per row in-process",
    ),
    "queue_claim_start_lean": (
        frozenset({"postgres"}),
        "claim and start in one data-modifying WITH statement (MySQL has none; SQLite's claim runs in-process)",
    ),
    "queue_start_revert": (
        SERVERS,
        "undoes, within its transaction, a start a lean claim wrote for a job that cannot run",
    ),
    "queue_start_revert_state": (
        frozenset({"mysql"}),
        "the history row of queue_start_revert (PostgreSQL's statement deletes it in its WITH)",
    ),
    "job_finish_fenced": (
        frozenset({"postgres"}),
        "a worker's outcomes fenced and written in one data-modifying WITH statement (MySQL reads the fences "
        "first; SQLite's saves run in-process)",
    ),
    "job_state_insert_range": (
        frozenset({"sqlite"}),
        "a history row shared by a batch of jobs just inserted, written for their consecutive ids at once "
        "(INSERT ... SELECT); the servers send a batch's rows in one statement per table",
    ),
    "queue_insert_range": (
        frozenset({"sqlite"}),
        "the queue entries of a batch of alike jobs just inserted, for their consecutive ids at once",
    ),
    "job_insert_plain": (
        frozenset({"postgres"}),
        "job_insert with about half of its parameters for the most common new job (a round trip's parameters "
        "cost the client and the server per create; the other dialects bind a job's rows by name)",
    ),
}


def _queries(dialect: str) -> dict[str, str]:
    return read_named_queries(f"hivemind_jobs.storage.{dialect}")


def test_every_dialect_folder_is_known() -> None:
    dialects = {path.name for path in (PACKAGE_ROOT / "storage").iterdir() if (path / "sql").is_dir()}
    assert dialects == set(DIALECTS)


def test_every_dialect_defines_the_same_queries() -> None:
    names = {dialect: set(_queries(dialect)) for dialect in DIALECTS}
    everywhere = frozenset(DIALECTS)
    differences = {}
    for name in sorted(set().union(*names.values())):
        defined = frozenset(dialect for dialect in DIALECTS if name in names[dialect])
        expected = DIALECT_ONLY[name][0] if name in DIALECT_ONLY else everywhere
        if defined != expected:
            differences[name] = f"defined by {sorted(defined)}, expected {sorted(expected)}"
    assert not differences, f"query names differ between dialects: {differences}"


def test_dialect_only_queries_are_few_exist_and_say_why() -> None:
    for name, (dialects, reason) in DIALECT_ONLY.items():
        assert dialects and dialects < frozenset(DIALECTS), name
        assert reason.strip(), name
        assert all(name in _queries(dialect) for dialect in dialects), name
    # set-based forms of a batch write (``<name>_set``) stand for a query every dialect defines;
    # the other dialect-only queries stay few
    batch_forms = [name for name in DIALECT_ONLY if name.endswith("_set")]
    for name in batch_forms:
        assert all(name[: -len("_set")] in _queries(dialect) for dialect in DIALECTS), name
    # the servers' limit key locks are two of them; PostgreSQL's one-statement claim, the lean
    # claims' undo, PostgreSQL's one-statement finish and its plain create four more; MySQL's
    # second statement of that undo one more; SQLite's batch of alike jobs two more
    assert len(DIALECT_ONLY) - len(batch_forms) <= 14


_USED_NAME = re.compile(r'(?:\bq|queries)\["([a-z_0-9]+)"\]|write_rows\(q, "([a-z_0-9]+)"')


@pytest.mark.parametrize(
    ("sources", "dialects"),
    [("sqlite", ("sqlite",)), ("server", SERVER_DIALECTS), ("postgres", ("postgres",)), ("mysql", ("mysql",))],
)
def test_every_query_the_code_names_exists(sources: str, dialects: tuple[str, ...]) -> None:
    text = "".join(path.read_text("utf-8") for path in (PACKAGE_ROOT / "storage" / sources).rglob("*.py"))
    used = {first or second for first, second in _USED_NAME.findall(text)}
    assert used, f"no query names found in storage/{sources}"
    for dialect in dialects:
        missing = used - set(_queries(dialect))
        assert not missing, f"storage/{sources} names queries {dialect} does not define: {missing}"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_named_query_is_used(dialect: str) -> None:
    queries = _queries(dialect)
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


@pytest.mark.parametrize("dialect", DIALECTS)
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


def test_the_postgresql_hot_path_statements_fit_the_drivers_statement_cache() -> None:
    """psycopg parses a statement's placeholders once and keeps the result only for statements up
    to a length; the claim, creation and completion statements stay under it with the longest
    schema name PostgreSQL allows and the default table prefix."""
    from psycopg import _queries

    from hivemind_jobs.storage.postgres.backend import PostgresStorage, _binary

    storage = PostgresStorage(
        "postgresql://127.0.0.1/test?schema=" + "s" * 63, environment="default", table_prefix="hm_default_"
    )
    sent = {name: _binary(storage.queries[name]) for name in ("queue_claim_start_lean", "job_finish_fenced")}
    sent |= {name: storage.queries[name] for name in ("queue_claim_select", "continuation_links_many")}
    for name, sql in sent.items():
        length = len(sql.encode())
        assert length <= _queries.MAX_CACHED_STATEMENT_LENGTH, (name, length)
    # as written: indented, for people reading the printed schema and the query files
    assert "\n    " in storage.queries["queue_claim_start_lean"]
    assert "\n    " not in sent["queue_claim_start_lean"]


def test_the_postgresql_claims_walk_the_queue_alike() -> None:
    """The one-statement claim (queue_claim_start_lean) repeats the general claim's walk
    (queue_claim_select): which entries are due, which jobs are skipped for their limits, the order
    and the row locks must stay the same in both."""
    queries = _queries("postgres")

    def walk(name: str) -> str:
        text = queries[name]
        start = text.index('FROM "{p}queue" AS q')
        end = text.index("SKIP LOCKED", start)
        return "\n".join(line.strip() for line in text[start:end].splitlines())

    assert walk("queue_claim_start_lean") == walk("queue_claim_select")
    assert "FOR UPDATE OF q, j" in walk("queue_claim_select")
