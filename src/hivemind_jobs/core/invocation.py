"""What a job runs: a function or method stored by name, with its arguments as JSON.

Supported callables, none of which needs a decorator or a base class:

- a module-level function, sync or async;
- a static method or class method (``MyJobs.run`` / ``MyJobs.build``);
- an instance method, written ``instance(MyJob).run``: the class is stored and activated (by default
  constructed without arguments) each time the job executes.

Arguments are bound to the signature when the job is created, checked against the type hints,
encoded with the :class:`~hivemind_jobs.core.codec.Codec` and stored by parameter name. Parameters
annotated with an injected type (the execution context) are left out and supplied at execution.
Lambdas, nested functions, ``functools.partial`` objects and methods bound to a live instance are
refused: they cannot be found again by name in another process.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from hivemind_jobs.core.codec import Codec, JSONValue, compact_json, load_json, qualified_name
from hivemind_jobs.core.text import storable_text
from hivemind_jobs.errors import (
    ArgumentBindingError,
    ArgumentSerializationError,
    JobDefinitionError,
    SerializationError,
)

__all__ = [
    "Activator",
    "AllowList",
    "DefaultActivator",
    "Invocation",
    "PreparedCall",
    "build_invocation",
    "instance",
    "job_class",
    "prepare_call",
    "resolve_target",
]

T = TypeVar("T")
_FORMAT_VERSION = 1


class Activator(Protocol):
    """Creates the instance an instance-method job runs on (plug in a DI container here).

    ``activate(cls)`` returns an instance of ``cls``. It is called on the colony's event loop for
    each execution of an instance-method job, and for each middleware class a job runs through.

    An activator may also provide a scope per job execution (the protocol
    :class:`~hivemind_jobs.ScopedActivator`)::

        def scope(self, context: JobContext, cls: type | None) -> AbstractAsyncContextManager[Activator]: ...

    The drone then enters ``scope(context, cls)`` around each execution: around the job's
    middleware and the job itself, so it ends once the job has returned or raised. ``context`` is
    the execution's :class:`~hivemind_jobs.JobContext`; ``cls`` is the class of an instance-method
    job, already imported and checked against the colony's allow list (None for a function job),
    so that the scope can resolve it ahead, asynchronously if it must. The activator the scope
    yields activates the job's instance for that execution. Middleware classes are activated
    outside the scope, through ``activate`` of the activator given to ``HiveMind``. A job whose
    class cannot be resolved (not allowed, gone) runs without a scope and fails as it would
    without one; an exception raised by entering or leaving the scope fails the execution.

    Sync jobs of a swarm that runs them in child processes (``processes=``) are activated in the
    child by :class:`DefaultActivator`; no scope is entered for them.
    """

    def activate(self, cls: type[T]) -> T: ...


class DefaultActivator:
    """Constructs the class without arguments."""

    def activate(self, cls: type[T]) -> T:
        try:
            return cls()
        except TypeError as error:
            raise JobDefinitionError(
                f"{cls.__module__}.{cls.__qualname__} cannot be constructed without arguments ({error}); "
                "give it a no-argument constructor or configure an activator: HiveMind(activator=...)"
            ) from error


class _InstanceMethodRef:
    """``instance(MyJob).run``: names a method to run on an instance activated at execution."""

    __slots__ = ("cls", "method_name")

    def __init__(self, cls: type, method_name: str) -> None:
        self.cls = cls
        self.method_name = method_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise JobDefinitionError(
            f"instance({self.cls.__qualname__}).{self.method_name} only names a job target; create a job with it"
        )

    def __repr__(self) -> str:
        return f"instance({self.cls.__qualname__}).{self.method_name}"


class _InstanceProxy:
    __slots__ = ("_cls",)

    def __init__(self, cls: type) -> None:
        self._cls = cls

    def __getattr__(self, name: str) -> _InstanceMethodRef:
        attribute = inspect.getattr_static(self._cls, name, None)
        if attribute is None or not inspect.isfunction(attribute):
            raise JobDefinitionError(f"{self._cls.__qualname__}.{name} is not an instance method")
        return _InstanceMethodRef(self._cls, name)


def instance(cls: type[T]) -> T:
    """Name an instance method as a job target: ``jobs.create(instance(Writer).run, "text")``.

    The type checker sees an instance of ``cls``, so the method's arguments are checked; at run time
    the class is activated once per execution.
    """
    if not isinstance(cls, type):
        raise JobDefinitionError(f"instance() takes a class, got {cls!r}")
    return cast(T, _InstanceProxy(cls))


@dataclass(frozen=True)
class AllowList:
    """Which invocation targets a process may import and run (a worker's configuration).

    ``modules`` are module names or prefixes (``"myapp"`` allows ``myapp`` and ``myapp.jobs``);
    ``targets`` are exact ``module:qualname`` strings. ``allow_all`` trusts every stored target.

    A stored target is checked twice: by name before anything is imported (:meth:`permits`), and
    once resolved, by what it is. Only a function, a class method or a class runs, reached through
    classes only, and it must be *defined* in an allowed module (its own ``__module__``) or be listed
    in ``targets`` under its own ``__module__:__qualname__``; so a name such as ``myapp.jobs:os.system``
    or a function that ``myapp.jobs`` imported from elsewhere is refused.
    """

    modules: Sequence[str] = ()
    targets: Sequence[str] = ()
    allow_all: bool = False

    def permits(self, target: str) -> bool:
        """Whether ``target`` may be imported at all (a check of the name only)."""
        if self.allow_all or target in self.targets:
            return True
        return self.permits_module(target.partition(":")[0])

    def permits_module(self, module: str) -> bool:
        """Whether ``module`` is one of ``modules`` or inside one of them."""
        return any(module == prefix or module.startswith(prefix + ".") for prefix in self.modules)


@dataclass(frozen=True)
class Invocation:
    """The stored description of a job's call.

    ``target`` is ``module:qualname`` of the function (or of the class, for instance methods with
    ``method`` set). ``arguments`` maps parameter names to encoded JSON values.

    A job read from storage whose call this build cannot decode (text that is not JSON, a format
    version it does not know, a malformed middleware list) still reads: its invocation has
    ``problem`` saying what is wrong and ``raw`` holding the stored text, and such a job fails
    instead of running. The parts that could be read (``target`` at least, when present) are kept.
    """

    target: str
    method: str | None
    is_async: bool
    arguments: Mapping[str, JSONValue] = field(default_factory=dict)
    #: why this stored invocation cannot run (None: it can)
    problem: str | None = field(default=None, kw_only=True)
    #: the stored text, kept when ``problem`` is set (written back unchanged)
    raw: str | None = field(default=None, kw_only=True, repr=False)

    def to_json(self) -> str:
        if self.raw is not None:
            return self.raw
        cached: str | None = self.__dict__.get("_json")
        if cached is not None:
            return cached
        document: dict[str, Any] = {"v": _FORMAT_VERSION, "target": self.target, "async": self.is_async}
        if self.method is not None:
            document["method"] = self.method
        document["args"] = dict(self.arguments)
        text = compact_json(document)
        object.__setattr__(self, "_json", text)  # creation checks it, the insert writes it: encode once
        return text

    @classmethod
    def from_json(cls, text: str) -> Invocation:
        """Decode a stored invocation; raises :class:`SerializationError` when it is malformed."""
        invocation = cls.from_stored(text)
        if invocation.problem is not None:
            raise SerializationError(invocation.problem)
        return invocation

    @classmethod
    def from_stored(cls, text: str) -> Invocation:
        """Decode a stored invocation without raising: a malformed one comes back with ``problem`` set."""
        try:
            document = load_json(text)
        except (ValueError, TypeError, RecursionError) as error:
            return cls.undecodable(text, f"stored invocation is not valid JSON ({error})")
        if not isinstance(document, dict):
            return cls.undecodable(text, f"stored invocation is a JSON {type(document).__name__}, not an object")
        target = document.get("target")
        version = document.get("v", _FORMAT_VERSION)
        if version != _FORMAT_VERSION or isinstance(version, bool):
            return cls.undecodable(
                text,
                f"stored invocation has format version {_clip(repr(version))}, but this hivemind_jobs reads only "
                f"version {_FORMAT_VERSION}; run it on a worker with a hivemind_jobs that reads its version",
                target,
            )
        method = document.get("method")
        is_async = document.get("async", False)
        arguments = document.get("args", {})
        if not isinstance(target, str) or not target:
            return cls.undecodable(text, "stored invocation has no target ('module:qualname' text)")
        if method is not None and not isinstance(method, str):
            return cls.undecodable(text, "stored invocation's method is not text", target)
        if not isinstance(is_async, bool):
            return cls.undecodable(text, "stored invocation's 'async' flag is not true or false", target)
        if not isinstance(arguments, dict):
            return cls.undecodable(text, "stored invocation's arguments are not a JSON object", target)
        return cls(target=target, method=method, is_async=is_async, arguments=arguments)

    @classmethod
    def undecodable(cls, raw: str, problem: str, target: object = None) -> Invocation:
        """A stored invocation that cannot run: ``problem`` says why; ``raw`` is kept as stored."""
        return cls(
            target=target if isinstance(target, str) and target else "<undecodable>",
            method=None,
            is_async=False,
            arguments={},
            problem=storable_text(_clip(problem)),
            raw=raw,
        )

    def with_problem(self, problem: str, raw: str) -> Invocation:
        """This invocation, marked as unable to run; ``raw`` is its stored text (kept as it was)."""
        return dataclasses.replace(self, problem=storable_text(_clip(problem)), raw=raw)

    @property
    def display_name(self) -> str:
        return f"{self.target}.{self.method}" if self.method else self.target

    @property
    def function_name(self) -> str:
        """The function as stored in the job's searchable ``function_name`` column: its display name,
        cut at :data:`MAX_FUNCTION_NAME` characters (the longest every backend indexes)."""
        return self.display_name[:MAX_FUNCTION_NAME]

    def describe(self, max_length: int = 120) -> str:
        """A short human-readable call, e.g. ``myapp.jobs:send(to='a@b.c')``."""
        if self.problem is not None:
            text = f"{self.display_name} (cannot run: {self.problem})"
            return text if len(text) <= max_length else text[: max_length - 3] + "..."
        arguments = ", ".join(
            f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in self.arguments.items()
        )
        text = f"{self.display_name}({arguments})"
        return text if len(text) <= max_length else text[: max_length - 3] + "..."


_PROBLEM_LIMIT = 500
#: the longest function name stored in a job's searchable column (longer ones are cut)
MAX_FUNCTION_NAME = 700


def function_name(func: Any) -> str:
    """The stored function name of the job callable ``func`` (what ``job.function`` compares with)."""
    return _job_target(func, ()).display[:MAX_FUNCTION_NAME]


def _clip(text: str) -> str:
    return text if len(text) <= _PROBLEM_LIMIT else text[: _PROBLEM_LIMIT - 3] + "..."


@dataclass(frozen=True)
class PreparedCall:
    """A resolved invocation ready to call: ``function(*args, **kwargs)``."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    is_async: bool
    instance: object | None = None


# ---------------------------------------------------------------------------------------- building


def _describe_target(func: object) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _classify(func: Any) -> tuple[str, str | None, Callable[..., Any], bool]:
    """Return (target, method, signature source, drop_first_parameter)."""
    if isinstance(func, _InstanceMethodRef):
        function = inspect.getattr_static(func.cls, func.method_name)
        return _checked_name(func.cls), func.method_name, function, True
    if inspect.ismethod(func):
        owner = func.__self__
        if isinstance(owner, type):  # a class method
            target = _checked_name(func)
            if _import_target(target, None) != func:
                raise JobDefinitionError(f"{target} does not resolve back to the same class method")
            return target, None, func, False
        cls = type(owner)
        raise JobDefinitionError(
            f"{_describe_target(func)} is bound to a live {cls.__qualname__} instance, whose state cannot be "
            f"stored; use instance({cls.__qualname__}).{func.__name__} to run it on an instance activated "
            "for each execution"
        )
    if inspect.isfunction(func):
        target = _checked_name(func)
        owner_path, _, attribute = func.__qualname__.rpartition(".")
        if owner_path:
            owner = _import_target(f"{func.__module__}:{owner_path}", None)
            if isinstance(owner, type) and inspect.isfunction(inspect.getattr_static(owner, attribute, None)):
                raise JobDefinitionError(
                    f"{owner.__qualname__}.{attribute} is an instance method; use "
                    f"instance({owner.__qualname__}).{attribute} so HiveMind activates {owner.__qualname__} per run"
                )
        if _import_target(target, None) is not func:
            raise JobDefinitionError(f"{target} does not resolve back to the same function; is the name reused?")
        return target, None, func, False
    raise JobDefinitionError(
        f"{func!r} cannot be a job: use a module-level function, a static or class method, or "
        "instance(SomeClass).method (lambdas, partials and callable objects cannot be found by name)"
    )


def _checked_name(obj: object) -> str:
    try:
        name = qualified_name(obj)
    except SerializationError as error:
        raise JobDefinitionError(str(error)) from None
    return name


def _import_target(target: str, allow: AllowList | None) -> Any:
    """Import ``module:qualname``; with ``allow`` given, refuse targets it does not permit.

    Without ``allow`` (creation: the name comes from the callable itself) the path is followed as it
    is; with a restricting ``allow`` the name is checked before the import and what it resolves to
    afterwards (see :class:`AllowList`).
    """
    if allow is not None and not allow.permits(target):
        raise JobDefinitionError(
            f"job target {target} is not allowed in this process; allow its module in the worker's "
            "configuration (AllowList(modules=[...]))"
        )
    strict = allow is not None and not allow.allow_all
    resolved, _ = _walk(target, strict=strict)
    if strict:
        assert allow is not None
        _check_resolved(target, resolved, allow)
    return resolved


def _walk(target: str, *, strict: bool) -> tuple[Any, str | None]:
    """Import the module of ``target`` and follow its qualname.

    Returns the object and, when the path went through something other than a class (a module, a
    function, an instance), what it was; ``strict`` refuses such a path at once instead, before
    any attribute of the foreign object is read.
    """
    module_name, _, qualname = target.partition(":")
    if not module_name or not qualname:
        raise JobDefinitionError(f"malformed job target {target!r}; expected 'module:qualname'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise JobDefinitionError(f"cannot import module {module_name!r} of job target {target}: {error}") from error
    detour: str | None = None
    parts = qualname.split(".")
    for index, part in enumerate(parts):
        if index > 0 and detour is None and not isinstance(obj, type):
            detour = f"its path goes through {_kind_of(obj)} ({module_name}:{'.'.join(parts[:index])})"
            if strict:
                raise _not_allowed(target, detour)
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise JobDefinitionError(f"job target {target} not found: {module_name} has no {qualname}") from None
    return obj, detour


def _kind_of(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return f"the module {obj.__name__}"
    if isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType)) or inspect.ismethoddescriptor(obj):
        return f"the built-in {getattr(obj, '__module__', None) or 'builtins'}.{getattr(obj, '__qualname__', obj)}"
    if inspect.isfunction(obj):
        return f"the function {obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__} object"


def _home_of(obj: object) -> tuple[str, str] | None:
    """Where a job target is defined (``__module__``, ``__qualname__``); None for anything that is not a
    function, a method bound to a class (a class method) or a class."""
    if inspect.ismethod(obj):
        if not isinstance(obj.__self__, type) or not inspect.isfunction(obj.__func__):
            return None
        obj = obj.__func__
    elif not (inspect.isfunction(obj) or isinstance(obj, type)):
        return None
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    return module, qualname


def _check_resolved(target: str, resolved: object, allow: AllowList) -> None:
    """Refuse what ``target`` resolved to unless it is defined where ``allow`` permits."""
    home = _home_of(resolved)
    if home is None:
        raise _not_allowed(target, f"it resolves to {_kind_of(resolved)}, not a function or class")
    module, qualname = home
    if allow.permits_module(module) or f"{module}:{qualname}" in allow.targets:
        return
    raise _not_allowed(target, f"it resolves to {module}:{qualname}, which is defined outside the allowed modules")


def _not_allowed(target: str, why: str) -> JobDefinitionError:
    return JobDefinitionError(
        f"job target {target} is not allowed in this process: {why}; only functions and classes defined in an "
        "allowed module run (AllowList(modules=[...]) or its exact 'module:qualname' in AllowList(targets=[...]))"
    )


def resolve_target(target: str, allow: AllowList) -> Any:
    """Import ``module:qualname`` if ``allow`` permits it (middleware types, job targets)."""
    return _import_target(target, allow)


def _signature(function: Callable[..., Any], drop_first: bool) -> inspect.Signature:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as error:
        raise JobDefinitionError(f"cannot read the signature of {_describe_target(function)}: {error}") from error
    if drop_first:
        parameters = list(signature.parameters.values())
        if not parameters or parameters[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise JobDefinitionError(f"{_describe_target(function)} has no 'self' parameter")
        signature = signature.replace(parameters=parameters[1:])
    return signature


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    target = inspect.unwrap(function)
    try:
        return typing.get_type_hints(target)
    except Exception:
        return {}


def _injected_names(hints: Mapping[str, Any], injected: tuple[type, ...]) -> set[str]:
    names = set()
    for name, hint in hints.items():
        if isinstance(hint, type) and issubclass(hint, injected):
            names.add(name)
    return names


@dataclass(frozen=True)
class _JobTarget:
    """What creation needs to know about a callable, computed once per callable."""

    target: str
    method: str | None
    visible: inspect.Signature  # without the injected parameters
    hints: Mapping[str, Any]
    is_async: bool
    #: per parameter (signature order): name, passable by position, required, type hint, error path;
    #: None when a parameter is positional-only or variadic (those are bound by the signature)
    plain: tuple[tuple[str, bool, bool, Any, str], ...] | None = None

    @property
    def display(self) -> str:
        return f"{self.target}.{self.method}" if self.method else self.target


_targets: dict[Any, _JobTarget] = {}
_TARGET_CACHE_LIMIT = 4096
#: the last function looked up, its injected types and its target: calls in a row (create_many,
#: a loop of creates) mostly name the same function, found without building a cache key
_last_target: tuple[Any, tuple[type, ...], _JobTarget] | None = None


def _cache_key(func: Any, injected: tuple[type, ...]) -> Any:
    if isinstance(func, _InstanceMethodRef):
        return ("instance", func.cls, func.method_name, injected)
    if inspect.ismethod(func):
        return ("method", func.__func__, func.__self__, injected)
    return ("function", func, injected)


def _job_target(func: Any, injected: tuple[type, ...]) -> _JobTarget:
    global _last_target
    last = _last_target
    if last is not None and last[0] is func and last[1] == injected:
        return last[2]
    job_target = _cached_job_target(func, injected)
    _last_target = (func, injected, job_target)
    return job_target


def _cached_job_target(func: Any, injected: tuple[type, ...]) -> _JobTarget:
    try:
        key = _cache_key(func, injected)
        cached = _targets.get(key)
    except TypeError:  # unhashable callables are refused by _classify below
        key, cached = None, None
    if cached is not None:
        return cached
    target, method, function, drop_first = _classify(func)
    signature = _signature(function, drop_first)
    hints = _type_hints(function)
    injected_names = _injected_names(hints, injected)
    visible = signature.replace(
        parameters=[parameter for name, parameter in signature.parameters.items() if name not in injected_names]
    )
    is_async = inspect.iscoroutinefunction(inspect.unwrap(function))
    job_target = _JobTarget(target, method, visible, hints, is_async, _plain_parameters(visible, hints))
    if key is not None:
        if len(_targets) >= _TARGET_CACHE_LIMIT:
            _targets.clear()
        _targets[key] = job_target
    return job_target


def _plain_parameters(
    visible: inspect.Signature, hints: Mapping[str, Any]
) -> tuple[tuple[str, bool, bool, Any, str], ...] | None:
    plan = []
    for name, parameter in visible.parameters.items():
        if parameter.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            return None
        positional = parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        required = parameter.default is inspect.Parameter.empty
        plan.append((name, positional, required, hints.get(name, Any), f"argument {name!r}"))
    return tuple(plan)


def _bind_plain(
    plan: tuple[tuple[str, bool, bool, Any, str], ...], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> list[tuple[str, Any, Any, str]] | None:
    """What ``Signature.bind`` binds for a signature without positional-only or variadic
    parameters, in its order, as ``(name, value, hint, path)``; None when the call does not fit
    (the signature then binds it again and words the error)."""
    given = len(args)
    taken = 0
    bound = []
    for index, (name, positional, required, hint, path) in enumerate(plan):
        if positional and index < given:
            if name in kwargs:
                return None
            bound.append((name, args[index], hint, path))
        elif name in kwargs:
            bound.append((name, kwargs[name], hint, path))
            taken += 1
        elif required:
            return None
    if taken != len(kwargs) or given > len(bound) - taken:
        return None
    return bound


def _argument_error(error: Exception, name: str, display: str) -> ArgumentSerializationError:
    """What an argument that cannot be encoded is reported as."""
    if isinstance(error, RecursionError):
        return ArgumentSerializationError(
            f"{display}: argument {name!r} is nested too deeply or contains itself (a cycle); pass data without cycles"
        )
    if isinstance(error, UnicodeEncodeError):
        return ArgumentSerializationError(f"{display}: argument {name!r} holds text that cannot be stored ({error})")
    return ArgumentSerializationError(f"{display}: {error}")


def _encode_plain(bound: list[tuple[str, Any, Any, str]], codec: Codec, display: str) -> dict[str, JSONValue]:
    arguments: dict[str, JSONValue] = {}
    encode = codec.encode
    for name, value, hint, path in bound:
        try:
            arguments[name] = encode(value, hint, path=path)
        except (SerializationError, RecursionError, UnicodeEncodeError) as error:
            raise _argument_error(error, name, display) from None
    return arguments


def _new_invocation(target: str, method: str | None, is_async: bool, arguments: Mapping[str, JSONValue]) -> Invocation:
    """``Invocation(target, method, is_async, arguments)`` without the frozen dataclass's
    ``__init__``, which sets each of its six fields through ``object.__setattr__`` (a fifth of
    building a call's invocation)."""
    invocation = object.__new__(Invocation)
    invocation.__dict__.update(
        target=target, method=method, is_async=is_async, arguments=arguments, problem=None, raw=None
    )
    return invocation


def build_invocation(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], codec: Codec, injected: tuple[type, ...]
) -> Invocation:
    """Bind, check and encode a call; raises before anything is stored."""
    job_target = _job_target(func, injected)
    plain = job_target.plain
    if plain is not None:
        fast = _bind_plain(plain, args, kwargs)
        if fast is not None:
            invocation = _new_invocation(
                job_target.target,
                job_target.method,
                job_target.is_async,
                _encode_plain(fast, codec, job_target.display),
            )
            _check_storable(invocation, job_target.display)
            return invocation
    visible, hints, display = job_target.visible, job_target.hints, job_target.display
    try:
        bound = visible.bind(*args, **kwargs)
    except TypeError as error:
        raise ArgumentBindingError(f"arguments do not fit {display}{visible}: {error}") from None
    arguments: dict[str, JSONValue] = {}
    for name, value in bound.arguments.items():
        parameter = visible.parameters[name]
        hint = hints.get(name, Any)
        try:
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                arguments[name] = [
                    codec.encode(item, hint, path=f"argument *{name}[{i}]") for i, item in enumerate(value)
                ]
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                arguments[name] = {
                    key: codec.encode(item, hint, path=f"argument **{name}[{key!r}]") for key, item in value.items()
                }
            else:
                arguments[name] = codec.encode(value, hint, path=f"argument {name!r}")
        except (SerializationError, RecursionError, UnicodeEncodeError) as error:
            raise _argument_error(error, name, display) from None
    invocation = Invocation(
        target=job_target.target, method=job_target.method, is_async=job_target.is_async, arguments=arguments
    )
    _check_storable(invocation, display)
    return invocation


def _utf8(text: str) -> bool:
    if text.isascii():  # the common case, without encoding the text
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_storable(invocation: Invocation, display: str) -> None:
    """Refuse arguments whose JSON no database can store (it is kept on the invocation for the insert)."""
    try:
        text = invocation.to_json()
    except (ValueError, TypeError, RecursionError) as error:
        raise ArgumentSerializationError(f"{display}: the arguments cannot be written as JSON ({error})") from None
    if not _utf8(text):
        name = next((name for name, value in invocation.arguments.items() if not _utf8(compact_json(value))), None)
        where = f"argument {name!r}" if name is not None else "an argument"
        raise ArgumentSerializationError(
            f"{display}: {where} holds text that is not valid Unicode (a lone surrogate); no database can store it"
        )


# ---------------------------------------------------------------------------------------- running


#: (parameter hint, injectable type) -> whether the hint asks for that type
_injects: dict[tuple[type, type], bool] = {}


def _injection_for(hint: Any, injections: Mapping[type, object]) -> object | None:
    if not isinstance(hint, type):
        return None
    for kind, value in injections.items():
        key = (hint, kind)
        wanted = _injects.get(key)
        if wanted is None:
            if len(_injects) >= _TARGET_CACHE_LIMIT:
                _injects.clear()
            wanted = _injects[key] = issubclass(hint, kind)
        if wanted:
            return value
    return None


_EMPTY: Any = inspect.Parameter.empty
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True)
class _Runnable:
    """What running needs to know about a stored target, computed once per target."""

    obj: Any  # the function, or the class of an instance method
    signature: inspect.Signature
    hints: Mapping[str, Any]
    is_async: bool
    #: per parameter: name, kind, type hint, default (``inspect.Parameter.empty`` when none)
    parameters: tuple[tuple[str, Any, Any, Any], ...] = ()
    #: how the stored path left the classes on its way, when it did (only ``allow_all`` runs it)
    detour: str | None = None

    @classmethod
    def of(
        cls, obj: Any, signature: inspect.Signature, hints: Mapping[str, Any], is_async: bool, detour: str | None
    ) -> _Runnable:
        parameters = tuple(
            (name, parameter.kind, hints.get(name, Any), parameter.default)
            for name, parameter in signature.parameters.items()
        )
        return cls(obj, signature, hints, is_async, parameters, detour)


_runnables: dict[tuple[str, str | None], _Runnable] = {}


def _verdicts(allow: AllowList) -> dict[tuple[str, str | None], _Runnable]:
    """The targets ``allow`` was found to permit, each with the resolution it was checked on.

    Kept on the allow list itself, and started afresh whenever its contents differ from when the
    verdicts were reached (its sequences are not copied, so a caller could change them in place).
    """
    fingerprint = (tuple(allow.modules), tuple(allow.targets), allow.allow_all)
    kept: tuple[Any, dict[tuple[str, str | None], _Runnable]] | None = allow.__dict__.get("_verdicts")
    if kept is None or kept[0] != fingerprint:
        kept = (fingerprint, {})
        object.__setattr__(allow, "_verdicts", kept)
    return kept[1]


def _runnable(target: str, method: str | None, allow: AllowList) -> _Runnable:
    """What running ``target`` needs, once ``allow`` permits it (checked for every call: the verdict
    of an allow list on a target is remembered only for the resolution it was reached on)."""
    key = (target, method)
    verdicts = _verdicts(allow)
    permitted = verdicts.get(key)
    if permitted is not None and _runnables.get(key) is permitted:
        return permitted
    runnable = _check_runnable(target, method, allow)
    if len(verdicts) >= _TARGET_CACHE_LIMIT:
        verdicts.clear()
    verdicts[key] = runnable
    return runnable


def _check_runnable(target: str, method: str | None, allow: AllowList) -> _Runnable:
    if not allow.permits(target):
        _import_target(target, allow)  # raises the "not allowed" error
    key = (target, method)
    strict = not allow.allow_all
    cached = _runnables.get(key)
    if cached is not None:
        # the cache is shared by every allow list of the process: check this one's verdict again
        if strict:
            if cached.detour is not None:
                raise _not_allowed(target, cached.detour)
            _check_resolved(target, cached.obj, allow)
        return cached
    resolved, detour = _walk(target, strict=strict)
    if strict:
        _check_resolved(target, resolved, allow)
    if method is not None:
        if not isinstance(resolved, type):
            raise JobDefinitionError(f"job target {target} is no longer a class")
        function = inspect.getattr_static(resolved, method, None)
        if not inspect.isfunction(function):
            raise JobDefinitionError(f"{target}.{method} is no longer an instance method")
        runnable = _Runnable.of(
            resolved,
            _signature(function, drop_first=True),
            _type_hints(function),
            inspect.iscoroutinefunction(inspect.unwrap(function)),
            detour,
        )
    else:
        if not callable(resolved):
            raise JobDefinitionError(f"job target {target} is no longer callable")
        runnable = _Runnable.of(
            resolved,
            _signature(resolved, drop_first=False),
            _type_hints(resolved),
            inspect.iscoroutinefunction(inspect.unwrap(resolved)),
            detour,
        )
    if len(_runnables) >= _TARGET_CACHE_LIMIT:
        _runnables.clear()
    _runnables[key] = runnable
    return runnable


def _cannot_run(problem: str) -> SerializationError:
    return SerializationError(f"the stored job cannot run: {problem}")


def job_class(invocation: Invocation, allow: AllowList) -> type | None:
    """The class an instance-method invocation runs on, imported and checked against ``allow`` as
    :func:`prepare_call` does it (through the same cache); None for a function. Raises what
    :func:`prepare_call` would raise for a target that cannot run here."""
    if invocation.problem is not None:
        raise _cannot_run(invocation.problem)
    if invocation.method is None:
        return None
    cls: type = _runnable(invocation.target, invocation.method, allow).obj
    return cls


def prepare_call(
    invocation: Invocation,
    *,
    codec: Codec,
    activator: Activator,
    allow: AllowList,
    injections: Mapping[type, object],
) -> PreparedCall:
    """Resolve an invocation on a worker: import (if allowed), activate, decode, inject.

    ``injections`` maps an injectable type to the value passed for parameters annotated with it.
    Raises :class:`JobDefinitionError` / :class:`SerializationError` when the job cannot run here;
    both are fatal (retrying cannot help).
    """
    if invocation.problem is not None:
        raise _cannot_run(invocation.problem)
    resolved = _runnable(invocation.target, invocation.method, allow)
    instance_object: object | None = None
    signature = resolved.signature
    if invocation.method is not None:
        instance_object = activator.activate(resolved.obj)
        callable_object: Callable[..., Any] = getattr(instance_object, invocation.method)
    else:
        callable_object = resolved.obj
    arguments = invocation.arguments
    unknown = [name for name in arguments if name not in signature.parameters]
    if unknown:
        raise JobDefinitionError(
            f"{invocation.display_name} no longer has parameter(s) {sorted(unknown)}; the stored job cannot run"
        )
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    #: defaults of positional parameters left out, in case a later value must still go by position
    skipped: list[Any] = []
    for name, kind, hint, default in resolved.parameters:
        injected = _injection_for(hint, injections)
        if injected is not None:
            value: Any = injected
        elif name in arguments:
            stored = arguments[name]
            if kind is _VAR_POSITIONAL:
                args.extend(skipped)
                skipped.clear()
                args.extend(codec.decode(item, hint, path=f"argument *{name}", strict=True) for item in stored)
                continue
            if kind is _VAR_KEYWORD:
                for key, item in stored.items():
                    if key in kwargs or key in signature.parameters:
                        raise JobDefinitionError(f"stored argument **{name}[{key!r}] clashes with a parameter")
                    kwargs[key] = codec.decode(item, hint, path=f"argument **{name}", strict=True)
                continue
            value = codec.decode(stored, hint, path=f"argument {name!r}", strict=True)
        elif default is not _EMPTY:
            if kind in _POSITIONAL:
                skipped.append(default)
            continue
        elif kind in (_VAR_POSITIONAL, _VAR_KEYWORD):
            continue
        else:
            raise JobDefinitionError(
                f"stored arguments no longer fit {invocation.display_name}{signature}: missing argument {name!r}"
            )
        if kind is inspect.Parameter.POSITIONAL_ONLY or (kind in _POSITIONAL and not skipped):
            args.extend(skipped)
            skipped.clear()
            args.append(value)
        else:
            kwargs[name] = value
    return PreparedCall(callable_object, tuple(args), kwargs, resolved.is_async, instance_object)
