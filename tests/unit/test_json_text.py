"""JSON text is written and read by msgspec, with the standard library as the authority.

What msgspec writes reads back as the same value in both libraries, what the standard library wrote
before reads back the same, and every value msgspec would write differently (NaN, lone surrogates,
integers beyond 64 bits...) or refuses is handled by the standard library exactly as before.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivemind_jobs.core import codec as codec_module
from hivemind_jobs.core import loop
from hivemind_jobs.core.codec import Codec, compact_json, floatless_json, json_library, load_json
from hivemind_jobs.errors import SerializationError

STDLIB: json.JSONEncoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@pytest.fixture
def stdlib_json() -> Iterator[None]:
    codec_module._use_json_library("stdlib")
    try:
        yield
    finally:
        codec_module._use_json_library("msgspec")


def test_msgspec_is_the_library() -> None:
    assert json_library() == "msgspec"


def test_the_standard_library_can_be_selected(stdlib_json: None) -> None:
    assert json_library() == "stdlib"
    assert compact_json({"a": [1, 1e-7]}) == '{"a":[1,1e-07]}'
    assert load_json("[1, 2]") == [1, 2]


def test_unknown_library_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown JSON library"):
        codec_module._use_json_library("simdjson")


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
json_without_floats = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | texts,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5),
    max_leaves=30,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_without_floats)
def test_text_without_floats_is_byte_identical(value: Any) -> None:
    assert compact_json(value) == STDLIB.encode(value)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_both_libraries_read_what_either_wrote(value: Any) -> None:
    written = compact_json(value)
    assert json.loads(written) == value
    assert load_json(written) == value
    assert load_json(STDLIB.encode(value)) == value


def test_floats_round_trip_and_old_spellings_read() -> None:
    for bits in range(0, 2**64, 2**64 // 20011):
        number = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if not math.isfinite(number):
            continue
        assert json.loads(compact_json([number])) == [number]
        assert load_json(json.dumps(number)) == number
    # msgspec spells exponents without "+" and leading zeros; both spellings mean the same number
    assert compact_json([1e16, 1e-7, 0.1]) == "[1e16,1e-7,0.1]"
    assert load_json("[1e+16,1e-07,1E16]") == [1e16, 1e-7, 1e16]


def test_big_integers_stay_exact() -> None:
    for number in (2**63, 2**64, -(2**63) - 1, 10**40, -(10**40)):
        assert compact_json({"n": number}) == f'{{"n":{number}}}'
        assert load_json(f'{{"n":{number}}}') == {"n": number}
        assert type(load_json(str(number))) is int


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, {"x": math.nan}], {"a": None, "b": math.inf}])
def test_nan_and_infinity_are_still_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        compact_json(value)


def test_null_is_written_as_before() -> None:
    assert compact_json({"a": None, "b": [None, "null"]}) == '{"a":null,"b":[null,"null"]}'


def test_values_msgspec_refuses_are_written_by_the_standard_library() -> None:
    class Text(str):
        pass

    lone = "a\ud800b"
    assert compact_json([lone]) == STDLIB.encode([lone])  # a lone surrogate: msgspec refuses it
    assert compact_json({True: 1, None: 2}) == '{"true":1,"null":2}'
    assert compact_json([Text("x")]) == '["x"]'
    with pytest.raises(TypeError):
        compact_json(object())


@pytest.mark.parametrize(
    "text",
    ["NaN", "[Infinity, -Infinity]", '"\\ud800"', "1E400", '{"a": 1, "a": 2}', "  [ ]\n", '"\\u0000"', "-0"],
)
def test_reading_accepts_what_the_standard_library_accepts(text: str) -> None:
    expected, got = json.loads(text), load_json(text)
    assert repr(got) == repr(expected)


@pytest.mark.parametrize("text", ["", "[1,]", "{'a': 1}", '{"a":1}x', "\ufeff{}", '"a\x00"', "01", "nul"])
def test_reading_refuses_what_the_standard_library_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        load_json(text)
    assert str(got.value) == str(expected.value)


def test_codec_loads_reports_invalid_json_as_before() -> None:
    with pytest.raises(SerializationError, match="stored JSON is invalid: Expecting value"):
        Codec().loads("[1,", path="value")


def test_rows_written_by_the_standard_library_read_the_same(stdlib_json: None) -> None:
    codec = Codec()
    values: list[Any] = [
        {"when": datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "span": timedelta(days=1, microseconds=7)},
        [Decimal("1.10"), UUID(int=12345), b"\x00\xff", (1, "two"), {3, 4}],
        {"big": 2**100, "small": 1e-300, "unicode": "zürich 東京 😀", "nested": [[{"a": None}]]},
        {1: "not text keys", 2.5: [1e16, 1e-7]},
    ]
    stored = [codec.dumps(value) for value in values]
    codec_module._use_json_library("msgspec")
    assert [codec.loads(text) for text in stored] == values
    rewritten = [codec.dumps(value) for value in values]
    codec_module._use_json_library("stdlib")
    assert [codec.loads(text) for text in rewritten] == values


def test_loop_runs_on_asyncio_unless_uvloop_is_asked_for() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loop.loop_name() == "asyncio"
    assert loop.run(loop_module()) == "asyncio.unix_events"
    pytest.importorskip("uvloop")
    assert loop.loop_name(use_uvloop=True) == "uvloop"
    assert loop.run(loop_module(), use_uvloop=True).startswith("uvloop")


def test_asking_for_uvloop_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    async def answer() -> int:
        return 42

    monkeypatch.setitem(sys.modules, "uvloop", None)  # importing it now raises ImportError
    assert loop.run(answer()) == 42
    with pytest.raises(ImportError, match="uvloop is not installed"):
        loop.run(answer(), use_uvloop=True)


@pytest.mark.parametrize("value", [[{"reason": None, "n": 3, "ok": True, "text": "é"}], [1, 2, 3], ["a-b", None]])
def test_floatless_json_keeps_msgspecs_text_with_its_nulls(value: Any) -> None:
    # no float, so a null is a None: msgspec's text stands (compact_json would write it again)
    assert floatless_json(value) == msgspec.json.encode(value).decode()
    assert json.loads(floatless_json(value)) == json.loads(STDLIB.encode(value)) == value


def test_floatless_json_leaves_what_msgspec_refuses_to_the_standard_library() -> None:
    assert floatless_json(["a\ud800b"]) == STDLIB.encode(["a\ud800b"])
