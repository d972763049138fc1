"""Conditions over background jobs: a small, typed, backend-neutral tree.

Build conditions from the targets :data:`job`, :data:`state`, :func:`prop` and
:func:`past_state`, combine them with :func:`where` (all), :func:`any_of`, ``&``, ``|`` and ``~``::

    where(prop("tenant") == "acme", state == Failed, job.created_at >= since)
    any_of(job.queue.like("mail*"), prop("urgent") == True) & ~state.is_(Deleted)
    past_state(state.name == "Failed", state.field("exception_type") == "TimeoutError")

Every value is checked when the condition is built (type, range, size): a query that cannot be
stored or compared is a :class:`QueryError`, never a database error. The storage compiles the tree
to SQL with bound parameters only (``hivemind_jobs.storage.compiler``).

Comparison semantics (the same on every backend):

* A property compares with values of its own stored type: ``prop("n") > 5`` matches int
  properties, ``prop("price") > 5.0`` float ones; text also matches uuid properties by their text.
  ``!=`` and ranges need the property to exist with that type; ``~(prop("x") == v)`` also matches
  jobs without it.
* Text compares by code point (binary), case-sensitively, without padding.
* ``like`` takes ``*`` as "any characters"; ``\\*`` is a literal star and ``\\\\`` a backslash.
* Conditions on :data:`state` apply to the current state; :func:`past_state` to some earlier one
  (all its conditions on the same state). State fields compare as text (string JSON values).
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hivemind_jobs.core.clock import utc
from hivemind_jobs.core.names import validate_property_name, validate_state_name
from hivemind_jobs.core.priority import Priority, coerce_priority
from hivemind_jobs.core.text import text_problem
from hivemind_jobs.errors import ConfigurationError, QueryError

if TYPE_CHECKING:
    from hivemind_jobs.core.states import State

__all__ = [
    "MAX_CONDITIONS",
    "MAX_IN_VALUES",
    "MAX_TEXT",
    "All",
    "AnyOf",
    "Compare",
    "Condition",
    "Not",
    "Op",
    "PastState",
    "Target",
    "TargetKind",
    "ValueKind",
    "any_of",
    "job",
    "not_",
    "past_state",
    "prop",
    "state",
    "where",
]

#: the most leaf conditions one query may hold
MAX_CONDITIONS = 200
#: the most values one ``in_`` may list
MAX_IN_VALUES = 1000
#: the longest text value (the longest storable text property)
MAX_TEXT = 4000
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_FIELD_NAME_MAX = 64

V = TypeVar("V")


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    LIKE = "like"
    EXISTS = "exists"
    MISSING = "missing"


class ValueKind(enum.StrEnum):
    """How a target's values are stored and compared."""

    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"


class TargetKind(enum.StrEnum):
    JOB = "job"  # a column of the job: id, queue, priority, created_at, modified_at
    STATE = "state"  # a column of a state: name, elected_at, reason
    STATE_FIELD = "state_field"  # a persisted field of a state (JSON), as text
    PROPERTY = "property"  # a typed property
    COLONY = "colony"  # a column of a colony: id, name, host, status, started_at, heartbeat
    COLONY_PROPERTY = "colony_property"  # a property of a colony
    DAEMON = "daemon"  # a daemon of a colony: name, status
    RECURRING = "recurring"  # a column of a recurring job: id, state, queue, priority, next_run, ...
    RECURRING_PROPERTY = "recurring_property"  # a property of a recurring job


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    name: str

    @property
    def state_level(self) -> bool:
        return self.kind in (TargetKind.STATE, TargetKind.STATE_FIELD)

    def __str__(self) -> str:
        if self.kind is TargetKind.PROPERTY:
            return f"prop({self.name!r})"
        if self.kind is TargetKind.STATE_FIELD:
            return f"state.field({self.name!r})"
        if self.kind is TargetKind.COLONY_PROPERTY:
            return f"colony.prop({self.name!r})"
        if self.kind is TargetKind.RECURRING_PROPERTY:
            return f"recurring_job.prop({self.name!r})"
        return f"{self.kind.value}.{self.name}"


# ----------------------------------------------------------------------------- the tree


