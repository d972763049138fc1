from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, NewType, Optional
from uuid import UUID, uuid4

import pytest

from hivemind_jobs.core.codec import Codec, UndecodedValue, qualified_name
from hivemind_jobs.errors import SerializationError
from tests.sample_jobs import Color, Invoice

# Color and Invoice are read back without a hint below, so this codec registers them for decoding.
codec = Codec(types=[Color, Invoice])
UserId = NewType("UserId", int)


class Point(NamedTuple):
    x: int
    y: int


def roundtrip(value: Any, hint: Any = Any) -> Any:
    text = codec.dumps(value, hint)
    json.loads(text)  # always valid JSON
    return codec.loads(text, hint)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**70),
        1.5,
        "héllo",
        [1, "a", None],
        {"a": {"b": [1, 2]}},
        (1, "a"),
        {1, 2, 3},
        frozenset({"x"}),
        {1: "one", 2: "two"},
        {"$hm": "not a tag"},
        datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2030, 1, 2, 3, 4, 5),  # naive stays naive
        date(2030, 1, 2),
        time(3, 4, 5),
        timedelta(days=-1, seconds=5, microseconds=7),
        UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("12.3400"),
        b"\x00\xffbytes",
        Color.BLUE,
        Invoice(7, Decimal("9.99"), datetime(2030, 1, 1, tzinfo=UTC), ("a", "b")),
    ],
)
def test_values_come_back_as_the_same_type(value: Any) -> None:
    result = roundtrip(value)
    assert result == value
    assert type(result) is type(value)


def test_aware_datetimes_are_stored_in_utc() -> None:
    local = datetime(2030, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    encoded = codec.encode(local)
    assert encoded == {"$hm": "datetime", "v": "2030-06-01T10:00:00+00:00"}
    assert codec.decode(encoded) == local


def test_plain_json_is_stored_plainly() -> None:
    assert codec.encode({"a": [1, 2.5, "x", None, True]}) == {"a": [1, 2.5, "x", None, True]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN"), object(), lambda: 1, 1j, iter([1])])
def test_unsupported_values_are_refused_clearly(value: Any) -> None:
    with pytest.raises(SerializationError, match="cannot be stored"):
        codec.encode(value)


def test_error_names_the_path() -> None:
    with pytest.raises(SerializationError, match=r"payload\['items'\]\[1\]"):
        codec.encode({"items": [1, object()]}, path="payload")


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (1, int),
        (1, float),
        (True, bool),
        (None, Optional[int]),  # noqa: UP045 - the old spelling must work too
        (3, int | None),
        ("a", Literal["a", "b"]),
        ([1, 2], list[int]),
        ((1, "a"), tuple[int, str]),
        ((1, 2, 3), tuple[int, ...]),
        ({"a": 1}, dict[str, int]),
        ({1, 2}, set[int]),
        (5, UserId),
        (5, Annotated[int, "meta"]),
        ([1], typing.Sequence[int]),
        ("anything", Any),
        (Color.RED, Color),
    ],
)
def test_matching_hints_pass(value: Any, hint: Any) -> None:
    codec.check(value, hint)
    assert roundtrip(value, hint) == value


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        ("3", int, "expected int, got str"),
        (None, int, "expected int"),
        (1.5, int, "expected int"),
        ("c", Literal["a", "b"], "expected"),
        ([1, "x"], list[int], r"\[1\]: expected int"),
        ((1, 2), tuple[int, str], r"\[1\]: expected str"),
        ((1,), tuple[int, str], "expected 2 items"),
        ({"a": "x"}, dict[str, int], "expected int"),
        ({1: 1}, dict[str, int], "key: expected str"),
        ("red", Color, "expected Color"),
        ([1], tuple[int, ...], "expected tuple"),
    ],
)
def test_mismatching_hints_are_refused(value: Any, hint: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        codec.encode(value, hint)


def test_decode_converts_by_hint() -> None:
    assert codec.decode(3, float) == 3.0 and isinstance(codec.decode(3, float), float)
    assert codec.decode([1, 2], tuple[int, ...]) == (1, 2)
    assert codec.decode([1, 2], set[int]) == {1, 2}
    assert codec.decode(codec.encode(Point(1, 2)), Point) == Point(1, 2)
    assert isinstance(codec.decode(codec.encode(Point(1, 2)), Point), Point)


def test_classes_come_from_the_hint_not_from_the_row() -> None:
    """A class named in stored data that is neither hinted nor registered is never built or imported."""
    stored = {"$hm": "dataclass", "c": "some_module_that_does_not_exist:Evil", "v": {}}
    marked = codec.decode(stored)
    assert isinstance(marked, UndecodedValue) and marked.data == stored
    with pytest.raises(SerializationError, match="not registered"):
        codec.decode(stored, strict=True)
    # with a hint naming the class, the hint is used (even by a codec that registers nothing)
    good = Codec().encode(Invoice(1, Decimal(1), datetime(2030, 1, 1, tzinfo=UTC)))
    assert Codec().decode(good, Invoice).number == 1
    assert Codec().decode(good, Invoice | None).number == 1
    assert isinstance(Codec().decode(good), UndecodedValue)


def test_decoding_never_imports_a_module_a_row_names() -> None:
    import sys

    assert "tabnanny" not in sys.modules  # a stdlib module nothing here imports
    stored = {"$hm": "enum", "c": "tabnanny:NannyNag", "v": 1}
    assert isinstance(codec.decode(stored), UndecodedValue)
    with pytest.raises(SerializationError, match="tabnanny:NannyNag"):
        codec.decode(stored, strict=True)
    assert "tabnanny" not in sys.modules


def test_dataclass_fields_decode_with_their_hints() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(SerializationError, match="inside a function"):
        codec.encode(Local(1))
    invoice = Invoice(1, Decimal("2.50"), datetime(2030, 1, 1, tzinfo=UTC), ("x",))
    decoded = roundtrip(invoice, Invoice)
    assert decoded.amount == Decimal("2.50") and decoded.tags == ("x",)


def test_unknown_tag_and_bad_json_are_clear() -> None:
    with pytest.raises(SerializationError, match="unknown stored type tag"):
        codec.decode({"$hm": "martian", "v": 1})
    with pytest.raises(SerializationError, match="invalid"):
        codec.loads("{not json")


def test_qualified_name() -> None:
    assert qualified_name(Invoice) == "tests.sample_jobs:Invoice"
    with pytest.raises(SerializationError):
        qualified_name(lambda: 1)


def test_uuid_list_roundtrip_keeps_types() -> None:
    values = [uuid4(), uuid4()]
    assert roundtrip(values, list[UUID]) == values
