"""The allow list judges what a stored target resolves to, not only the module its name starts with."""

from __future__ import annotations

import os
from typing import Any

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core import invocation as invocation_module
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import AllowList, DefaultActivator, Invocation, prepare_call, resolve_target
from hivemind_jobs.core.job import MiddlewareEntry
from hivemind_jobs.errors import JobDefinitionError
from hivemind_jobs.middleware.pipeline import resolve_middleware
from tests.unit import allow_list_targets as targets

MODULE = targets.__name__
ALLOW = AllowList(modules=[MODULE])
codec = Codec()


def _refused(target: str, allow: AllowList = ALLOW) -> str:
    with pytest.raises(JobDefinitionError) as caught:
        resolve_target(target, allow)
    message = str(caught.value)
    assert "not allowed" in message, message
    return message


def _prepare(target: str, arguments: dict[str, Any], allow: AllowList, method: str | None = None) -> Any:
    return prepare_call(
        Invocation(target, method, False, arguments),
        codec=codec,
        activator=DefaultActivator(),
        allow=allow,
        injections={},
    )


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("os.system", "goes through the module os"),
        ("os.path.join", "goes through the module os"),
        ("json_module.dumps", "goes through the module json"),
        ("Jobs.helpers.system", "goes through the module os"),
        ("legit.__globals__", "goes through the function"),
        ("Jobs.static.__globals__", "goes through the function"),
        ("Jobs.decoder.decode", "goes through a json.decoder.JSONDecoder object"),
        ("os", "resolves to the module os"),
        ("json_module", "resolves to the module json"),
        ("print", "resolves to the built-in builtins.print"),
        ("Jobs.system", "resolves to the built-in"),
        ("dumps", "resolves to json:dumps, which is defined outside the allowed modules"),
        ("echo", "resolves to click.utils:echo, which is defined outside"),
        ("Jobs.run_process", "resolves to subprocess:run, which is defined outside"),
        ("subprocess.run", "goes through the module subprocess"),
        ("Thread", "resolves to threading:Thread, which is defined outside"),
        ("add", "resolves to tests.sample_jobs:add, which is defined outside"),
        ("Jobs.__class__", "resolves to builtins:type"),
        ("Jobs.mro", "resolves to the built-in"),
        ("Jobs.__subclasses__", "resolves to the built-in"),
        ("Jobs.__dict__", "object, not a function or class"),
        ("Jobs.decoder", "object, not a function or class"),
    ],
)
def test_targets_leading_out_of_the_allowed_module_are_refused(target: str, why: str) -> None:
    assert ALLOW.permits(f"{MODULE}:{target}")  # the name alone passes: the resolved object does not
    message = _refused(f"{MODULE}:{target}")
    assert why in message, message


def test_a_builtin_the_module_never_imported_is_not_found() -> None:
    with pytest.raises(JobDefinitionError, match="not found"):
        resolve_target(f"{MODULE}:len", ALLOW)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("legit", targets.legit),
        ("Jobs", targets.Jobs),
        ("Jobs.static", targets.Jobs.static),
        ("Jobs.build", targets.Jobs.build),
        ("Jobs.Nested.deep", targets.Jobs.Nested.deep),
        ("Middle", targets.Middle),
    ],
)
def test_functions_and_classes_defined_in_the_allowed_module_resolve(target: str, expected: Any) -> None:
    assert resolve_target(f"{MODULE}:{target}", ALLOW) == expected


def test_a_prefix_allows_what_is_defined_anywhere_under_it() -> None:
    # tests.sample_jobs:add re-exported here: allowed once its own module is
    assert resolve_target(f"{MODULE}:add", AllowList(modules=["tests"])) is targets.add
    assert resolve_target(f"{MODULE}:add", AllowList(modules=[MODULE, "tests.sample_jobs"])) is targets.add


def test_exact_targets_must_name_the_object_itself() -> None:
    assert resolve_target(f"{MODULE}:legit", AllowList(targets=[f"{MODULE}:legit"])) is targets.legit
    assert resolve_target(f"{MODULE}:Jobs.build", AllowList(targets=[f"{MODULE}:Jobs.build"])) == targets.Jobs.build
    # listed under the name it was stored with, but defined elsewhere
    message = _refused(f"{MODULE}:dumps", AllowList(targets=[f"{MODULE}:dumps"]))
    assert "json:dumps" in message
    _refused(f"{MODULE}:os.system", AllowList(targets=[f"{MODULE}:os.system"]))
    _refused(f"{MODULE}:add", AllowList(targets=[f"{MODULE}:add"]))
    # the object's own name is what is listed: allowed under any stored path reaching it
    assert resolve_target(f"{MODULE}:add", AllowList(targets=["tests.sample_jobs:add"], modules=[MODULE])) is (
        targets.add
    )


