"""The storage conformance suite: every backend must pass it unchanged.

Subclass :class:`StorageConformance` in a test module and provide the ``storage_factory`` fixture:
a callable that returns a new, *unopened* storage for a given table prefix, all on one database::

    class TestMyBackend(StorageConformance):
        @pytest.fixture
        def storage_factory(self, tmp_path):
            return lambda prefix: MyStorage(..., table_prefix=prefix)

The suite talks to the storage only through :mod:`hivemind_jobs.storage.protocol`. It is split by
noun, one class per part; :class:`StorageConformance` is all of them. Every operation of the
``Transaction`` protocol is exercised by some part (:mod:`~hivemind_jobs.testing.conformance.coverage`
lists the ones that are not, so a test can insist there are none).
"""

from __future__ import annotations

from hivemind_jobs.testing.conformance.colonies import ColonyConformance
from hivemind_jobs.testing.conformance.jobs import JobConformance
from hivemind_jobs.testing.conformance.maintenance import MaintenanceConformance
from hivemind_jobs.testing.conformance.queue import QueueConformance
from hivemind_jobs.testing.conformance.recurring import RecurringConformance
from hivemind_jobs.testing.conformance.search import SearchConformance
from hivemind_jobs.testing.conformance.support import StorageFactory, new_job
from hivemind_jobs.testing.conformance.transactions import TransactionConformance

__all__ = [
    "ColonyConformance",
    "JobConformance",
    "MaintenanceConformance",
    "QueueConformance",
    "RecurringConformance",
    "SearchConformance",
    "StorageConformance",
    "StorageFactory",
    "TransactionConformance",
    "new_job",
]


class StorageConformance(
    TransactionConformance,
    JobConformance,
    SearchConformance,
    QueueConformance,
    ColonyConformance,
    RecurringConformance,
    MaintenanceConformance,
):
    """Behaviour every storage backend must have: all parts of the suite."""
