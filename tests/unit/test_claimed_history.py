"""A job a claim statement started keeps its stored history undecoded until someone reads it, and
reads the same history and saves the same states as a job built from decoded rows."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import Invocation
from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.states import Created, Enqueued, Executing, State
from hivemind_jobs.lifecycle.machine import job_started_by_claim, started_by_claim
from hivemind_jobs.lifecycle.records import job_from_record
from hivemind_jobs.storage.params import ClaimStarted, StateRow, StoredHistory
from hivemind_jobs.storage.rows import lean_claimed_record

NOW = datetime(2026, 12, 7, 9, 30, 0, 250_000, tzinfo=UTC)


def micros(at: datetime) -> int:
    return int((at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def claim_row(history: list[list[Any]], name: str, sequence: int) -> tuple[Any, ...]:
    """A row shaped as ``queue_claim_start_lean`` answers it (history as JSON, no properties)."""
    invocation = json.dumps({"v": 1, "target": "tests.sample_jobs:add", "async": False, "args": {"a": 1, "b": 2}})
    execution = str(uuid.uuid4())
    return (
        7, "global", 2, execution, NOW, NOW, 1, NOW, False, "global", 2, invocation, "[]", NOW, NOW,
        name, sequence, NOW, json.dumps(history), None,
    )  # fmt: skip


def executing() -> Executing:
    return Executing(colony="c", swarm="s", drone="s.drone-1", due_at=NOW)


HISTORY = [
    [0, "Created", micros(NOW - timedelta(seconds=2)), None, "{}"],
    [1, "Enqueued", micros(NOW - timedelta(seconds=1)), "why", "{}"],
]


def test_the_started_job_reads_its_history_only_when_asked_and_as_the_decoded_one() -> None:
    record = lean_claimed_record(claim_row(HISTORY, "Enqueued", 1), "colony-1", NOW, lambda at: at)
    stored = record.states
    assert isinstance(stored, StoredHistory) and stored._rows is None
    assert (stored.current_name, stored.current_sequence) == ("Enqueued", 1)
    started = ClaimStarted(0, str(uuid.uuid4()), NOW)
    job = job_started_by_claim(record, "main", Codec(), executing(), "colony-1", started)
    assert stored._rows is None  # running it needs nothing of the history
    assert isinstance(job.state, Executing) and (job.state.sequence, job.state.elected_at) == (2, NOW)
    assert job.execution_key == started.execution_id and job.locked_by == "colony-1"
    assert not job._has_changes and job._last_saved_state is job.state

    decoded = lean_claimed_record(claim_row(HISTORY, "Enqueued", 1), "colony-1", NOW, lambda at: at)
    expected = job_from_record(dataclasses.replace(decoded, states=tuple(decoded.states)), "main", Codec())
    started_by_claim(expected, executing(), "colony-1", started, text_checked=True)
    assert [(type(s), s.sequence, s.reason, s.elected_at) for s in job.states] == [
        (type(s), s.sequence, s.reason, s.elected_at) for s in expected.states
    ]
    assert [type(s) for s in job.states] == [Created, Enqueued, Executing]
    assert stored._rows is not None and stored == tuple(stored.rows) and len(stored) == 2
    assert not job._has_changes  # decoding counted the saved states as they came


def test_a_later_state_is_the_only_unsaved_one_whatever_the_history_held() -> None:
    # a history whose numbering does not tell its length (the count is corrected when decoded)
    gapped = [[0, "Created", micros(NOW), None, "{}"], [3, "Enqueued", micros(NOW), None, "{}"]]
    record = lean_claimed_record(claim_row(gapped, "Enqueued", 3), "colony-1", NOW, lambda at: at)
    job = job_started_by_claim(record, "main", Codec(), executing(), "colony-1", ClaimStarted(0, "k", NOW))
    assert [s.name for s in job.states] == ["Created", "Enqueued", "Executing"]
    assert job._last_saved_state is job.state and not job._unsaved_states
    failed = hm.Failed(reason="boom")
    job._apply_state(failed, NOW)
    assert job._unsaved_states == [failed] and job._last_saved_state is not None
    assert job._last_saved_state.name == "Executing"


def test_a_job_in_another_state_takes_the_state_machines_usual_check() -> None:
    record = lean_claimed_record(claim_row(HISTORY[:1], "Created", 0), "colony-1", NOW, lambda at: at)
    job = job_started_by_claim(record, "main", Codec(), executing(), "colony-1", ClaimStarted(0, "k", NOW))
    # the general rules apply: Created -> Executing is a transition the machine allows
    assert [s.name for s in job.states] == ["Created", "Executing"]
    applied = executing()
    applied.sequence = 0
    with pytest.raises(hm.InvalidTransitionError):
        job_started_by_claim(record, "main", Codec(), applied, "colony-1", ClaimStarted(0, "k", NOW))


def test_older_states_counted_wrong_before_decoding_are_counted_right_after() -> None:
    def older() -> list[State]:
        created, enqueued = Created(), Enqueued()
        created.sequence, enqueued.sequence = 0, 1
        created.elected_at = enqueued.elected_at = NOW
        return [created, enqueued]

    current = Executing(colony="c", swarm="s", drone="d", due_at=NOW)
    current.sequence, current.elected_at = 2, NOW
    for told in (0, 2, 5):
        job = BackgroundJob(
            environment="main", job_id=1, queue="global", priority=hm.Priority.NORMAL,
            invocation=Invocation.from_stored(claim_row(HISTORY, "Enqueued", 1)[11]),
            execution_id=uuid.uuid4(), states=[current], properties={}, middleware=(), created_at=NOW,
            modified_at=NOW, lock=None, older=older, older_count=told,
        )  # fmt: skip
        assert not job._unsaved_states
        assert [s.name for s in job.states] == ["Created", "Enqueued", "Executing"], told
        assert not job._unsaved_states and job._last_saved_state is current, told


def test_a_stored_history_is_a_sequence_of_its_rows() -> None:
    calls: list[str] = []

    def decode(text: str) -> tuple[StateRow, ...]:
        calls.append(text)
        return tuple(StateRow(s, n, NOW, r, f) for s, n, _, r, f in json.loads(text))

    history = StoredHistory(json.dumps(HISTORY), decode, "Enqueued", 1)
    assert calls == []
    assert [row.name for row in history] == ["Created", "Enqueued"]
    assert history[-1].reason == "why" and [row.sequence for row in history[:1]] == [0]
    assert len(history) == 2 and history == history.rows and len(calls) == 1  # decoded once
    assert StoredHistory(None, decode, "Created", 0) == ()
