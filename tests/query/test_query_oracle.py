"""Random jobs, random queries: every backend returns exactly what a pure-Python oracle returns.

Each example creates a few jobs (queues, priorities, typed properties including one name with a
different type per job, state histories with reasons and Failed fields), reads them back, then
draws queries (AND/OR/NOT over every target, LIKE with wildcards and escapes, past states) and
orders. The oracle below evaluates the documented semantics on the read-back jobs on its own; it
shares no code with the compiler. Searches (with order and limit), keyset page walks and counts
must all agree.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hivemind_jobs as hm
from tests.sample_jobs import do_stuff

BASE = datetime(2026, 1, 1, tzinfo=UTC)
UUIDS = [uuid.UUID(int=n) for n in (1, 2, 2**100)]
TEXTS = ["", " ", "a", "a ", "A", "ab", "b", "é", "e\u0301", "%", "_", "*", "\\", "a*b", "a%b", "😀", "中文", "it's"]
INTS = [-(2**62), -5, 0, 1, 2, 10, 2**40]
FLOATS = [-1.5, 0.0, 0.5, 1.0, 2.25, 1e10]
DATES = [BASE + timedelta(hours=hours) for hours in (-48, 0, 1, 5, 24 * 30)]
QUEUES = ["a", "b", "a.b", "A", "a-1", "b_2", "ab"]
STATES = ["Enqueued", "Failed", "Idle", "Deleted", "Succeeded", "Created", "Executing"]
REASONS = [None, "parked", "Parked", "r 2", "it's"]
EXCEPTIONS = ["ValueError", "KeyError", "a'b", "é", "Value*Error"]
PATTERNS = ["*", "a*", "*b", "a\\*b", "*\\\\*", "%", "_", "a_", "*é*", "A*", "", "*'*", "Value*", "a*b*", "*a"]
PROPERTY_NAMES = ["t", "n", "f", "b", "d", "u", "x"]
OPS = ["==", "!=", "<", "<=", ">", ">="]
JOB_ORDERS = ["id", "-id", "created", "-created", "modified", "-modified", "queue", "-queue", "priority", "-priority"]
PROPERTY_ORDERS = ["property:t", "-property:t", "property:n", "-property:n", "property:x", "-property:x"]


# ----------------------------------------------------------------------------- data


def property_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(TEXTS),
        st.sampled_from(INTS),
        st.sampled_from(FLOATS),
        st.booleans(),
        st.sampled_from(DATES),
        st.sampled_from(UUIDS),
    )


def job_specs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "queue": st.sampled_from(QUEUES),
            "priority": st.integers(0, 4),
            "properties": st.fixed_dictionaries(
                {},
                optional={
                    "t": st.sampled_from(TEXTS),
                    "n": st.sampled_from(INTS),
                    "f": st.sampled_from(FLOATS),
                    "b": st.booleans(),
                    "d": st.sampled_from(DATES),
                    "u": st.sampled_from(UUIDS),
                    "x": property_values(),
                },
            ),
            "history": st.lists(
                st.sampled_from(["failed", "idle", "deleted", "succeeded", "enqueued"]), min_size=0, max_size=3
            ),
            "exception": st.sampled_from(EXCEPTIONS),
            "reason": st.sampled_from(REASONS),
        }
    )


def new_state(step: str, spec: dict[str, Any]) -> hm.State:
    if step == "failed":
        return hm.Failed(exception_type=spec["exception"], message="m", reason=spec["reason"])
    if step == "idle":
        return hm.Idle(reason=spec["reason"])
    if step == "deleted":
        return hm.Deleted(reason=spec["reason"])
    if step == "succeeded":
        return hm.Succeeded(reason=spec["reason"])
    return hm.Enqueued(reason=spec["reason"])


# ----------------------------------------------------------------------------- queries
# A query is a nested tuple; ``build`` makes the library's condition, ``holds`` is the oracle.


def leaf_queries(jobs: list[hm.BackgroundJob]) -> st.SearchStrategy[tuple[Any, ...]]:
    moments = sorted({moment for job in jobs for moment in (job.created_at, job.modified_at) if moment is not None})
    nearby = st.sampled_from(moments).flatmap(
        lambda moment: st.sampled_from([moment, moment - timedelta(microseconds=1), moment + timedelta(microseconds=1)])
    )
    elected = sorted({state.elected_at for job in jobs for state in job.states if state.elected_at is not None})
    state_leaves = state_level_queries(st.sampled_from(elected))
    return st.one_of(
        st.tuples(st.just("prop"), st.sampled_from(PROPERTY_NAMES), st.sampled_from(OPS), property_values()),
        st.tuples(
            st.just("prop_in"),
            st.sampled_from(PROPERTY_NAMES),
            st.one_of(st.lists(st.sampled_from(TEXTS), max_size=3), st.lists(st.sampled_from(INTS), max_size=3)),
        ),
        st.tuples(st.just("prop_like"), st.sampled_from(PROPERTY_NAMES), st.sampled_from(PATTERNS)),
        st.tuples(st.just("prop_exists"), st.sampled_from(PROPERTY_NAMES)),
        st.tuples(st.just("prop_missing"), st.sampled_from(PROPERTY_NAMES)),
        st.tuples(st.just("queue"), st.sampled_from(OPS), st.sampled_from([*QUEUES, "", "a "])),
        st.tuples(st.just("queue_like"), st.sampled_from(PATTERNS)),
        st.tuples(st.just("queue_in"), st.lists(st.sampled_from(QUEUES), max_size=3)),
        st.tuples(st.just("priority"), st.sampled_from(OPS), st.integers(0, 4)),
        st.tuples(st.just("id"), st.sampled_from(OPS), st.sampled_from([job.id for job in jobs])),
        st.tuples(st.just("created"), st.sampled_from(OPS), nearby),
        st.tuples(st.just("modified"), st.sampled_from(OPS), nearby),
        state_leaves,
        st.tuples(st.just("past"), st.lists(state_leaves, min_size=1, max_size=2)),
    )


def state_level_queries(elected: st.SearchStrategy[datetime]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.one_of(
        st.tuples(st.just("state"), st.sampled_from(["==", "!="]), st.sampled_from(STATES)),
        st.tuples(st.just("state_in"), st.lists(st.sampled_from(STATES), max_size=3)),
        st.tuples(st.just("state_like"), st.sampled_from(["*ed", "F*", "*"])),
        st.tuples(st.just("elected"), st.sampled_from(OPS), elected),
        st.tuples(st.just("reason"), st.sampled_from(OPS), st.sampled_from([r for r in REASONS if r])),
        st.tuples(st.just("reason_like"), st.sampled_from(PATTERNS)),
        st.tuples(st.just("reason_exists"), st.booleans()),
        st.tuples(
            st.just("field"),
            st.sampled_from(["exception_type", "message", "nothing"]),
            st.sampled_from(OPS),
            st.sampled_from([*EXCEPTIONS, "m"]),
        ),
        st.tuples(st.just("field_like"), st.sampled_from(["exception_type", "message"]), st.sampled_from(PATTERNS)),
        st.tuples(st.just("field_exists"), st.sampled_from(["exception_type", "message", "reason"]), st.booleans()),
    )


def queries(jobs: list[hm.BackgroundJob]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.recursive(
        leaf_queries(jobs),
        lambda inner: st.one_of(
            st.tuples(st.just("and"), st.lists(inner, min_size=1, max_size=3)),
            st.tuples(st.just("or"), st.lists(inner, min_size=1, max_size=3)),
            st.tuples(st.just("not"), inner),
        ),
        max_leaves=6,
    )


def _compare(target: Any, op: str, value: Any) -> hm.Condition:
    comparisons: dict[str, Callable[[], hm.Condition]] = {
        "==": lambda: target == value,
        "!=": lambda: target != value,
        "<": lambda: target < value,
        "<=": lambda: target <= value,
        ">": lambda: target > value,
        ">=": lambda: target >= value,
    }
    return comparisons[op]()


def build(query: tuple[Any, ...]) -> hm.Condition:
    kind = query[0]
    if kind == "and":
        return hm.where(*(build(item) for item in query[1]))
    if kind == "or":
        return hm.any_of(*(build(item) for item in query[1]))
    if kind == "not":
        return ~build(query[1])
    if kind == "past":
        return hm.past_state(*(build(item) for item in query[1]))
    if kind == "prop":
        return _compare(hm.prop(query[1]), query[2], query[3])
    if kind == "prop_in":
        return hm.prop(query[1]).in_(query[2])
    if kind == "prop_like":
        return hm.prop(query[1]).like(query[2])
    if kind == "prop_exists":
        return hm.prop(query[1]).exists()
    if kind == "prop_missing":
        return hm.prop(query[1]).missing()
    if kind == "queue":
        return _compare(hm.job.queue, query[1], query[2])
    if kind == "queue_like":
        return hm.job.queue.like(query[1])
    if kind == "queue_in":
        return hm.job.queue.in_(query[1])
    if kind == "priority":
        return _compare(hm.job.priority, query[1], query[2])
    if kind == "id":
        return _compare(hm.job.id, query[1], query[2])
    if kind == "created":
        return _compare(hm.job.created_at, query[1], query[2])
    if kind == "modified":
        return _compare(hm.job.modified_at, query[1], query[2])
    if kind == "state":
        return hm.state == query[2] if query[1] == "==" else hm.state != query[2]
    if kind == "state_in":
        return hm.state.is_(*query[1])
    if kind == "state_like":
        return hm.state.name.like(query[1])
    if kind == "elected":
        return _compare(hm.state.elected_at, query[1], query[2])
    if kind == "reason":
        return _compare(hm.state.reason, query[1], query[2])
    if kind == "reason_like":
        return hm.state.reason.like(query[1])
    if kind == "reason_exists":
        return hm.state.reason.exists() if query[1] else hm.state.reason.missing()
    if kind == "field":
        return _compare(hm.state.field(query[1]), query[2], query[3])
    if kind == "field_like":
        return hm.state.field(query[1]).like(query[2])
    if kind == "field_exists":
        field = hm.state.field(query[1])
        return field.exists() if query[2] else field.missing()
    raise AssertionError(kind)


# ----------------------------------------------------------------------------- the oracle

_PYTHON_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def like(pattern: str, text: str) -> bool:
    """``*`` is any run of characters, ``\\*`` a star, ``\\\\`` a backslash; the rest is literal."""
    regex, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "*\\":
            regex.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        regex.append(".*" if char == "*" else re.escape(char))
        index += 1
    return re.fullmatch("".join(regex), text, re.DOTALL) is not None


def stored_type(value: Any) -> str:
    """The type a value is stored (and compared) as."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, datetime):
        return "datetime"
    return "text"  # str, and UUID by its text


