"""The retry decision for one failed run, and the policy a job runs under: pure functions."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.retry import RetryPolicy, decide_retry, retry_policy_of


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


POLICY = RetryPolicy(max_retries=3, base_delay=timedelta(seconds=10), multiplier=2.0, jitter=0, fatal=(Fatal,))


@pytest.mark.parametrize(("retries_done", "seconds"), [(0, 10), (1, 20), (2, 40)])
def test_a_failure_with_retries_left_is_enqueued_after_the_policys_delay(retries_done: int, seconds: int) -> None:
    decision = decide_retry(POLICY, retries_done, Transient("down"))
    assert isinstance(decision, hm.Enqueued)
    assert decision.delay == timedelta(seconds=seconds) and decision.delay_until is None
    assert decision.reason == f"retry {retries_done + 1} of 3 in {seconds} s"


def test_the_retries_used_up_leave_the_job_failed() -> None:
    assert decide_retry(POLICY, 3, Transient("down")) == "gave up after 3 retries"
    assert decide_retry(RetryPolicy(max_retries=0), 0, Transient("down")) == "gave up after 0 retries"


def test_a_fatal_error_is_never_retried() -> None:
    assert decide_retry(POLICY, 0, Fatal("no")) == "fatal error: not retried"
    when = RetryPolicy(max_retries=3, fatal_when=(lambda error: "permanent" in str(error),))
    assert decide_retry(when, 0, Transient("permanent failure")) == "fatal error: not retried"
    assert isinstance(decide_retry(when, 0, Transient("blip")), hm.Enqueued)


def test_framework_errors_are_fatal_even_with_retries_left() -> None:
    assert decide_retry(POLICY, 0, hm.JobDefinitionError("not allowed")) == "fatal error: not retried"
    assert decide_retry(POLICY, 0, hm.SerializationError("cannot decode")) == "fatal error: not retried"


def test_a_fatal_error_after_the_last_retry_says_fatal() -> None:
    assert decide_retry(POLICY, 3, Fatal("no")) == "fatal error: not retried"


def test_the_jitter_comes_from_the_random_source_given() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=timedelta(seconds=10), jitter=0.5)
    first = decide_retry(policy, 0, Transient("x"), rng=random.Random(7))
    again = decide_retry(policy, 0, Transient("x"), rng=random.Random(7))
    assert isinstance(first, hm.Enqueued) and isinstance(again, hm.Enqueued)
    assert first.delay == again.delay
    assert first.delay is not None and timedelta(seconds=5) <= first.delay <= timedelta(seconds=15)


def test_a_table_of_delays_repeats_its_last_entry() -> None:
    policy = RetryPolicy(max_retries=5, delays=[timedelta(seconds=1), timedelta(seconds=60)])
    delays = []
    for retries_done in range(4):
        decision = decide_retry(policy, retries_done, Transient("x"))
        assert isinstance(decision, hm.Enqueued)
        delays.append(decision.delay)
    assert delays == [timedelta(seconds=1)] + [timedelta(seconds=60)] * 3


def test_a_job_runs_under_its_own_policy_with_the_base_fatal_types() -> None:
    own = RetryPolicy(max_retries=7, base_delay=timedelta(seconds=2), jitter=0)
    policy = retry_policy_of(own.to_json(), POLICY)
    assert policy.max_retries == 7 and policy.base_delay == timedelta(seconds=2)
    assert policy.fatal == (Fatal,)
    assert decide_retry(policy, 0, Fatal("no")) == "fatal error: not retried"


NEGATIVE = '{"max_retries": -1, "base_delay": 1, "multiplier": 2, "max_delay": 1, "jitter": 0}'


@pytest.mark.parametrize("stored", [None, 3, "not json", NEGATIVE])
def test_no_or_an_unreadable_stored_policy_falls_back_to_the_base(stored: object) -> None:
    assert retry_policy_of(stored, POLICY) is POLICY
