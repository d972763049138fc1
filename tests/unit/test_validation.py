"""Names, priorities, options, retry maths and continuation specs: validated at the edge."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.names import (
    validate_environment_name,
    validate_property_name,
    validate_queue_name,
    validate_table_prefix,
)
from hivemind_jobs.core.priority import coerce_priority
from hivemind_jobs.errors import ConfigurationError, InvalidNameError
from hivemind_jobs.lifecycle.machine import decide


@pytest.mark.parametrize("name", ["global", "Finalize", "a.b-c_d", "x" * 255])
def test_valid_queue_names(name: str) -> None:
    assert validate_queue_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 256, "has space", "semi;colon", "quote'", 'dq"', "new\nline", "ümlaut", "Main; DROP TABLE x", None, 3],
)
def test_invalid_queue_and_property_names(name: object) -> None:
    with pytest.raises(InvalidNameError):
        validate_queue_name(name)
    with pytest.raises(InvalidNameError):
        validate_property_name(name)


@pytest.mark.parametrize("name", ["main", "Tenant-A", "tenant_b", "x" * 64])
def test_valid_environment_names(name: str) -> None:
    assert validate_environment_name(name) == name


@pytest.mark.parametrize("name", ["Main; DROP TABLE hm_main_job", "a.b", "x" * 65, "", "main\n", "main "])
def test_hostile_environment_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidNameError, match="environment name"):
        validate_environment_name(name)


def test_table_prefix_cannot_carry_sql() -> None:
    assert validate_table_prefix("hm_main_") == "hm_main_"
    with pytest.raises(InvalidNameError):
        validate_table_prefix('x"; DROP TABLE y; --')


@pytest.mark.parametrize(
    ("value", "expected"), [(0, hm.Priority.CRITICAL), ("low", hm.Priority.LOW), (hm.Priority.NONE, hm.Priority.NONE)]
)
def test_priorities(value: object, expected: hm.Priority) -> None:
    assert coerce_priority(value) is expected


@pytest.mark.parametrize("value", [5, -1, True, "urgent", 1.0, None])
def test_invalid_priorities(value: object) -> None:
    with pytest.raises(ConfigurationError, match="invalid priority"):
        coerce_priority(value)


def test_priority_order_lower_first() -> None:
    assert sorted([hm.Priority.NONE, hm.Priority.CRITICAL, hm.Priority.NORMAL]) == [
        hm.Priority.CRITICAL,
        hm.Priority.NORMAL,
        hm.Priority.NONE,
    ]


def test_options_down_to_seconds_and_validated() -> None:
    options = hm.Options(lock_timeout=timedelta(seconds=1), retention=timedelta(0))
    assert options.lock_timeout == timedelta(seconds=1)
    with pytest.raises(ConfigurationError, match="at least 1 second"):
        hm.Options(lock_timeout=timedelta(milliseconds=500))
    with pytest.raises(ConfigurationError):
        hm.Options(retention=timedelta(days=-1))
    with pytest.raises(InvalidNameError):
        hm.Options(retention_states=("Succeeded; --",))
    with pytest.raises(ConfigurationError):
        hm.Options(max_election_hops=0)


def test_retry_policy_exponential_with_jitter_and_bounds() -> None:
    policy = hm.RetryPolicy(max_retries=3, base_delay=timedelta(seconds=10), max_delay=timedelta(seconds=25), jitter=0)
    assert [policy.delay_for(n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=25),
        timedelta(seconds=25),
    ]
    jittered = hm.RetryPolicy(base_delay=timedelta(seconds=100), jitter=0.2)
    rng = random.Random(7)
    delays = {jittered.delay_for(1, rng) for _ in range(50)}
    assert len(delays) > 1 and all(timedelta(seconds=80) <= d <= timedelta(seconds=120) for d in delays)
    table = hm.RetryPolicy(delays=[timedelta(seconds=1), timedelta(seconds=5)])
    assert [table.delay_for(n) for n in (1, 2, 3)] == [timedelta(seconds=1), timedelta(seconds=5), timedelta(seconds=5)]
    assert policy.should_retry(2, ValueError()) and not policy.should_retry(3, ValueError())


def test_retry_fatal_errors() -> None:
    policy = hm.RetryPolicy(fatal=(KeyError,), fatal_when=(lambda error: "permanent" in str(error),))
    assert policy.is_fatal(KeyError("x"))
    assert policy.is_fatal(RuntimeError("permanent failure"))
    assert policy.is_fatal(hm.JobDefinitionError("not allowed"))  # the framework's own are always fatal
    assert not policy.is_fatal(ValueError("transient"))  # plain runtime errors are retried
    with pytest.raises(ConfigurationError):
        hm.RetryPolicy(jitter=1.5)


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (hm.Continue.SUCCEEDED, ["Succeeded"]),
        (hm.Continue.FINISHED, ["Failed", "Succeeded"]),
        (hm.Continue.SUCCEEDED | hm.Continue.DELETED, ["Deleted", "Succeeded"]),
        (hm.Continue.ANY, None),
        (hm.Continue.EXECUTING, ["Executing"]),
        ("Idle", ["Idle"]),
        ([hm.Failed, "Custom.State"], ["Custom.State", "Failed"]),
    ],
)
def test_continuation_states(on: object, expected: list[str] | None) -> None:
    assert hm.After(1, on=on).on_states() == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"parent_id": 0},
        {"parent_id": "1"},
        {"parent_id": 1, "on": 5},
        {"parent_id": 1, "delay": timedelta(-1)},
        {"parent_id": 1, "on": []},
    ],
)
def test_invalid_continuations(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        hm.After(**kwargs)  # type: ignore[arg-type]


def test_continuation_decisions() -> None:
    waits_for_success = hm.Awaiting(parent_id=1, on_states=["Succeeded"])
    deletes_otherwise = hm.Awaiting(parent_id=1, on_states=["Succeeded"], delete_on_other_state=True)
    any_final = hm.Awaiting(parent_id=1, on_states=None)
    assert decide(waits_for_success, 1, "Succeeded") == "trigger"
    assert decide(waits_for_success, 1, "Executing") == "wait"
    assert decide(waits_for_success, 1, "Failed") == "wait"
    assert decide(deletes_otherwise, 1, "Failed") == "delete"
    assert decide(deletes_otherwise, 1, "Executing") == "wait"  # not final: the parent may still succeed
    assert decide(any_final, 1, "Deleted") == "trigger"
    assert decide(any_final, 1, "Enqueued") == "wait"
    assert decide(waits_for_success, 2, "Succeeded") == "stale"
    assert decide(hm.Idle(), 1, "Succeeded") == "stale"
