"""The first open of a HiveMind freezes the objects alive then out of the collector's full passes,
once per process, and leaves the collector alone when asked to, when it is disabled or when
objects are frozen already. Each case runs in an interpreter of its own: freezing is per process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_SCRIPT = """
import asyncio, gc, json, sys
from hivemind_jobs import HiveMind

def noop(i: int) -> None:
    pass

async def main():
    seen = {"start": gc.get_freeze_count()}
    {setup}
    seen["before"] = gc.get_freeze_count()
    async with HiveMind(sys.argv[1] + "/a.db", **{kwargs}) as hive:
        await hive.jobs.create(noop, 1)
        seen["after_open"] = gc.get_freeze_count()
        garbage = [[] for _ in range(1000)]
        for item in garbage:
            item.append(item)  # cycles made after the open are still collected
        del garbage, item
        seen["collected"] = gc.collect()
    async with HiveMind(sys.argv[1] + "/b.db", **{kwargs}) as hive:
        seen["after_second_open"] = gc.get_freeze_count()
    seen["enabled"] = gc.isenabled()
    print(json.dumps(seen))

asyncio.run(main())
"""


def _run(tmp_path: Path, *, setup: str = "pass", kwargs: str = "{}") -> dict[str, int]:
    script = textwrap.dedent(_SCRIPT).replace("{setup}", setup).replace("{kwargs}", kwargs)
    done = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def test_the_first_open_freezes_the_objects_alive_then_once(tmp_path: Path) -> None:
    seen = _run(tmp_path)
    assert seen["start"] == seen["before"] == 0
    assert seen["after_open"] > 10_000  # the imported modules' objects at least
    # once per process: a second freeze would add the first hive's objects (frozen objects that
    # are freed leave the count, so it may only go down)
    assert seen["after_second_open"] <= seen["after_open"]
    assert seen["collected"] >= 1000  # objects made later are collected as before
    assert seen["enabled"] is True


@pytest.mark.parametrize(
    ("setup", "kwargs"),
    [
        ("pass", "{'gc_freeze': False}"),
        ("gc.disable()", "{}"),
    ],
    ids=["turned-off", "collector-disabled"],
)
def test_the_collector_is_left_alone(tmp_path: Path, setup: str, kwargs: str) -> None:
    seen = _run(tmp_path, setup=setup, kwargs=kwargs)
    assert seen["after_open"] == seen["after_second_open"] == 0
    assert seen["enabled"] is (setup == "pass")


def test_objects_frozen_by_the_application_are_left_as_they_are(tmp_path: Path) -> None:
    seen = _run(tmp_path, setup="gc.freeze(); extra = [[] for _ in range(5000)]")
    assert seen["before"] > 0
    assert seen["after_open"] <= seen["before"]  # the application's own freeze is not extended


def test_the_blocking_hive_passes_the_choice_on(tmp_path: Path) -> None:
    from hivemind_jobs import SyncHiveMind

    assert SyncHiveMind(f"sqlite:///{tmp_path}/s.db").hive.gc_freeze is True
    assert SyncHiveMind(f"sqlite:///{tmp_path}/s.db", gc_freeze=False).hive.gc_freeze is False
