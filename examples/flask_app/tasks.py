"""The example's jobs: plain module-level functions that the worker imports by name."""

from __future__ import annotations

import hivemind_jobs as hm


def send_welcome_email(address: str) -> str:
    return f"welcome mail sent to {address}"


def make_report(ctx: hm.JobContext, title: str, rows: int = 10) -> dict[str, object]:
    """The job context is injected when the job runs, never passed when it is created."""
    ctx.log.info(f"building {title!r} with {rows} rows")
    return {"title": title, "rows": rows}
