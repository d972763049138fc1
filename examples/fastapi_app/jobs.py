"""The example's hive and its jobs: plain module-level functions that a worker imports by name.

The worker runs this hive: ``hivemind worker jobs:hive`` (it may run the jobs of this module).
"""

from __future__ import annotations

import os
from pathlib import Path

import hivemind_jobs as hm

HERE = Path(__file__).resolve().parent
#: ``HIVEMIND_URL`` when set, else ``hivemind.db`` next to this file
URL = os.environ.get("HIVEMIND_URL") or f"sqlite:///{HERE / 'hivemind.db'}"

hive = hm.HiveMind(URL)


def send_welcome_email(address: str) -> str:
    """A synchronous job: it runs in one of the colony's threads."""
    return f"welcome mail sent to {address}"


async def make_thumbnail(ctx: hm.JobContext, image: str, size: int = 128) -> str:
    """An async job; the job context is injected when it runs, never passed when it is created."""
    ctx.log.info(f"resizing {image} to {size} px")
    return f"{image}@{size}px"
