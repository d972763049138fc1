"""The conformance suite exercises every operation of the storage ``Transaction`` protocol."""

from __future__ import annotations

from typing import Protocol

from hivemind_jobs.storage.protocol import Transaction
from hivemind_jobs.testing.conformance import StorageConformance
from hivemind_jobs.testing.conformance.coverage import (
    called_methods,
    missing_operations,
    protocol_operations,
    suite_sources,
)


def test_every_transaction_operation_is_exercised_by_the_suite() -> None:
    missing = missing_operations()
    assert not missing, (
        f"the storage conformance suite never calls {', '.join(missing)}; add conformance tests "
        "(src/hivemind_jobs/testing/conformance) that check what they return and write on every backend"
    )


def test_the_inventory_sees_the_whole_protocol() -> None:
    operations = protocol_operations()
    # every async method of the protocol, wherever it is declared, plus the commit hint
    assert {"job_insert", "queue_claim", "colony_upsert", "recurring_write", "lease_acquire"} <= operations
    assert {"commit", "rollback", "commit_after_next"} <= operations
    assert "finished" not in operations  # a property, not an operation
    assert len(operations) >= 45
    assert not any(name.startswith("_") for name in operations)


def test_the_inventory_includes_the_protocols_it_is_composed_of() -> None:
    class Reading(Protocol):
        async def thing_get(self, params: int) -> str: ...

    class Writing(Protocol):
        async def thing_put(self, params: str) -> None: ...

        def thing_hint(self) -> None: ...

    class Composed(Reading, Writing, Protocol):
        @property
        def finished(self) -> bool: ...

    assert protocol_operations(Composed) == {"thing_get", "thing_put", "thing_hint"}


def test_the_check_fails_for_an_operation_no_test_calls() -> None:
    sources = suite_sources()
    assert "hivemind_jobs.testing.conformance.maintenance" in sources
    without = [text.replace(".lease_acquire(", ".lease_acquire_(") for text in sources.values()]
    assert missing_operations(without) == ["lease_acquire"]
    assert missing_operations(["async def test(tx):\n    await tx.job_insert([])\n"], Transaction) == sorted(
        protocol_operations() - {"job_insert"}
    )
    assert called_methods(["job_count(None)", "tx.job_queues"]) == frozenset()  # neither is a method call


def test_every_backend_runs_the_whole_suite() -> None:
    from tests.conformance.test_server_conformance import TestMariaDBConformance, TestPostgresConformance
    from tests.conformance.test_sqlite_conformance import TestSQLiteConformance

    for backend in (TestSQLiteConformance, TestPostgresConformance, TestMariaDBConformance):
        assert issubclass(backend, StorageConformance)
