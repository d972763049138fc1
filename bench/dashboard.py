#!/usr/bin/env python3
"""The dashboard's pages on 1,000,000 jobs: the server time of each page and partial.

``--backend postgres|mysql|sqlite`` loads a fresh store exactly as ``bench/query.py`` does (the same
seeded jobs, states, properties and histories, checked against rows the library writes), or
``--url`` measures an already loaded one (``bench/query.py --keep`` prints its URL). Then the
dashboard app (``hive.dashboard(read_only=True)``) is called in-process through httpx's ASGI
transport on the benchmark's event loop, so a figure is the time from request to the last byte of
the answer: reading through the library, rendering the template, no network.

While it measures, a colony runs (one swarm of 8 drones on a queue no job is in) so the colonies
page has a live record, and 20 recurring jobs exist (created through the API, deleted afterwards).

Figures (milliseconds, median of --runs calls after two warm-up calls):

- ``overview_ms``: ``/`` (jobs by state, queues, colonies alive, latest failures).
- ``jobs_filtered_ms``: ``/jobs?state=Failed&queue=mail`` (50 jobs, newest first).
- ``jobs_deep_page_ms``: page 1,000 of ``/jobs?order=-created`` (the pages before it walked once
  through their "next page" links, that page then fetched from its cursor).
- ``job_detail_ms``: ``/jobs/{id}`` of a job that failed after a retry (history, logs, data).
- ``colonies_ms``: ``/colonies``.
- ``recurring_ms``: ``/recurring``.
- extras without a target: ``jobs_property_ms`` (``/jobs?property=tenant=tenant-042``),
  ``jobs_function_ms`` (``/jobs?function=_jobs:noop&state=Idle``), ``queues_ms`` (``/queues``),
  ``throughput_hour_ms`` and ``throughput_day_ms`` (the overview chart's data), ``recurring_job_ms``.

Targets: each of the six at most 100 ms on PostgreSQL and SQLite, 200 ms on MariaDB. The last line
printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx

import _jobs
import hivemind_jobs as hm
import query as loader
from _runs import Runs

TARGET_MS = {"postgres": 100.0, "mysql": 200.0, "sqlite": 100.0}
FIGURES = ("overview_ms", "jobs_filtered_ms", "jobs_deep_page_ms", "job_detail_ms", "colonies_ms", "recurring_ms")
EXTRAS = (
    "jobs_property_ms",
    "jobs_function_ms",
    "queues_ms",
    "throughput_hour_ms",
    "throughput_day_ms",
    "recurring_job_ms",
)
WARMUP = 2
DEEP_PAGE = 1000
RECURRING = 20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=loader.BACKENDS, help="postgres, mysql (MySQL/MariaDB) or sqlite")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs to load (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=15, help="timed calls per figure (default 15)")
    parser.add_argument("--keep", action="store_true", help="do not drop the loaded store; print its URL")
    parser.add_argument("--url", help="measure an already loaded store (a HiveMind URL); nothing is loaded or dropped")
    parser.add_argument("--pg-url", default=loader.DEFAULT_PG_URL, help="PostgreSQL database for the fresh schema")
    parser.add_argument("--mysql-url", default=loader.DEFAULT_MYSQL_URL, help="MySQL/MariaDB server for the fresh one")
    args = parser.parse_args()
    if args.url is not None:
        args.backend = loader.backend_of(args.url)
    if args.backend is None:
        parser.error("--backend (or --url) is required")
    if args.jobs < 1 or args.runs < 1:
        parser.error("--jobs and --runs must be positive")
    return args


async def timed(call: Callable[[], Awaitable[httpx.Response]], runs: int) -> list[float]:
    for _ in range(WARMUP):
        response = await call()
        response.raise_for_status()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await call()
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def next_link(page: str) -> str | None:
    found = re.search(r'class="next" rel="next" href="([^"]+)"', page)
    return found.group(1).replace("&amp;", "&") if found else None


async def deep_page(client: httpx.AsyncClient, pages: int) -> tuple[str, float]:
    """Walk ``pages - 1`` pages of ``/jobs?order=-created``; the link of page ``pages`` and the walk's seconds."""
    started = time.perf_counter()
    link: str | None = "/jobs?order=-created"
    for _ in range(pages - 1):
        assert link is not None
        answer = await client.get(link)
        answer.raise_for_status()
        link = next_link(answer.text)
        if link is None:
            raise RuntimeError(f"the jobs ran out before the deep page (after page {_ + 1}: {answer.status_code})")
    assert link is not None
    return link, time.perf_counter() - started


