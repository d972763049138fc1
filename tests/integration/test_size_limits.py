"""Size limits at the edge: arguments, job data, log lines, exception text and results, on every
backend; and MariaDB's max_allowed_packet reported in words."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from hivemind_jobs.core.limits import KIB, MIB, Limits, utf8_size
from hivemind_jobs.errors import LimitExceededError, RetryableStorageError
from hivemind_jobs.storage.sql import SQL
from tests import backends
from tests.worker.conftest import FAST

ALLOW = hm.AllowList(modules=[__name__])
DEFAULT = Limits()


# ----------------------------------------------------------------------------- jobs
def echo(text: str) -> int:
    return len(text)


def echo_list(texts: list[str]) -> int:
    return sum(map(len, texts))


def log_a_lot(ctx: hm.JobContext, size: int) -> str:
    ctx.log.info("x" * size)
    try:
        raise ValueError("y" * size)
    except ValueError:
        ctx.log.exception("a logged exception")
    ctx.log.info("a short line")
    return "done"


def fail_with_a_long_message(size: int) -> None:
    raise ValueError("boom " + "z" * size)


def fail_with_a_long_traceback(links: int) -> None:
    error: Exception | None = None
    for index in range(links):
        try:
            raise RuntimeError(f"link {index}") from error
        except RuntimeError as raised:
            error = raised
    raise ValueError("final") from error


async def big_result(ctx: hm.JobContext, size: int) -> str:
    await ctx.job.set_data("side-effect", "happened")
    return "r" * size


class Opaque:
    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return "u" * self.size


def big_opaque_result(size: int) -> object:
    return Opaque(size)


# ----------------------------------------------------------------------------- fixtures
@pytest_asyncio.fixture
async def lhive(db_url: str) -> AsyncIterator[hm.HiveMind]:
    options = hm.Options(lock_timeout=timedelta(seconds=2), retry=hm.RetryPolicy(max_retries=0))
    async with hm.HiveMind(db_url, options=options) as hive:
        yield hive


async def run_all(hive: hm.HiveMind) -> None:
    colony = hive.colony(name="limits", allow=ALLOW, options=FAST)
    colony.swarm("main", drones=2)
    await colony.run(burst=True)


def over(limit: int) -> str:
    return "a" * (limit + 1)


# ----------------------------------------------------------------------------- Limits itself
def test_limits_defaults_and_validation() -> None:
    assert (DEFAULT.max_argument_bytes, DEFAULT.max_data_bytes, DEFAULT.max_result_bytes) == (MIB, MIB, MIB)
    assert (DEFAULT.max_log_message_bytes, DEFAULT.max_exception_bytes) == (16 * KIB, 64 * KIB)
    assert Limits.max_property_text_length == 4000
    assert hm.Options().limits == DEFAULT
    for bad in (0, 1023, -5, 513 * MIB, 1.5, True, "1MiB"):
        with pytest.raises(hm.ConfigurationError, match=r"Limits\.max_data_bytes must be a whole number of bytes"):
            Limits(max_data_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(hm.ConfigurationError, match=r"Options\.limits"):
        hm.Options(limits={"max_data_bytes": 5})  # type: ignore[arg-type]


async def test_a_text_property_is_limited_as_documented(hive: hm.HiveMind) -> None:
    longest = "t" * Limits.max_property_text_length
    job_id = await hive.jobs.options(properties={"p": longest}).create(echo, "x")
    assert (await hive.jobs.get(job_id)).get_property("p") == longest
    with pytest.raises(hm.LimitExceededError, match="longer than 4000"):
        hive.jobs.options(properties={"p": longest + "t"})


def test_cut_text_stays_within_the_limit_and_never_splits_a_character() -> None:
    limits = Limits(max_log_message_bytes=KIB, max_exception_bytes=2 * KIB)
    for text in ("é" * 5000, "a€" * 3000, "😀" * 3000, "x" * 100_000):
        cut = limits.log_message(text)
        assert utf8_size(cut) <= KIB
        assert cut.endswith(f"Limits.max_log_message_bytes is {KIB:,}]")
        assert text.startswith(cut.partition("… [truncated")[0])
        message, traceback = limits.exception_text(text, "Traceback (most recent call last):\n" + text + "\nEND")
        assert message is not None and traceback is not None
        assert utf8_size(message) + utf8_size(traceback) <= 2 * KIB
        assert traceback.startswith("Traceback (most recent call last):") and traceback.endswith("\nEND")
        assert "bytes cut: Limits.max_exception_bytes is 2,048]" in traceback
    assert limits.log_message("short") == "short"
    assert limits.exception_text("m", "t") == ("m", "t")
    assert limits.exception_text(None, None) == (None, None)
    # a short message is kept whole; the traceback takes the rest of the room
    message, traceback = limits.exception_text("short", "t" * 10_000)
    assert message == "short" and traceback is not None and utf8_size(traceback) <= 2 * KIB - 5


# ----------------------------------------------------------------------------- arguments
async def test_arguments_over_the_limit_are_refused_and_nothing_is_written(hive: hm.HiveMind, db_url: str) -> None:
    with pytest.raises(LimitExceededError) as raised:
        await hive.jobs.create(echo, over(MIB))
    message = str(raised.value)
    assert "Limits.max_argument_bytes (1,048,576 bytes)" in message
    assert message.startswith(f"the arguments of {__name__}:echo take 1,048,") and "bytes as stored JSON" in message
    assert "Options(limits=Limits(max_argument_bytes=...))" in message and "reference" in message
    assert isinstance(raised.value, hm.ConfigurationError)
    # bytes, not characters: 600,000 two-byte characters are 1.2 MB
    with pytest.raises(LimitExceededError):
        await hive.jobs.create(echo, "é" * 600_000)
    with pytest.raises(LimitExceededError):  # nested in a container
        await hive.jobs.create(echo_list, [over(MIB // 2), over(MIB // 2)])
    with pytest.raises(LimitExceededError):  # all or nothing
        await hive.jobs.create_many([hm.call(echo, "small"), hm.call(echo, over(MIB)), hm.call(echo, "small")])
    assert await hive.jobs.count() == 0
    assert backends.count(db_url, "job") == 0
    assert backends.count(db_url, "job_state") == 0
    assert backends.count(db_url, "queue") == 0


async def test_the_transaction_stays_usable_after_refused_arguments(hive: hm.HiveMind, db_url: str) -> None:
    async with hive.transaction() as tx:
        first = await tx.jobs.create(echo, "before")
        with pytest.raises(LimitExceededError):
            await tx.jobs.create(echo, over(MIB))
        second = await tx.jobs.create(echo, "after")
    assert backends.count(db_url, "job") == 2
    assert {job.id for job in (await hive.jobs.search()).jobs} == {first, second}


async def test_a_raised_argument_limit_stores_larger_arguments(db_url: str) -> None:
    options = hm.Options(limits=Limits(max_argument_bytes=3 * MIB))
    async with hm.HiveMind(db_url, options=options) as hive:
        text = "é" * MIB  # 2 MiB of UTF-8
        job_id = await hive.jobs.create(echo, text)
        job = await hive.jobs.get(job_id)
        assert job.invocation.arguments["text"] == text
        with pytest.raises(LimitExceededError, match=r"Limits\.max_argument_bytes \(3,145,728 bytes\)"):
            await hive.jobs.create(echo, over(3 * MIB))


async def test_recurring_arguments_over_the_limit_are_refused(hive: hm.HiveMind) -> None:
    with pytest.raises(LimitExceededError, match="max_argument_bytes"):
        await hive.recurring.create_or_update("too.big", hm.every(minutes=5), echo, over(MIB))
    assert await hive.recurring.try_get("too.big") is None
    assert await hive.jobs.count() == 0


# ----------------------------------------------------------------------------- job data
async def test_job_data_over_the_limit_is_refused_and_nothing_is_written(hive: hm.HiveMind, db_url: str) -> None:
    job_id = await hive.jobs.create(echo, "x")
    with pytest.raises(LimitExceededError) as raised:
        await hive.jobs.set_data(job_id, "blob", over(MIB))
    message = str(raised.value)
    assert "job data 'blob'" in message and "Limits.max_data_bytes (1,048,576 bytes)" in message
    assert "Options(limits=Limits(max_data_bytes=...))" in message
    async with hive.jobs.get_with_lock(job_id) as locked:
        with pytest.raises(LimitExceededError):
            await locked.set_data("blob", {"items": ["é" * 300_000, "é" * 300_000]})
    assert await hive.jobs.try_get_data(job_id, "blob", default="missing") == "missing"
    assert backends.count(db_url, "job_data") == 0
    await hive.jobs.set_data(job_id, "blob", "a" * (MIB - 2))  # exactly the limit as JSON
    assert len(await hive.jobs.get_data(job_id, "blob")) == MIB - 2


# ----------------------------------------------------------------------------- logs
async def test_a_long_log_message_is_cut_with_a_marker(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(echo, "x")
    await hive.jobs.add_log(job_id, "m" * 100_000)
    try:
        raise ValueError("v" * 200_000)
    except ValueError as error:
        await hive.jobs.add_log(job_id, "failed", exception=error)
    first, second = await hive.jobs.get_logs(job_id)
    assert utf8_size(first.message) <= DEFAULT.max_log_message_bytes
    assert first.message.startswith("mmm") and first.message.endswith("Limits.max_log_message_bytes is 16,384]")
    assert "100,000 bytes" in first.message
    assert second.message == "failed"
    assert second.exception_message is not None and second.traceback is not None
    assert utf8_size(second.exception_message) + utf8_size(second.traceback) <= DEFAULT.max_exception_bytes


async def test_a_job_that_logs_a_lot_succeeds_with_its_log_lines_cut(lhive: hm.HiveMind) -> None:
    job_id = await lhive.jobs.create(log_a_lot, 500_000)
    await run_all(lhive)
    job = await lhive.jobs.get(job_id)
    assert isinstance(job.state, hm.Succeeded), job.state
    logs = await lhive.jobs.get_logs(job_id)
    by_message = {entry.message[:20]: entry for entry in logs}
    assert set(by_message) >= {"x" * 20, "a logged exception", "a short line"}
    long_line = by_message["x" * 20]
    assert utf8_size(long_line.message) <= DEFAULT.max_log_message_bytes
    assert "[truncated: the message has 500,000 bytes" in long_line.message
    logged = by_message["a logged exception"]
    assert logged.exception_message is not None and logged.traceback is not None
    assert utf8_size(logged.exception_message) + utf8_size(logged.traceback) <= DEFAULT.max_exception_bytes
    assert logged.traceback.startswith("Traceback (most recent call last):")


# ----------------------------------------------------------------------------- exception text
async def test_a_long_exception_message_is_cut(lhive: hm.HiveMind) -> None:
    job_id = await lhive.jobs.create(fail_with_a_long_message, 2_000_000)
    await run_all(lhive)
    failed = (await lhive.jobs.get(job_id)).state
    assert isinstance(failed, hm.Failed), failed
    assert failed.message is not None and failed.traceback is not None
    assert failed.message.startswith("boom zzz") and "Limits.max_exception_bytes is 65,536]" in failed.message
    assert utf8_size(failed.message) + utf8_size(failed.traceback) <= DEFAULT.max_exception_bytes
    assert failed.exception_type == "builtins.ValueError"


async def test_a_long_traceback_keeps_its_head_and_its_tail(lhive: hm.HiveMind) -> None:
    job_id = await lhive.jobs.create(fail_with_a_long_traceback, 2000)
    await run_all(lhive)
    failed = (await lhive.jobs.get(job_id)).state
    assert isinstance(failed, hm.Failed), failed
    assert failed.message == "final"
    traceback = failed.traceback
    assert traceback is not None
    assert utf8_size(traceback) <= DEFAULT.max_exception_bytes - len("final")
    assert traceback.startswith("Traceback (most recent call last):")
    assert "RuntimeError: link 0" in traceback  # the outermost cause, at the head
    assert traceback.rstrip().endswith("ValueError: final")  # the exception line, at the tail
    assert "bytes cut: Limits.max_exception_bytes is 65,536] …" in traceback
    assert "link 1000" not in traceback


# ----------------------------------------------------------------------------- results
async def test_a_result_over_the_limit_is_replaced_by_a_note_and_the_job_succeeds(lhive: hm.HiveMind) -> None:
    job_id = await lhive.jobs.create(big_result, 2 * MIB)
    opaque_id = await lhive.jobs.create(big_opaque_result, 2 * MIB)
    small_id = await lhive.jobs.create(big_result, 1000)
    await run_all(lhive)
    job = await lhive.jobs.get(job_id)
    assert isinstance(job.state, hm.Succeeded), job.state
    assert job.state.result == (
        f"[result not stored: {2 * MIB + 2:,} bytes of JSON, more than Limits.max_result_bytes (1,048,576)]"
    )
    assert await lhive.jobs.get_data(job_id, "side-effect") == "happened"
    warnings = [entry.message for entry in await lhive.jobs.get_logs(job_id) if entry.level == logging.WARNING]
    assert any("the result was not stored" in line and "max_result_bytes=..." in line for line in warnings), warnings
    opaque = await lhive.jobs.get(opaque_id)
    assert isinstance(opaque.state, hm.Succeeded), opaque.state
    assert isinstance(opaque.state.result, str) and opaque.state.result.startswith("[result not stored:")
    opaque_warnings = [entry.message for entry in await lhive.jobs.get_logs(opaque_id)]
    assert any("stored as its repr" in line for line in opaque_warnings)
    assert any("the result was not stored" in line for line in opaque_warnings)
    small = await lhive.jobs.get(small_id)
    assert isinstance(small.state, hm.Succeeded) and small.state.result == "r" * 1000


# ----------------------------------------------------------------------------- MariaDB packets
async def test_mariadb_reports_a_statement_over_max_allowed_packet_in_words(
    mariadb_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    packet = int(backends.raw(mariadb_url, "SELECT @@global.max_allowed_packet")[0][0])
    if packet > 64 * MIB:
        pytest.skip(f"the server's max_allowed_packet ({packet:,}) is larger than this test stores")
    roomy = Limits(max_argument_bytes=4 * packet, max_data_bytes=4 * packet)
    with caplog.at_level(logging.WARNING, logger="hivemind_jobs.storage.mysql"):
        async with hm.HiveMind(mariadb_url, options=hm.Options(limits=roomy)) as hive:
            warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
            assert any(
                f"max_allowed_packet = {packet:,} bytes" in line and "Limits.max_argument_bytes" in line
                for line in warnings
            ), warnings
            # just over one packet (error 1153), then several (the protocol breaks: sequence number wrong)
            for size in (packet + 1_000_000, packet * 5 // 2):
                with pytest.raises(hm.StorageError) as raised:
                    await hive.jobs.create(echo, "p" * size)
                assert not isinstance(raised.value, RetryableStorageError)
                message = str(raised.value)
                assert f"its max_allowed_packet is {packet:,} bytes" in message, message
                assert "refused a statement of" in message and "Raise the server's max_allowed_packet" in message
                assert "Options(limits=Limits(" in message
            assert await hive.jobs.count() == 0
            job_id = await hive.jobs.create(echo, "still usable")
            with pytest.raises(hm.StorageError, match="max_allowed_packet"):
                await hive.jobs.set_data(job_id, "blob", "d" * (packet + 1_000_000))
            assert await hive.jobs.try_get_data(job_id, "blob") is None
            assert [job.id for job in (await hive.jobs.search()).jobs] == [job_id]


async def test_mariadb_closes_a_session_that_sent_an_oversized_statement(mariadb_url: str) -> None:
    """After a refused packet the session's protocol state is unknown: it is closed, never pooled
    again (the next statement on it would fail with "Packet sequence number wrong")."""
    packet = int(backends.raw(mariadb_url, "SELECT @@global.max_allowed_packet")[0][0])
    if packet > 64 * MIB:
        pytest.skip(f"the server's max_allowed_packet ({packet:,}) is larger than this test sends")
    async with hm.HiveMind(mariadb_url) as hive:
        driver: Any = hive.env().storage.driver
        raw = await driver.acquire()
        try:
            connection = driver.wrap(raw)
            with pytest.raises(hm.StorageError, match="max_allowed_packet"):
                await connection.fetchall(SQL("SELECT %(blob)s"), {"blob": "p" * (packet + 1_000_000)})
            assert driver.connection_lost(raw)
        finally:
            await driver.release(raw, discard=driver.connection_lost(raw))
        for _ in range(8):  # more than the pool holds: every pooled session still speaks the protocol
            assert await hive.jobs.count() == 0


async def test_mariadb_does_not_warn_about_default_limits(mariadb_url: str, caplog: pytest.LogCaptureFixture) -> None:
    packet = int(backends.raw(mariadb_url, "SELECT @@global.max_allowed_packet")[0][0])
    if packet < 2 * MIB + 1:
        pytest.skip("the server's max_allowed_packet is below twice the default limits")
    with caplog.at_level(logging.WARNING, logger="hivemind_jobs.storage.mysql"):
        async with hm.HiveMind(mariadb_url):
            pass
    assert not [record for record in caplog.records if "max_allowed_packet" in record.getMessage()]