class Condition:
    """A node of a query; combine with ``&`` (and), ``|`` (or) and ``~`` (not)."""

    __slots__ = ()

    def __and__(self, other: Condition) -> Condition:
        return where(self, other)

    def __or__(self, other: Condition) -> Condition:
        return any_of(self, other)

    def __invert__(self) -> Condition:
        return Not(_check_condition(self))

    def __bool__(self) -> bool:
        raise QueryError(
            "a query condition has no truth value; combine conditions with &, | and ~ (not 'and', 'or', 'not') "
            "or with where(...) and any_of(...)"
        )

    def leaves(self) -> int:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class All(Condition):
    items: tuple[Condition, ...]

    def leaves(self) -> int:
        return sum(item.leaves() for item in self.items)


@dataclass(frozen=True, slots=True)
class AnyOf(Condition):
    items: tuple[Condition, ...]

    def leaves(self) -> int:
        return sum(item.leaves() for item in self.items)


@dataclass(frozen=True, slots=True)
class Not(Condition):
    item: Condition

    def leaves(self) -> int:
        return self.item.leaves()


@dataclass(frozen=True, slots=True)
class Compare(Condition):
    """``target op value``; ``value`` is a tuple for IN, the raw pattern for LIKE, None for
    EXISTS/MISSING. ``kind`` says which stored type the value compares with."""

    target: Target
    op: Op
    value: Any
    kind: ValueKind | None = None

    def leaves(self) -> int:
        return 1


@dataclass(frozen=True, slots=True)
class PastState(Condition):
    """Some state before the current one satisfies ``condition`` (built from :data:`state`)."""

    condition: Condition

    def leaves(self) -> int:
        return self.condition.leaves()


@dataclass(frozen=True, slots=True)
class AnyDaemon(Condition):
    """Some daemon of the colony satisfies ``condition`` (built from ``daemon``)."""

    condition: Condition

    def leaves(self) -> int:
        return self.condition.leaves()


def target_kinds(node: Condition) -> set[TargetKind]:
    """The kinds of target a condition tests (to check it fits what is searched)."""
    if isinstance(node, All | AnyOf):
        return set().union(*(target_kinds(item) for item in node.items))
    if isinstance(node, Not | PastState | AnyDaemon):
        inner = node.item if isinstance(node, Not) else node.condition
        return target_kinds(inner) | ({TargetKind.STATE} if isinstance(node, PastState) else set())
    assert isinstance(node, Compare)
    return {node.target.kind}


def _check_condition(item: object) -> Condition:
    if not isinstance(item, Condition):
        raise QueryError(
            f"expected a query condition such as prop('tenant') == 'acme' or state == Failed, got {item!r}"
        )
    return item


def _checked_size(node: Condition) -> Condition:
    if node.leaves() > MAX_CONDITIONS:
        raise QueryError(f"a query may hold at most {MAX_CONDITIONS} conditions; split it or use in_(...)")
    return node


def where(*conditions: Condition) -> Condition:
    """All of ``conditions`` hold (no condition: every job)."""
    items = tuple(_check_condition(item) for item in conditions)
    flat: list[Condition] = []
    for item in items:
        flat.extend(item.items if isinstance(item, All) else (item,))
    return _checked_size(flat[0] if len(flat) == 1 else All(tuple(flat)))


def any_of(*conditions: Condition) -> Condition:
    """At least one of ``conditions`` holds (no condition: no job)."""
    items = tuple(_check_condition(item) for item in conditions)
    flat: list[Condition] = []
    for item in items:
        flat.extend(item.items if isinstance(item, AnyOf) else (item,))
    return _checked_size(flat[0] if len(flat) == 1 else AnyOf(tuple(flat)))


def not_(condition: Condition) -> Condition:
    """``condition`` does not hold (the same as ``~condition``)."""
    return Not(_check_condition(condition))


def past_state(*conditions: Condition) -> Condition:
    """Some state before the current one satisfies all ``conditions`` (built from :data:`state`)."""
    inner = where(*conditions)
    _require_state_level(inner)
    return PastState(inner)


def _require_state_level(node: Condition) -> None:
    if isinstance(node, All | AnyOf):
        for item in node.items:
            _require_state_level(item)
    elif isinstance(node, Not):
        _require_state_level(node.item)
    elif isinstance(node, Compare):
        if not node.target.state_level:
            raise QueryError(
                f"past_state(...) takes conditions on state.name/elected_at/reason/field(...), not {node.target}"
            )
    else:
        raise QueryError("past_state(...) cannot be nested")


