"""The blocking facade has the async API's shape: every public member has its blocking twin.

For each async class the facade mirrors, every public method, property and attribute (those set in
``__init__`` too) has a member of the same name on its blocking class, and the other way round.
Methods have the same parameters: names, kinds, defaults and annotations (``inspect.signature``
and ``typing.get_type_hints``), and the same overloads; apart from ``async``, the twin returns what
the async member's awaitable gives, with the async handles (``LockedJob``, the clients,
``Transaction``...) replaced by their blocking classes. ``async with`` becomes ``with``.

The few members deliberately left out are listed with their reason (``NOT_MIRRORED``,
``SYNC_ONLY``); an entry that no longer applies fails the test too.
"""

from __future__ import annotations

import ast
import collections.abc
import functools
import inspect
import operator
import sys
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any

import pytest

import hivemind_jobs as hm
from hivemind_jobs import sync
from hivemind_jobs.client.colonies import ColonyClient
from hivemind_jobs.client.locked import LockAttempt
from hivemind_jobs.client.queues import QueueClient

#: async class -> its blocking class
PAIRS: dict[type, type] = {
    hm.HiveMind: hm.SyncHiveMind,
    hm.Environment: hm.SyncEnvironment,
    hm.Transaction: hm.SyncTransaction,
    hm.BackgroundJobClient: hm.SyncBackgroundJobClient,
    hm.LockedJob: hm.SyncLockedJob,
    hm.LockedJobs: sync.SyncLockedJobs,
    hm.JobRef: hm.SyncJobRef,
    hm.RecurringJobClient: hm.SyncRecurringJobClient,
    ColonyClient: sync.SyncColonyClient,
    QueueClient: sync.SyncQueueClient,
}
#: what the blocking twin returns instead of an async handle
HANDLES: dict[type, type] = {**PAIRS, LockAttempt: hm.SyncLockedJob}
#: classes the application constructs itself: their constructors are compared too
CONSTRUCTED = (hm.HiveMind,)
#: async dunder -> blocking dunder
CONTEXT = {"__aenter__": "__enter__", "__aexit__": "__exit__"}

#: async members without a blocking twin, and why
NOT_MIRRORED: dict[tuple[type, str], str] = {
    (hm.HiveMind, "colony"): "a colony is a worker running on an event loop of its own (await colony.run())",
    (hm.HiveMind, "lifespan"): "an ASGI lifespan, entered on the web server's event loop",
    (hm.Environment, "storage"): "the storage backend itself, an async object below the public API",
    (hm.Environment, "add_wake_listener"): "wakes drones on the environment's event loop; colonies use it",
    (hm.Environment, "wake"): "wakes this process's drones; the clients call it at commit",
    (hm.Environment, "add_pause_listener"): "tells colonies on their event loop of a pause; colonies use it",
    (hm.Environment, "queue_pauses_changed"): "tells this process's colonies of a pause; the queue client calls it",
    (hm.Environment, "check_clock"): "compares clocks in a storage transaction; colonies call it",
    (hm.Environment, "note_clock_skew"): "reports a skew a colony measured",
    (hm.Transaction, "storage_transaction"): "the storage-level transaction underneath, an async object",
    (hm.Transaction, "enqueued"): "the queues whose drones are woken at commit (bookkeeping)",
    (hm.BackgroundJobClient, "unit_of_work"): "the lifecycle unit of work the colony and the daemons write through",
}
#: blocking members without an async twin, and why
SYNC_ONLY: dict[tuple[type, str], str] = {
    (hm.SyncHiveMind, "hive"): "the async HiveMind the facade runs, for code that also has an event loop",
}

_MISSING: Any = object()


# ----------------------------------------------------------------------------- reading the classes


@dataclass(frozen=True)
class Member:
    name: str
    owner: type  # the class (in the MRO) that defines it
    kind: str  # "method", "data" (a property or an attribute)
    value: Any  # the function, the property, or the attribute's annotation (None: not annotated)


def _ours(klass: type) -> bool:
    """A class of the project (or of this test), not a builtin or ``typing`` base."""
    return klass.__module__ not in ("builtins", "typing", "abc", "collections.abc")


def _public(name: str) -> bool:
    return not name.startswith("_") or name in CONTEXT or name in CONTEXT.values()


@functools.cache
def _namespace(module_name: str) -> dict[str, Any]:
    """A module's globals plus the names it imports under ``if TYPE_CHECKING:``, to evaluate its
    annotations in."""
    module = sys.modules[module_name]
    namespace = dict(vars(module))
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            imports: list[ast.stmt] = [child for child in node.body if isinstance(child, ast.Import | ast.ImportFrom)]
            exec(compile(ast.Module(body=imports, type_ignores=[]), module_name, "exec"), namespace)
    return namespace


