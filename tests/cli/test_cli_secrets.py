"""No command prints a password: not one given in the URL's user info, nor one given as
``?password=``, nor one in the traceback of an error no command reports itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result

from hivemind_jobs.cli.main import cli
from tests import backends

SECRET = "Zx9-hunter2-secret"
#: one URL per server backend, pointing at the test servers
SERVERS = {
    "postgres": urlsplit(backends.PG_URL)._replace(query="", fragment=""),
    "mariadb": urlsplit(backends.MYSQL_URL)._replace(query="", fragment=""),
}
#: a command of each group that reads a storage URL
COMMANDS = [
    ["db", "status"],
    ["db", "upgrade"],
    ["jobs", "ls"],
    ["jobs", "count"],
    ["recurring", "ls"],
    ["queues", "list"],
    ["colonies"],
]


def _server(backend: str, *, password: str | None = None, query: str = "") -> str:
    parts = SERVERS[backend]
    user = parts.username or "root"
    userinfo = f"{user}:{password}" if password is not None else user
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{userinfo}@{parts.hostname}{port}{parts.path}{'?' + query if query else ''}"


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def _assert_one_line_without_secret(result: Result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert SECRET not in result.output
    assert "hunter2" not in result.output
    return result.stderr


@pytest.mark.parametrize("backend", sorted(SERVERS))
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("key", ["password", "passwd", "pwd"])
def test_a_password_in_the_query_string_is_not_printed(backend: str, command: list[str], key: str) -> None:
    url = _server(backend, query=f"{key}={SECRET}&connect_timeout=1")
    stderr = _assert_one_line_without_secret(invoke(*command, "--url", url))
    assert f"unknown option(s) ['{key}']" in stderr
    assert f"{key}=***&connect_timeout=1" in stderr  # the URL is still shown, without the password


@pytest.mark.parametrize("backend", sorted(SERVERS))
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_user_info_password_that_breaks_the_url_is_not_printed(backend: str, command: list[str]) -> None:
    # / and # must be percent-encoded in a password; written as is, they end the host part of the URL
    for password in (f"{SECRET}/hunter2", f"{SECRET}#hunter2", f"a/{SECRET}"):
        result = invoke(*command, "--url", _server(backend, password=password))
        _assert_one_line_without_secret(result)


@pytest.mark.parametrize("backend", sorted(SERVERS))
def test_colonies_reports_a_bad_url_in_one_line_without_the_password(backend: str) -> None:
    result = invoke("colonies", "--url", _server(backend, query=f"password={SECRET}"))
    stderr = _assert_one_line_without_secret(result)
    assert "unknown option(s) ['password']" in stderr and "password=***" in stderr


def test_an_unreported_error_prints_its_traceback_without_passwords(tmp_path: Path) -> None:
    (tmp_path / "leaky_app.py").write_text(
        textwrap.dedent(
            f"""
            def make():
                dsn = "postgresql://app:{SECRET}@db.internal/orders"
                raise RuntimeError(f"cannot reach {{dsn}} (host=db.internal password={SECRET})")
            """
        )
    )
    process = subprocess.run(
        [sys.executable, "-m", "hivemind_jobs", "worker", "leaky_app:make"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))},
    )
    assert process.returncode == 1, process
    assert "Traceback" in process.stderr and "RuntimeError: cannot reach" in process.stderr
    assert "postgresql://app:***@db.internal/orders (host=db.internal password=***)" in process.stderr
    assert SECRET not in process.stderr + process.stdout


def test_a_driver_error_quoting_the_decoded_password_is_not_printed() -> None:
    """libpq quotes an option value it refuses; here that value is the URL's (percent-encoded) password."""
    backends.require("postgres")
    encoded = f"{SECRET}%21%40"  # the password is SECRET!@
    url = _server("postgres", password=encoded, query=f"sslmode={encoded}&connect_timeout=1")
    for command in (["db", "status"], ["jobs", "count"], ["recurring", "ls"]):
        stderr = _assert_one_line_without_secret(invoke(*command, "--url", url))
        assert 'invalid sslmode value: "***"' in stderr, stderr
