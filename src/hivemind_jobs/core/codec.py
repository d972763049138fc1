"""The JSON codec for job arguments, results, state fields, data and middleware input.

Plain JSON values (``None``, ``bool``, ``int``, finite ``float``, ``str``, lists and dicts with string
keys) are stored as they are. Other supported values are stored as tagged objects
``{"$hm": <tag>, "v": <value>}`` so that they come back as the same type:

=================  ===================================================================
tag                Python type
=================  ===================================================================
``datetime``       :class:`datetime.datetime` (aware values are stored in UTC)
``date``/``time``  :class:`datetime.date`, :class:`datetime.time`
``timedelta``      :class:`datetime.timedelta` (exact: days, seconds, microseconds)
``uuid``           :class:`uuid.UUID`
``decimal``        :class:`decimal.Decimal` (exact, as a string)
``bytes``          ``bytes`` / ``bytearray`` (base64)
``tuple``          ``tuple`` (also named tuples; rebuilt from the type hint)
``set``            ``set`` / ``frozenset``
``dict``           a dict whose keys are not all strings (pairs)
``enum``           an :class:`enum.Enum` member (class + value)
``dataclass``      a dataclass instance (class + init fields)
``pydantic``       a pydantic model, when pydantic is installed (class + ``model_dump``)
=================  ===================================================================

Encoding checks the value against the type hint it is meant for, so a wrong argument is refused
when the job is created, not when it runs. Decoding is guided by the type hint: classes named in
the data are taken from the hint; only when the hint does not name them is the pluggable class
resolver asked (the default one looks only at modules that are already imported, and never
imports anything a row names). Nothing is ever pickled.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import dataclasses
import enum
import json
import math
import sys
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, NewType, TypeVar, Union, get_args, get_origin

from hivemind_jobs.errors import SerializationError

__all__ = [
    "ClassResolver",
    "Codec",
    "JSONValue",
    "compact_json",
    "json_native_types",
    "qualified_name",
    "resolve_loaded_class",
]

JSONValue = Any  # the recursive JSON type is not expressible without noise; values are JSON-safe
ClassResolver = Callable[[str], type]

TAG: Final = "$hm"
_SUPPORTED = (
    "None, bool, int, float, str, list, dict, tuple, set, frozenset, bytes, datetime, date, time, "
    "timedelta, UUID, Decimal, Enum, dataclasses and pydantic models"
)


def qualified_name(obj: Any) -> str:
    """``module:qualname`` of a class or function; refuses things that cannot be imported by name."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname:
        raise SerializationError(f"{obj!r} has no module-level name")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise SerializationError(
            f"{module}.{qualname} is defined inside a function; define it at module level so it can be imported by name"
        )
    return f"{module}:{qualname}"


def resolve_loaded_class(name: str) -> type:
    """Find ``module:qualname`` among already-imported modules; never imports anything."""
    module_name, _, qualname = name.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        raise SerializationError(
            f"class {name} is not loaded in this process; import its module first or give the value a "
            "type hint naming the class"
        )
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
    if not isinstance(obj, type):
        raise SerializationError(f"{name} does not name a class")
    return obj


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _normalize(hint: Any) -> Any:
    """Strip Annotated, NewType and TypeVar wrappers; map missing hints to Any."""
    while True:
        if hint is None:
            return type(None)
        if isinstance(hint, NewType):
            hint = hint.__supertype__
            continue
        if isinstance(hint, TypeVar):
            hint = hint.__bound__ if hint.__bound__ is not None else Any
            continue
        if get_origin(hint) is typing.Annotated:
            hint = get_args(hint)[0]
            continue
        if isinstance(hint, str | typing.ForwardRef):
            return Any  # an unresolved forward reference: no check rather than a false error
        return hint


def _is_union(origin: Any) -> bool:
    return origin is Union or origin is types.UnionType


_LIST_ORIGINS: Final = (
    list,
    cabc.Sequence,
    cabc.MutableSequence,
    cabc.Iterable,
    cabc.Collection,
)
_SET_ORIGINS: Final = (set, frozenset, cabc.Set, cabc.MutableSet)
_DICT_ORIGINS: Final = (dict, cabc.Mapping, cabc.MutableMapping)


