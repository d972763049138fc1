"""The type checker checks job arguments against the job's function (ParamSpec)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

SAMPLE = Path(__file__).with_name("typed_usage.py")
ROOT = Path(__file__).parents[2]


@pytest.mark.typing
def test_mypy_reports_exactly_the_deliberate_mistakes() -> None:
    stdout, stderr, _status = api.run(
        [
            str(SAMPLE.relative_to(ROOT)),
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
        ]
    )
    assert not stderr, stderr
    lines = SAMPLE.read_text("utf-8").splitlines()
    expected = {number for number, line in enumerate(lines, start=1) if re.search(r"# error\b", line)}
    reported: set[int] = set()
    for message in stdout.splitlines():
        match = re.match(rf"{re.escape(str(SAMPLE.relative_to(ROOT)))}:(\d+): error:", message)
        if match:
            reported.add(int(match.group(1)))
    assert len(expected) >= 9
    assert reported == expected, f"mypy said:\n{stdout}"
