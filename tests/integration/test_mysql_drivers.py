"""The MySQL storage's SQL literals are the same whichever driver's connection escapes them
(asyncmy for HiveMind's own pool, aiomysql for an application's connection), and read back as the
values written - with and without the server's NO_BACKSLASH_ESCAPES."""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from hivemind_jobs.storage.mysql.backend import _escape, _fill, _Literals, _positional, _render
from tests import backends

TEXTS = ["", "plain", "it's", 'a "quote"', "back\\slash", "nul\x00byte", "new\nline\r\ttab\x1a", "zażółć 😀 日本"]
VALUES: list[Any] = [
    *TEXTS,
    json.dumps({"text": "é \"' \\ 😀", "n": [1, 2.5, None, True]}),
    None,
    True,
    False,
    0,
    -(2**63),
    2**64 - 1,
    1.5,
    -2.25e-10,
    Decimal("1.10"),
    Decimal("-12345678901234567890.000001"),
    datetime(2024, 2, 29, 23, 59, 58, 123456),
    datetime(2024, 2, 29, 23, 59, 58),
    datetime(2024, 2, 29, 23, 59, 58, 1),
    date(2024, 1, 2),
    timedelta(days=1, seconds=3, microseconds=40),
    b"",
    b"\x00\x01'\"\\\xff bytes",
    bytearray(b"ab'c"),
    (1, "a'b", None),
    [datetime(2024, 1, 1, 0, 0, 0, 5), b"x"],
    (),
]


@pytest_asyncio.fixture(params=["plain", "no_backslash_escapes"])
async def connections(request: pytest.FixtureRequest, mariadb_url: str) -> AsyncIterator[dict[str, Any]]:
    """An asyncmy and an aiomysql connection, both in the session SQL mode of the parameter."""
    settings = {**backends.mysql_settings(), "db": backends.url_database(mariadb_url), "autocommit": True}
    opened: dict[str, Any] = {}
    try:
        for driver in ("asyncmy", "aiomysql"):
            connection = opened[driver] = await importlib.import_module(driver).connect(**settings)
            if request.param == "no_backslash_escapes":
                async with connection.cursor() as cursor:
                    await cursor.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        yield opened
    finally:
        for connection in opened.values():
            connection.close()


async def select(connection: Any, literal: str) -> Any:
    async with connection.cursor() as cursor:
        await cursor.execute(f"SELECT {literal}")
        return (await cursor.fetchone())[0]


@pytest.mark.parametrize("value", VALUES, ids=repr)
async def test_both_drivers_write_the_same_literal(connections: dict[str, Any], value: Any) -> None:
    assert _escape(value, connections["asyncmy"]) == _escape(value, connections["aiomysql"])


@pytest.mark.parametrize("value", [*TEXTS, b"\x00\x01'\"\\\xff bytes"], ids=repr)
async def test_text_and_bytes_read_back_as_written(connections: dict[str, Any], value: Any) -> None:
    for connection in connections.values():
        read = await select(connection, _escape(value, connection))
        assert (read.encode() if isinstance(value, bytes) and isinstance(read, str) else read) == value


PLAIN_TEXTS = ["plain", 'a "quote"', "new\nline\r\ttab\x1a", '{"a": [1, "b"]}', "zażółć 😀"]


@pytest.mark.parametrize("value", PLAIN_TEXTS, ids=repr)
async def test_text_without_quote_backslash_or_nul_goes_as_it_is(connections: dict[str, Any], value: Any) -> None:
    """MySQL needs only quotes and backslashes escaped in a literal: other text is not rewritten
    character by character, and reads back the same under either SQL mode."""
    for connection in connections.values():
        assert _escape(value, connection) == f"'{value}'"
        assert await select(connection, _escape(value, connection)) == value


async def test_numbers_and_times_read_back_as_written(connections: dict[str, Any]) -> None:
    connection = connections["asyncmy"]
    assert await select(connection, _escape(Decimal("-12345678901234567890.000001"), connection)) == Decimal(
        "-12345678901234567890.000001"
    )
    moment = datetime(2024, 2, 29, 23, 59, 58, 123456)
    assert await select(connection, f"CAST({_escape(moment, connection)} AS DATETIME(6))") == moment
    literal = _Literals(connection)(moment.replace(tzinfo=UTC))  # aware: its naive UTC value
    assert literal == "'2024-02-29 23:59:58.123456'"
    assert await select(connection, _escape(True, connection)) == 1
    assert await select(connection, f"{_escape(None, connection)} IS NULL") == 1


async def test_in_lists_render_for_both_drivers(connections: dict[str, Any]) -> None:
    sql = "SELECT %(n)s IN %(ids)s, 1 IN %(none)s"
    params = {"n": 2, "ids": (1, 2, 3), "none": ()}
    rendered = {driver: _render(sql, params, connection) for driver, connection in connections.items()}
    assert rendered["asyncmy"] == rendered["aiomysql"] == "SELECT 2 IN (1,2,3), 1 IN (NULL)"
    async with connections["asyncmy"].cursor() as cursor:
        await cursor.execute(rendered["asyncmy"])
        assert await cursor.fetchone() == (1, None)


async def test_a_script_escapes_each_value_once_and_keeps_equal_values_of_other_types_apart(
    connections: dict[str, Any],
) -> None:
    connection = connections["asyncmy"]
    literal = _Literals(connection)
    values = (1, True, 1.0, "1", 1, True, 1.0)
    assert [literal(value) for value in values] == [_escape(value, connection) for value in values]
    assert literal(1.0) != literal(1) == literal(True) == "1"  # 1.0 is not remembered as the literal of 1
    moment = datetime(2024, 2, 29, 23, 59, 58, 123456)
    assert literal(moment) == literal(moment.replace(tzinfo=UTC)) == "'2024-02-29 23:59:58.123456'"
    assert literal([1, "a'b"]) == literal.fresh([1, "a'b"]) == _escape([1, "a'b"], connection)  # not hashable
    quoted = _escape("it's", connection)
    row = _fill(_positional("(%(a)s, %(b)s, %(a)s)"), {"a": literal("it's"), "b": literal(None)})
    assert row == f"({quoted}, NULL, {quoted})"
    assert await select(connection, literal("it's")) == "it's"