def _is_pydantic_model(cls: type) -> bool:
    return any(base.__module__.startswith("pydantic.") for base in cls.__mro__[1:]) and hasattr(cls, "model_validate")


def _same(value: Any) -> Any:
    return value


#: encoders for exact types on the hot path (subclasses take the general path)
_EXACT_ENCODERS: Final[dict[type, Callable[[Any], JSONValue]]] = {
    type(None): _same,
    bool: _same,
    str: _same,
    int: _same,
    timedelta: lambda value: {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]},
    uuid.UUID: lambda value: {TAG: "uuid", "v": str(value)},
}

_COMPACT: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compact_json(value: Any) -> str:
    """JSON text without spaces, unicode kept, NaN refused (one shared encoder: no per-call setup)."""
    return _COMPACT.encode(value)


_UNKNOWN: Final = object()
#: hint -> the runtime types that satisfy it, for plain classes and unions of them (None: no shortcut)
_SIMPLE_HINTS: dict[Any, Any] = {}


def _simple_types(hint: Any) -> tuple[type, ...] | None:
    """The types ``isinstance`` may check instead of the full walk, when ``hint`` is that simple."""
    if hint is Any or hint is object:
        return (object,)
    if _is_union(get_origin(hint)):
        members: list[type] = []
        for member in get_args(hint):
            simple = _simple_types(_normalize(member))
            if simple is None:
                return None
            members.extend(simple)
        return tuple(members)
    if not isinstance(hint, type) or get_origin(hint) is not None:
        return None
    if hint is float:
        return (int, float)
    if hint is complex:
        return (int, float, complex)
    try:
        isinstance(None, hint)
    except TypeError:
        return None
    return (hint,)


_SCALARS: Final = frozenset({str, int, float, bool})
#: hint -> JSON scalar types that decode to themselves under it (None: no shortcut)
_PASSTHROUGH: dict[Any, Any] = {}


def json_native_types(hint: Any) -> frozenset[type]:
    """The exact JSON scalar types (str, int, float, bool, None) a value under ``hint`` is stored as-is."""
    try:
        found = _PASSTHROUGH.get(hint, _UNKNOWN)
        if found is _UNKNOWN:
            found = _PASSTHROUGH[hint] = _passthrough_types(_normalize(hint))
    except TypeError:
        return frozenset()
    return found or frozenset()


def _passthrough_types(hint: Any) -> frozenset[type] | None:
    if hint is Any or hint is object:
        return frozenset({str, int, float, bool, type(None)})
    if _is_union(get_origin(hint)):
        found: set[type] = set()
        for member in get_args(hint):
            member_types = _passthrough_types(_normalize(member))
            if member_types is None:
                return None
            found |= member_types
        return frozenset(found)
    if hint in (str, int, float, bool, type(None)):
        return frozenset({hint})
    if isinstance(hint, type) and get_origin(hint) is None:
        return frozenset()  # other classes: a scalar never decodes to itself (tagged values are dicts)
    return None


