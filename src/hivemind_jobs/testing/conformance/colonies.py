"""Conformance of the colony and daemon log operations."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from hivemind_jobs.storage.protocol import (
    DaemonLogList,
    DaemonLogRow,
    Storage,
)
from hivemind_jobs.testing.conformance.support import (
    ConformanceBase,
    colony_row,
    utc_now,
)

__all__ = ["ColonyConformance"]


class ColonyConformance(ConformanceBase):
    """Colonies report their state; their daemon logs live and die with them."""

    # ------------------------------------------------------------------ colonies and daemon logs
    async def test_colony_upsert_inserts_then_updates(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            assert await tx.colony_get("c-1") is None
            first = await tx.colony_upsert(colony_row("c-1", name="alpha", status="starting", state={"swarms": []}))
        assert (first.id, first.name, first.host, first.pid, first.status) == (
            "c-1",
            "alpha",
            "host-1",
            4242,
            "starting",
        )
        assert json.loads(first.state) == {"swarms": []} and first.last_progress_at is None
        for moment in (first.started_at, first.heartbeat):
            assert moment.tzinfo is not None and abs(moment - utc_now()) < timedelta(minutes=1)
        await asyncio.sleep(0.01)
        progress = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        state: dict[str, object] = {"swarms": [{"name": "default", "drones": 4}], "counters": {"done": 7}}
        async with storage.transaction() as tx:
            second = await tx.colony_upsert(
                colony_row("c-1", name="alpha", status="running", state=state, last_progress_at=progress)
            )
        assert second.status == "running" and json.loads(second.state) == state
        assert second.last_progress_at == progress
        assert second.started_at == first.started_at and second.heartbeat > first.heartbeat
        async with storage.transaction(readonly=True) as tx:
            assert await tx.colony_get("c-1") == second
            assert await tx.colony_get("c-2") is None

    async def test_colony_list_and_delete(self, storage: Storage) -> None:
        names = {"c-1": "beta", "c-2": "alpha", "c-3": "gamma"}
        async with storage.transaction() as tx:
            for colony_id, name in names.items():
                await tx.colony_upsert(colony_row(colony_id, name=name))
        async with storage.transaction(readonly=True) as tx:
            listed = await tx.colony_list()
        assert sorted((colony.id, colony.name) for colony in listed) == sorted(names.items())
        async with storage.transaction() as tx:
            assert await tx.colony_delete(["c-2", "missing"]) == 1
            assert await tx.colony_delete([]) == 0
        async with storage.transaction(readonly=True) as tx:
            assert sorted(colony.id for colony in await tx.colony_list()) == ["c-1", "c-3"]
            assert await tx.colony_get("c-2") is None
            assert await tx.colony_get("c-1") is not None

    async def test_colony_delete_removes_its_daemon_logs(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            await tx.colony_upsert(colony_row("c-1"))
            await tx.colony_upsert(colony_row("c-2"))
            await tx.daemon_log_insert([DaemonLogRow("c-1", "scheduler", 20, f"m{i}") for i in range(3)])
            await tx.daemon_log_insert([DaemonLogRow("c-2", "scheduler", 20, "kept")])
        async with storage.transaction() as tx:
            deleted = await tx.colony_delete(["c-1"])
        async with storage.transaction(readonly=True) as tx:
            assert await tx.daemon_log_list(DaemonLogList("c-1")) == []
            assert [row.message for row in await tx.daemon_log_list(DaemonLogList("c-2"))] == ["kept"]
        assert deleted == 1, f"colony_delete counted {deleted} rows for one colony (its logs went with it)"

    async def test_colony_delete_stale_only_deletes_old_heartbeats(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            for colony_id in ("old", "refreshed"):
                await tx.colony_upsert(colony_row(colony_id))
            await tx.daemon_log_insert([DaemonLogRow("old", "scheduler", 20, "gone")])
        await asyncio.sleep(0.4)
        async with storage.transaction() as tx:
            await tx.colony_upsert(colony_row("refreshed"))
            await tx.colony_upsert(colony_row("new"))
            await tx.daemon_log_insert([DaemonLogRow("refreshed", "scheduler", 20, "kept")])
        async with storage.transaction() as tx:
            deleted = await tx.colony_delete_stale(timedelta(milliseconds=200))
            again = await tx.colony_delete_stale(timedelta(milliseconds=200))
        assert deleted == ["old"] and again == []
        async with storage.transaction(readonly=True) as tx:
            assert sorted(colony.id for colony in await tx.colony_list()) == ["new", "refreshed"]
            assert await tx.daemon_log_list(DaemonLogList("old")) == []
            assert [row.message for row in await tx.daemon_log_list(DaemonLogList("refreshed"))] == ["kept"]

    async def test_daemon_logs(self, storage: Storage) -> None:
        moment = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        rows = [
            DaemonLogRow("c-1", daemon, level, f"{daemon}-{level}")
            for daemon, level in (
                ("scheduler", 10),
                ("monitor", 20),
                ("scheduler", 30),
                ("monitor", 40),
                ("scheduler", 50),
            )
        ]
        async with storage.transaction() as tx:
            await tx.colony_upsert(colony_row("c-1"))
            await tx.colony_upsert(colony_row("c-2"))
            assert await tx.daemon_log_insert(rows) == 5
            assert await tx.daemon_log_insert([]) == 0
            lost = DaemonLogRow("ghost", "scheduler", 20, "lost")
            dated = DaemonLogRow("c-2", "cleaner", 30, "dated", created_at=moment)
            assert await tx.daemon_log_insert([lost, dated, lost]) == 1
        async with storage.transaction(readonly=True) as tx:
            everything = await tx.daemon_log_list(DaemonLogList("c-1"))
            scheduler = await tx.daemon_log_list(DaemonLogList("c-1", daemon="scheduler"))
            first_two = await tx.daemon_log_list(DaemonLogList("c-1", limit=2))
            rest = await tx.daemon_log_list(DaemonLogList("c-1", after_id=first_two[-1].id))
            page = await tx.daemon_log_list(DaemonLogList("c-1", daemon="scheduler", after_id=scheduler[0].id, limit=1))
            other = await tx.daemon_log_list(DaemonLogList("c-2"))
            ghost = await tx.daemon_log_list(DaemonLogList("ghost"))
        assert [entry.message for entry in everything] == [row.message for row in rows]
        assert [(entry.colony_id, entry.daemon, entry.level) for entry in everything] == [
            (row.colony_id, row.daemon, row.level) for row in rows
        ]
        assert all(entry.created_at.tzinfo is not None for entry in everything)
        assert all(abs(entry.created_at - utc_now()) < timedelta(minutes=1) for entry in everything)
        assert [entry.message for entry in scheduler] == ["scheduler-10", "scheduler-30", "scheduler-50"]
        assert len(first_two) == 2 and first_two + rest == everything
        assert [entry.message for entry in page] == ["scheduler-30"]
        assert [(entry.daemon, entry.message, entry.created_at) for entry in other] == [("cleaner", "dated", moment)]
        assert ghost == []
