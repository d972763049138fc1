"""Searching colonies by their columns, properties and daemons."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

import hivemind_jobs as hm
from hivemind_jobs.query import colony, daemon, where
from tests.worker.conftest import ALLOW, FAST


async def test_colonies_are_found_by_columns_properties_and_daemons(whive: hm.HiveMind) -> None:
    async def faulty(ctx: hm.DaemonContext) -> None:
        raise RuntimeError("broken")

    async def calm(ctx: hm.DaemonContext) -> None:
        await ctx.stopping.wait()

    eu = whive.colony(name="eu-1", allow=ALLOW, options=FAST, properties={"region": "eu", "cores": 8})
    eu.swarm("main", drones=1)
    eu.daemon("sync", faulty, restart=hm.RestartPolicy.NEVER)
    us = whive.colony(name="us-1", allow=ALLOW, options=FAST, properties={"region": "us", "cores": 2, "gpu": True})
    us.swarm("main", drones=1)
    us.daemon("sync", calm)
    with pytest.raises(hm.ConfigurationError, match="use text, int, float or bool"):
        whive.colony(properties={"since": datetime.now(UTC)})
    async with eu, us:
        await asyncio.sleep(0.5)  # a state sync after the faulty daemon ended
        colonies = whive.colonies
        names = [info.name for info in await colonies.search(order_by="-name")]
        assert names == ["us-1", "eu-1"]
        assert [i.name for i in await colonies.search(colony.prop("region") == "eu")] == ["eu-1"]
        assert [i.name for i in await colonies.search(colony.prop("cores") >= 4)] == ["eu-1"]
        assert await colonies.count(colony.prop("cores") >= 4.0) == 0  # a float compares with float properties
        assert [i.name for i in await colonies.search(colony.prop("gpu").missing())] == ["eu-1"]
        assert [i.name for i in await colonies.search(colony.name.like("us*"))] == ["us-1"]
        faulted = colony.daemon(daemon.name == "sync", daemon.status == hm.DaemonStatus.FAULTED)
        assert [i.name for i in await colonies.search(faulted)] == ["eu-1"]
        assert [i.name for i in await colonies.search(~faulted & (colony.status == "running"))] == ["us-1"]
        recent = colony.heartbeat >= datetime.now(UTC) - timedelta(minutes=1)
        assert await colonies.count(where(recent, colony.id.in_([eu.id, us.id]))) == 2
        assert await colonies.count(colony.started_at > datetime.now(UTC) + timedelta(hours=1)) == 0
        assert (await colonies.get(eu.id)).properties == {"region": "eu", "cores": 8}
    with pytest.raises(hm.QueryError, match="colony search takes conditions on colony"):
        await whive.colonies.search(hm.prop("region") == "eu")
    with pytest.raises(hm.QueryError, match="not to a job search"):
        await whive.jobs.search(colony.name == "eu-1")
    with pytest.raises(hm.QueryError, match="cannot order colonies"):
        await whive.colonies.search(order_by="region")
    with pytest.raises(hm.QueryError, match=r"daemon\.name and daemon\.status"):
        colony.daemon(colony.name == "x")
