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
when the job is created, not when it runs. Text no database can store (a lone surrogate), circular
structures and values nested deeper than :data:`MAX_DEPTH` levels are refused there too.

Decoding is guided by the type hint. Stored data names the class of an enum, dataclass or pydantic
value, and a row can be written by anyone with access to the database, so a stored name alone never
picks a class: only a class the reader asked for (the type hint, a member of a union hint, the enum
type of a ``Literal`` member) or a class registered for decoding (:func:`register_type`, or
``Codec(types=[...])``) is built, and only through its documented path: ``cls(value)`` member
lookup for an Enum, the constructor with the stored init fields for a dataclass, ``model_validate``
for a pydantic model. Nothing is imported, looked up among loaded modules, or unpickled. A value
naming any other class decodes to an :class:`UndecodedValue` marker (the read still works), or
raises :class:`~hivemind_jobs.errors.SerializationError` with ``strict=True``.
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
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, NewType, TypeVar, Union, get_args, get_origin

from hivemind_jobs.errors import SerializationError

__all__ = [
    "MAX_DEPTH",
    "Codec",
    "JSONValue",
    "UndecodedValue",
    "compact_json",
    "datetime_text",
    "exact_encoders",
    "floatless_json",
    "json_library",
    "json_native_types",
    "load_json",
    "qualified_name",
    "register_type",
]

JSONValue = Any  # the recursive JSON type is not expressible without noise; values are JSON-safe

TAG: Final = "$hm"
#: How deep values may nest (containers, dataclass fields), encoding and decoding alike. Deeper
#: structures are refused with a SerializationError instead of exhausting the Python stack.
MAX_DEPTH: Final = 100
_SUPPORTED = (
    "None, bool, int, float, str, list, dict, tuple, set, frozenset, bytes, datetime, date, time, "
    "timedelta, UUID, Decimal, Enum, dataclasses and pydantic models"
)
#: tags whose stored value names a class
_CLASS_TAGS: Final = frozenset({"enum", "dataclass", "pydantic"})


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


@dataclasses.dataclass(frozen=True, slots=True)
class UndecodedValue:
    """A stored value that names a class this reader may not build, kept as its stored JSON.

    Reading a job never builds a class only because a row names it: the class must be the type hint
    of the value or registered with :func:`register_type`. ``data`` is the stored JSON document
    (plain JSON types) and ``reason`` says which class it named and how to make it readable.
    Storing an ``UndecodedValue`` again writes ``data`` back unchanged.
    """

    data: JSONValue
    reason: str

    @property
    def class_name(self) -> str | None:
        """The ``module:qualname`` the stored value names, when it names one."""
        name = self.data.get("c") if isinstance(self.data, dict) else None
        return name if isinstance(name, str) else None

    def __hash__(self) -> int:
        # ``data`` holds dicts and lists; equal markers have equal reasons, which is enough for sets
        # and dict keys (a stored set or dict key can itself be an undecoded value).
        return hash(self.reason)

    def __str__(self) -> str:
        return f"<undecoded value: {self.reason}>"


def _pydantic_base() -> type | None:
    """pydantic's BaseModel when pydantic is loaded (no model can exist otherwise; never imports it)."""
    module = sys.modules.get("pydantic")
    base = getattr(module, "BaseModel", None) if module is not None else None
    return base if isinstance(base, type) else None


def _is_pydantic_model(cls: type) -> bool:
    base = _pydantic_base()
    return base is not None and isinstance(cls, type) and issubclass(cls, base) and cls is not base


def _is_dataclass_type(cls: Any) -> bool:
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


def _is_enum_type(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, enum.Enum)


#: classes registered for decoding in every codec, by ``module:qualname``
_REGISTRY: dict[str, type] = {}

_T = TypeVar("_T", bound=type)


def _registration_name(cls: Any) -> str:
    if not isinstance(cls, type):
        raise SerializationError(f"register_type() takes a class, got {type(cls).__name__} {cls!r}")
    name = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"
    if not (_is_enum_type(cls) or _is_dataclass_type(cls) or _is_pydantic_model(cls)):
        raise SerializationError(
            f"{name} cannot be registered for decoding: only Enum subclasses, dataclasses and pydantic "
            "BaseModel subclasses are stored by class"
        )
    try:
        qualified = qualified_name(cls)
    except SerializationError as error:
        raise SerializationError(f"{name} cannot be registered for decoding: {error}") from None
    if cls.__module__ not in sys.modules:
        raise SerializationError(
            f"{name} cannot be registered for decoding: its module {cls.__module__!r} is not imported, "
            "so the class cannot be found by name"
        )
    return qualified


