"""Property test: no stored document makes the codec build a class the reader did not ask for.

Documents are random JSON with tagged values whose tags are known and unknown and whose class names
are drawn from the classes of every loaded module (``subprocess:Popen``, ``os``-level classes, file
and socket classes, and sentinels defined here that record any call), plus corrupt JSON text and
wrong shapes. Decoding must return plain values, instances of the hinted or registered classes, or
:class:`UndecodedValue` markers, or raise :class:`SerializationError`; nothing else may be built.
Nothing is patched: the classes are the real ones.

``HIVEMIND_CODEC_EXAMPLES`` (default 300) sets the number of examples per property.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time as clock
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivemind_jobs.core.codec import Codec, UndecodedValue
from hivemind_jobs.errors import SerializationError

EXAMPLES = int(os.environ.get("HIVEMIND_CODEC_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
#: a command a decoded subprocess.Popen would run: it creates this file
MARK = Path(tempfile.mkdtemp(prefix="hm-codec-fuzz-")) / "popen-ran"

CALLS: list[str] = []


class Sentinel:
    """Records every construction; it is never hinted nor registered, so it must never be built."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Sentinel:
        CALLS.append(f"Sentinel.__new__{args!r}{kwargs!r}")
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        CALLS.append(f"Sentinel.__init__{args!r}{kwargs!r}")

    @classmethod
    def model_validate(cls, raw: Any) -> Sentinel:
        CALLS.append(f"Sentinel.model_validate({raw!r})")
        return cls()


@dataclasses.dataclass
class SentinelRecord:
    value: Any = None
    other: Any = None

    def __post_init__(self) -> None:
        CALLS.append(f"SentinelRecord.__post_init__({self.value!r})")


class SentinelEnum(enum.Enum):
    A = "a"

    @classmethod
    def _missing_(cls, value: object) -> Any:
        CALLS.append(f"SentinelEnum._missing_({value!r})")
        return None


class FuzzColor(enum.Enum):
    RED = "red"
    ONE = 1


@dataclasses.dataclass
class FuzzRecord:
    value: Any = None
    color: FuzzColor | None = None


class FuzzPair(NamedTuple):
    left: Any
    right: Any


REGISTERED = (FuzzColor, FuzzRecord)
CODEC = Codec(types=[FuzzRecord])  # FuzzColor only ever comes from a hint, FuzzRecord from the registry too


def loaded_class_names() -> list[str]:
    """``module:qualname`` of every class defined at the top level of a loaded module."""
    names = set()
    for module_name, module in list(sys.modules.items()):
        try:
            members = list(vars(module).items())
        except TypeError:
            continue
        for attribute, obj in members:
            # type(obj), not isinstance: a lazy object (Django's settings) would set itself up on __class__
            if (
                issubclass(type(obj), type)
                and getattr(obj, "__module__", None) == module_name
                and attribute == obj.__name__
            ):
                names.add(f"{module_name}:{obj.__qualname__}")
    return sorted(names)


DANGEROUS = [
    "subprocess:Popen",
    "subprocess:CompletedProcess",
    "os:_wrap_close",
    "os:DirEntry",
    "posix:DirEntry",
    "io:FileIO",
    "_io:FileIO",
    "pathlib:Path",
    "socket:socket",
    "threading:Thread",
    "tempfile:TemporaryDirectory",
    "builtins:type",
    "builtins:object",
    "builtins:eval",
    f"{__name__}:Sentinel",
    f"{__name__}:SentinelRecord",
    f"{__name__}:SentinelEnum",
]
OURS = [f"{__name__}:FuzzColor", f"{__name__}:FuzzRecord", f"{__name__}:FuzzPair"]
LOADED = loaded_class_names()
assert "subprocess:Popen" in LOADED

KNOWN_TAGS = ["enum", "dataclass", "pydantic", "datetime", "date", "time", "timedelta", "uuid", "decimal", "bytes"]
KNOWN_TAGS += ["tuple", "set", "frozenset", "dict"]
POPEN_ARGS = ["touch", str(MARK)]

class_names = st.one_of(
    st.sampled_from(DANGEROUS), st.sampled_from(OURS), st.sampled_from(LOADED), st.text(max_size=30)
)
tags = st.one_of(st.sampled_from(KNOWN_TAGS), st.text(max_size=10), st.integers(), st.none())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["red", "a", 1, "2030-01-01", "12.5", "AAEC", "P1D", "12345678-1234-5678-1234-567812345678"]),
)


def documents() -> st.SearchStrategy[Any]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        fields = st.dictionaries(st.sampled_from(["value", "other", "color", "args", "x"]), children, max_size=3)
        tagged = st.fixed_dictionaries(
            {"$hm": tags},
            optional={"c": st.one_of(class_names, scalars), "v": st.one_of(children, fields, st.just(POPEN_ARGS))},
        )
        return st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=5), children, max_size=4),
            tagged,
            st.lists(st.lists(children, min_size=2, max_size=2), max_size=3).map(
                lambda pairs: {"$hm": "dict", "v": pairs}
            ),
        )

    return st.recursive(scalars | st.just(POPEN_ARGS), extend, max_leaves=25)