def _evaluate(annotation: object, module_name: str) -> Any:
    return eval(annotation, _namespace(module_name)) if isinstance(annotation, str) else annotation


def _hints(function: Any) -> dict[str, Any]:
    """``typing.get_type_hints`` in the namespace of the module that wrote the annotations (for a
    made twin, the async member's module)."""
    return typing.get_type_hints(function, globalns=_namespace(inspect.unwrap(function).__module__))


def _init_attributes(klass: type) -> dict[str, str | None]:
    """Public attributes ``__init__`` sets on ``self``, with their annotation's text if it has one."""
    init = vars(klass).get("__init__")
    if not inspect.isfunction(init):
        return {}
    found: dict[str, str | None] = {}
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(init)))):
        if isinstance(node, ast.Assign):
            targets, annotation = node.targets, None
        elif isinstance(node, ast.AnnAssign):
            targets, annotation = [node.target], ast.unparse(node.annotation)
        else:
            continue
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
                and _public(target.attr)
            ):
                found[target.attr] = annotation
    return found


def members(cls: type) -> dict[str, Member]:
    """The public members of ``cls`` defined by the project's classes in its MRO."""
    found: dict[str, Member] = {}
    for klass in reversed(cls.__mro__):
        if not _ours(klass):
            continue
        for name, annotation in _init_attributes(klass).items():
            found[name] = Member(name, klass, "data", None if annotation is None else (annotation, klass.__module__))
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if _public(name):
                found[name] = Member(name, klass, "data", (annotation, klass.__module__))
        for name, value in vars(klass).items():
            if not _public(name):
                continue
            if isinstance(value, property):
                found[name] = Member(name, klass, "data", value)
            elif inspect.isfunction(value):
                found[name] = Member(name, klass, "method", value)
            elif isinstance(value, staticmethod | classmethod):
                found[name] = Member(name, klass, "method", value.__func__)
            elif name not in found:
                found[name] = Member(name, klass, "data", None)
    return found


def _data_type(member: Member) -> Any:
    """The type a property returns or an attribute is annotated with; _MISSING when not written."""
    if isinstance(member.value, property):
        assert member.value.fget is not None
        return _hints(member.value.fget).get("return", _MISSING)
    if member.value is None:
        return _MISSING
    annotation, module_name = member.value
    return _evaluate(annotation, module_name)


# ----------------------------------------------------------------------------- comparing


def _sync_type(hint: Any, handles: dict[type, type], sync_owner: type) -> Any:
    """``hint`` as the blocking twin writes it: the async handles replaced, inside unions and
    generics too; ``Self`` is the blocking class."""
    if hint is typing.Self:
        return sync_owner
    if isinstance(hint, type) and hint in handles:
        return handles[hint]
    args = typing.get_args(hint)
    if not args:
        return hint
    replaced = tuple(_sync_type(arg, handles, sync_owner) for arg in args)
    if replaced == args and typing.get_origin(hint) not in handles:
        return hint
    origin = typing.get_origin(hint)
    if origin in handles:  # a generic handle such as JobRef[R]
        origin = handles[origin]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, replaced)
    return origin[replaced]


def _awaited(hint: Any) -> Any:
    if typing.get_origin(hint) in (collections.abc.Awaitable, collections.abc.Coroutine):
        return typing.get_args(hint)[-1]
    return hint


def _shown(hint: Any) -> str:
    if hint is _MISSING:
        return "(none)"
    return hint.__qualname__ if isinstance(hint, type) and not typing.get_args(hint) else repr(hint)