def test_allow_all_still_trusts_every_target() -> None:
    assert resolve_target(f"{MODULE}:os.system", AllowList(allow_all=True)) is os.system
    assert resolve_target(f"{MODULE}:dumps", AllowList(allow_all=True)) is targets.dumps


def test_prepare_call_refuses_a_walk_to_os_system() -> None:
    with pytest.raises(JobDefinitionError, match=r"not allowed.*the module os"):
        _prepare(f"{MODULE}:os.system", {"command": "true"}, ALLOW)
    call = _prepare(f"{MODULE}:legit", {"value": 4}, ALLOW)
    assert call.function(*call.args, **call.kwargs) == 8


def test_the_runnable_cache_never_serves_a_refused_target() -> None:
    key = (f"{MODULE}:os.path.join", None)
    invocation_module._runnables.pop(key, None)
    with pytest.raises(JobDefinitionError, match="not allowed"):
        _prepare(f"{MODULE}:os.path.join", {"a": "x"}, ALLOW)
    assert key not in invocation_module._runnables  # refused: not cached

    trusted = _prepare(f"{MODULE}:os.path.join", {"a": "x"}, AllowList(allow_all=True))
    assert trusted.function is os.path.join
    assert key in invocation_module._runnables  # cached for allow_all ...
    with pytest.raises(JobDefinitionError, match="goes through the module os"):
        _prepare(f"{MODULE}:os.path.join", {"a": "x"}, ALLOW)  # ... and refused again for a restricting list

    dumps_key = (f"{MODULE}:dumps", None)
    invocation_module._runnables.pop(dumps_key, None)
    _prepare(f"{MODULE}:dumps", {"obj": 1}, AllowList(allow_all=True))
    with pytest.raises(JobDefinitionError, match="defined outside"):
        _prepare(f"{MODULE}:dumps", {"obj": 1}, ALLOW)
    _prepare(f"{MODULE}:dumps", {"obj": 1}, AllowList(modules=[MODULE, "json"]))


def test_a_remembered_verdict_holds_only_for_its_allow_list_as_it_is() -> None:
    modules = [MODULE]
    allow = AllowList(modules=modules)
    assert _prepare(f"{MODULE}:legit", {"value": 1}, allow).function is targets.legit
    assert _prepare(f"{MODULE}:legit", {"value": 2}, allow).args == (2,)  # the remembered verdict
    with pytest.raises(JobDefinitionError, match="not allowed"):
        _prepare(f"{MODULE}:legit", {"value": 3}, AllowList(modules=["elsewhere"]))  # another list: judged again
    modules[:] = ["elsewhere"]  # the same list, changed in place: judged again
    with pytest.raises(JobDefinitionError, match="not allowed"):
        _prepare(f"{MODULE}:legit", {"value": 4}, allow)
    modules[:] = [MODULE]
    invocation_module._runnables.clear()  # resolved afresh: the verdict is reached again
    assert _prepare(f"{MODULE}:legit", {"value": 5}, allow).args == (5,)


def test_instance_method_jobs_need_a_class_defined_in_an_allowed_module() -> None:
    call = _prepare(f"{MODULE}:Jobs", {"value": 1}, ALLOW, method="run")
    assert call.function(*call.args, **call.kwargs) == 4
    with pytest.raises(JobDefinitionError, match="threading:Thread, which is defined outside"):
        _prepare(f"{MODULE}:Thread", {}, ALLOW, method="run")
    # a class defined here may run a method it inherits
    call = _prepare(f"{MODULE}:Wrapped", {}, ALLOW, method="work")
    assert call.function() == "worked"
    with pytest.raises(JobDefinitionError, match="goes through the module subprocess"):
        _prepare(f"{MODULE}:subprocess.Popen", {}, ALLOW, method="wait")


def test_middleware_types_go_through_the_same_checks() -> None:
    def resolve(type_name: str) -> Any:
        return resolve_middleware(
            (), [MiddlewareEntry(type_name, None, None)], codec=codec, activator=DefaultActivator(), allow=ALLOW
        )

    assert isinstance(resolve(f"{MODULE}:Middle")[0].instance, targets.Middle)
    with pytest.raises(JobDefinitionError, match="threading:Thread, which is defined outside"):
        resolve(f"{MODULE}:Thread")
    with pytest.raises(JobDefinitionError, match="goes through the module subprocess"):
        resolve(f"{MODULE}:subprocess.Popen")
    with pytest.raises(JobDefinitionError, match="not allowed in this process; allow its module"):
        resolve("subprocess:Popen")


def test_the_refusal_is_fatal_for_the_retry_policy() -> None:
    with pytest.raises(JobDefinitionError) as caught:
        resolve_target(f"{MODULE}:os.system", ALLOW)
    assert hm.RetryPolicy(max_retries=10).is_fatal(caught.value)
    assert not hm.RetryPolicy(max_retries=10).should_retry(0, caught.value)
