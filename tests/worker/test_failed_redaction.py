"""A job whose exception quotes a connection string: the stored Failed state shows no password."""

from __future__ import annotations

import hivemind_jobs as hm
from tests.worker.conftest import colony_of

SECRET = "Zx9-hunter2-secret"


def connect_orders() -> None:
    """Fails like a database driver does, with the connection string in the message and in the
    exception it was raised from."""
    dsn = f"postgresql://orders:{SECRET}@db.internal:5432/orders?sslmode=require"
    try:
        raise OSError(f"connection to server at 'db.internal' failed: host=db.internal password={SECRET} port=5432")
    except OSError as cause:
        raise ConnectionError(f"cannot open {dsn} (also tried mysql://orders:{SECRET}@replica/orders)") from cause


async def test_a_failed_job_stores_its_message_and_traceback_without_passwords(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(connect_orders)
    colony = colony_of(whive)
    await colony.run(burst=True)
    job = await whive.jobs.get(job_id)  # as stored
    state = job.state
    assert isinstance(state, hm.Failed)
    assert state.exception_type == "builtins.ConnectionError"
    assert state.message == (
        "cannot open postgresql://orders:***@db.internal:5432/orders?sslmode=require "
        "(also tried mysql://orders:***@replica/orders)"
    )
    assert state.traceback is not None
    assert SECRET not in state.traceback
    assert "host=db.internal password=*** port=5432" in state.traceback
    assert "postgresql://orders:***@db.internal:5432/orders" in state.traceback
    assert "in connect_orders" in state.traceback
    # nothing of the history holds the password either
    assert all(SECRET not in repr(stored) for stored in job.states)


def log_connection_failure(ctx: hm.JobContext) -> None:
    try:
        connect_orders()
    except ConnectionError:
        ctx.log.exception("orders database down (tried postgresql://orders:%s@db.internal/orders)", SECRET)


async def test_job_logs_with_exceptions_are_stored_without_passwords(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(log_connection_failure)
    await colony_of(whive).run(burst=True)
    try:
        connect_orders()
    except ConnectionError as error:
        await whive.jobs.add_log(job_id, f"seen again: password={SECRET}", exception=error)
    logs = await whive.jobs.get_logs(job_id)
    mine = [entry for entry in logs if entry.exception_type == "builtins.ConnectionError"]
    assert len(mine) == 2
    for entry in logs:
        for text in (entry.message, entry.exception_message or "", entry.traceback or ""):
            assert SECRET not in text
    assert mine[0].message == "orders database down (tried postgresql://orders:***@db.internal/orders)"
    assert mine[1].message == "seen again: password=***"
    assert all("postgresql://orders:***@db.internal" in (entry.traceback or "") for entry in mine)
