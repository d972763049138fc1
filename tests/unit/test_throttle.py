"""Limit and RateLimit values, their keys, Options.queue_limits, and how a claim applies limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.throttle import JobLimits, limit_key, queue_limit_entries
from hivemind_jobs.storage.params import QueueClaim
from hivemind_jobs.storage.rows import ClaimWalk

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: hm.Limit(max=0), "Limit max must be a positive integer"),
        (lambda: hm.Limit(max=True), "Limit max must be a positive integer"),
        (lambda: hm.Limit(max=2, key=""), "Limit key must be a non-empty string"),
        (lambda: hm.Limit(max=2, key="x" * 201), "at most 200 characters"),
        (lambda: hm.RateLimit(max=-1), "RateLimit max must be a positive integer"),
        (lambda: hm.RateLimit(max=1, per=timedelta(0)), "RateLimit per must be a timedelta of at least 1 ms"),
        (lambda: hm.RateLimit(max=1, per=5), "RateLimit per must be a timedelta"),  # type: ignore[arg-type]
    ],
)
def test_bad_values_are_refused(make: object, message: str) -> None:
    with pytest.raises(hm.ConfigurationError, match=message):
        make()  # type: ignore[operator]


def test_rate_periods_are_whole_milliseconds() -> None:
    assert hm.RateLimit(max=1, per=timedelta(minutes=2)).period_ms == 120_000
    assert hm.RateLimit(max=1).period_ms == 1000


def test_keys_fill_properties_over_arguments_over_queue_and_function() -> None:
    fields = {"queue": "q", "function": "m:f", "arguments": {"a": 1, "queue": "arg"}, "properties": {"a": "prop"}}
    assert limit_key("{a}|{queue}|{function}", default="d", **fields) == "prop|arg|m:f"  # type: ignore[arg-type]
    assert limit_key(None, default="function:m:f", **fields) == "function:m:f"  # type: ignore[arg-type]
    assert limit_key("plain", default="d", **fields) == "plain"  # type: ignore[arg-type]
    with pytest.raises(hm.ConfigurationError, match="names 'missing'"):
        limit_key("{missing}", default="d", **fields)  # type: ignore[arg-type]
    with pytest.raises(hm.ConfigurationError, match="is not a plain name"):
        limit_key("{a.__class__}", default="d", **fields)  # type: ignore[arg-type]  # no attribute lookups
    with pytest.raises(hm.ConfigurationError, match="is not a plain name"):
        limit_key("{0}", default="d", **fields)  # type: ignore[arg-type]
    with pytest.raises(hm.ConfigurationError, match="must be 1 to 200 characters"):
        limit_key("{a}", default="d", queue="q", function="f", arguments={"a": "x" * 250}, properties={})


def test_queue_limit_entries() -> None:
    limit, rate = hm.Limit(max=1), hm.RateLimit(max=2)
    assert queue_limit_entries(limit, "q") == (limit, None)
    assert queue_limit_entries((rate, limit), "q") == (limit, rate)
    for bad in ((limit, limit), (), 3, (limit, "x")):
        with pytest.raises(hm.ConfigurationError, match=r"Options.queue_limits\['q'\]"):
            queue_limit_entries(bad, "q")
    with pytest.raises(hm.ConfigurationError, match="queue_limits"):
        hm.Options(queue_limits={"q": 2})  # type: ignore[dict-item]
    with pytest.raises(hm.ConfigurationError, match="mapping of queue names"):
        hm.Options(queue_limits=[limit])  # type: ignore[arg-type]


def _row(job_id: int, limits: tuple[object, ...] = (None,) * 5) -> tuple[object, ...]:
    # (job_id, queue, priority, execution_id, execute_after, enqueued_at, current execution, sequence,
    #  state name, clock, limit_key, limit_max, rate_key, rate_max, rate_period)
    return (job_id, "q", 2, f"e{job_id}", NOW, NOW, f"e{job_id}", 1, "Enqueued", NOW, *limits)


def _walk(*rows: tuple[object, ...]) -> ClaimWalk:
    walk = ClaimWalk(QueueClaim((("q",),), 10, "owner"), lambda value: value)
    walk.next_queues()
    walk.add(list(rows))
    return walk


def test_a_claim_keeps_the_best_jobs_that_fit_their_limits() -> None:
    walk = _walk(
        _row(1, ("k", 2, None, None, None)),
        _row(2, ("k", 2, None, None, None)),
        _row(3),
        _row(4, ("k", 2, "r", 1, 1000)),
        _row(5, (None, None, "r", 2, 1000)),
        _row(6, (None, None, "r", 2, 1000)),
    )
    assert walk.limit_keys() == (["k"], ["r"])
    # one of k runs; r started once 0.5 s ago and once 5 s ago (outside its window)
    recorded = walk.apply_limits({"k": 1}, {"r": [NOW - timedelta(seconds=0.5), NOW - timedelta(seconds=5)]}, NOW)
    # 2 and 4 do not fit k (one running and 1 kept); 5 fits r (one start in the window, max 2),
    # which makes two: 6 does not fit
    assert [entry.job_id for entry in walk.claimed] == [1, 3, 5]
    assert recorded == ["r"]
    assert sorted(walk.taken) == [1, 3, 5]  # the others stay in the queue
    assert set(walk.current) == {1, 3, 5}


def test_a_rate_limit_counts_the_starts_of_the_claim_itself() -> None:
    walk = _walk(*(_row(job_id, (None, None, "r", 2, 1000)) for job_id in (1, 2, 3)))
    assert walk.apply_limits({}, {}, NOW) == ["r", "r"]
    assert [entry.job_id for entry in walk.claimed] == [1, 2]
    assert walk.rate_horizon(NOW) == NOW - timedelta(seconds=1)


def test_jobs_of_a_key_whose_lock_was_not_taken_are_put_back() -> None:
    walk = _walk(_row(1, ("a", 5, None, None, None)), _row(2, (None, None, "a", 5, 1000)), _row(3))
    assert walk.apply_limits({}, {}, NOW, unavailable=frozenset({"a"})) == []
    assert [entry.job_id for entry in walk.claimed] == [3]


def test_stored_limits_round_trip_and_refuse_other_json() -> None:
    limits = JobLimits("k", 2, "r", 5, 1000)
    assert JobLimits.from_json(limits.to_json()) == limits
    assert JobLimits.from_json(JobLimits(rate_key="r", rate_max=1, rate_period_ms=5).to_json()).limit_key is None
    for bad in ('{"limit_key": 3}', '{"limit_max": 0}', '{"rate_max": true}', '{"other": 1}', "[]"):
        with pytest.raises(ValueError, match="limits"):
            JobLimits.from_json(bad)