def method_problems(
    where: str,
    async_function: Any,
    sync_function: Any,
    *,
    handles: dict[type, type],
    sync_owner: type,
    overloads: bool = True,
) -> list[str]:
    """How the blocking ``sync_function`` differs from ``async_function``: parameters (name, kind,
    default, annotation), result and (unless ``overloads`` is False) overloads. A made twin's
    overloads are the async member's own (``inspect.unwrap``): the type checker reads them through
    the helper that made it."""
    problems: list[str] = []
    if overloads and inspect.iscoroutinefunction(sync_function):
        problems.append(f"{where}: the blocking twin is a coroutine function")
    async_parameters = list(inspect.signature(async_function).parameters.values())
    sync_parameters = list(inspect.signature(sync_function).parameters.values())
    async_names = [parameter.name for parameter in async_parameters]
    sync_names = [parameter.name for parameter in sync_parameters]
    if async_names != sync_names:
        missing = [name for name in async_names if name not in sync_names]
        extra = [name for name in sync_names if name not in async_names]
        problems.append(
            f"{where}: parameters ({', '.join(async_names)}) on the async side, ({', '.join(sync_names)}) on the "
            f"blocking one (missing: {', '.join(missing) or '-'}; extra: {', '.join(extra) or '-'})"
        )
    async_hints, sync_hints = _hints(async_function), _hints(sync_function)
    for async_parameter, sync_parameter in zip(async_parameters, sync_parameters, strict=False):
        if async_parameter.name != sync_parameter.name:
            continue
        name = async_parameter.name
        if async_parameter.kind != sync_parameter.kind:
            problems.append(f"{where}({name}): {async_parameter.kind.description} vs {sync_parameter.kind.description}")
        if async_parameter.default is not sync_parameter.default and async_parameter.default != sync_parameter.default:
            problems.append(f"{where}({name}): default {async_parameter.default!r} vs {sync_parameter.default!r}")
        expected = _sync_type(async_hints.get(name, _MISSING), handles, sync_owner)
        actual = sync_hints.get(name, _MISSING)
        if expected != actual:
            problems.append(f"{where}({name}): annotated {_shown(expected)} vs {_shown(actual)}")
    expected = _sync_type(_awaited(async_hints.get("return", _MISSING)), handles, sync_owner)
    actual = sync_hints.get("return", _MISSING)
    if expected != actual:
        problems.append(f"{where}: returns {_shown(expected)} vs {_shown(actual)}")
    if not overloads:
        return problems
    async_overloads = typing.get_overloads(inspect.unwrap(async_function))
    sync_overloads = typing.get_overloads(inspect.unwrap(sync_function))
    if len(async_overloads) != len(sync_overloads):
        problems.append(f"{where}: {len(async_overloads)} overload(s) vs {len(sync_overloads)}")
    else:
        for number, (async_overload, sync_overload) in enumerate(
            zip(async_overloads, sync_overloads, strict=True), start=1
        ):
            problems += method_problems(
                f"{where} (overload {number})",
                async_overload,
                sync_overload,
                handles=handles,
                sync_owner=sync_owner,
                overloads=False,
            )
    return problems


def class_problems(
    async_cls: type,
    sync_cls: type,
    *,
    handles: dict[type, type],
    not_mirrored: dict[tuple[type, str], str],
    sync_only: dict[tuple[type, str], str],
    constructed: bool = False,
) -> list[str]:
    """Every way ``sync_cls`` is not the blocking twin of ``async_cls``."""
    problems: list[str] = []
    async_members, sync_members = members(async_cls), members(sync_cls)
    mirrored: set[str] = set()
    for name, member in sorted(async_members.items()):
        sync_name = CONTEXT.get(name, name)
        where = f"{sync_cls.__name__}.{sync_name}"
        twin = sync_members.get(sync_name)
        if (async_cls, name) in not_mirrored:
            if twin is not None:
                problems.append(f"{where} exists: drop {async_cls.__name__}.{name} from the members not mirrored")
            continue
        if twin is None:
            problems.append(f"{where} is missing (the twin of {member.owner.__qualname__}.{name})")
            continue
        mirrored.add(sync_name)
        if member.kind != twin.kind:
            problems.append(f"{where} is a {twin.kind} member, {async_cls.__name__}.{name} a {member.kind} one")
        elif member.kind == "method":
            problems += method_problems(where, member.value, twin.value, handles=handles, sync_owner=sync_cls)
        else:
            expected = _data_type(member)
            if expected is not _MISSING:
                expected = _sync_type(expected, handles, sync_cls)
                actual = _data_type(twin)
                if expected != actual:
                    problems.append(f"{where}: {_shown(expected)} on the async side, {_shown(actual)} here")
    for name in sorted(set(sync_members) - mirrored):
        if (sync_cls, name) not in sync_only:
            problems.append(f"{sync_cls.__name__}.{name} has no async twin on {async_cls.__name__}")
    for (owner, name), _why in not_mirrored.items():
        if owner is async_cls and name not in async_members:
            problems.append(f"{async_cls.__name__}.{name} is listed as not mirrored but does not exist")
    if constructed:
        problems += method_problems(
            f"{sync_cls.__name__}()",
            getattr(async_cls, "__init__"),  # noqa: B009 - the class's own constructor, not an instance's
            getattr(sync_cls, "__init__"),  # noqa: B009
            handles=handles,
            sync_owner=sync_cls,
        )
    return problems


# ----------------------------------------------------------------------------- the facade


@pytest.mark.parametrize("async_cls", list(PAIRS), ids=lambda cls: cls.__name__)
def test_every_public_member_has_its_blocking_twin(async_cls: type) -> None:
    problems = class_problems(
        async_cls,
        PAIRS[async_cls],
        handles=HANDLES,
        not_mirrored=NOT_MIRRORED,
        sync_only=SYNC_ONLY,
        constructed=async_cls in CONSTRUCTED,
    )
    assert not problems, "the blocking facade drifted from the async API:\n  " + "\n  ".join(problems)


