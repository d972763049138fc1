"""The longest table prefix each server accepts comes from the longest name its SQL writes after
``{p}`` (tables, indexes, constraints): PostgreSQL cuts identifiers longer than 63 bytes silently
and MariaDB refuses those longer than 64 characters (error 1059)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hivemind_jobs
from hivemind_jobs.storage.sql import IDENTIFIER_LIMITS, longest_prefixed_name, max_table_prefix, prefixed_names

STORAGE = Path(hivemind_jobs.__file__).parent / "storage"
DIALECTS = {"sqlite": None, "postgres": "postgresql", "mysql": "mysql"}


@pytest.mark.parametrize("folder", sorted(DIALECTS))
def test_every_prefixed_name_in_the_sql_files_is_counted(folder: str) -> None:
    written = {
        name
        for path in (STORAGE / folder).rglob("*.sql")
        for name in re.findall(r"\{p\}(\w+)", path.read_text("utf-8"))
    }
    names = prefixed_names(f"hivemind_jobs.storage.{folder}")
    assert names == written
    assert {"schema_version", "schema_owner", "recurring_occurrence_by_created"} <= names
    if folder == "mysql":  # constraint names count too
        assert "job_continuation_parent" in names


def test_the_longest_prefixes_pinned() -> None:
    for folder in DIALECTS:
        assert longest_prefixed_name(f"hivemind_jobs.storage.{folder}") == "recurring_occurrence_by_created"
    assert max_table_prefix("hivemind_jobs.storage.postgres", "postgresql") == 63 - 31 == 32
    assert max_table_prefix("hivemind_jobs.storage.mysql", "mysql") == 64 - 31 == 33


@pytest.mark.parametrize("folder", ["postgres", "mysql"])
def test_every_generated_identifier_fits_with_the_longest_prefix(folder: str) -> None:
    dialect = DIALECTS[folder]
    assert dialect is not None
    package = f"hivemind_jobs.storage.{folder}"
    prefix = "p" * max_table_prefix(package, dialect)
    assert max(len((prefix + name).encode()) for name in prefixed_names(package)) == IDENTIFIER_LIMITS[dialect]
