"""Reading colonies (worker processes) and their daemon logs."""

from __future__ import annotations

import builtins
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hivemind_jobs.errors import ConfigurationError, HiveMindError, QueryError
from hivemind_jobs.query.colonies import check_colony_condition, colony_matches, parse_colony_order
from hivemind_jobs.query.order import MAX_PAGE
from hivemind_jobs.storage.protocol import ColonyRecord, DaemonLogList

if TYPE_CHECKING:
    from hivemind_jobs.lifecycle.services import EnvironmentServices
    from hivemind_jobs.query.conditions import Condition

__all__ = ["ColonyClient", "ColonyInfo", "ColonyNotFoundError", "DaemonLogEntry"]


class ColonyNotFoundError(HiveMindError, LookupError):
    """No colony with this id in the environment."""


@dataclass(frozen=True)
class ColonyInfo:
    id: str
    name: str
    host: str
    pid: int
    status: str
    started_at: datetime
    heartbeat: datetime
    last_progress_at: datetime | None
    state: dict[str, Any]

    @property
    def swarms(self) -> list[dict[str, Any]]:
        return list(self.state.get("swarms", []))

    @property
    def daemons(self) -> list[dict[str, Any]]:
        return list(self.state.get("daemons", []))

    @property
    def properties(self) -> dict[str, Any]:
        """The properties the colony was started with."""
        found = self.state.get("properties")
        return dict(found) if isinstance(found, dict) else {}

    def matches(self, condition: Condition) -> bool:
        """Whether this colony satisfies a colony condition (``hivemind_jobs.query.colony``)."""
        fields = {
            "id": self.id,
            "name": self.name,
            "host": self.host,
            "status": self.status,
            "started_at": self.started_at,
            "heartbeat": self.heartbeat,
        }
        return colony_matches(condition, fields, self.properties, self.daemons)

    @classmethod
    def from_record(cls, record: ColonyRecord) -> ColonyInfo:
        try:
            state = json.loads(record.state)
        except ValueError:
            state = {}
        return cls(
            record.id,
            record.name,
            record.host,
            record.pid,
            record.status,
            record.started_at,
            record.heartbeat,
            record.last_progress_at,
            state if isinstance(state, dict) else {},
        )


@dataclass(frozen=True, slots=True)
class DaemonLogEntry:
    id: int
    colony_id: str
    daemon: str
    level: int
    message: str
    created_at: datetime

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)


class ColonyClient:
    """Colonies of one environment, as they last wrote their state."""

    def __init__(self, environment: EnvironmentServices) -> None:
        self._env = environment

    async def try_get(self, colony_id: str) -> ColonyInfo | None:
        if not isinstance(colony_id, str) or not colony_id:
            raise ConfigurationError(f"a colony id is a non-empty string, got {colony_id!r}")
        async with self._env.storage.transaction(readonly=True) as tx:
            record = await tx.colony_get(colony_id)
        return None if record is None else ColonyInfo.from_record(record)

    async def get(self, colony_id: str) -> ColonyInfo:
        info = await self.try_get(colony_id)
        if info is None:
            raise ColonyNotFoundError(f"no colony {colony_id!r} in environment {self._env.name!r}")
        return info

    async def list(self) -> builtins.list[ColonyInfo]:
        async with self._env.storage.transaction(readonly=True) as tx:
            return [ColonyInfo.from_record(record) for record in await tx.colony_list()]

    async def search(
        self, where: Condition | None = None, *, order_by: str = "name", limit: int = 100
    ) -> builtins.list[ColonyInfo]:
        """The colonies matching ``where`` (``colony.status == "running"``, ``colony.prop("region") ==
        "eu"``, ``colony.daemon(daemon.status == "faulted")`` ...), in order (ties by id)."""
        condition = check_colony_condition(where)
        key, descending = parse_colony_order(order_by)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise QueryError(f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit!r}")
        found = [info for info in await self.list() if condition is None or info.matches(condition)]
        found.sort(key=lambda info: info.id, reverse=descending)
        found.sort(key=lambda info: getattr(info, key), reverse=descending)
        return found[:limit]

    async def count(self, where: Condition | None = None) -> int:
        """How many colonies match ``where``."""
        condition = check_colony_condition(where)
        return sum(1 for info in await self.list() if condition is None or info.matches(condition))

    async def delete_stale(self, older_than: timedelta) -> builtins.list[str]:
        """Remove colonies without a heartbeat for ``older_than``; returns their ids."""
        if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
            raise ConfigurationError("older_than must be a positive timedelta")
        async with self._env.storage.transaction() as tx:
            return await tx.colony_delete_stale(older_than)

    async def daemon_logs(
        self, colony_id: str, *, daemon: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> builtins.list[DaemonLogEntry]:
        if not 1 <= limit <= 10_000:
            raise ConfigurationError(f"limit must be between 1 and 10000, got {limit}")
        async with self._env.storage.transaction(readonly=True) as tx:
            rows = await tx.daemon_log_list(DaemonLogList(colony_id, daemon, after_id, limit))
        return [DaemonLogEntry(r.id, r.colony_id, r.daemon, r.level, r.message, r.created_at) for r in rows]