def register_type(cls: _T) -> _T:
    """Allow every codec to build ``cls`` from stored data that names it; returns ``cls``.

    Use it as a class decorator at module level, next to the class, so the registration happens when
    the module is imported (like custom states). A stored value is only ever built as a class the
    reader asked for (its type hint) or a registered one: register the classes of values stored
    without a hint naming them, such as job results (``Succeeded.result``), job data read without a
    type hint, and arguments of parameters hinted ``Any`` or a base class.
    ``cls`` must be an Enum, a dataclass or a pydantic ``BaseModel`` subclass defined at module level.
    """
    _REGISTRY[_registration_name(cls)] = cls
    return cls


def _registered(name: str, codec_types: dict[str, type]) -> type | None:
    return codec_types.get(name) or _REGISTRY.get(name)


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


def _same(value: Any) -> Any:
    return value


def datetime_text(value: datetime) -> str:
    """The text of a datetime in the codec's JSON (ISO 8601; an aware one in UTC)."""
    if value.tzinfo is not None and value.tzinfo is not UTC and value.utcoffset() is not None:
        value = value.astimezone(UTC)
    return value.isoformat()


def _datetime_json(value: datetime) -> JSONValue:
    return {TAG: "datetime", "v": datetime_text(value)}


#: encoders for exact types on the hot path (subclasses take the general path; str is checked first)
_EXACT_ENCODERS: Final[dict[type, Callable[[Any], JSONValue]]] = {
    datetime: _datetime_json,
    type(None): _same,
    bool: _same,
    int: _same,
    timedelta: lambda value: {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]},
    uuid.UUID: lambda value: {TAG: "uuid", "v": str(value)},
}

_COMPACT: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

try:  # JSON text: msgspec when installed (a dependency), else the standard library
    import msgspec.json

    _msgspec_json: types.ModuleType | None = msgspec.json
except ImportError:  # pragma: no cover - msgspec is a dependency; the codec still works without it
    _msgspec_json = None

#: msgspec's encode/decode, or None: then (and whenever they fail) the standard library does the work
_fast_encode: Callable[[Any], bytes] | None = None
_fast_decode: Callable[[str], Any] | None = None


def _use_json_library(name: str) -> None:
    """Pick the JSON text library: ``"msgspec"`` (when installed) or ``"stdlib"``."""
    global _fast_encode, _fast_decode
    if name == "msgspec" and _msgspec_json is not None:
        _fast_encode, _fast_decode = _msgspec_json.Encoder().encode, _msgspec_json.Decoder().decode
    elif name in ("msgspec", "stdlib"):
        _fast_encode = _fast_decode = None
    else:
        raise ValueError(f"unknown JSON library {name!r}")


def json_library() -> str:
    """The library that writes and reads JSON text here: ``"msgspec"`` or ``"stdlib"``."""
    return "msgspec" if _fast_encode is not None else "stdlib"


_use_json_library("msgspec")


def compact_json(value: Any) -> str:
    """JSON text without spaces, unicode kept, NaN refused, for JSON values (the codec's output).

    msgspec writes it when installed, about ten times faster than the standard library. The standard
    library still writes (or refuses) every value msgspec does not write the same way: msgspec fails on
    text with a lone surrogate, dict keys that are not text or numbers and subclasses of str, and writes
    NaN and infinities as ``null``, so any text with ``null`` in it is written again by the standard
    library (which refuses NaN as before). Floats are written as their shortest round-tripping form in
    both; msgspec leaves out an exponent's ``+`` and leading zero (``1e16``, ``1e-7`` where the
    standard library writes ``1e+16``, ``1e-07``), which every JSON reader reads as the same number.
    """
    encode = _fast_encode
    if encode is not None:
        try:
            text = encode(value)
        except Exception:  # noqa: S110 - whatever msgspec refuses, the standard library decides below
            pass
        else:
            if b"null" not in text:
                return text.decode()
    return _COMPACT.encode(value)


