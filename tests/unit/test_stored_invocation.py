"""Reading a stored invocation or middleware list never raises: what cannot be decoded is marked."""

from __future__ import annotations

import json

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import AllowList, DefaultActivator, Invocation, prepare_call
from hivemind_jobs.core.job import MiddlewareEntry


@pytest.mark.parametrize(
    ("text", "problem", "target"),
    [
        ("{not json", "stored invocation is not valid JSON (Expecting property name", "<undecodable>"),
        ("", "stored invocation is not valid JSON", "<undecodable>"),
        ("[1, 2]", "stored invocation is a JSON list, not an object", "<undecodable>"),
        ('{"v": 99, "target": "a.b:c"}', "format version 99, but this hivemind_jobs reads only version 1", "a.b:c"),
        ('{"v": "1", "target": "a.b:c"}', "format version '1'", "a.b:c"),
        ('{"v": true, "target": "a.b:c"}', "format version True", "a.b:c"),
        ('{"v": 1}', "has no target", "<undecodable>"),
        ('{"v": 1, "target": 5}', "has no target", "<undecodable>"),
        ('{"v": 1, "target": "a:b", "method": 3}', "method is not text", "a:b"),
        ('{"v": 1, "target": "a:b", "async": "yes"}', "'async' flag is not true or false", "a:b"),
        ('{"v": 1, "target": "a:b", "args": [1]}', "arguments are not a JSON object", "a:b"),
        ("[" * 100_000, "stored invocation is not valid JSON", "<undecodable>"),
    ],
)
def test_undecodable_invocations_are_marked_not_raised(text: str, problem: str, target: str) -> None:
    invocation = Invocation.from_stored(text)
    assert invocation.problem is not None and problem in invocation.problem, invocation.problem
    assert len(invocation.problem) <= 500
    assert invocation.target == target
    assert invocation.raw == text
    assert invocation.to_json() == text  # written back as it was stored
    assert "cannot run" in invocation.describe()
    with pytest.raises(hm.SerializationError, match="stored invocation"):
        Invocation.from_json(text)


def test_a_valid_invocation_reads_without_problem_and_an_old_row_without_version_too() -> None:
    text = json.dumps({"v": 1, "target": "tests.sample_jobs:add", "async": False, "args": {"a": 1}})
    invocation = Invocation.from_stored(text)
    assert invocation == Invocation("tests.sample_jobs:add", None, False, {"a": 1})
    assert invocation.problem is None and invocation.raw is None
    assert Invocation.from_stored('{"target": "tests.sample_jobs:add"}').problem is None


def test_an_undecodable_invocation_never_runs() -> None:
    invocation = Invocation.from_stored('{"v": 2, "target": "tests.sample_jobs:add", "args": {"a": 1}}')
    with pytest.raises(hm.SerializationError, match="format version 2"):
        prepare_call(
            invocation, codec=Codec(), activator=DefaultActivator(), allow=AllowList(allow_all=True), injections={}
        )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "stored middleware list is not valid JSON"),
        ('{"type": "a:B"}', "stored middleware list is a JSON dict, not a list"),
        ("[1]", "stored middleware entry 0 is a JSON int, not an object"),
        ('[{"type": "a:B"}, {"input": 1}]', "stored middleware entry 1 has no type"),
        ('[{"type": 5}]', "stored middleware entry 0 has no type"),
        (
            '[{"type": "a:B", "priority": "high"}]',
            "stored middleware entry 0 (a:B) has a priority that is not an integer",
        ),
        ('[{"type": "a:B", "priority": true}]', "has a priority that is not an integer"),
    ],
)
def test_malformed_middleware_lists_are_reported_not_raised(text: str, problem: str) -> None:
    entries, found = MiddlewareEntry.read_list(text)
    assert entries == () and found is not None and problem in found, found
    with pytest.raises(hm.SerializationError, match="stored middleware"):
        MiddlewareEntry.list_from_json(text)


def test_valid_middleware_lists_read() -> None:
    assert MiddlewareEntry.read_list("") == ((), None)
    assert MiddlewareEntry.read_list("[]") == ((), None)
    entries, problem = MiddlewareEntry.read_list('[{"type": "a:B", "input": {"x": 1}, "priority": 3}, {"type": "c:D"}]')
    assert problem is None
    assert entries == (MiddlewareEntry("a:B", {"x": 1}, 3), MiddlewareEntry("c:D", None, None))
