"""The worker's two ways of writing transitions store the same thing.

With no handler observing transitions, the claim writes Executing itself and the completer writes
the outcome rows directly; with a handler, every transition is elected and saved as before. Both
leave the same history rows, properties and queue entries, on every backend.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

import hivemind_jobs as hm
from hivemind_jobs.colony.completer import Completer
from hivemind_jobs.colony.fetcher import Fetcher
from tests.backends import raw, table
from tests.worker import jobs
from tests.worker.conftest import colony_of

RETRY_ONCE = hm.RetryPolicy(max_retries=1, delays=[timedelta(0)], jitter=0.0)


async def test_an_election_handler_sees_every_worker_transition_and_can_replace_one(whive: hm.HiveMind) -> None:
    seen: list[tuple[int, str]] = []
    replaced: list[int] = []

    def watch(request: hm.StateElection) -> hm.State | None:
        seen.append((request.job.id, request.elected.name))
        if isinstance(request.elected, hm.Succeeded) and request.job.get_property("replace") is True:
            replaced.append(request.job.id)
            return hm.Deleted(reason="replaced by a handler")
        return None

    ok = await whive.jobs.create(jobs.add, 1, 2)
    failing = await whive.jobs.create(jobs.boom, "no")
    replace = await whive.jobs.options(properties={"replace": True}).create(jobs.add, 3, 4)
    remove = whive.mediator.add_request_handler(hm.StateElection, watch)
    try:
        await colony_of(whive).run(burst=True)
    finally:
        remove()
    for job_id, final in ((ok, "Succeeded"), (failing, "Failed"), (replace, "Succeeded")):
        assert (job_id, "Executing") in seen
        assert (job_id, final) in seen
    assert replaced == [replace]
    job = await whive.jobs.get(replace)
    assert [state.name for state in job.states] == ["Created", "Enqueued", "Executing", "Succeeded", "Deleted"]
    assert job.state.reason == "replaced by a handler"
    assert [state.name for state in (await whive.jobs.get(ok)).states][-1] == "Succeeded"


def _shape(fields: str) -> dict[str, Any]:
    """A state's stored fields without what differs from run to run (times, names of drones)."""
    loaded = json.loads(fields)
    varying = {"duration", "overhead", "lead_time", "due_at", "drone", "traceback"}
    return {name: (value if name not in varying else type(value).__name__) for name, value in loaded.items()}


async def _run_and_read(db_url: str, prefix: str, *, observed: bool) -> tuple[list[Any], list[Any], list[Any]]:
    options = hm.Options(lock_timeout=timedelta(seconds=5), retry=RETRY_ONCE)
    async with hm.HiveMind(db_url, options=options, table_prefix=prefix) as hive:
        ids = [
            await hive.jobs.create(jobs.add, 2, 3),
            await hive.jobs.create(jobs.echo_back, {"text": "é", "n": [1, 2.5, None]}),
            await hive.jobs.create(jobs.echo_back, None),
            await hive.jobs.create(jobs.async_note, "x"),
            await hive.jobs.create(jobs.boom, "fails twice"),  # Failed, Enqueued (retry), then Failed for good
            await hive.jobs.options(properties={"tenant": "t-1"}).create(jobs.note, "props"),
        ]
        saved: list[int] = []
        remove = hive.mediator.subscribe(hm.JobSaved, lambda event: saved.append(1)) if observed else None
        try:
            colony = colony_of(hive)
            await colony.run(burst=True)
            await colony.run(burst=True)  # the retry
        finally:
            if remove is not None:
                remove()
        assert bool(saved) is observed
        states = raw(
            db_url,
            f"SELECT job_id, sequence, name, reason, fields FROM {table(db_url, 'job_state', prefix)} "
            "ORDER BY job_id, sequence",
        )
        properties = raw(
            db_url,
            f"SELECT job_id, name, type, text_value, int_value FROM {table(db_url, 'job_property', prefix)} "
            "ORDER BY job_id, name",
        )
        rows = raw(
            db_url,
            f"SELECT id, state_name, state_sequence, locked_by FROM {table(db_url, 'job', prefix)} ORDER BY id",
        )
        queued = raw(db_url, f"SELECT job_id FROM {table(db_url, 'queue', prefix)}")
        assert queued == []
    first = ids[0]
    return (
        [(job_id - first, sequence, name, reason, _shape(fields)) for job_id, sequence, name, reason, fields in states],
        [(job_id - first, *rest) for job_id, *rest in properties],
        [(job_id - first, *rest) for job_id, *rest in rows],
    )


async def test_direct_writes_store_what_elections_store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(cls: type, name: str) -> None:
        original = getattr(cls, name)

        async def counted(self: object, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)

    spy(Fetcher, "_claim_started")
    spy(Completer, "_write_direct")
    direct = await _run_and_read(db_url, "hm_direct_", observed=False)
    assert {"_claim_started", "_write_direct"} <= set(calls)  # the direct path ran
    calls.clear()
    elected = await _run_and_read(db_url, "hm_elected_", observed=True)
    assert calls == []  # a handler observes: every transition was elected
    assert direct == elected
    states, properties, rows = direct
    names = {}
    for job, _, name, _, _ in states:
        names.setdefault(job, []).append(name)
    assert names[0] == ["Created", "Enqueued", "Executing", "Succeeded"]
    assert names[4] == ["Created", "Enqueued", "Executing", "Failed", "Enqueued", "Executing", "Failed"]
    assert (4, "hm.retries", "int", None, 1) in properties
    assert all(locked_by is None for *_, locked_by in rows)


async def test_a_started_jobs_executing_fields_are_the_codecs_own_text(whive: hm.HiveMind, db_url: str) -> None:
    """The claim writes a drone's Executing fields from a template joined around the job's due
    time: the stored text is the text the codec writes for that state, whether the due time has
    microseconds or not, and reads back as the due time it was."""
    from datetime import UTC, datetime

    from hivemind_jobs.core.codec import Codec
    from hivemind_jobs.lifecycle.records import encode_state_fields, state_from_row
    from hivemind_jobs.storage.protocol import StateRow

    whole = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    fraction = whole.replace(microsecond=250_001)
    ids = [
        await whive.jobs.options(delay_until=whole).create(jobs.add, 1, 2),
        await whive.jobs.options(delay_until=fraction).create(jobs.add, 3, 4),
    ]
    await colony_of(whive).run(burst=True)
    codec = Codec()
    for job_id, due in zip(ids, (whole, fraction), strict=True):
        [(fields,)] = raw(
            db_url, f"SELECT fields FROM {table(db_url, 'job_state')} WHERE job_id = ? AND name = 'Executing'", job_id
        )
        state = state_from_row(StateRow(2, "Executing", datetime.now(UTC), None, fields), codec)
        assert isinstance(state, hm.Executing) and state.due_at == due
        assert encode_state_fields(state, codec) == fields
