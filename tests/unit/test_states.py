from __future__ import annotations

from datetime import UTC, datetime

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.states import check_transition, registered_states, state_class
from hivemind_jobs.errors import InvalidNameError, InvalidTransitionError, StateRegistrationError


class AwaitingSignOff(hm.State):
    approver: str
    requested_at: datetime | None = None


class Parked(hm.State, name="Parked.ForLater", final=True):
    until: int = 0


def test_builtin_states_are_registered_by_name() -> None:
    names = set(registered_states())
    assert {
        "Created",
        "Enqueued",
        "Awaiting",
        "Executing",
        "Succeeded",
        "Failed",
        "Idle",
        "Deleted",
        "SystemDeleting",
        "SystemDeleted",
    } <= names
    assert state_class("Enqueued") is hm.Enqueued
    assert hm.Succeeded.final and hm.Failed.final and hm.Deleted.final
    assert not hm.Enqueued.final and not hm.Executing.final and not hm.Idle.final


def test_custom_states_are_keyword_dataclasses_registered_by_name() -> None:
    state = AwaitingSignOff(approver="ann", reason="needs sign-off")
    assert state.name == "AwaitingSignOff" and state_class("AwaitingSignOff") is AwaitingSignOff
    assert state.persisted_fields() == {"approver": "ann", "requested_at": None}
    assert Parked(until=3).name == "Parked.ForLater" and Parked.final
    with pytest.raises(TypeError):
        AwaitingSignOff("positional")  # type: ignore[misc]


def test_name_clash_is_refused() -> None:
    with pytest.raises(StateRegistrationError, match="already used"):

        class Enqueued(hm.State):  # a different class with a built-in name
            pass


def test_malformed_state_class_is_refused() -> None:
    with pytest.raises(StateRegistrationError, match="not a valid dataclass"):

        class Mutable(hm.State):
            items: list[int] = []


def test_invalid_state_name_is_refused() -> None:
    with pytest.raises(InvalidNameError):

        class Bad(hm.State, name="1; DROP TABLE"):
            pass


def test_transient_fields_are_not_persisted() -> None:
    failed = hm.Failed.from_exception(ValueError("boom"), reason="it broke")
    assert failed.exception is not None
    fields = failed.persisted_fields()
    assert "exception" not in fields
    assert fields["exception_type"] == "builtins.ValueError" and fields["message"] == "boom"
    assert "ValueError: boom" in (fields["traceback"] or "")


@pytest.mark.parametrize(
    ("current", "new", "message"),
    [
        (None, hm.Enqueued(), "starts in Created"),
        (hm.Enqueued(), hm.Created(), "only the initial state"),
        (hm.SystemDeleted(), hm.Enqueued(), "permanently deleted"),
        (hm.Enqueued(), hm.SystemDeleted(), "only follow SystemDeleting"),
        (hm.Enqueued(), hm.UnknownState(stored_name="Martian"), "not registered"),
    ],
)
def test_transition_rules(current: hm.State | None, new: hm.State, message: str) -> None:
    with pytest.raises(InvalidTransitionError, match=message):
        check_transition(current, new)


def test_a_state_object_is_applied_once() -> None:
    state = hm.Idle()
    state.sequence = 3
    state.elected_at = datetime.now(UTC)
    with pytest.raises(InvalidTransitionError, match="already applied"):
        check_transition(hm.Enqueued(), state)


def test_repr_shows_fields_and_reason() -> None:
    assert repr(hm.Idle()) == "Idle()"
    assert repr(hm.Idle(reason="x")) == "Idle(reason='x')"
    assert "parent_id=3" in repr(hm.Awaiting(parent_id=3))
