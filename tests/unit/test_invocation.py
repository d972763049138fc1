from __future__ import annotations

import dataclasses
import functools
import inspect
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import (
    AllowList,
    DefaultActivator,
    Invocation,
    build_invocation,
    instance,
    prepare_call,
)
from hivemind_jobs.errors import ArgumentBindingError, JobDefinitionError
from tests import sample_jobs as jobs

codec = Codec()
INJECTED = (hm.JobContext,)
ALLOW = AllowList(modules=("tests",))


def build(function: Any, *args: Any, **kwargs: Any) -> Invocation:
    return build_invocation(function, args, kwargs, codec, INJECTED)


class FakeContext:
    """Stands in for the worker's context object; only its identity matters here."""


CONTEXT = FakeContext()


def prepare(invocation: Invocation, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "codec": codec,
        "activator": DefaultActivator(),
        "allow": ALLOW,
        "injections": {hm.JobContext: CONTEXT},
    }
    options.update(overrides)
    return prepare_call(Invocation.from_json(invocation.to_json()), **options)


def test_module_function() -> None:
    invocation = build(jobs.add, 1, b=5)
    assert (invocation.target, invocation.method, invocation.is_async) == ("tests.sample_jobs:add", None, False)
    assert invocation.arguments == {"a": 1, "b": 5}
    call = prepare(invocation)
    assert call.function(*call.args, **call.kwargs) == 6


def test_a_built_invocation_is_the_dataclass_it_names() -> None:
    """Built without the dataclass's __init__ (on the hot path): every field set, as __init__ sets them."""
    for built in (build(jobs.add, 1, b=5), build(jobs.async_job, "e-1")):
        made = Invocation(built.target, built.method, built.is_async, dict(built.arguments))
        assert built == made and repr(built) == repr(made)
        assert {name: getattr(built, name) for name in vars(made)} == vars(made)
        assert built.problem is None and built.raw is None
        assert Invocation.from_json(built.to_json()) == made
        with pytest.raises(dataclasses.FrozenInstanceError):
            built.target = "other:function"  # type: ignore[misc]


def test_defaults_are_not_stored() -> None:
    assert build(jobs.add, 1).arguments == {"a": 1}


def test_async_function_with_injected_context() -> None:
    invocation = build(jobs.async_job, "entity-1")
    assert invocation.is_async and invocation.arguments == {"entity_id": "entity-1"}
    call = prepare(invocation)
    assert call.is_async and call.args == (CONTEXT, "entity-1")


def test_context_parameter_anywhere_is_injected() -> None:
    invocation = build(jobs.takes_context_later, 3)
    call = prepare(invocation)
    assert call.function(*call.args, **call.kwargs) == 3
    assert CONTEXT in call.args or CONTEXT in call.kwargs.values()


def test_instance_method_is_activated_per_execution() -> None:
    invocation = build(instance(jobs.ConsoleWriterJob).run, "text")
    assert (invocation.target, invocation.method) == ("tests.sample_jobs:ConsoleWriterJob", "run")
    first, second = prepare(invocation), prepare(invocation)
    assert isinstance(first.instance, jobs.ConsoleWriterJob) and first.instance is not second.instance
    assert first.function(*first.args, **first.kwargs) == "> text"


def test_async_instance_method() -> None:
    invocation = build(instance(jobs.ConsoleWriterJob).run_async, "x")
    assert invocation.is_async and prepare(invocation).is_async


def test_custom_activator() -> None:
    class Container:
        def activate(self, cls: type[Any]) -> Any:
            return cls("injected-dependency")

    invocation = build(instance(jobs.NeedsArguments).run, 4)
    call = prepare(invocation, activator=Container())
    assert call.function(*call.args, **call.kwargs) == "injected-dependency:4"
    with pytest.raises(JobDefinitionError, match="without arguments"):
        prepare(invocation)


def test_static_and_class_methods() -> None:
    static = build(jobs.ConsoleWriterJob.static_run, 2)
    assert static.target == "tests.sample_jobs:ConsoleWriterJob.static_run" and static.method is None
    call = prepare(static)
    assert call.function(*call.args) == 2
    classmethod_ = build(jobs.ConsoleWriterJob.class_run, 3)
    call = prepare(classmethod_)
    assert call.function(*call.args) == "ConsoleWriterJob:3"


