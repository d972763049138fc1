"""Pieces of terminal output several commands share: counts, ages, due times and state tables.

``hivemind demo`` and ``hivemind jobs watch`` show the jobs by state with the same table;
``jobs ls``/``show``, ``queues list`` and ``colonies`` write ages and counts the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from rich.table import Table

import hivemind_jobs as hm

__all__ = ["age_text", "due_at", "plural", "state_counts_table"]


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 job``, ``2 jobs``; ``words`` for an irregular plural (``batch``, ``batches``)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def age_text(delta: timedelta) -> str:
    """A duration as a person reads it: ``0.4 s``, ``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    seconds = delta.total_seconds()
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 10:
        return f"{sign}{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{sign}{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{sign}{minutes} min {secs} s" if secs else f"{sign}{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours} h {minutes} min" if minutes else f"{sign}{hours} h"
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours} h" if hours else f"{sign}{days} d"


def due_at(state: hm.State) -> datetime | None:
    """When an Enqueued state with a delay is due: its absolute time, or its elected time plus its
    relative delay (an estimate: the database measured the delay on its own clock). None for any
    other state and for a job due as soon as it was enqueued."""
    if not isinstance(state, hm.Enqueued):
        return None
    if state.delay_until is not None:
        return state.delay_until
    if state.delay is not None and state.elected_at is not None:
        return state.elected_at + state.delay
    return None


def state_counts_table(
    counts: Mapping[str, int], columns: Iterable[str], notes: Mapping[str, str] | None = None
) -> Table:
    """One row of job counts, a column per state in ``columns`` (then any other state counted);
    ``notes`` adds text to a cell, e.g. ``{"Enqueued": "(3 delayed)"}``."""
    names = list(columns)
    names += sorted(name for name in counts if name not in names and counts[name])
    table = Table(show_edge=False)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    cells = []
    for name in names:
        note = (notes or {}).get(name)
        cells.append(f"{counts.get(name, 0)}" + (f" {note}" if note else ""))
    table.add_row(*cells)
    return table