# ----------------------------------------------------------------------------- values


def _text(target: Target, value: object) -> str:
    if not isinstance(value, str):
        raise QueryError(f"{target} compares with text, got {type(value).__name__} {value!r}")
    return check_text(value, str(target))


def check_text(value: str, what: str) -> str:
    """Text every backend can store and compare: bounded, no NUL, valid Unicode."""
    problem = text_problem(value, MAX_TEXT)
    if problem is not None:
        raise QueryError(f"{what}: {problem}")
    return value


def _int(target: Target, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise QueryError(f"{target} compares with whole numbers, got {type(value).__name__} {value!r}")
    if not _INT_MIN <= value <= _INT_MAX:
        raise QueryError(f"{target}: {value} does not fit a 64-bit integer")
    return value


def _datetime(target: Target, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise QueryError(f"{target} compares with datetimes, got {type(value).__name__} {value!r}")
    try:
        moment = utc(value)
    except ValueError as error:
        raise QueryError(f"{target}: {error}") from None
    except OverflowError:
        raise QueryError(f"{target}: {value!r} is out of range") from None
    if not 1000 <= moment.year <= 9999:
        raise QueryError(f"{target}: {value!r} is outside the years 1000-9999 every backend can store")
    return moment


def _priority(target: Target, value: object) -> int:
    try:
        return int(coerce_priority(value))
    except ConfigurationError as error:
        raise QueryError(f"{target}: {error}") from None


def _state_name(target: Target, value: object) -> str:
    from hivemind_jobs.core.states import State

    if isinstance(value, type) and issubclass(value, State):
        return value.state_name
    if isinstance(value, State):
        return value.name
    if isinstance(value, str):
        try:
            return validate_state_name(value)
        except ConfigurationError as error:
            raise QueryError(f"{target}: {error}") from None
    raise QueryError(f"{target} compares with a state class such as Failed or its name, got {value!r}")


def property_value(name: str, value: object) -> tuple[ValueKind, Any]:
    """The stored type and the normalised value of a property comparison."""
    target = Target(TargetKind.PROPERTY, name)
    if isinstance(value, bool):
        return ValueKind.BOOL, value
    if isinstance(value, int):
        return ValueKind.INT, _int(target, value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise QueryError(f"{target}: {value!r} cannot be compared; use a finite number")
        return ValueKind.FLOAT, value
    if isinstance(value, str):
        return ValueKind.TEXT, check_text(value, str(target))
    if isinstance(value, uuid.UUID):
        return ValueKind.TEXT, str(value)
    if isinstance(value, datetime):
        return ValueKind.DATETIME, _datetime(target, value)
    raise QueryError(
        f"{target}: cannot compare with {type(value).__name__} {value!r}; use str, int, float, bool, datetime or UUID"
    )


def like_pattern(target: Target, pattern: object) -> str:
    text = _text(target, pattern)
    if (len(text) - len(text.rstrip("\\"))) % 2:
        raise QueryError(f"{target}.like({pattern!r}): a pattern cannot end with a lone backslash; write \\\\")
    return text


def like_parts(pattern: str) -> list[str | None]:
    """A like pattern as literal text pieces and ``None`` for each wildcard."""
    parts: list[str | None] = []
    literal: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "*\\":
            literal.append(pattern[index + 1])
            index += 2
            continue
        if char == "*":
            if literal:
                parts.append("".join(literal))
                literal = []
            if not parts or parts[-1] is not None:
                parts.append(None)
        else:
            literal.append(char)
        index += 1
    if literal:
        parts.append("".join(literal))
    return parts


# ----------------------------------------------------------------------------- targets


class _Field(Generic[V]):
    """A comparable target; ``==``, ``!=``, ``<`` ... build conditions, they do not compare."""

    __slots__ = ("_convert", "_kind", "_target")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, target: Target, kind: ValueKind | None, convert: Any) -> None:
        self._target = target
        self._kind = kind
        self._convert = convert

    def __repr__(self) -> str:
        return str(self._target)

    def _compare(self, op: Op, value: object) -> Condition:
        if value is None:
            raise QueryError(
                f"{self._target} {op.value} None: None is not a value; use .exists() or .missing() for properties "
                "and state fields"
            )
        kind, converted = self._value(value)
        return Compare(self._target, op, converted, kind)

    def _value(self, value: object) -> tuple[ValueKind | None, Any]:
        return self._kind, self._convert(self._target, value)

    def __eq__(self, value: V) -> Condition:  # type: ignore[override]
        return self._compare(Op.EQ, value)

    def __ne__(self, value: V) -> Condition:  # type: ignore[override]
        return self._compare(Op.NE, value)

    def __lt__(self, value: V) -> Condition:
        return self._compare(Op.LT, value)

    def __le__(self, value: V) -> Condition:
        return self._compare(Op.LE, value)

    def __gt__(self, value: V) -> Condition:
        return self._compare(Op.GT, value)

    def __ge__(self, value: V) -> Condition:
        return self._compare(Op.GE, value)

    def in_(self, values: Iterable[V]) -> Condition:
        """The value is one of ``values`` (at most 1,000; an empty list matches nothing)."""
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise QueryError(f"{self._target}.in_(...) takes a list of values, got {values!r}")
        items = list(values)
        if len(items) > MAX_IN_VALUES:
            raise QueryError(f"{self._target}.in_(...) takes at most {MAX_IN_VALUES} values, got {len(items)}")
        kinds: set[ValueKind | None] = set()
        converted = []
        for item in items:
            if item is None:
                raise QueryError(f"{self._target}.in_(...): None is not a value")
            kind, value = self._value(item)
            kinds.add(kind)
            converted.append(value)
        if len(kinds) > 1:
            raise QueryError(
                f"{self._target}.in_(...) mixes value types ({', '.join(sorted(str(k) for k in kinds))}); "
                "use one type, or any_of(...) over several in_(...)"
            )
        kind = kinds.pop() if kinds else self._kind
        return Compare(self._target, Op.IN, tuple(dict.fromkeys(converted)), kind)

    def not_in(self, values: Iterable[V]) -> Condition:
        return Not(self.in_(values))


class _TextField(_Field[str]):
    __slots__ = ()

    def like(self, pattern: str) -> Condition:
        """Matches ``pattern`` where ``*`` is any run of characters (``\\*`` a literal star)."""
        return Compare(self._target, Op.LIKE, like_pattern(self._target, pattern), ValueKind.TEXT)


class _OptionalTextField(_TextField):
    """Text that may be absent (a state's reason, a state field)."""

    __slots__ = ()

    def exists(self) -> Condition:
        return Compare(self._target, Op.EXISTS, None, None)

    def missing(self) -> Condition:
        return Compare(self._target, Op.MISSING, None, None)


class _FunctionField(_Field[str | Callable[..., Any]]):
    """A job's function: compares with its ``module:qualname`` text or with a job callable."""

    __slots__ = ()

    def like(self, pattern: str) -> Condition:
        """Matches ``pattern`` where ``*`` is any run of characters: ``job.function.like("myapp.mail:*")``."""
        return Compare(self._target, Op.LIKE, like_pattern(self._target, pattern), ValueKind.TEXT)


def _function_name(target: Target, value: object) -> str:
    if isinstance(value, str):
        return _text(target, value)
    from hivemind_jobs.core.invocation import function_name
    from hivemind_jobs.errors import JobDefinitionError

    try:
        return function_name(value)
    except JobDefinitionError as error:
        raise QueryError(f"{target} compares with 'module:qualname' text or a job function: {error}") from None


PropertyQueryValue = str | int | float | bool | datetime | uuid.UUID


class PropertyTarget(_Field[PropertyQueryValue]):
    """A typed property; the type of the value picks the stored type compared with."""

    __slots__ = ()

    def _value(self, value: object) -> tuple[ValueKind | None, Any]:
        return property_value(self._target.name, value)

    def like(self, pattern: str) -> Condition:
        """A text property matches ``pattern`` (``*`` is any run of characters)."""
        return Compare(self._target, Op.LIKE, like_pattern(self._target, pattern), ValueKind.TEXT)

    def exists(self) -> Condition:
        """The job has this property (any type)."""
        return Compare(self._target, Op.EXISTS, None, None)

    def missing(self) -> Condition:
        """The job does not have this property."""
        return Compare(self._target, Op.MISSING, None, None)


def prop(name: str) -> PropertyTarget:
    """The property ``name`` of a job: ``prop("tenant") == "acme"``, ``prop("attempt") >= 3``."""
    try:
        validate_property_name(name)
    except ConfigurationError as error:
        raise QueryError(str(error)) from None
    return PropertyTarget(Target(TargetKind.PROPERTY, name), None, None)


class _JobTargets:
    """Columns of a job: ``job.id``, ``job.queue``, ``job.function``, ``job.priority``, ``job.created_at``,
    ``job.modified_at``."""

    __slots__ = ()

    @property
    def id(self) -> _Field[int]:
        def positive(target: Target, value: object) -> int:
            return _int(target, value)

        return _Field(Target(TargetKind.JOB, "id"), ValueKind.INT, positive)

    @property
    def queue(self) -> _TextField:
        return _TextField(Target(TargetKind.JOB, "queue"), ValueKind.TEXT, _text)

    @property
    def function(self) -> _FunctionField:
        """The called function as ``module:qualname`` (``module:Class.method`` for instance methods):
        ``job.function == send_mail`` (a job callable), ``job.function == "myapp.jobs:send_mail"``,
        ``job.function.like("myapp.jobs:*")``. Names are stored cut at 700 characters."""
        return _FunctionField(Target(TargetKind.JOB, "function"), ValueKind.TEXT, _function_name)

    @property
    def priority(self) -> _Field[Priority | int | str]:
        return _Field(Target(TargetKind.JOB, "priority"), ValueKind.INT, _priority)

    @property
    def created_at(self) -> _Field[datetime]:
        return _Field(Target(TargetKind.JOB, "created_at"), ValueKind.DATETIME, _datetime)

    @property
    def modified_at(self) -> _Field[datetime]:
        return _Field(Target(TargetKind.JOB, "modified_at"), ValueKind.DATETIME, _datetime)

    def __repr__(self) -> str:
        return "job"


class _StateTargets:
    """The current state (or, inside :func:`past_state`, the earlier state being tested).

    ``state == Failed`` and ``state.is_(Failed, Deleted)`` test its name; ``state.name``,
    ``state.elected_at``, ``state.reason`` and ``state.field("exception_type")`` are targets.
    """

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    @property
    def name(self) -> _TextField:
        return _TextField(Target(TargetKind.STATE, "name"), ValueKind.TEXT, _state_name_or_text)

    @property
    def elected_at(self) -> _Field[datetime]:
        return _Field(Target(TargetKind.STATE, "elected_at"), ValueKind.DATETIME, _datetime)

    @property
    def reason(self) -> _OptionalTextField:
        return _OptionalTextField(Target(TargetKind.STATE, "reason"), ValueKind.TEXT, _text)

    def field(self, name: str) -> _OptionalTextField:
        """A persisted field of the state (``exception_type`` of Failed ...), compared as text."""
        if (
            not isinstance(name, str)
            or not name
            or len(name) > _FIELD_NAME_MAX
            or not name.replace("_", "a").isascii()
            or not name.replace("_", "a").isalnum()
            or name[0].isdigit()
        ):
            raise QueryError(
                f"state field name must be a Python identifier of at most {_FIELD_NAME_MAX} ASCII characters, "
                f"got {name!r}"
            )
        return _OptionalTextField(Target(TargetKind.STATE_FIELD, name), ValueKind.TEXT, _text)

    def is_(self, *states: type[State] | State | str) -> Condition:
        """The state is one of ``states`` (classes, instances or names)."""
        return self.name.in_(_state_name(Target(TargetKind.STATE, "name"), item) for item in states)

    def __eq__(self, value: type[State] | State | str) -> Condition:  # type: ignore[override]
        return self.name == _state_name(Target(TargetKind.STATE, "name"), value)

    def __ne__(self, value: type[State] | State | str) -> Condition:  # type: ignore[override]
        return self.name != _state_name(Target(TargetKind.STATE, "name"), value)

    def __repr__(self) -> str:
        return "state"


def _state_name_or_text(target: Target, value: object) -> str:
    if isinstance(value, str):
        return _text(target, value)
    return _state_name(target, value)


#: the columns of a job
job = _JobTargets()
#: the current state of a job (inside past_state(...): the earlier state tested)
state = _StateTargets()