def comparable(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def compare_typed(stored: Any, op: str, value: Any) -> bool:
    """A property comparison: only values of the same stored type compare."""
    if stored is None or stored_type(stored) != stored_type(value):
        return False
    return _PYTHON_OPS[op](comparable(stored), comparable(value))


def state_holds(query: tuple[Any, ...], state: hm.State) -> bool:
    kind = query[0]
    if kind == "and":
        return all(state_holds(item, state) for item in query[1])
    if kind == "state":
        return _PYTHON_OPS[query[1]](state.name, query[2])
    if kind == "state_in":
        return state.name in query[1]
    if kind == "state_like":
        return like(query[1], state.name)
    if kind == "elected":
        return _PYTHON_OPS[query[1]](state.elected_at, query[2])
    if kind == "reason":
        return state.reason is not None and _PYTHON_OPS[query[1]](state.reason, query[2])
    if kind == "reason_like":
        return state.reason is not None and like(query[1], state.reason)
    if kind == "reason_exists":
        return (state.reason is not None) == query[1]
    fields = state.persisted_fields()
    if kind == "field":
        value = fields.get(query[1])
        return isinstance(value, str) and _PYTHON_OPS[query[2]](value, query[3])
    if kind == "field_like":
        value = fields.get(query[1])
        return isinstance(value, str) and like(query[2], value)
    if kind == "field_exists":
        return (fields.get(query[1]) is not None) == query[2]
    raise AssertionError(kind)


def holds(query: tuple[Any, ...], job: hm.BackgroundJob) -> bool:
    kind = query[0]
    properties = job.properties
    if kind == "and":
        return all(holds(item, job) for item in query[1])
    if kind == "or":
        return any(holds(item, job) for item in query[1])
    if kind == "not":
        return not holds(query[1], job)
    if kind == "past":
        return any(state_holds(("and", query[1]), state) for state in job.states[:-1])
    if kind == "prop":
        return compare_typed(properties.get(query[1]), query[2], query[3])
    if kind == "prop_in":
        return any(compare_typed(properties.get(query[1]), "==", value) for value in query[2])
    if kind == "prop_like":
        stored = properties.get(query[1])
        return stored is not None and stored_type(stored) == "text" and like(query[2], comparable(stored))
    if kind == "prop_exists":
        return query[1] in properties
    if kind == "prop_missing":
        return query[1] not in properties
    if kind == "queue":
        return _PYTHON_OPS[query[1]](job.queue, query[2])
    if kind == "queue_like":
        return like(query[1], job.queue)
    if kind == "queue_in":
        return job.queue in query[1]
    if kind == "priority":
        return _PYTHON_OPS[query[1]](int(job.priority), query[2])
    if kind == "id":
        return _PYTHON_OPS[query[1]](job.id, query[2])
    if kind == "created":
        return _PYTHON_OPS[query[1]](job.created_at, query[2])
    if kind == "modified":
        return _PYTHON_OPS[query[1]](job.modified_at, query[2])
    return state_holds(query, job.state)


def ordered(jobs: list[hm.BackgroundJob], order_by: str) -> list[int]:
    """Job ids in ``order_by`` order: ties by id; jobs without the sort property last."""
    descending = order_by.startswith("-")
    key = order_by.lstrip("-")
    if key.startswith("property:"):
        name = key.removeprefix("property:")
        present = [job for job in jobs if name in job.properties]
        missing = [job for job in jobs if name not in job.properties]

        def sort_key(job: hm.BackgroundJob) -> tuple[Any, ...]:
            value = job.properties[name]
            kind = "uuid" if isinstance(value, uuid.UUID) else stored_type(value)
            return (kind, comparable(value), job.id)

        present.sort(key=sort_key, reverse=descending)
        missing.sort(key=lambda job: job.id, reverse=descending)
        return [job.id for job in present + missing]
    attribute = {"id": "id", "created": "created_at", "modified": "modified_at"}.get(key, key)
    return [job.id for job in sorted(jobs, key=lambda job: (getattr(job, attribute), job.id), reverse=descending)]


# ----------------------------------------------------------------------------- the test


async def _create(hive: hm.HiveMind, specs: list[dict[str, Any]]) -> list[hm.BackgroundJob]:
    jobs = hive.jobs
    ids = []
    for spec in specs:
        job_id = await jobs.options(
            queue=spec["queue"], priority=spec["priority"], properties=spec["properties"]
        ).create(do_stuff)
        for step in spec["history"]:
            await jobs.change_state(job_id, new_state(step, spec))
        ids.append(job_id)
    return [await jobs.get(job_id) for job_id in ids]


async def _check(
    hive: hm.HiveMind, jobs: list[hm.BackgroundJob], query: tuple[Any, ...], order_by: str, limit: int
) -> None:
    scope = hm.job.id >= jobs[0].id
    condition = hm.where(scope, build(query))
    expected = [job for job in jobs if holds(query, job)]
    expected_ids = ordered(expected, order_by)
    client = hive.jobs
    assert await client.count(condition) == len(expected), query
    page = await client.search(condition, order_by=order_by, limit=limit)
    assert [job.id for job in page] == expected_ids[:limit], (query, order_by)
    if order_by.lstrip("-").startswith("property:"):
        walked = [job.id for job in await client.search(condition, order_by=order_by, limit=limit, page=2)]
        assert walked == expected_ids[limit : 2 * limit], (query, order_by)
        return
    walked = [job.id for job in page]
    while page.next_cursor is not None:
        page = await client.search(condition, order_by=order_by, limit=limit, after=page.next_cursor)
        walked += [job.id for job in page]
    assert walked == expected_ids, (query, order_by)


@pytest.mark.timeout(600)
def test_queries_return_what_the_oracle_returns(db_url: str) -> None:
    loop = asyncio.new_event_loop()
    hive = hm.HiveMind(db_url)
    loop.run_until_complete(hive.__aenter__())
    try:

        @settings(
            max_examples=int(os.environ.get("HIVEMIND_QUERY_EXAMPLES", "40")),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(specs=st.lists(job_specs(), min_size=1, max_size=10), data=st.data())
        def check(specs: list[dict[str, Any]], data: st.DataObject) -> None:
            jobs = loop.run_until_complete(_create(hive, specs))
            for _ in range(6):
                query = data.draw(queries(jobs), label="query")
                order_by = data.draw(st.sampled_from(JOB_ORDERS + PROPERTY_ORDERS), label="order_by")
                limit = data.draw(st.integers(1, 4), label="limit")
                loop.run_until_complete(_check(hive, jobs, query, order_by, limit))

        check()
    finally:
        loop.run_until_complete(hive.__aexit__(None, None, None))
        loop.close()
