"""Counts by state for large tables: capped counts, per queue since a moment, over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import hivemind_jobs as hm
from tests import sample_jobs


async def test_counts_by_state_queue_and_time(hive: hm.HiveMind) -> None:
    jobs = hive.jobs
    start = datetime.now(UTC) - timedelta(minutes=1)
    mail = await jobs.options(queue="mail").create_many([hm.call(sample_jobs.add, n, n) for n in range(4)])
    report = await jobs.options(queue="reports").create(sample_jobs.do_stuff)
    for job_id in mail[:3]:
        assert await jobs.change_state(job_id, hm.Succeeded(result=1))
    assert await jobs.change_state(report, hm.Failed.from_exception(ValueError("x")))

    assert await jobs.count_by_state() == {"Succeeded": 3, "Enqueued": 1, "Failed": 1}
    assert await jobs.count_by_state(at_most=2) == {"Succeeded": 2, "Enqueued": 1, "Failed": 1}
    assert await jobs.count_by_queue(hm.Succeeded, since=start) == {"mail": 3}
    assert await jobs.count_by_queue("Failed", since=start) == {"reports": 1}
    assert await jobs.count_by_queue(hm.Succeeded, since=datetime.now(UTC) + timedelta(minutes=1)) == {}
    per_minute = await jobs.count_over_time(hm.Succeeded, since=start, every=timedelta(minutes=1))
    assert sum(per_minute.values()) == 3 and set(per_minute) <= {0, 1}
    assert await jobs.count_over_time(hm.Failed, since=start, every=timedelta(hours=1)) == {0: 1}


async def test_bad_count_arguments(hive: hm.HiveMind) -> None:
    jobs = hive.jobs
    with pytest.raises(hm.ConfigurationError, match="at_most"):
        await jobs.count_by_state(at_most=0)
    with pytest.raises(hm.ConfigurationError, match="time zone"):
        await jobs.count_by_queue(hm.Succeeded, since=datetime(2030, 1, 1))
    with pytest.raises(hm.ConfigurationError, match="every must be a positive timedelta"):
        await jobs.count_over_time(hm.Failed, since=datetime.now(UTC), every=timedelta(0))
    with pytest.raises(hm.ConfigurationError, match="state"):
        await jobs.count_by_queue(42, since=datetime.now(UTC))  # type: ignore[arg-type]
