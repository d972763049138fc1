"""Arguments that no database can store (a cycle, a lone surrogate) are refused by ``create`` with a
SerializationError (an ArgumentSerializationError), before anything is written."""

from __future__ import annotations

from typing import Any

import pytest

import hivemind_jobs as hm
from tests import backends


def keep(value: Any) -> None:
    return None


def keep_list(values: list[Any]) -> None:
    return None


def keep_named(**named: Any) -> None:
    return None


def _circular_list() -> list[Any]:
    circular: list[Any] = [1]
    circular.append(circular)
    return circular


def _circular_dict() -> dict[str, Any]:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    return circular


CASES = [
    pytest.param(keep, (_circular_list(),), {}, "'value'", id="circular-list"),
    pytest.param(keep_list, (_circular_list(),), {}, "'values'", id="circular-list-typed"),
    pytest.param(keep, (_circular_dict(),), {}, "'value'", id="circular-dict"),
    pytest.param(keep, ("a\ud800b",), {}, "'value'", id="lone-surrogate"),
    pytest.param(keep, ({"key\udc00": 1},), {}, "'value'", id="lone-surrogate-in-a-key"),
    pytest.param(keep_list, (["fine", "\udfff"],), {}, "'values'", id="lone-surrogate-in-a-list"),
    pytest.param(keep_named, (), {"x": "\ud83d"}, "named", id="lone-surrogate-in-kwargs"),
]


@pytest.mark.parametrize(("function", "args", "kwargs", "where"), CASES)
async def test_unstorable_arguments_are_refused_by_create(
    hive: hm.HiveMind, db_url: str, function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], where: str
) -> None:
    with pytest.raises(hm.SerializationError) as caught:
        await hive.jobs.create(function, *args, **kwargs)
    assert isinstance(caught.value, hm.ArgumentBindingError)
    assert function.__name__ in str(caught.value) and where in str(caught.value), caught.value
    assert backends.count(db_url, "job") == 0
    # the hive is still usable
    job_id = await hive.jobs.create(keep, "fine")
    assert (await hive.jobs.get(job_id)).invocation.arguments == {"value": "fine"}
