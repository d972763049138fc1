"""Sync jobs that the process-execution tests run in child processes (importable by the children)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import hivemind_jobs as hm


def burn(seconds: float) -> dict[str, Any]:
    """Keeps a core busy for ``seconds`` (pure Python: it holds its interpreter's GIL throughout)."""
    start = time.time()
    count = 0
    while time.time() - start < seconds:
        count += 1
    return {"pid": os.getpid(), "start": start, "end": time.time()}


def pid_of() -> int:
    return os.getpid()


def stuck(ctx: hm.JobContext, seconds: float) -> int:
    """Logs its pid, then blocks ``seconds`` without ever looking at ``ctx.cancelled``."""
    ctx.log.warning("pid %d", os.getpid())
    time.sleep(seconds)
    return os.getpid()


def talkative(ctx: hm.JobContext, value: str) -> dict[str, Any]:
    ctx.log.info("hello from %s in %d", ctx.drone, os.getpid())
    asyncio.run(ctx.job.set_data("echo", {"value": value}))
    echoed = asyncio.run(ctx.job.get_data("echo"))
    missing = asyncio.run(ctx.job.try_get_data("missing", default="none"))
    return {
        "pid": os.getpid(),
        "echoed": echoed,
        "missing": missing,
        "job": ctx.job.id,
        "current": hm.current_job() is ctx,
    }


def crash(code: int) -> None:
    os._exit(code)


def boom(message: str) -> None:
    raise ValueError(message)


def cooperative(ctx: hm.JobContext, seconds: float) -> str:
    """Works in small steps for ``seconds``, stopping when asked."""
    ctx.log.warning("pid %d", os.getpid())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.raise_if_cancelled()
        time.sleep(0.01)
    return "done"