class Codec:
    """Encodes values to JSON-safe structures and back, checked against type hints."""

    def __init__(self, class_resolver: ClassResolver = resolve_loaded_class) -> None:
        self._resolve_class = class_resolver

    # ------------------------------------------------------------------ text helpers
    def dumps(self, value: Any, hint: Any = Any, *, path: str = "value") -> str:
        return compact_json(self.encode(value, hint, path=path))

    def loads(self, text: str, hint: Any = Any, *, path: str = "value") -> Any:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SerializationError(f"{path}: stored JSON is invalid: {error}") from error
        return self.decode(data, hint, path=path)

    # ------------------------------------------------------------------ type checks
    def check(self, value: Any, hint: Any, *, path: str = "value") -> None:
        """Raise SerializationError when ``value`` does not fit ``hint`` (unknown hints pass)."""
        if hint is Any:
            return
        try:
            accepted = _SIMPLE_HINTS.get(hint, _UNKNOWN)
            if accepted is _UNKNOWN:
                accepted = _SIMPLE_HINTS[hint] = _simple_types(_normalize(hint))
        except TypeError:  # an unhashable hint: take the full path
            accepted = None
        if accepted is not None and isinstance(value, accepted):
            return
        problem = self._mismatch(value, _normalize(hint), path)
        if problem is not None:
            raise SerializationError(problem)

    def _mismatch(self, value: Any, hint: Any, path: str) -> str | None:
        if hint is Any or hint is object:
            return None

        def expected() -> str:  # formatted only when something is wrong
            return f"{path}: expected {_hint_name(hint)}, got {type(value).__name__} {_short(value)}"

        if hint is type(None):
            return None if value is None else expected()
        origin = get_origin(hint)
        args = get_args(hint)
        if _is_union(origin):
            for member in args:
                if self._mismatch(value, _normalize(member), path) is None:
                    return None
            return expected()
        if origin is Literal:
            ok = any(value == arg and type(value) is type(arg) for arg in args)
            return None if ok else expected()
        if origin is tuple:
            if not isinstance(value, tuple):
                return expected()
            if len(args) == 2 and args[1] is Ellipsis:
                return self._first_mismatch(value, [args[0]] * len(value), path)
            if args == ((),):
                return None if not value else expected()
            if args:
                if len(args) != len(value):
                    return f"{path}: expected {len(args)} items for {_hint_name(hint)}, got {len(value)}"
                return self._first_mismatch(value, list(args), path)
            return None
        if origin in _DICT_ORIGINS:
            if not isinstance(value, cabc.Mapping):
                return expected()
            if args:
                key_hint, value_hint = _normalize(args[0]), _normalize(args[1])
                for key, item in value.items():
                    problem = self._mismatch(key, key_hint, f"{path} key") or self._mismatch(
                        item, value_hint, f"{path}[{key!r}]"
                    )
                    if problem:
                        return problem
            return None
        if origin in _SET_ORIGINS:
            wanted = origin if origin in (set, frozenset) else cabc.Set
            if not isinstance(value, cabc.Set) or not isinstance(value, wanted):
                return expected()
            return self._first_mismatch(list(value), [args[0]] * len(value), path) if args else None
        if origin in _LIST_ORIGINS:
            if not isinstance(value, origin):
                return expected()
            if args and isinstance(value, cabc.Iterable) and not isinstance(value, str | bytes):
                items = list(value)
                return self._first_mismatch(items, [args[0]] * len(items), path)
            return None
        if origin is not None:
            return None  # other generics (Callable, type[...], user generics): not checked
        if not isinstance(hint, type):
            return None
        if hint is float:
            return None if isinstance(value, int | float) else expected()
        if hint is complex:
            return None if isinstance(value, int | float | complex) else expected()
        try:
            return None if isinstance(value, hint) else expected()
        except TypeError:  # non-runtime Protocols and similar: cannot check
            return None

    def _first_mismatch(self, items: Sequence[Any], hints: list[Any], path: str) -> str | None:
        for index, (item, hint) in enumerate(zip(items, hints, strict=True)):
            problem = self._mismatch(item, _normalize(hint), f"{path}[{index}]")
            if problem:
                return problem
        return None

    # ------------------------------------------------------------------ encoding
    def encode(self, value: Any, hint: Any = Any, *, path: str = "value") -> JSONValue:
        self.check(value, hint, path=path)
        return self._encode(value, path)

    def _encode(self, value: Any, path: str) -> JSONValue:
        fast = _EXACT_ENCODERS.get(type(value))
        if fast is not None:
            return fast(value)
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, enum.Enum):
            return {TAG: "enum", "c": self._class_name(type(value), path), "v": self._encode(value.value, path)}
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise SerializationError(f"{path}: {value!r} cannot be stored as JSON; use None or a number")
            return value
        if isinstance(value, list):
            return [self._encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(key, str) for key in value) and TAG not in value:
                return {key: self._encode(item, f"{path}[{key!r}]") for key, item in value.items()}
            return {
                TAG: "dict",
                "v": [
                    [self._encode(key, f"{path} key"), self._encode(item, f"{path}[{key!r}]")]
                    for key, item in value.items()
                ],
            }
        if isinstance(value, tuple):
            return {TAG: "tuple", "v": [self._encode(item, f"{path}[{i}]") for i, item in enumerate(value)]}
        if isinstance(value, set | frozenset):
            tag = "frozenset" if isinstance(value, frozenset) else "set"
            return {TAG: tag, "v": [self._encode(item, f"{path} item") for item in value]}
        if isinstance(value, datetime):
            if value.tzinfo is not None and value.utcoffset() is not None:
                value = value.astimezone(UTC)
            return {TAG: "datetime", "v": value.isoformat()}
        if isinstance(value, date):
            return {TAG: "date", "v": value.isoformat()}
        if isinstance(value, time):
            return {TAG: "time", "v": value.isoformat()}
        if isinstance(value, timedelta):
            return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
        if isinstance(value, uuid.UUID):
            return {TAG: "uuid", "v": str(value)}
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise SerializationError(f"{path}: {value!r} cannot be stored; use a finite Decimal")
            return {TAG: "decimal", "v": str(value)}
        if isinstance(value, bytes | bytearray | memoryview):
            return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
        cls = type(value)
        if dataclasses.is_dataclass(value):
            fields = {
                field.name: self._encode(getattr(value, field.name), f"{path}.{field.name}")
                for field in dataclasses.fields(value)
                if field.init
            }
            return {TAG: "dataclass", "c": self._class_name(cls, path), "v": fields}
        if _is_pydantic_model(cls):
            return {TAG: "pydantic", "c": self._class_name(cls, path), "v": value.model_dump(mode="json")}
        raise SerializationError(
            f"{path}: a {cls.__module__}.{cls.__qualname__} cannot be stored as JSON. Supported: "
            f"{_SUPPORTED}. Pass a supported value (for example its id) instead."
        )

    @staticmethod
    def _class_name(cls: type, path: str) -> str:
        try:
            return qualified_name(cls)
        except SerializationError as error:
            raise SerializationError(f"{path}: {error}") from None

    # ------------------------------------------------------------------ decoding
    def decode(self, data: JSONValue, hint: Any = Any, *, path: str = "value") -> Any:
        if data is None or type(data) in _SCALARS:
            try:
                passthrough = _PASSTHROUGH.get(hint, _UNKNOWN)
                if passthrough is _UNKNOWN:
                    passthrough = _PASSTHROUGH[hint] = _passthrough_types(_normalize(hint))
            except TypeError:  # an unhashable hint
                passthrough = None
            if passthrough is not None and type(data) in passthrough:
                return data
        try:
            return self._decode(data, _normalize(hint), path)
        except SerializationError:
            raise
        except (ValueError, TypeError, KeyError) as error:
            raise SerializationError(f"{path}: stored value cannot be read as {_hint_name(hint)}: {error}") from error

    def _decode(self, data: JSONValue, hint: Any, path: str) -> Any:
        origin = get_origin(hint)
        args = get_args(hint)
        if _is_union(origin):
            return self._decode_union(data, args, path)
        if isinstance(data, dict) and TAG in data:
            return self._decode_tagged(data, hint, origin, args, path)
        if isinstance(data, list):
            if origin is tuple or hint is tuple:
                return tuple(self._decode_items(data, args, path))
            if origin in _SET_ORIGINS or hint in (set, frozenset):
                items = self._decode_items(data, (args[0], ...) if args else (), path)
                return frozenset(items) if (origin or hint) is frozenset else set(items)
            item_hint = _normalize(args[0]) if args and origin in _LIST_ORIGINS else Any
            return [self._decode(item, item_hint, f"{path}[{i}]") for i, item in enumerate(data)]
        if isinstance(data, dict):
            value_hint = _normalize(args[1]) if len(args) == 2 and origin in _DICT_ORIGINS else Any
            return {key: self._decode(item, value_hint, f"{path}[{key!r}]") for key, item in data.items()}
        if hint is float and isinstance(data, int) and not isinstance(data, bool):
            return float(data)
        return data

    def _decode_union(self, data: JSONValue, members: tuple[Any, ...], path: str) -> Any:
        normalized = [_normalize(member) for member in members]
        if isinstance(data, dict) and TAG in data and "c" in data:
            # Pick the member naming the stored class, so the hint supplies it.
            for member in normalized:
                if isinstance(member, type) and self._names_class(member, data["c"]):
                    return self._decode(data, member, path)
        value = self._decode(data, Any, path)
        for member in normalized:
            if self._mismatch(value, member, path) is None:
                return self._decode(data, member, path) if get_origin(member) is not None else value
        return value

    @staticmethod
    def _names_class(cls: type, name: str) -> bool:
        return f"{cls.__module__}:{cls.__qualname__}" == name

    def _decode_items(self, data: list[Any], args: tuple[Any, ...], path: str) -> list[Any]:
        if len(args) == 2 and args[1] is Ellipsis:
            hints = [_normalize(args[0])] * len(data)
        elif args and args != ((),) and len(args) == len(data):
            hints = [_normalize(arg) for arg in args]
        else:
            hints = [Any] * len(data)
        return [
            self._decode(item, item_hint, f"{path}[{i}]")
            for i, (item, item_hint) in enumerate(zip(data, hints, strict=True))
        ]

    def _decode_tagged(self, data: dict[str, Any], hint: Any, origin: Any, args: tuple[Any, ...], path: str) -> Any:
        tag = data[TAG]
        raw: Any = data.get("v")
        if tag == "datetime":
            return datetime.fromisoformat(raw)
        if tag == "date":
            return date.fromisoformat(raw)
        if tag == "time":
            return time.fromisoformat(raw)
        if tag == "timedelta":
            days, seconds, microseconds = raw
            return timedelta(days=days, seconds=seconds, microseconds=microseconds)
        if tag == "uuid":
            return uuid.UUID(raw)
        if tag == "decimal":
            return Decimal(raw)
        if tag == "bytes":
            return base64.b64decode(raw.encode("ascii"))
        if tag == "tuple":
            items = self._decode_items(raw, args if origin is tuple else (), path)
            if isinstance(hint, type) and issubclass(hint, tuple) and hint is not tuple and hasattr(hint, "_fields"):
                return hint(*items)  # a named tuple, rebuilt from its hint
            return tuple(items)
        if tag in ("set", "frozenset"):
            item_args = (args[0], ...) if args and origin in _SET_ORIGINS else ()
            items = self._decode_items(raw, item_args, path)
            return frozenset(items) if tag == "frozenset" else set(items)
        if tag == "dict":
            key_hint, value_hint = (
                (_normalize(args[0]), _normalize(args[1])) if len(args) == 2 and origin in _DICT_ORIGINS else (Any, Any)
            )
            return {
                self._decode(key, key_hint, f"{path} key"): self._decode(item, value_hint, f"{path}[{key!r}]")
                for key, item in raw
            }
        if tag in ("enum", "dataclass", "pydantic"):
            cls = self._class_for(data["c"], hint, path)
            if tag == "enum":
                return cls(self._decode(raw, Any, path))
            if tag == "pydantic":
                return cls.model_validate(raw)
            return self._decode_dataclass(cls, raw, path)
        raise SerializationError(f"{path}: unknown stored type tag {tag!r}; was it written by a newer HiveMind?")

    def _class_for(self, name: str, hint: Any, path: str) -> Any:
        if isinstance(hint, type) and self._names_class(hint, name):
            return hint
        try:
            return self._resolve_class(name)
        except SerializationError as error:
            raise SerializationError(f"{path}: {error}") from None

    def _decode_dataclass(self, cls: Any, raw: Any, path: str) -> Any:
        if not dataclasses.is_dataclass(cls):
            raise SerializationError(f"{path}: {cls!r} is no longer a dataclass")
        try:
            field_hints = typing.get_type_hints(cls)
        except Exception:
            field_hints = {}
        kwargs = {
            name: self._decode(item, _normalize(field_hints.get(name, Any)), f"{path}.{name}")
            for name, item in raw.items()
        }
        factory: Any = cls
        return factory(**kwargs)
