"""Job data (named JSON, written at once) and job logs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

import hivemind_jobs as hm
from tests import sample_jobs as jobs


async def test_data_roundtrip_typed(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    invoice = jobs.Invoice(3, Decimal("1.50"), datetime(2030, 1, 1, tzinfo=UTC))
    await hive.jobs.set_data(job_id, "EntityProcessed", True)
    await hive.jobs.set_data(job_id, "invoice", invoice)
    await hive.jobs.set_data(job_id, "counts", [1, 2])
    assert await hive.jobs.get_data(job_id, "EntityProcessed", bool) is True
    assert await hive.jobs.get_data(job_id, "invoice", jobs.Invoice) == invoice
    assert await hive.jobs.get_data(job_id, "counts", tuple[int, ...]) == (1, 2)
    await hive.jobs.set_data(job_id, "counts", [3])
    assert await hive.jobs.get_data(job_id, "counts") == [3]


async def test_missing_data_and_jobs(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    with pytest.raises(hm.JobDataNotFoundError, match="no data item 'nope'"):
        await hive.jobs.get_data(job_id, "nope")
    assert await hive.jobs.try_get_data(job_id, "nope", default="fallback") == "fallback"
    with pytest.raises(hm.JobNotFoundError):
        await hive.jobs.set_data(job_id + 100, "x", 1)
    with pytest.raises(hm.InvalidNameError):
        await hive.jobs.set_data(job_id, "bad name", 1)
    with pytest.raises(hm.SerializationError):
        await hive.jobs.set_data(job_id, "x", object())


async def test_data_written_inside_a_locked_job_is_immediate(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    async with hive.jobs.get_with_lock(job_id) as job:
        await job.set_data("progress", 50)
        assert await hive.jobs.get_data(job_id, "progress") == 50  # visible before any save
        assert await job.get_data("progress", int) == 50


async def test_logs(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    await hive.jobs.add_log(job_id, "starting", level=logging.DEBUG)
    await hive.jobs.add_log(job_id, "Entity was already processed. Skipping", level=logging.WARNING, logger="app")
    try:
        raise RuntimeError("kaput")
    except RuntimeError as error:
        await hive.jobs.add_log(job_id, "failed", level=logging.ERROR, exception=error)
    entries = await hive.jobs.get_logs(job_id)
    assert [(entry.level_name, entry.message) for entry in entries] == [
        ("DEBUG", "starting"),
        ("WARNING", "Entity was already processed. Skipping"),
        ("ERROR", "failed"),
    ]
    assert entries[1].logger == "app"
    assert entries[2].exception_type == "builtins.RuntimeError" and "kaput" in (entries[2].traceback or "")
    warnings = await hive.jobs.get_logs(job_id, min_level=logging.WARNING)
    assert len(warnings) == 2
    page = await hive.jobs.get_logs(job_id, after_id=entries[0].id, limit=1)
    assert [entry.message for entry in page] == ["Entity was already processed. Skipping"]
    with pytest.raises(hm.ConfigurationError):
        await hive.jobs.get_logs(job_id, limit=0)
    with pytest.raises(hm.JobNotFoundError):
        await hive.jobs.add_log(job_id + 1, "nobody")
