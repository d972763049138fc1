"""What the in-process CLI tests share: a command group run through click's runner (a crash is
an assertion error with the output), its successful output, its one-line error, and a hive opened
for the length of one piece of work."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from click.testing import CliRunner, Result

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli

T = TypeVar("T")


class Command:
    """``hivemind <group> ...`` in process; ``statuses``: the exit statuses that are not a crash."""

    def __init__(self, group: str, statuses: Collection[int] | None = None) -> None:
        self.group = group
        self.statuses = statuses

    def invoke(self, *args: str, answer: str | None = None) -> Result:
        result = CliRunner().invoke(cli, [self.group, *args], input=answer)
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        if crashed or (self.statuses is not None and result.exit_code not in self.statuses):
            raise AssertionError(
                f"hivemind {self.group} {shlex.join(args)} crashed:\n{result.output}"
            ) from result.exception
        return result

    def ok(self, *args: str) -> str:
        result = self.invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.stderr == "", result.stderr
        return result.stdout

    def error(self, *args: str) -> str:
        """The one-line error of a command that must fail with exit status 2 (nothing on stdout)."""
        result = self.invoke(*args)
        assert result.exit_code == 2, result.output
        assert result.stdout == "", result.stdout
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
        return result.stderr


def with_hive(url: str, work: Callable[[hm.HiveMind], Awaitable[T]], environment: str = "main") -> T:
    """Run ``work`` on a hive of ``url`` (opened and closed around it) and return its result."""

    async def run() -> T:
        async with hm.HiveMind(url, environment=environment) as hive:
            return await work(hive)

    return asyncio.run(run())
