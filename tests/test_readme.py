"""Every Python example in the README runs, in order, as one program (on a fresh directory)."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)

# The seed README's examples, each of which the README translates (heading -> block).
SEED_SECTIONS = [
    "Background job creation",
    "Queues and priorities",
    "Delayed background jobs",
    "Background job continuations",
    "Background job execution middleware",
    "Typed properties",
    "Query API",
    "Background jobs as state machines",
    "Implementing background jobs",
    "Environments",
    "Transactions",
    "Mediator pattern",
]


def quick_start() -> str:
    """The quick start's program (a file of its own, not part of the examples' program)."""
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", README.read_text("utf-8"), re.MULTILINE | re.DOTALL)
    assert section, "README has no Quick start section"
    blocks = BLOCK.findall(section.group(1))
    assert len(blocks) == 1
    return str(blocks[0])


def readme_blocks() -> list[str]:
    return [block for block in BLOCK.findall(README.read_text("utf-8")) if block != quick_start()]


def test_the_quick_start_runs_as_a_file_with_a_fresh_interpreter(tmp_path: Path) -> None:
    """Pasted into quickstart.py in an empty directory and run as the README says."""
    source = quick_start()
    assert len(source.splitlines()) <= 20
    (tmp_path / "quickstart.py").write_text(source, "utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HIVEMIND_")}
    done = subprocess.run(
        [sys.executable, "quickstart.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello, Ada!\n"
    assert "python quickstart.py" in README.read_text("utf-8")
    assert (tmp_path / "quickstart.db").exists()  # the embedded default: a file beside the program


def test_every_seed_example_has_a_python_translation() -> None:
    text = README.read_text("utf-8")
    for section in SEED_SECTIONS:
        match = re.search(rf"^### {re.escape(section)}\n(.*?)(?=^### |^## |\Z)", text, re.MULTILINE | re.DOTALL)
        assert match, f"README has no section {section!r}"
        assert "```python" in match.group(1), f"section {section!r} has no Python example"


async def test_readme_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("readme_example")  # jobs must be importable by name, so a real module
    monkeypatch.setitem(sys.modules, "readme_example", module)
    blocks = readme_blocks()
    assert len(blocks) >= len(SEED_SECTIONS)
    for index, source in enumerate(blocks):
        code = compile(source, f"README.md block {index + 1}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, module.__dict__)
        if inspect.iscoroutine(result):
            await result
    hive = module.__dict__["hive"]
    counts = await _counts(hive)
    assert counts["Enqueued"] >= 10 and counts["Awaiting"] >= 3
    printed = capsys.readouterr().out
    assert "argument 'message': expected str, got int 42" in printed
    assert printed.count("Succeeded(result='report ") == 2 and "['report-worker']" in printed
    assert "at 01:30 every day in America/New_York, only during work_week (Mon-Fri)" in printed
    assert "Enqueued True" in printed and "['sync'] 1" in printed
    assert printed.count("builtins.TimeoutError gave up after 0 retries") == 2
    assert "\n2.5\n" in printed  # the mean computed in a child process
    assert "myapp True readme_example:greet greeting Ada\n" in printed  # a record from inside the job
    assert "hivemind_jobs.worker True readme_example:greet job " in printed  # the outcome line
    assert "\nreports 1\n" in printed  # a HiveMind from the settings file
    # one trace from the request through the job's creation to its run
    assert "\n00-\n['POST /greetings', 'create global', 'process global']\n1\n" in printed
    assert "\n2\nTrue\n" in printed  # two jobs of a tenant at a time; the rate-limited third a second later
    assert (tmp_path / "hivemind.db").exists() and (tmp_path / "tenants.db").exists()


async def _counts(hive: object) -> dict[str, int]:
    import hivemind_jobs as hm

    assert isinstance(hive, hm.HiveMind)
    async with hm.HiveMind("sqlite:///hivemind.db") as reader:
        return await reader.jobs.count_by_state()
