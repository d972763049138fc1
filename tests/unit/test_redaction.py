"""Passwords are hidden wherever HiveMind shows or stores text: ``redact_secrets``, ``redact_url``,
the parsed server URL, and the Failed state built from an exception."""

from __future__ import annotations

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.storage import redact_url
from hivemind_jobs.storage.server.base import ServerURL

SECRET = "hunter2-Zq"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # URLs in any position of a text
        ("postgresql://u:hunter2-Zq@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("failed: 'mysql://u:hunter2-Zq@h/db' (retrying)", "failed: 'mysql://u:***@h/db' (retrying)"),
        (
            "a postgresql://a:hunter2-Zq@h/x and mysql+aiomysql://b:hunter2-Zq@i/y",
            "a postgresql://a:***@h/x and mysql+aiomysql://b:***@i/y",
        ),
        ("redis://:hunter2-Zq@cache:6379/0", "redis://:***@cache:6379/0"),
        # a password holding @ (the last @ of the authority ends it), percent-encoded or not
        ("postgresql://u:hunter2-Zq@x@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p%40hunter2-Zq%3A%2F@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        # not percent-encoded: no valid URL, still hidden
        ("postgresql://u:hunter2/Zq#1?@h/db", "postgresql://u:***@h/db"),
        # query-string forms, every secret key, the other parameters kept
        ("postgresql://u@h/db?password=hunter2-Zq", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u@h/db?schema=s&PASSWORD=hunter2-Zq&sslpassword=hunter2-Zq&x=1",
            "postgresql://u@h/db?schema=s&PASSWORD=***&sslpassword=***&x=1",
        ),
        ("mysql://u@h/db?passwd=hunter2-Zq&pwd=hunter2-Zq", "mysql://u@h/db?passwd=***&pwd=***"),
        # libpq key=value text, quoted or not, spaces around =
        ("host=h password=hunter2-Zq dbname=d", "host=h password=*** dbname=d"),
        ("host=h password = 'hunter2 Zq\\' x' dbname=d", "host=h password = '***' dbname=d"),
        ("PGPASSWORD=hunter2-Zq psql", "PGPASSWORD=*** psql"),
        ('connect(user="u", password="hunter2-Zq")', 'connect(user="u", password="***")'),
        # closing punctuation after an unquoted value stays
        ("failed (host=h password=hunter2-Zq), retrying", "failed (host=h password=***), retrying"),
        ("see postgresql://u@h/db?password=hunter2-Zq.", "see postgresql://u@h/db?password=***."),
        ("postgresql://u@h/db?password=&schema=s", "postgresql://u@h/db?password=&schema=s"),
        # reprs of mappings, JSON
        ("{'user': 'u', 'password': 'hunter2-Zq'}", "{'user': 'u', 'password': '***'}"),
        ('{"db_password": "hunter2-Zq", "n": 1}', '{"db_password": "***", "n": 1}'),
        # a line of source in a traceback
        ("    if password == 'hunter2-Zq':", "    if password == '***':"),
    ],
)
def test_redact_secrets_hides_every_form(text: str, expected: str) -> None:
    shown = redact_secrets(text)
    assert shown == expected
    assert "hunter2" not in shown
    assert redact_secrets(shown) == shown  # hiding twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://root@127.0.0.1:5432/test?schema=s&auto_migrate=true",
        "mysql://root@127.0.0.1:3306/test",
        "postgresql://db.example.com:5432/test?user=a@b",
        "sqlite:////tmp/hive.db",
        "https://example.com/a@b",
        "Access denied for user 'u'@'localhost' (using password: YES)",
        "the password was wrong",
        "job 12 failed: ValueError: bad input",
        "",
    ],
)
def test_redact_secrets_leaves_text_without_passwords_alone(text: str) -> None:
    assert redact_secrets(text) == text


def test_redact_url_hides_a_password_given_in_the_query_string() -> None:
    assert (
        redact_url(f"postgresql://root@h/db?password={SECRET}&schema=s")
        == "postgresql://root@h/db?password=***&schema=s"
    )
    assert redact_url(f"mysql://root:{SECRET}@h:3306/db?password={SECRET}") == "mysql://root:***@h:3306/db?password=***"
    assert (
        redact_url("postgresql://root:hunter2-Zq@[::1/db") == "postgresql://root:***@[::1/db"
    )  # urllib cannot parse it


RESERVED = "@:/?#[]!$&'()*+,;=% x"
ENCODED = "%40%3A%2F%3F%23%5B%5D%21%24%26%27%28%29%2A%2B%2C%3B%3D%25%20x"


def test_server_url_decodes_the_user_and_password() -> None:
    parsed = ServerURL.parse(
        f"postgresql://us%40er%3A1:{ENCODED}@db.example.com:6543/jobs?connect_timeout=3",
        known_options={"connect_timeout"},
        default_port=5432,
    )
    assert parsed.user == "us@er:1"
    assert parsed.password == RESERVED
    assert (parsed.host, parsed.port, parsed.database, parsed.options) == (
        "db.example.com",
        6543,
        "jobs",
        {"connect_timeout": "3"},
    )


def test_server_url_repr_and_redact_never_show_the_password() -> None:
    parsed = ServerURL.parse(f"mysql://root:{SECRET}%21@h/db", known_options=set(), default_port=3306)
    assert parsed.password == SECRET + "!"
    assert SECRET not in repr(parsed)
    # a driver message quoting the password in any form: decoded, percent-encoded
    message = parsed.redact(f"login as root with {SECRET}! failed (sent {SECRET}%21)")
    assert SECRET not in message and message == "login as root with *** failed (sent ***)"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://root@127.0.0.1/test?password={SECRET}",
        f"postgresql://root:{SECRET}/x@127.0.0.1/test",
        f"mysql://root@127.0.0.1/test?passwd={SECRET}",
        f"mysql://root:{SECRET}@127.0.0.1:port/test",
    ],
)
def test_configuration_errors_about_a_url_never_show_its_password(url: str) -> None:
    with pytest.raises(hm.HiveMindError) as caught:
        hm.HiveMind(url)
    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)


def _raise_with_dsn() -> None:
    dsn = f"postgresql://app:{SECRET}@db.internal:5432/orders"
    try:
        raise OSError(f"libpq: host=db.internal password={SECRET} dbname=orders")
    except OSError as cause:
        raise ConnectionError(f"cannot reach {dsn}") from cause


def test_failed_from_exception_hides_passwords_in_message_and_traceback() -> None:
    with pytest.raises(ConnectionError) as caught:
        _raise_with_dsn()
    failed = hm.Failed.from_exception(caught.value)
    assert failed.message == "cannot reach postgresql://app:***@db.internal:5432/orders"
    assert failed.traceback is not None
    assert SECRET not in failed.traceback
    assert "password=*** dbname=orders" in failed.traceback
    assert "postgresql://app:***@db.internal:5432/orders" in failed.traceback
    assert "_raise_with_dsn" in failed.traceback  # still a useful traceback
    assert failed.exception is caught.value  # the live exception (memory only) is untouched