def test_every_blocking_class_is_checked() -> None:
    blocking = {getattr(sync, name) for name in sync.__all__}
    assert blocking == set(PAIRS.values()), "add the new blocking class and its async class to PAIRS"


def test_every_exception_says_why() -> None:
    assert all(why.strip() for why in [*NOT_MIRRORED.values(), *SYNC_ONLY.values()])


def test_made_twins_keep_the_async_members_name_and_signature() -> None:
    twin = hm.SyncBackgroundJobClient.try_lock
    assert twin.__qualname__ == "SyncBackgroundJobClient.try_lock"
    assert inspect.unwrap(twin) is hm.BackgroundJobClient.try_lock
    assert str(inspect.signature(twin)).startswith("(self, job_id: 'int', requester: 'str | None' = None)")
    assert _hints(twin)["return"] == hm.SyncLockedJob | None
    assert _hints(hm.SyncRecurringJobClient.options)["return"] is hm.SyncRecurringJobClient
    assert len(typing.get_overloads(inspect.unwrap(hm.SyncBackgroundJobClient.get_data))) == 2
    with pytest.raises(TypeError, match="keeps its name"):

        class Misnamed(sync._Facade[hm.BackgroundJobClient]):
            get = sync._blocking(hm.BackgroundJobClient.try_get)


# ----------------------------------------------------------------------------- the check itself


class _AsyncJobs:
    def __init__(self) -> None:
        self.name = "jobs"

    @property
    def queue(self) -> str:
        return "default"

    async def get(self, job_id: int, *, lock: bool = False) -> str:
        return f"{job_id}{lock}"

    async def try_lock(self, job_id: int) -> _AsyncJobs | None:
        return self

    async def __aenter__(self) -> _AsyncJobs:
        return self


class _Blocking:
    def __init__(self) -> None:
        self.name = "jobs"

    @property
    def queue(self) -> str:
        return "default"

    def get(self, job_id: int, *, lock: bool = False) -> str:
        return f"{job_id}{lock}"

    def try_lock(self, job_id: int) -> _Blocking | None:
        return self

    def __enter__(self) -> _Blocking:
        return self


class _MissingParameter(_Blocking):
    def get(self, job_id: int) -> str:  # type: ignore[override]
        return str(job_id)


class _OtherDefault(_Blocking):
    def get(self, job_id: int, *, lock: bool = True) -> str:
        return str(job_id)


class _OtherAnnotation(_Blocking):
    def get(self, job_id: str, *, lock: bool = False) -> str:  # type: ignore[override]
        return job_id


class _PositionalLock(_Blocking):
    def get(self, job_id: int, lock: bool = False) -> str:
        return str(job_id)


class _AsyncHandle(_Blocking):
    def try_lock(self, job_id: int) -> _AsyncJobs | None:  # type: ignore[override]
        return None


class _ExtraMember(_Blocking):
    def purge(self) -> None:
        pass


class _NoName:
    """Without ``name`` (an attribute set in the async ``__init__``) or ``__enter__``."""

    def __init__(self) -> None:
        pass

    @property
    def queue(self) -> str:
        return "default"

    def get(self, job_id: int, *, lock: bool = False) -> str:
        return str(job_id)

    def try_lock(self, job_id: int) -> _NoName | None:
        return self


def _toy_problems(sync_cls: type) -> list[str]:
    return class_problems(
        _AsyncJobs, sync_cls, handles={_AsyncJobs: sync_cls}, not_mirrored={}, sync_only={}, constructed=True
    )


def test_the_check_passes_a_faithful_twin() -> None:
    assert _toy_problems(_Blocking) == []


@pytest.mark.parametrize(
    ("sync_cls", "expected"),
    [
        (_MissingParameter, "_MissingParameter.get: parameters (self, job_id, lock) on the async side, "),
        (_OtherDefault, "_OtherDefault.get(lock): default False vs True"),
        (_OtherAnnotation, "_OtherAnnotation.get(job_id): annotated int vs str"),
        (_PositionalLock, "_PositionalLock.get(lock): keyword-only vs positional or keyword"),
        (_AsyncHandle, "_AsyncHandle.try_lock: returns "),
        (_ExtraMember, "_ExtraMember.purge has no async twin"),
        (_NoName, "_NoName.name is missing"),
        (_NoName, "_NoName.__enter__ is missing"),
    ],
)
def test_the_check_sees_a_drifted_twin(sync_cls: type, expected: str) -> None:
    problems = _toy_problems(sync_cls)
    assert any(problem.startswith(expected) for problem in problems), problems