HINTS: list[Any] = [
    Any,
    object,
    int,
    float,
    str,
    bytes,
    list[Any],
    dict[str, Any],
    tuple[Any, ...],
    set[Any],
    FuzzColor,
    FuzzColor | None,
    FuzzRecord,
    FuzzRecord | int,
    Literal[FuzzColor.RED],
    list[FuzzRecord],
    dict[Any, FuzzColor],
    FuzzPair,
    datetime,
    subprocess.CompletedProcess,  # a hint naming a class that is not a stored kind: still nothing is built
]

PLAIN = (type(None), bool, int, float, str, bytes, datetime, date, time, timedelta, UUID, Decimal, UndecodedValue)


def assert_only_allowed(value: Any, depth: int = 0) -> None:
    assert depth < 200
    if isinstance(value, PLAIN) and type(value) in PLAIN:
        return
    if type(value) in (list, tuple, set, frozenset, FuzzPair):
        for item in value:
            assert_only_allowed(item, depth + 1)
        return
    if type(value) is dict:
        for key, item in value.items():
            assert_only_allowed(key, depth + 1)
            assert_only_allowed(item, depth + 1)
        return
    if type(value) is FuzzColor:
        return
    if type(value) is FuzzRecord:
        assert_only_allowed(value.value, depth + 1)
        assert_only_allowed(value.color, depth + 1)
        return
    raise AssertionError(f"decoding built a {type(value).__module__}.{type(value).__qualname__}: {value!r}")


def decode_safely(data: Any, hint: Any, strict: bool) -> None:
    try:
        value = CODEC.decode(data, hint, strict=strict)
    except SerializationError:
        pass
    else:
        assert_only_allowed(value)
        if strict:
            assert "UndecodedValue" not in repr(value), "strict decoding must raise instead of marking"
    assert CALLS == [], CALLS
    assert not MARK.exists(), "a stored document ran a command"


@SETTINGS
@given(data=documents(), hint=st.sampled_from(HINTS), strict=st.booleans())
def test_decoding_random_documents_builds_only_asked_for_classes(data: Any, hint: Any, strict: bool) -> None:
    decode_safely(data, hint, strict)


@SETTINGS
@given(
    name=st.one_of(st.sampled_from(DANGEROUS), st.sampled_from(LOADED)),
    tag=st.sampled_from(["enum", "dataclass", "pydantic"]),
    value=st.one_of(st.just(POPEN_ARGS), scalars, st.dictionaries(st.sampled_from(["value", "args"]), scalars)),
    hint=st.sampled_from(HINTS),
    strict=st.booleans(),
)
def test_every_loaded_class_named_by_a_row_stays_unbuilt(
    name: str, tag: str, value: Any, hint: Any, strict: bool
) -> None:
    document = {"$hm": tag, "c": name, "v": value}
    decode_safely(document, hint, strict)
    decode_safely([document, {"k": document}, {"$hm": "tuple", "v": [document]}], hint, strict)


@SETTINGS
@given(
    text=st.one_of(
        st.text(max_size=60),
        documents()
        .map(json.dumps)
        .flatmap(
            lambda text: st.tuples(st.integers(0, len(text)), st.integers(0, 3)).map(
                lambda cut: text[: cut[0]] + ']}"{['[cut[1]] + text[cut[0] :]
            )
        ),
        st.integers(1, 3000).map(lambda depth: '{"$hm":"tuple","v":[' * depth + "]}" * depth),
        st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    ),
    hint=st.sampled_from(HINTS),
    strict=st.booleans(),
)
def test_corrupt_and_deep_text_is_refused_or_read_safely(text: str, hint: Any, strict: bool) -> None:
    try:
        value = CODEC.loads(text, hint, strict=strict)
    except SerializationError:
        pass
    else:
        assert_only_allowed(value)
    assert CALLS == [], CALLS
    assert not MARK.exists()


def test_no_command_ran_after_all_examples() -> None:
    clock.sleep(0.2)  # a Popen would run its command in another process
    assert not MARK.exists()
    assert CALLS == []


@pytest.fixture(autouse=True, scope="module")
def _remove_mark_directory() -> Iterator[None]:
    yield
    shutil.rmtree(MARK.parent, ignore_errors=True)


def test_registered_and_hinted_classes_still_decode() -> None:
    record = FuzzRecord([1, (2, 3)], FuzzColor.ONE)
    assert CODEC.decode(CODEC.encode(record)) == record
    assert CODEC.decode(CODEC.encode(FuzzColor.RED), FuzzColor) is FuzzColor.RED
    assert isinstance(CODEC.decode(CODEC.encode(FuzzColor.RED)), UndecodedValue)
    assert isinstance(CODEC.decode(CODEC.encode(SentinelRecord(1)), Any), UndecodedValue)
    CALLS.clear()  # SentinelRecord(1) above was built by this test itself