def floatless_json(value: Any) -> str:
    """JSON text of a value that holds no float (integers, text, booleans, None), for a database to
    read as JSON: nothing stores or compares this text. msgspec's when it writes it, its ``null``
    kept (with no float it can only be a None); what msgspec refuses (a lone surrogate) goes to the
    standard library, which refuses it or writes it."""
    encode = _fast_encode
    if encode is not None:
        try:
            return encode(value).decode()
        except Exception:  # noqa: S110 - whatever msgspec refuses, the standard library decides below
            pass
    return _COMPACT.encode(value)


def load_json(text: str) -> Any:
    """The JSON value of ``text``, exactly as :func:`json.loads` reads it (its errors too).

    msgspec reads it when installed (integers of any size stay exact, floats are correctly rounded,
    the last of duplicate keys wins, as in the standard library); whatever msgspec refuses (invalid
    JSON, and the ``NaN``, lone surrogate escapes and out-of-range numbers the standard library
    accepts) is read by the standard library, which reads it or raises as before.
    """
    decode = _fast_decode
    if decode is not None:
        try:
            return decode(text)
        except Exception:  # noqa: S110 - the standard library decides below
            pass
    return json.loads(text)


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


def exact_encoders(hint: Any) -> dict[type, Callable[[Any], JSONValue]]:
    """The encoders :meth:`Codec.encode` uses for values of exactly a class that ``hint`` names
    (the hint itself, or a member of its union): such a value fits the hint, and a plain
    :class:`Codec` encodes it with that function (datetime, timedelta, UUID ...)."""
    members = get_args(hint) if _is_union(get_origin(hint)) else (hint,)
    found = {}
    for member in members:
        try:
            encoder = _EXACT_ENCODERS.get(member)
        except TypeError:  # an unhashable hint: none of these classes
            continue
        if encoder is not None:
            found[member] = encoder
    return found


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


def _verbatim(data: Any, path: str, depth: int) -> JSONValue:
    """``data`` unchanged after checking it is plain JSON every database can store."""
    kind = type(data)
    if data is None or kind is bool or kind is int:
        return data
    if kind is str:
        if data.isascii() or _storable_text(data):
            return data
        raise _unstorable_text(path, data)
    if kind is float:
        if not math.isfinite(data):
            raise SerializationError(f"{path}: {data!r} cannot be stored as JSON; use None or a number")
        return data
    if kind is list or kind is dict:
        inner = depth + 1
        if inner > MAX_DEPTH:
            raise _TooDeep(path)
        if kind is list:
            for index, item in enumerate(data):
                _verbatim(item, f"{path}[{index}]", inner)
            return data
        for key, item in data.items():
            if type(key) is not str:
                raise SerializationError(f"{path}: a key {_short(key)} of a plain JSON object is not text")
            _verbatim(key, f"{path} key", inner)
            _verbatim(item, f"{path}[{key!r}]", inner)
        return data
    raise SerializationError(f"{path}: a {kind.__name__} is not plain JSON")


class _TooDeep(Exception):
    """Raised inside encoding at the first value nested deeper than MAX_DEPTH (turned into a clear error)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _storable_text(text: str) -> bool:
    """Whether every database can store ``text`` (no lone surrogate, which UTF-8 cannot encode)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable_text(path: str, text: str) -> SerializationError:
    return SerializationError(
        f"{path}: the text {_short(text)} is not valid Unicode (it holds a lone surrogate), so no database can "
        "store it; encode it properly (for example text.encode('utf-8', 'surrogatepass')) or pass bytes"
    )


