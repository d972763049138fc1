"""Rows written while the standard library wrote JSON text read the same with msgspec, and back.

Jobs, their arguments, state fields and data are stored with one JSON library and read with the
other, on every backend, so a database written before msgspec (or by a process without it) stays
readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core import codec as codec_module
from tests import backends
from tests.sample_jobs import Color, Invoice, everything

DATA: Any = {
    "floats": [1e16, 1e-7, 0.1, -2.5e-300],
    "big": [2**64, -(2**63) - 1, 10**30],
    "text": "zürich 東京 😀 \u2028 \x00",
    "when": datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "nothing": None,
    "exact": Decimal("0.10"),
}


@pytest.fixture
def restore_library() -> Iterator[None]:
    yield
    codec_module._use_json_library("msgspec")


@pytest.mark.parametrize(("writer", "reader"), [("stdlib", "msgspec"), ("msgspec", "stdlib")])
async def test_rows_read_the_same_with_either_library(
    db_url: str, writer: str, reader: str, restore_library: None
) -> None:
    arguments: dict[str, Any] = {
        "invoice": Invoice(7, Decimal("12.50"), datetime(2030, 1, 1, tzinfo=UTC), ("x",)),
        "color": Color.RED,
        "when": datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC),
        "wait": timedelta(seconds=1.5),
        "ident": UUID(int=99),
        "blob": b"\x00\x01",
        "pair": (2**70, "two"),
        "tags": {"a", "b"},
        "mapping": {1: "one", 2**65: "big"},
        "anything": [1e-7, 2**64, None, "null"],
    }
    codec_module._use_json_library(writer)
    async with hm.HiveMind(db_url) as hive:
        job_id = await hive.jobs.create(everything, **arguments)
        await hive.jobs.set_data(job_id, "payload", DATA)
        await hive.jobs.change_state(job_id, hm.Failed(reason="a reason", message="1e-07 ±∞"))
        stored = backends.raw(db_url, "SELECT invocation FROM {job} WHERE id = ?", job_id)[0][0]

    codec_module._use_json_library(reader)
    async with hm.HiveMind(db_url) as hive:
        job = await hive.jobs.get(job_id)
        assert job.invocation.problem is None
        assert job.invocation.to_json() == stored  # read, not rewritten
        assert hm.Codec().decode(job.invocation.arguments["anything"]) == arguments["anything"]
        assert job.state.name == "Failed"
        assert isinstance(job.state, hm.Failed) and job.state.message == "1e-07 ±∞"
        assert [state.name for state in job.states] == ["Created", "Enqueued", "Failed"]
        assert await hive.jobs.get_data(job_id, "payload") == DATA
