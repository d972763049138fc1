"""A batch of new jobs whose history rows and queue entry are alike (as ``create_many`` builds them)
is recognised as such, and only then: a backend writes those rows once for the whole batch."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from hivemind_jobs.storage.params import JobInsert
from hivemind_jobs.storage.rows import alike_rows
from hivemind_jobs.testing.conformance.support import new_job, state_row

SHARED = (state_row(0, "Created"), state_row(1, "Enqueued"))


def alike(**options: object) -> JobInsert:
    return dataclasses.replace(new_job(**options), states=SHARED)  # type: ignore[arg-type]


def test_jobs_built_alike_share_their_states_and_entry() -> None:
    batch = [alike(queue="q", priority=3, delay=timedelta(seconds=5)) for _ in range(4)]
    found = alike_rows(batch)
    assert found is not None and found.states is SHARED
    assert found.pointer is not None
    assert (found.pointer.queue, found.pointer.priority, found.pointer.delay) == ("q", 3, timedelta(seconds=5))
    unqueued = alike_rows([alike(enqueue=False) for _ in range(3)])
    assert unqueued is not None and unqueued.pointer is None


@pytest.mark.parametrize(
    "odd",
    [
        lambda job: dataclasses.replace(job, states=(state_row(0, "Created"), state_row(1, "Enqueued"))),
        lambda job: dataclasses.replace(job, enqueue=None),
        lambda job: dataclasses.replace(job, enqueue=dataclasses.replace(job.enqueue, execution_id="another")),
        lambda job: dataclasses.replace(job, enqueue=dataclasses.replace(job.enqueue, queue="other")),
        lambda job: dataclasses.replace(job, enqueue=dataclasses.replace(job.enqueue, priority=0)),
        lambda job: dataclasses.replace(job, enqueue=dataclasses.replace(job.enqueue, delay=timedelta(hours=1))),
    ],
    ids=["own-states", "no-entry", "other-execution", "other-queue", "other-priority", "other-delay"],
)
def test_one_job_that_differs_makes_the_batch_differ(odd: object) -> None:
    batch = [alike(queue="q") for _ in range(5)]
    batch[3] = odd(batch[3])  # type: ignore[operator]
    assert alike_rows(batch) is None
    assert alike_rows(batch[:3]) is not None