def _children(value: Any, path: str) -> list[tuple[Any, str]] | None:
    """What encoding descends into, for finding where a structure contains itself (None: a leaf)."""
    if isinstance(value, str | bytes | bytearray | memoryview):
        return None
    if isinstance(value, dict):
        pairs = [(key, f"{path} key") for key in value]
        return pairs + [(item, f"{path}[{key!r}]") for key, item in value.items()]
    if isinstance(value, list | tuple):
        return [(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        return [(item, f"{path} item") for item in value]
    if isinstance(value, enum.Enum):
        return [(value.value, path)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            (getattr(value, field.name), f"{path}.{field.name}") for field in dataclasses.fields(value) if field.init
        ]
    return None


def _cycle_at(value: Any, path: str, ancestors: set[int], depth: int) -> str | None:
    """The path where ``value`` contains one of its own ancestors, if it does within the depth limit."""
    children = _children(value, path)
    if children is None or depth > MAX_DEPTH + 1:
        return None
    key = id(value)
    if key in ancestors:
        return path
    ancestors.add(key)
    for child, child_path in children:
        found = _cycle_at(child, child_path, ancestors, depth + 1)
        if found is not None:
            return found
    ancestors.discard(key)
    return None


def _too_deep_error(value: Any, path: str, deepest: str) -> SerializationError:
    cycle = _cycle_at(value, path, set(), 0)
    if cycle is not None:
        return SerializationError(
            f"{cycle}: the value contains itself (a circular structure); it cannot be stored as JSON. "
            "Store the data without the back reference (for example an id)"
        )
    return SerializationError(
        f"{deepest}: the value is nested more than {MAX_DEPTH} levels deep (containers and dataclasses); "
        "store a flatter structure"
    )


def _nested_too_deep(path: str) -> SerializationError:
    return SerializationError(
        f"{path}: the stored value is nested more than {MAX_DEPTH} levels deep; it was not written by this "
        "codec and is not read"
    )


#: exact types a container item is stored as without a call (str needs its text check first)
_PLAIN_ITEMS: Final = frozenset({int, bool, type(None)})

#: errors of reading a malformed stored value with the built-in tags (turned into SerializationError)
_MALFORMED: Final = (ValueError, TypeError, KeyError, AttributeError, IndexError, ArithmeticError)


class Codec:
    """Encodes values to JSON-safe structures and back, checked against type hints.

    ``types`` registers classes (Enum, dataclass or pydantic model) this codec may build from stored
    data in addition to those registered for every codec with :func:`register_type`.
    """

    def __init__(self, *, types: Iterable[type] = ()) -> None:
        self._types: dict[str, type] = {_registration_name(cls): cls for cls in types}

    # ------------------------------------------------------------------ text helpers
    def dumps(self, value: Any, hint: Any = Any, *, path: str = "value") -> str:
        return compact_json(self.encode(value, hint, path=path))

    def loads(self, text: str, hint: Any = Any, *, path: str = "value", strict: bool = False) -> Any:
        """Decode stored JSON text; see :meth:`decode` for ``strict``."""
        try:
            data = load_json(text)
        except json.JSONDecodeError as error:
            raise SerializationError(f"{path}: stored JSON is invalid: {error}") from error
        except RecursionError:
            raise _nested_too_deep(path) from None
        return self.decode(data, hint, path=path, strict=strict)

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
        try:
            return self._encode(value, path, 0)
        except _TooDeep as error:
            raise _too_deep_error(value, path, error.path) from None
        except RecursionError:  # a deep structure met an already deep stack
            raise _too_deep_error(value, path, path) from None

    def _encode(self, value: Any, path: str, depth: int) -> JSONValue:
        cls = type(value)
        if cls is str:
            if value.isascii() or _storable_text(value):
                return value
            raise _unstorable_text(path, value)
        fast = _EXACT_ENCODERS.get(cls)
        if fast is not None:
            return fast(value)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            if _storable_text(value):
                return str(value)
            raise _unstorable_text(path, value)
        if isinstance(value, int) and not isinstance(value, enum.Enum):
            return int(value)
        if isinstance(value, float) and not isinstance(value, enum.Enum):
            if not math.isfinite(value):
                raise SerializationError(f"{path}: {value!r} cannot be stored as JSON; use None or a number")
            return float(value)
        if cls is UndecodedValue:
            return _verbatim(value.data, path, depth)
        inner = depth + 1
        if isinstance(value, enum.Enum):
            if inner > MAX_DEPTH:
                raise _TooDeep(path)
            return {TAG: "enum", "c": self._class_name(cls, path), "v": self._encode(value.value, path, inner)}
        if isinstance(value, list | tuple | set | frozenset | dict) and inner > MAX_DEPTH:
            raise _TooDeep(path)
        if isinstance(value, list):
            # Plain items are kept without a call (and without formatting their path).
            return [
                item
                if (type(item) is str and item.isascii()) or type(item) in _PLAIN_ITEMS
                else self._encode(item, f"{path}[{i}]", inner)
                for i, item in enumerate(value)
            ]
        if isinstance(value, dict):
            if TAG not in value and all(type(key) is str and (key.isascii() or _storable_text(key)) for key in value):
                return {
                    key: item
                    if (type(item) is str and item.isascii()) or type(item) in _PLAIN_ITEMS
                    else self._encode(item, f"{path}[{key!r}]", inner)
                    for key, item in value.items()
                }
            return {
                TAG: "dict",
                "v": [
                    [self._encode(key, f"{path} key", inner), self._encode(item, f"{path}[{key!r}]", inner)]
                    for key, item in value.items()
                ],
            }
        if isinstance(value, tuple):
            return {TAG: "tuple", "v": [self._encode(item, f"{path}[{i}]", inner) for i, item in enumerate(value)]}
        if isinstance(value, set | frozenset):
            tag = "frozenset" if isinstance(value, frozenset) else "set"
            return {TAG: tag, "v": [self._encode(item, f"{path} item", inner) for item in value]}
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
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if inner > MAX_DEPTH:
                raise _TooDeep(path)
            fields = {
                field.name: self._encode(getattr(value, field.name), f"{path}.{field.name}", inner)
                for field in dataclasses.fields(value)
                if field.init
            }
            return {TAG: "dataclass", "c": self._class_name(cls, path), "v": fields}
        if _is_pydantic_model(cls):
            dumped = _verbatim(value.model_dump(mode="json"), path, depth)
            return {TAG: "pydantic", "c": self._class_name(cls, path), "v": dumped}
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
    def decode(self, data: JSONValue, hint: Any = Any, *, path: str = "value", strict: bool = False) -> Any:
        """Rebuild a value from its stored JSON, guided by ``hint``.

        A stored enum, dataclass or pydantic value is built only as a class ``hint`` names or a
        registered class (see :func:`register_type`); otherwise it becomes an :class:`UndecodedValue`,
        or, with ``strict=True``, a :class:`SerializationError` is raised. Malformed stored data always
        raises :class:`SerializationError`.
        """
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
            return self._decode(data, _normalize(hint), path, strict, 0)
        except SerializationError:
            raise
        except RecursionError:  # a deep value met an already deep stack
            raise _nested_too_deep(path) from None
        except _MALFORMED as error:
            raise SerializationError(f"{path}: stored value cannot be read as {_hint_name(hint)}: {error}") from error

    def _decode(self, data: JSONValue, hint: Any, path: str, strict: bool, depth: int) -> Any:
        origin = get_origin(hint)
        args = get_args(hint)
        if _is_union(origin):
            return self._decode_union(data, hint, args, path, strict, depth)
        if isinstance(data, dict):
            if TAG in data:
                return self._decode_tagged(data, hint, origin, args, path, strict, depth)
            inner = depth + 1
            if inner > MAX_DEPTH:
                raise _nested_too_deep(path)
            value_hint = _normalize(args[1]) if len(args) == 2 and origin in _DICT_ORIGINS else Any
            return {
                key: self._decode(item, value_hint, f"{path}[{key!r}]", strict, inner) for key, item in data.items()
            }
        if isinstance(data, list):
            inner = depth + 1
            if inner > MAX_DEPTH:
                raise _nested_too_deep(path)
            if origin is tuple or hint is tuple:
                return tuple(self._decode_items(data, args, path, strict, inner))
            if origin in _SET_ORIGINS or hint in (set, frozenset):
                items = self._decode_items(data, (args[0], ...) if args else (), path, strict, inner)
                return frozenset(items) if (origin or hint) is frozenset else set(items)
            item_hint = _normalize(args[0]) if args and origin in _LIST_ORIGINS else Any
            return [self._decode(item, item_hint, f"{path}[{i}]", strict, inner) for i, item in enumerate(data)]
        if hint is float and isinstance(data, int) and not isinstance(data, bool):
            return float(data)
        return data

    def _decode_union(
        self, data: JSONValue, hint: Any, members: tuple[Any, ...], path: str, strict: bool, depth: int
    ) -> Any:
        normalized = [_normalize(member) for member in members]
        tag = data.get(TAG) if isinstance(data, dict) else None
        if isinstance(tag, str) and tag in _CLASS_TAGS:
            # Pick the member naming the stored class, so the hint supplies it; otherwise the whole
            # union decides which registered classes fit.
            name = data.get("c")
            for member in normalized:
                if isinstance(member, type) and self._names_class(member, name):
                    return self._decode(data, member, path, strict, depth)
            return self._decode_tagged(data, hint, None, (), path, strict, depth)
        value = self._decode(data, Any, path, strict, depth)
        for member in normalized:
            if self._mismatch(value, member, path) is None:
                return self._decode(data, member, path, strict, depth) if get_origin(member) is not None else value
        return value

    @staticmethod
    def _names_class(cls: type, name: object) -> bool:
        return f"{cls.__module__}:{cls.__qualname__}" == name

    def _decode_items(self, data: list[Any], args: tuple[Any, ...], path: str, strict: bool, depth: int) -> list[Any]:
        if len(args) == 2 and args[1] is Ellipsis:
            hints = [_normalize(args[0])] * len(data)
        elif args and args != ((),) and len(args) == len(data):
            hints = [_normalize(arg) for arg in args]
        else:
            hints = [Any] * len(data)
        return [
            self._decode(item, item_hint, f"{path}[{i}]", strict, depth)
            for i, (item, item_hint) in enumerate(zip(data, hints, strict=True))
        ]

    def _decode_tagged(
        self,
        data: dict[str, Any],
        hint: Any,
        origin: Any,
        args: tuple[Any, ...],
        path: str,
        strict: bool,
        depth: int,
    ) -> Any:
        tag = data[TAG]
        raw: Any = data.get("v")
        if not isinstance(tag, str):
            raise SerializationError(f"{path}: stored type tag {_short(tag)} is not text")
        if tag in _TEXT_TAGS:
            if not isinstance(raw, str):
                raise SerializationError(f"{path}: a stored {tag} must be text, got {_short(raw)}")
            return _TEXT_TAGS[tag](raw)
        if tag == "timedelta":
            if not (isinstance(raw, list) and len(raw) == 3 and all(type(part) is int for part in raw)):
                raise SerializationError(f"{path}: a stored timedelta must be [days, seconds, microseconds]")
            days, seconds, microseconds = raw
            return timedelta(days=days, seconds=seconds, microseconds=microseconds)
        inner = depth + 1
        if inner > MAX_DEPTH:
            raise _nested_too_deep(path)
        if tag in _CLASS_TAGS:
            return self._decode_class(tag, data, raw, hint, path, strict, inner)
        if not isinstance(raw, list):
            if tag in ("tuple", "set", "frozenset", "dict"):
                raise SerializationError(f"{path}: a stored {tag} must be a list, got {_short(raw)}")
            raise SerializationError(f"{path}: unknown stored type tag {tag!r}; was it written by a newer HiveMind?")
        if tag == "tuple":
            items = self._decode_items(raw, args if origin is tuple else (), path, strict, inner)
            if isinstance(hint, type) and issubclass(hint, tuple) and hint is not tuple and hasattr(hint, "_fields"):
                return hint(*items)  # a named tuple, rebuilt from its hint
            return tuple(items)
        if tag in ("set", "frozenset"):
            item_args = (args[0], ...) if args and origin in _SET_ORIGINS else ()
            items = self._decode_items(raw, item_args, path, strict, inner)
            return frozenset(items) if tag == "frozenset" else set(items)
        if tag == "dict":
            key_hint, value_hint = (
                (_normalize(args[0]), _normalize(args[1])) if len(args) == 2 and origin in _DICT_ORIGINS else (Any, Any)
            )
            decoded = {}
            for pair in raw:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise SerializationError(f"{path}: a stored dict must be a list of [key, value] pairs")
                key = self._decode(pair[0], key_hint, f"{path} key", strict, inner)
                decoded[key] = self._decode(pair[1], value_hint, f"{path}[{key!r}]", strict, inner)
            return decoded
        raise SerializationError(f"{path}: unknown stored type tag {tag!r}; was it written by a newer HiveMind?")

    # ------------------------------------------------------------------ classes named by stored data
    def _decode_class(
        self, tag: str, data: dict[str, Any], raw: Any, hint: Any, path: str, strict: bool, depth: int
    ) -> Any:
        name = data.get("c")
        if not isinstance(name, str):
            raise SerializationError(f"{path}: a stored {tag} value must name its class as text, got {_short(name)}")
        cls = self._allowed_class(name, hint)
        if isinstance(cls, str):  # why the class may not be built here
            if strict:
                raise SerializationError(f"{path}: {cls}")
            return UndecodedValue(data, cls)
        if tag == "enum":
            if not _is_enum_type(cls):
                raise SerializationError(f"{path}: the stored enum names {name}, which is not an Enum")
            member = self._decode(raw, Any, path, strict, depth)
            return _build(cls, path, lambda: cls(member))
        if tag == "dataclass":
            if not _is_dataclass_type(cls):
                raise SerializationError(f"{path}: the stored dataclass names {name}, which is not a dataclass")
            return self._decode_dataclass(cls, raw, path, strict, depth)
        if not _is_pydantic_model(cls):
            raise SerializationError(
                f"{path}: the stored pydantic model names {name}, which is not a pydantic BaseModel subclass"
            )
        return _build(cls, path, lambda: cls.model_validate(raw))  # type: ignore[attr-defined]

    def _allowed_class(self, name: str, hint: Any) -> type | str:
        """The class ``name`` may be built as under ``hint``, or why none may."""
        hinted = _hinted_classes(hint)
        for cls in hinted:
            if self._names_class(cls, name):
                return cls
        registered = _registered(name, self._types)
        if registered is None:
            unnamed = "no type hint names it" if hint is Any else f"the type hint {_hint_name(hint)} does not name it"
            return (
                f"the stored value names the class {name}, which is not built: {unnamed} and it is not registered "
                "for decoding (stored data never chooses a class on its own). If the class is yours, register it "
                "(decorate it with @hivemind_jobs.register_type, or pass Codec(types=[...])) or read the value "
                "with a type hint naming it"
            )
        if not _fits(registered, hint, hinted):
            return (
                f"the stored value names the class {name}, which does not fit the type hint {_hint_name(hint)}; "
                "it is not built"
            )
        return registered

    def _decode_dataclass(self, cls: type, raw: Any, path: str, strict: bool, depth: int) -> Any:
        if not isinstance(raw, dict):
            raise SerializationError(f"{path}: a stored dataclass must hold an object of fields, got {_short(raw)}")
        field_hints, init_names = _dataclass_plan(cls)
        unknown = [name for name in raw if name not in init_names]
        if unknown:
            raise SerializationError(
                f"{path}: stored field(s) {sorted(map(str, unknown))} are not init fields of "
                f"{cls.__module__}.{cls.__qualname__} (fields: {sorted(init_names)})"
            )
        kwargs = {
            name: self._decode(item, field_hints.get(name, Any), f"{path}.{name}", strict, depth)
            for name, item in raw.items()
        }
        factory: Any = cls
        return _build(cls, path, lambda: factory(**kwargs))


_TEXT_TAGS: Final[dict[str, Callable[[str], Any]]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "bytes": lambda raw: base64.b64decode(raw.encode("ascii"), validate=True),
}


def _build(cls: type, path: str, make: Callable[[], Any]) -> Any:
    """Run the class's own decoding path; whatever it raises becomes a SerializationError."""
    try:
        return make()
    except SerializationError:
        raise
    except Exception as error:
        raise SerializationError(
            f"{path}: {cls.__module__}.{cls.__qualname__} refused the stored value: {type(error).__name__}: {error}"
        ) from error


def _hinted_classes(hint: Any) -> tuple[type, ...]:
    """The classes a hint asks for: the hint itself, union members, enum types of Literal members."""
    hint = _normalize(hint)
    origin = get_origin(hint)
    if _is_union(origin):
        return tuple(cls for member in get_args(hint) for cls in _hinted_classes(member))
    if origin is Literal:
        return tuple({type(arg): None for arg in get_args(hint) if isinstance(arg, enum.Enum)})
    if isinstance(hint, type) and origin is None and hint is not object:
        return (hint,)
    return ()


def _fits(cls: type, hint: Any, hinted: tuple[type, ...]) -> bool:
    """Whether a registered class is acceptable under ``hint`` (Any, or a subclass of a hinted class)."""
    hint = _normalize(hint)
    if hint is Any or hint is object:
        return True
    if _is_union(get_origin(hint)) and any(_normalize(member) in (Any, object) for member in get_args(hint)):
        return True
    for wanted in hinted:
        try:
            if issubclass(cls, wanted):
                return True
        except TypeError:  # a hint issubclass cannot check (a non-runtime Protocol): do not second-guess it
            return True
    return False


#: dataclass -> (its field type hints, its init field names), computed once per class
_DATACLASS_PLANS: dict[type, tuple[dict[str, Any], frozenset[str]]] = {}


def _dataclass_plan(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    plan = _DATACLASS_PLANS.get(cls)
    if plan is None:
        try:
            hints = {name: _normalize(hint) for name, hint in typing.get_type_hints(cls).items()}
        except Exception:
            hints = {}
        init_names = frozenset(field.name for field in dataclasses.fields(cls) if field.init)
        plan = _DATACLASS_PLANS[cls] = (hints, init_names)
    return plan
