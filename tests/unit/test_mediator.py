from __future__ import annotations

from dataclasses import dataclass

import pytest

from hivemind_jobs.errors import ConfigurationError
from hivemind_jobs.mediator import Mediator, Request


@dataclass
class Happened:
    value: int


@dataclass
class HappenedLoudly(Happened):
    pass


@dataclass
class Question(Request[str]):
    text: str


async def test_events_reach_all_handlers_by_priority_unprioritised_last() -> None:
    mediator = Mediator()
    calls: list[str] = []
    mediator.subscribe(Happened, lambda e: calls.append("none-1"))
    mediator.subscribe(Happened, lambda e: calls.append("p5"), priority=5)

    async def first(event: Happened) -> None:
        calls.append("p0")

    mediator.subscribe(Happened, first, priority=0)
    mediator.subscribe(Happened, lambda e: calls.append("none-2"))
    await mediator.publish(Happened(1))
    assert calls == ["p0", "p5", "none-1", "none-2"]


async def test_subclass_events_reach_base_handlers_and_unsubscribe_works() -> None:
    mediator = Mediator()
    seen: list[int] = []
    remove = mediator.subscribe(Happened, lambda e: seen.append(e.value))
    await mediator.publish(HappenedLoudly(2))
    remove()
    await mediator.publish(HappenedLoudly(3))
    assert seen == [2]


async def test_requests_stop_at_the_first_answer() -> None:
    mediator = Mediator()
    asked: list[str] = []

    def passes(q: Question) -> None:
        asked.append("passes")

    async def answers(q: Question) -> str:
        asked.append("answers")
        return q.text.upper()

    mediator.add_request_handler(Question, passes, priority=0)
    mediator.add_request_handler(Question, answers, priority=1)
    mediator.add_request_handler(Question, lambda q: asked.append("never") or "late", priority=2)
    assert await mediator.request(Question("hi")) == "HI"
    assert asked == ["passes", "answers"]
    assert await Mediator().request(Question("nobody")) is None


async def test_handler_objects_carry_their_priority() -> None:
    class First:
        priority = 0

        def __call__(self, q: Question) -> str:
            return "first"

    mediator = Mediator()
    mediator.add_request_handler(Question, lambda q: "unprioritised")
    mediator.add_request_handler(Question, First())
    assert await mediator.request(Question("x")) == "first"


async def test_child_mediator_sees_parent_handlers_merged_by_priority() -> None:
    parent = Mediator()
    child = Mediator(parent=parent)
    order: list[str] = []
    parent.subscribe(Happened, lambda e: order.append("parent-p1"), priority=1)
    child.subscribe(Happened, lambda e: order.append("child-p0"), priority=0)
    child.subscribe(Happened, lambda e: order.append("child-none"))
    await child.publish(Happened(0))
    assert order == ["child-p0", "parent-p1", "child-none"]
    order.clear()
    await parent.publish(Happened(0))
    assert order == ["parent-p1"]  # the parent does not see its children
    parent.subscribe(Happened, lambda e: order.append("late-parent"), priority=-1)
    order.clear()
    await child.publish(Happened(0))  # caches notice parent changes
    assert order[0] == "late-parent"


async def test_handler_errors_propagate() -> None:
    mediator = Mediator()

    def broken(event: Happened) -> None:
        raise RuntimeError("handler failed")

    mediator.subscribe(Happened, broken)
    with pytest.raises(RuntimeError, match="handler failed"):
        await mediator.publish(Happened(1))


def test_registration_is_validated() -> None:
    mediator = Mediator()
    with pytest.raises(ConfigurationError):
        mediator.add_request_handler(Happened, lambda r: None)  # type: ignore[type-var]
    with pytest.raises(ConfigurationError):
        mediator.subscribe(Happened, lambda e: None, priority="high")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        mediator.subscribe(Happened, "not callable")  # type: ignore[arg-type]
