"""PendingInserts: a batch's rows built in order, part by part, as a backend asks for them."""

from __future__ import annotations

import pytest

from hivemind_jobs.storage.params import JobInsert, PendingInserts
from hivemind_jobs.testing.conformance.support import new_job


def made(count: int, bad: int | None = None) -> tuple[PendingInserts, list[tuple[int, int]]]:
    asked: list[tuple[int, int]] = []

    def build(start: int, end: int) -> list[JobInsert]:
        asked.append((start, end))
        if bad is not None and start <= bad < end:
            raise ValueError(f"call {bad} does not fit")
        return [new_job(queue=f"q{index}") for index in range(start, end)]

    return PendingInserts(count, build, most_bytes=1000), asked


def test_rows_are_built_in_order_only_as_far_as_asked() -> None:
    pending, asked = made(10)
    assert len(pending) == 10 and asked == []
    assert [job.queue for job in pending.rows(0, 4)] == ["q0", "q1", "q2", "q3"]
    assert [job.queue for job in pending.rows(2, 6)] == ["q2", "q3", "q4", "q5"]  # only 4 and 5 are new
    assert asked == [(0, 4), (4, 6)]
    assert [job.queue for job in pending.rows(8, 20)] == ["q8", "q9"]  # the end is the batch's
    assert asked == [(0, 4), (4, 6), (6, 10)]


def test_indexing_and_iterating_build_the_rest_once() -> None:
    pending, asked = made(5)
    first = pending.rows(0, 2)
    assert pending[4].queue == "q4" and pending[-1] is pending[4] and pending[0] is first[0]
    assert [job.queue for job in pending] == [f"q{index}" for index in range(5)]
    assert [job.queue for job in pending[1:3]] == ["q1", "q2"]
    assert asked == [(0, 2), (2, 5)]


def test_a_call_that_does_not_fit_raises_when_its_part_is_built() -> None:
    pending, asked = made(10, bad=7)
    assert len(pending.rows(0, 5)) == 5
    with pytest.raises(ValueError, match="call 7 does not fit"):
        pending.rows(5, 10)
    with pytest.raises(ValueError, match="call 7"):
        list(pending)
    assert asked == [(0, 5), (5, 10), (5, 10)]
