"""A pooled connection the server dropped is replaced transparently when a transaction's first
operation finds it dead (nothing of that transaction existed yet), and the retry is counted."""

from __future__ import annotations

import pytest

import hivemind_jobs as hm
from tests import backends
from tests import sample_jobs as jobs


def _kill_sessions(backend_name: str, url: str) -> int:
    """Kill every server session of this test's storage; how many there were."""
    if backend_name == "postgres":
        schema = backends.url_schema(url)
        rows = backends.raw(
            url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?", f"hm-{schema}"
        )
        return len(rows)
    database = backends.url_database(url)
    rows = backends.raw(
        url, "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", database
    )
    for (session,) in rows:
        backends.raw(url, "KILL CONNECTION ?", int(session))
    return len(rows)


@pytest.mark.parametrize("backend_name", ["postgres", "mariadb"])
async def test_a_dropped_pooled_connection_is_replaced_and_counted(backend_name: str, backend_url: str) -> None:
    url = backend_url
    if backend_name == "postgres":
        url = f"{url}&application_name=hm-{backends.url_schema(url)}"
    async with hm.HiveMind(url) as hive:
        first = await hive.jobs.create(jobs.do_stuff)  # the pool now holds an idle connection
        assert _kill_sessions(backend_name, url) >= 1
        second = await hive.jobs.create(jobs.do_stuff)  # its first statement meets the dead connection
        assert (await hive.jobs.get(first)).state.name == "Enqueued"
        assert (await hive.jobs.get(second)).state.name == "Enqueued"
        assert int(hive.env().info.extras["retried"]) >= 1
