"""What every benchmark script here shares: fresh database files and per-repetition figures."""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path


class Runs:
    """A temporary directory with a fresh database path per measurement, and the figures measured."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="hivemind-bench-"))
        self.figures: dict[str, list[float]] = {}
        self._count = 0

    def fresh(self) -> Path:
        self._count += 1
        return self.directory / f"run{self._count}.db"

    def record(self, name: str, value: float | None) -> None:
        """Keep one repetition's value (None: not measured this time)."""
        if value is not None:
            self.figures.setdefault(name, []).append(value)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.figures.items()}

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
