"""Jobs of the OpenTelemetry tests: each leaves a mark on the span that is current while it runs."""

from __future__ import annotations

from opentelemetry import trace


def traced(label: str) -> str:
    """A sync job (it runs in a thread): the execution span must be current there too."""
    trace.get_current_span().set_attribute("test.label", label)
    return label


async def traced_async(label: str) -> str:
    trace.get_current_span().set_attribute("test.label", label)
    return label


def fails_once(marker: str) -> str:
    """Fails on its first run (``marker`` names a file it creates), succeeds on the retry."""
    from pathlib import Path

    path = Path(marker)
    if not path.exists():
        path.write_text("ran")
        raise ValueError("first run fails")
    return "second run"
