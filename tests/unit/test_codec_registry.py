"""Stored data never chooses a class: only hinted or registered classes are built, by their own paths.

Rows can be written by anyone with access to the database, so a stored ``{"$hm": "enum", "c":
"subprocess:Popen", ...}`` must not run anything when a job is read. Also here: what encoding refuses
(circular structures, too deep nesting, text no database can store) and deep stored documents.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal
from uuid import UUID

import pytest

from hivemind_jobs.core.codec import MAX_DEPTH, Codec, UndecodedValue, register_type
from hivemind_jobs.errors import SerializationError
from tests.sample_jobs import Color, Invoice

CALLS: list[str] = []


@register_type
class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


@register_type
@dataclasses.dataclass
class Parcel:
    weight: int
    shade: Shade = Shade.LIGHT
    computed: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass
class Base:
    name: str


@register_type
@dataclasses.dataclass
class RegisteredChild(Base):
    extra: int = 0


@dataclasses.dataclass
class UnregisteredChild(Base):
    extra: int = 0


@dataclasses.dataclass
class Recorded:
    """A dataclass that records every time it is built (the codec must build it only when asked)."""

    value: Any = None

    def __post_init__(self) -> None:
        CALLS.append(f"Recorded({self.value!r})")


@dataclasses.dataclass(eq=False)
class Holder:
    """Hashable by identity, so it can be a set member or dict key that leads back to its container."""

    items: list[Any]


class Pretender:
    """Looks like a pydantic model (``model_validate``) without being one."""

    calls: ClassVar[list[Any]] = []

    @classmethod
    def model_validate(cls, raw: Any) -> Pretender:
        cls.calls.append(raw)
        return cls()


class Lookalike(Base):
    """A plain class named like a dataclass in stored data (inherits dataclass fields, not its own)."""


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()
    Pretender.calls.clear()


def popen_document(target: Path, tag: str = "enum") -> dict[str, Any]:
    value: Any = ["touch", str(target)]
    if tag == "dataclass":
        value = {"args": value}
    return {"$hm": tag, "c": "subprocess:Popen", "v": value}


# ----------------------------------------------------------------------------- classes a row names


@pytest.mark.parametrize("tag", ["enum", "dataclass", "pydantic"])
@pytest.mark.parametrize("hint", [Any, object, int, Color, Invoice, list[int], Color | None, Literal[Color.RED]])
def test_a_row_naming_popen_runs_nothing_and_is_marked(tmp_path: Path, tag: str, hint: Any) -> None:
    target = tmp_path / "created"
    document = popen_document(target, tag)
    value = Codec().decode(document, hint)
    assert isinstance(value, UndecodedValue)
    assert value.data == document and value.class_name == "subprocess:Popen"
    assert "subprocess:Popen" in value.reason and "register_type" in value.reason and "type hint" in value.reason
    with pytest.raises(SerializationError, match="subprocess:Popen"):
        Codec().decode(document, hint, strict=True)
    with pytest.raises(SerializationError, match="subprocess:Popen"):
        Codec().loads(json.dumps(document), hint, strict=True)
    assert not target.exists()


@pytest.mark.parametrize("tag", ["enum", "dataclass", "pydantic"])
def test_a_hint_naming_a_class_of_the_wrong_kind_builds_nothing(tmp_path: Path, tag: str) -> None:
    """Even when the reader's hint names the class, only the documented path of the tag's kind is used."""
    target = tmp_path / "created"
    with pytest.raises(SerializationError, match=r"not an Enum|not a dataclass|not a pydantic BaseModel"):
        Codec().decode(popen_document(target, tag), subprocess.Popen)
    with pytest.raises(SerializationError, match=r"not an Enum|not a dataclass|not a pydantic BaseModel"):
        Codec(types=[]).decode(popen_document(target, tag), subprocess.Popen | None)
    assert not target.exists()


def test_a_lookalike_of_pydantic_is_not_validated() -> None:
    stored = {"$hm": "pydantic", "c": f"{__name__}:Pretender", "v": {"x": 1}}
    with pytest.raises(SerializationError, match="not a pydantic BaseModel subclass"):
        Codec().decode(stored, Pretender)
    assert Pretender.calls == []


@pytest.mark.parametrize(
    ("stored", "hint", "message"),
    [
        ({"$hm": "enum", "c": "tests.sample_jobs:Invoice", "v": 1}, Invoice, "not an Enum"),
        ({"$hm": "dataclass", "c": "tests.sample_jobs:Color", "v": {}}, Color, "not a dataclass"),
        ({"$hm": "dataclass", "c": f"{__name__}:Shade", "v": {}}, Any, "not a dataclass"),
        ({"$hm": "enum", "c": f"{__name__}:Parcel", "v": 1}, Any, "not an Enum"),
        ({"$hm": "pydantic", "c": f"{__name__}:Parcel", "v": {}}, Any, "not a pydantic"),
        ({"$hm": "enum", "c": 7, "v": 1}, Any, "must name its class as text"),
        ({"$hm": "enum", "v": 1}, Any, "must name its class as text"),
    ],
)
def test_a_tag_must_match_the_kind_of_its_class(stored: dict[str, Any], hint: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        Codec().decode(stored, hint)


def test_a_stored_enum_only_looks_up_a_member() -> None:
    assert Codec().decode({"$hm": "enum", "c": "tests.sample_jobs:Color", "v": "red"}, Color) is Color.RED
    with pytest.raises(SerializationError, match="Color refused the stored value"):
        Codec().decode({"$hm": "enum", "c": "tests.sample_jobs:Color", "v": "mauve"}, Color)


def test_a_stored_dataclass_takes_only_its_init_fields() -> None:
    codec = Codec()
    name = f"{__name__}:Parcel"
    assert codec.decode({"$hm": "dataclass", "c": name, "v": {"weight": 3}}) == Parcel(3)
    with pytest.raises(SerializationError, match=r"\['evil'\] are not init fields"):
        codec.decode({"$hm": "dataclass", "c": name, "v": {"weight": 3, "evil": 1}})
    with pytest.raises(SerializationError, match=r"\['computed'\] are not init fields"):
        codec.decode({"$hm": "dataclass", "c": name, "v": {"weight": 3, "computed": 9}})
    with pytest.raises(SerializationError, match="Parcel refused the stored value"):
        codec.decode({"$hm": "dataclass", "c": name, "v": {}})
    with pytest.raises(SerializationError, match="must hold an object of fields"):
        codec.decode({"$hm": "dataclass", "c": name, "v": [3]})


def test_a_dataclass_raising_in_post_init_gives_a_serialization_error() -> None:
    @dataclasses.dataclass
    class Picky:
        x: int

        def __post_init__(self) -> None:
            raise RuntimeError("no")

    Picky.__qualname__ = "Picky"  # stored by name; the hint supplies it
    stored = {"$hm": "dataclass", "c": f"{__name__}:Picky", "v": {"x": 1}}
    with pytest.raises(SerializationError, match="refused the stored value: RuntimeError: no"):
        Codec().decode(stored, Picky)


# ----------------------------------------------------------------------------- what may be built


def test_registered_classes_decode_without_a_hint_in_every_codec() -> None:
    parcel = Parcel(5, Shade.DARK)
    for codec in (Codec(), Codec(types=[Color])):
        assert codec.loads(codec.dumps(parcel)) == parcel
        assert codec.loads(codec.dumps([Shade.DARK, {"p": parcel}])) == [Shade.DARK, {"p": parcel}]


def test_classes_given_to_one_codec_decode_only_there() -> None:
    local = Codec(types=[Color, Invoice])
    invoice = Invoice(1, Decimal("2.5"), datetime(2030, 1, 1, tzinfo=UTC), ("a",))
    text = local.dumps({"c": Color.BLUE, "i": invoice})
    assert local.loads(text) == {"c": Color.BLUE, "i": invoice}
    plain = Codec().loads(text)
    assert isinstance(plain["c"], UndecodedValue) and isinstance(plain["i"], UndecodedValue)
    assert plain["c"].class_name == "tests.sample_jobs:Color"


def test_hinted_classes_decode_through_unions_literals_and_containers() -> None:
    codec = Codec()
    blue = codec.encode(Color.BLUE)
    assert codec.decode(blue, Color) is Color.BLUE
    assert codec.decode(blue, Color | None) is Color.BLUE
    assert codec.decode(blue, int | Color) is Color.BLUE
    assert codec.decode(blue, Literal[Color.BLUE, Color.RED]) is Color.BLUE
    assert codec.decode(blue, Literal[Color.BLUE] | None) is Color.BLUE
    assert codec.decode([blue], list[Color]) == [Color.BLUE]
    assert codec.decode({"k": blue}, dict[str, Color]) == {"k": Color.BLUE}
    assert codec.decode(codec.encode((Color.RED, 1)), tuple[Color, int]) == (Color.RED, 1)
    assert codec.decode(codec.encode({Color.RED: 1}), dict[Color, int]) == {Color.RED: 1}


def test_subclasses_of_the_hint_decode_only_when_registered() -> None:
    codec = Codec()
    registered = codec.encode(RegisteredChild("a", 1))
    unregistered = codec.encode(UnregisteredChild("b", 2))
    assert codec.decode(registered, Base) == RegisteredChild("a", 1)
    assert codec.decode(registered, Base | None) == RegisteredChild("a", 1)
    assert isinstance(codec.decode(unregistered, Base), UndecodedValue)
    assert Codec(types=[UnregisteredChild]).decode(unregistered, Base) == UnregisteredChild("b", 2)
    with pytest.raises(SerializationError, match="UnregisteredChild"):
        codec.decode(unregistered, Base, strict=True)


def test_a_registered_class_that_does_not_fit_the_hint_is_not_built() -> None:
    stored = Codec().encode(Parcel(1))
    marked = Codec().decode(stored, Color)
    assert isinstance(marked, UndecodedValue) and "does not fit the type hint Color" in marked.reason
    with pytest.raises(SerializationError, match="does not fit"):
        Codec().decode(stored, Invoice, strict=True)
    assert Codec().decode(stored, Any) == Parcel(1)
    assert Codec().decode(stored, int | Any) == Parcel(1)


def test_a_plain_subclass_of_a_dataclass_named_by_a_row_is_not_built() -> None:
    stored = {"$hm": "dataclass", "c": f"{__name__}:Lookalike", "v": {"name": "x"}}
    assert isinstance(Codec().decode(stored, Base), UndecodedValue)


def test_an_unregistered_class_is_never_instantiated() -> None:
    stored = Codec().encode(Recorded(1))
    CALLS.clear()
    assert isinstance(Codec().decode(stored), UndecodedValue)
    assert isinstance(Codec().decode([stored, {"k": stored}]), list)
    with pytest.raises(SerializationError):
        Codec().decode(stored, strict=True)
    assert CALLS == []
    assert Codec().decode(stored, Recorded) == Recorded(1)
    assert CALLS == ["Recorded(1)", "Recorded(1)"]  # the decoded one and the one it is compared with


@pytest.mark.parametrize(
    "value",
    [
        datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        date(2030, 1, 2),
        time(3, 4),
        timedelta(days=2, microseconds=3),
        UUID(int=7),
        Decimal("1.50"),
        b"\x00bytes",
        (1, "a"),
        {1, 2},
        frozenset({"x"}),
        {1: "one", (1, 2): "pair"},
        {"$hm": "a user dict with the tag key"},
        [datetime(2030, 1, 1), {"nested": (UUID(int=1), Decimal(2))}],
    ],
)
def test_safe_builtin_tags_keep_working_under_any_and_strictly(value: Any) -> None:
    codec = Codec()
    text = codec.dumps(value)
    assert codec.loads(text) == value and type(codec.loads(text)) is type(value)
    assert codec.loads(text, strict=True) == value


# ----------------------------------------------------------------------------- the marker


def test_the_marker_is_a_small_frozen_hashable_value_that_stores_back_unchanged() -> None:
    codec = Codec()
    document = {"$hm": "enum", "c": "elsewhere:Thing", "v": [1, {"a": None}]}
    marked = codec.decode(document)
    assert isinstance(marked, UndecodedValue)
    with pytest.raises(dataclasses.FrozenInstanceError):
        marked.reason = "changed"  # type: ignore[misc]
    assert json.loads(json.dumps(marked.data)) == document  # plain JSON types
    assert "elsewhere:Thing" in str(marked)
    assert marked == codec.decode(json.loads(json.dumps(document)))
    assert len({marked, codec.decode(document)}) == 1
    assert codec.encode(marked) == document
    assert codec.encode({"kept": [marked]}) == {"kept": [document]}
    assert codec.loads(codec.dumps({"kept": marked})) == {"kept": marked}
    # sets and non-text dict keys can hold markers too
    assert codec.decode({"$hm": "set", "v": [document]}) == {marked}
    assert codec.decode({"$hm": "dict", "v": [[document, 1]]}) == {marked: 1}
    with pytest.raises(SerializationError, match="expected int"):
        codec.encode(marked, int)
    with pytest.raises(SerializationError, match="not plain JSON"):
        codec.encode(UndecodedValue({"x": object()}, "made up"))


# ----------------------------------------------------------------------------- registration


def test_register_type_validates_the_class() -> None:
    assert register_type(Shade) is Shade  # again: harmless

    class Plain:
        pass

    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(SerializationError, match="only Enum subclasses, dataclasses and pydantic"):
        register_type(subprocess.Popen)
    with pytest.raises(SerializationError, match="only Enum subclasses"):
        register_type(Plain)
    with pytest.raises(SerializationError, match="inside a function"):
        register_type(Local)
    with pytest.raises(SerializationError, match="takes a class"):
        register_type(Parcel(1))  # type: ignore[type-var]
    with pytest.raises(SerializationError, match="only Enum subclasses"):
        Codec(types=[subprocess.Popen])
    with pytest.raises(SerializationError, match="inside a function"):
        Codec(types=[Local])


def test_no_module_lookup_or_resolver_is_left() -> None:
    import hivemind_jobs.core.codec as module

    assert not hasattr(module, "resolve_loaded_class")
    with pytest.raises(TypeError):
        Codec(class_resolver=lambda name: Color)  # type: ignore[call-arg]


# ----------------------------------------------------------------------------- encoding refusals


def circular_values() -> list[Any]:
    in_list: list[Any] = [1]
    in_list.append(in_list)
    in_dict: dict[str, Any] = {}
    in_dict["self"] = {"again": in_dict}
    in_tuple: tuple[Any, ...] = ([],)
    in_tuple[0].append(in_tuple)
    member = Holder([])
    in_set = {member}
    member.items.append(in_set)
    in_dataclass = Recorded()
    in_dataclass.value = [in_dataclass]
    key = Holder([])
    as_key = {key: 1}
    key.items.append(as_key)
    return [in_list, in_dict, in_tuple, in_set, in_dataclass, as_key]


@pytest.mark.parametrize("value", circular_values(), ids=["list", "dict", "tuple", "set", "dataclass", "key"])
def test_a_circular_structure_is_refused_clearly(value: Any) -> None:
    with pytest.raises(SerializationError, match="contains itself"):
        Codec().encode(value, path="argument 'x'")


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for index in range(depth):
        value = [value] if index % 3 else ({"k": value} if index % 2 else (value,))
    return value


def test_nesting_is_limited_to_max_depth_levels() -> None:
    codec = Codec()
    deepest = nested(MAX_DEPTH, datetime(2030, 1, 1))
    assert codec.loads(codec.dumps(deepest)) == deepest
    assert codec.loads(codec.dumps(deepest), strict=True) == deepest
    with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH} levels deep"):
        codec.encode(nested(MAX_DEPTH + 1))
    with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH} levels deep"):
        codec.encode(nested(100_000))
    dataclass_chain: Any = 1
    for _ in range(MAX_DEPTH + 1):
        dataclass_chain = Parcel(dataclass_chain)
    with pytest.raises(SerializationError, match="levels deep"):
        codec.encode(dataclass_chain)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 100_000])
def test_stored_documents_nested_too_deep_are_refused_not_crashing(depth: int) -> None:
    codec = Codec()
    text = "[" * depth + "]" * depth
    with pytest.raises(SerializationError, match="nested more than"):
        codec.loads(text)
    tagged = '{"$hm":"tuple","v":[' * depth + "]}" * depth
    with pytest.raises(SerializationError, match="nested more than"):
        codec.loads(tagged)
    data: Any = []
    for _ in range(depth):
        data = [data]
    with pytest.raises(SerializationError, match="nested more than"):
        codec.decode(data)
    with pytest.raises(SerializationError, match="nested more than"):
        codec.decode(data, list[Any], strict=True)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("a\ud800", r"^argument 'x': the text"),
        (["ok", "b\udfff"], r"^argument 'x'\[1\]: the text"),
        ({"k\ud83d": 1}, r"^argument 'x' key: the text"),
        ({"ok": {"k\udc00": 1}}, r"^argument 'x'\['ok'\] key: the text"),
        ({1: "v\ud800"}, r"^argument 'x'\[1\]: the text"),
        (Parcel("\ud800"), r"^argument 'x'\.weight: the text"),  # type: ignore[arg-type]
        ((1, {"\ud800"}), r"^argument 'x'\[1\] item: the text"),
    ],
)
def test_text_no_database_can_store_is_refused_with_its_path(value: Any, where: str) -> None:
    with pytest.raises(SerializationError, match=where) as raised:
        Codec().encode(value, path="argument 'x'")
    assert "lone surrogate" in str(raised.value)


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "é\x00🎉", "\U0010ffff", "😀"])
def test_nul_and_all_valid_unicode_round_trip_through_json(text: str) -> None:
    codec = Codec()
    value = {text: [text, (text,)]}
    assert codec.loads(codec.dumps(value)) == value


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"$hm": "uuid", "v": 5}, "must be text"),
        ({"$hm": "datetime", "v": ["2030"]}, "must be text"),
        ({"$hm": "decimal", "v": "twelve"}, "cannot be read"),
        ({"$hm": "bytes", "v": "***"}, "cannot be read"),
        ({"$hm": "timedelta", "v": [10**12, 0, 0]}, "cannot be read"),
        ({"$hm": "timedelta", "v": "1 day"}, r"\[days, seconds, microseconds\]"),
        ({"$hm": "tuple", "v": "abc"}, "must be a list"),
        ({"$hm": "dict", "v": [[1, 2, 3]]}, r"\[key, value\] pairs"),
        ({"$hm": "dict", "v": [[[1], 2]]}, "cannot be read"),
        ({"$hm": ["enum"], "v": 1}, "is not text"),
        ({"$hm": "martian", "v": 1}, "unknown stored type tag"),
    ],
)
def test_malformed_stored_values_raise_serialization_errors(stored: dict[str, Any], message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        Codec().decode(stored)