def test_variadic_and_positional_only_parameters() -> None:
    invocation = build(jobs.variadic, 1, 2, 3, x="a")
    assert invocation.arguments == {"first": 1, "rest": [2, 3], "named": {"x": "a"}}
    call = prepare(invocation)
    assert call.args == (1, 2, 3) and call.kwargs == {"x": "a"}
    positional = prepare(build(jobs.positional_only, 1, b=2))
    assert positional.function(*positional.args, **positional.kwargs) == 3


def test_rich_arguments_roundtrip_through_the_hints() -> None:
    invoice = jobs.Invoice(1, Decimal("3.10"), datetime(2030, 1, 1, tzinfo=UTC), ("t",))
    invocation = build(
        jobs.everything,
        invoice,
        jobs.Color.RED,
        datetime(2030, 1, 1, tzinfo=UTC),
        timedelta(seconds=3),
        UUID(int=5),
        b"raw",
        (1, "x"),
        {"a"},
        {1: "one"},
    )
    call = prepare(invocation)
    bound = inspect.signature(jobs.everything).bind(*call.args, **call.kwargs).arguments
    assert bound["invoice"] == invoice and bound["color"] is jobs.Color.RED
    assert bound["pair"] == (1, "x") and bound["tags"] == {"a"} and bound["mapping"] == {1: "one"}


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "message"),
    [
        (jobs.add, (), {}, "missing a required argument: 'a'"),
        (jobs.add, (1, 2, 3), {}, "too many positional arguments"),
        (jobs.add, ("1",), {}, "argument 'a': expected int, got str"),
        (jobs.add, (1,), {"c": 3}, "unexpected keyword argument 'c'"),
        (jobs.hello_world, (object(),), {}, "expected str"),
        (jobs.variadic, (1, "x"), {}, r"\*rest\[0\]: expected int"),
        (jobs.async_job, (CONTEXT, "e"), {}, "too many positional arguments"),
    ],
)
def test_bad_arguments_raise_before_anything_is_stored(function: Any, args: Any, kwargs: Any, message: str) -> None:
    with pytest.raises(ArgumentBindingError, match=message):
        build(function, *args, **kwargs)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (lambda: None, "inside a function|cannot be a job"),
        (functools.partial(jobs.add, 1), "cannot be a job"),
        (jobs.ConsoleWriterJob().run, "bound to a live ConsoleWriterJob"),
        (jobs.ConsoleWriterJob.run, r"instance method; use instance\(ConsoleWriterJob\).run"),
        (print, "cannot be a job"),
    ],
)
def test_callables_that_cannot_be_found_by_name_are_refused(target: Any, message: str) -> None:
    with pytest.raises(JobDefinitionError, match=message):
        build(target)


def test_nested_function_is_refused() -> None:
    def nested() -> None:
        return None

    with pytest.raises(JobDefinitionError, match="inside a function"):
        build(nested)


def test_instance_proxy_only_names_methods() -> None:
    with pytest.raises(JobDefinitionError, match="not an instance method"):
        _ = instance(jobs.ConsoleWriterJob).static_run
    with pytest.raises(JobDefinitionError, match="only names a job target"):
        instance(jobs.ConsoleWriterJob).run(None, "x")  # type: ignore[arg-type]


def test_allow_list_guards_imports() -> None:
    invocation = build(jobs.add, 1)
    with pytest.raises(JobDefinitionError, match="not allowed"):
        prepare(invocation, allow=AllowList(modules=("myapp",)))
    assert AllowList(modules=("tests",)).permits("tests.sample_jobs:add")
    assert not AllowList(modules=("test",)).permits("tests.sample_jobs:add")  # prefix is a module boundary
    assert AllowList(targets=("tests.sample_jobs:add",)).permits("tests.sample_jobs:add")


def test_missing_target_and_changed_signature_fail_clearly() -> None:
    gone = Invocation("tests.sample_jobs:no_such_function", None, False, {})
    with pytest.raises(JobDefinitionError, match="not found"):
        prepare(gone)
    changed = Invocation("tests.sample_jobs:add", None, False, {"a": 1, "zzz": 2})
    with pytest.raises(JobDefinitionError, match="no longer has parameter"):
        prepare(changed)
    undecodable = Invocation("tests.sample_jobs:add", None, False, {"a": {"$hm": "martian"}})
    with pytest.raises(hm.SerializationError):
        prepare(undecodable)


def test_describe_and_json_roundtrip() -> None:
    invocation = build(jobs.hello_world, "world")
    assert invocation.describe() == 'tests.sample_jobs:hello_world(message="world")'
    assert Invocation.from_json(invocation.to_json()) == invocation
    with pytest.raises(hm.SerializationError):
        Invocation.from_json("{}")