async def measure(hive: hm.HiveMind, n: int, runs: int) -> dict[str, Any]:
    app = hive.dashboard(read_only=True)
    jobs = hive.jobs
    retried = await jobs.search(hm.where(hm.state == hm.Failed, hm.prop("hm.retries").exists()), limit=1)
    detail_id = retried[0].id if len(retried) else (await jobs.search(limit=1))[0].id
    for number in range(RECURRING):
        await hive.recurring.create_or_update(f"bench-{number:02d}", hm.cron(f"{number} 3 * * *"), _jobs.noop, number)
    colony = hive.colony(name="bench-dashboard", allow=hm.AllowList(modules=["_jobs"]))
    colony.swarm("idle", drones=8, queues=["bench-dashboard-idle"])
    figures: dict[str, list[float]] = {}
    async with colony, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        await asyncio.sleep(2.5)  # the colony's record is written
        pages = max(2, min(DEEP_PAGE, n // 50 - 1))
        deep, walk_s = await deep_page(client, pages)
        calls: dict[str, str] = {
            "overview_ms": "/",
            "jobs_filtered_ms": "/jobs?state=Failed&queue=mail",
            "jobs_deep_page_ms": deep,
            "job_detail_ms": f"/jobs/{detail_id}",
            "colonies_ms": "/colonies",
            "recurring_ms": "/recurring",
            "jobs_property_ms": "/jobs?property=tenant%3Dtenant-042",
            "jobs_function_ms": "/jobs?function=_jobs%3Anoop&state=Idle",
            "queues_ms": "/queues",
            "throughput_hour_ms": "/throughput?range=hour",
            "throughput_day_ms": "/throughput?range=day",
            "recurring_job_ms": "/recurring/bench-07",
        }
        checks = {
            "jobs_filtered_ms": 50,
            "jobs_deep_page_ms": 50,
            "jobs_property_ms": 50,
        }
        for name, path in calls.items():
            answer = await client.get(path)
            answer.raise_for_status()
            expected = checks.get(name)
            if expected is not None:
                shown = len(re.findall(r'<td><a href="/jobs/\d+">#\d+</a>', answer.text))
                if shown != expected:
                    raise RuntimeError(f"{path} showed {shown} jobs, expected {expected}")
            if name == "colonies_ms" and "bench-dashboard" not in answer.text:
                raise RuntimeError("the colonies page does not show the running colony")
            figures[name] = await timed(lambda path=path: client.get(path), runs)  # type: ignore[misc]
    for number in range(RECURRING):
        await hive.recurring.delete(f"bench-{number:02d}")
    return {"figures": figures, "deep_page": pages, "walk_s": walk_s, "detail_id": detail_id}


async def run(args: argparse.Namespace, runs: Runs) -> dict[str, Any]:
    store = loader.make_store(args, runs)
    fresh = args.url is None
    scope = loader.fresh_store(store, keep=args.keep) if fresh else contextlib.nullcontext()
    summary: dict[str, Any] = {"backend": args.backend}
    async with scope:
        started = time.perf_counter()
        if fresh:
            await loader.load(store, args.jobs)
        else:
            await store.connect()
        summary["load_s"] = round(time.perf_counter() - started, 1) if fresh else None
        summary["engine"] = await store.engine()
        try:
            # the colony's retention cleanup would delete the loaded weeks-old jobs while we measure
            async with hm.HiveMind(store.hive_url, options=hm.Options(retention=None)) as hive:
                n = await hive.jobs.count()
                summary["jobs"] = n
                summary.update(await measure(hive, n, args.runs))
        finally:
            if not fresh:
                await store.close()
    if args.keep and fresh:
        summary["url"] = store.hive_url
    return summary


def report(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    target = TARGET_MS[args.backend]
    figures = summary.pop("figures")
    print(
        f"{summary['engine']}, Python {sys.version.split()[0]}, {os.cpu_count()} cores; {summary['jobs']:,} jobs; "
        f"medians of {args.runs} requests after {WARMUP} warm-up requests, in-process (ASGI)"
    )
    print(f"deep page: page {summary['deep_page']:,} of /jobs?order=-created, walked in {summary['walk_s']:.1f} s")
    print(f"  {'page':<22} {'median':>9} {'min':>8} {'max':>8}  {'target':>7}  met")
    result: dict[str, Any] = {}
    missed = []
    for name in FIGURES + EXTRAS:
        values = figures[name]
        median = statistics.median(values)
        has_target = name in FIGURES
        met = median <= target if has_target else None
        if met is False:
            missed.append(name)
        print(
            f"  {name:<22} {median:>9.2f} {min(values):>8.2f} {max(values):>8.2f}  "
            f"{(f'{target:.0f}' if has_target else '-'):>7}  {('yes' if met else 'NO') if has_target else '-'}"
        )
        result[name] = round(median, 2)
    print(f"targets (<= {target:.0f} ms): {'all met' if not missed else 'missed by ' + ', '.join(missed)}")
    result.update(
        backend=summary["backend"],
        jobs=summary["jobs"],
        target_ms=target,
        targets_met=not missed,
        missed=missed,
        load_s=summary.get("load_s"),
        deep_page=summary["deep_page"],
    )
    if "url" in summary:
        result["url"] = summary["url"]
    print(json.dumps(result))


def main() -> None:
    args = parse_args()
    runs = Runs()
    try:
        summary = asyncio.run(run(args, runs))
    finally:
        if not (args.keep and args.backend == "sqlite" and args.url is None):
            runs.remove()
    report(args, summary)


if __name__ == "__main__":
    main()
