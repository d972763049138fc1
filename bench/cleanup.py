#!/usr/bin/env python3
"""Retention cleanup of 200,000 completed jobs while a colony keeps working off new ones.

``--backend sqlite|postgres|mysql`` (MySQL/MariaDB). Every run uses a fresh store, removed
afterwards: a new SQLite file in a temporary directory, a schema ``hmbench_<pid>_<k>`` in the
database of --pg-url (dropped with CASCADE) or a database ``hmbench_<pid>_<k>`` next to the one of
--mysql-url (dropped); see bench/_stores.py, whose store helpers this script uses.

Loading. --n (200,000) jobs are created through the library by a second ``HiveMind`` on the same
store whose clock runs 40 days behind (the library stamps every state it elects with the
environment's clock, so these states were elected 40 days ago as far as the database can tell;
the retention is the default 30 days): ``jobs.options(state=Succeeded(...), properties={"tenant":
...}).create_many`` in calls of 1,000. Each job is a job row, two state rows (Created, Succeeded
with result, duration, overhead and lead time: the same numbers within a call) and one
property row. With --colony-load they are
created Enqueued and run by a colony of that hive instead, so each has the full history a worker
writes (Created, Enqueued, Executing, Succeeded: four state rows, no property); this takes longer
(minutes on MariaDB). The load is then checked through the API: ``jobs.count`` of Succeeded jobs
elected before the retention cutoff equals --n, and 200 jobs read back with ``jobs.get`` are
Succeeded with their state elected 40 days ago.

Measuring. One colony (one root swarm of --drones drones, poll --poll-ms) runs in this process,
with a producer task on the same event loop that keeps a backlog of --backlog no-op jobs enqueued
(``create_many`` of 500 whenever the jobs created but not yet run fall below it), so the colony
always has work and its rate is its capacity.

- ``jobs_per_s_baseline``: jobs run per second over --baseline-seconds before the cleanup (the
  200,000 old jobs are still in the tables), after 2 s of warm-up.
- ``deleted_per_s``, ``cleanup_s``, ``batches``, ``batch_ms_mean``: ``run_maintenance(environment,
  holder, batch=--batch, concurrency=1, pause=--pause)`` (what the ``hm.maintenance`` daemon runs
  every interval) as a task on the colony's event loop, until its batches come back short: jobs
  removed / seconds of the pass. The 200,000 jobs and their rows must all be gone afterwards
  (checked through the API); the colony's new jobs are younger than the retention and stay.
- ``jobs_per_s_during_cleanup``: jobs run per second by the colony while the pass ran.
- ``jobs_per_s_after``: the same as the baseline over --baseline-seconds after the cleanup.
- ``during_vs_baseline`` = jobs_per_s_during_cleanup / jobs_per_s_baseline.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # job targets are stored as _jobs:<name>

import _jobs
import hivemind_jobs as hm
from _runs import Runs
from _stores import Stores, add_store_arguments, bounded, check_store_arguments, server_prepare
from hivemind_jobs.daemons.maintenance import run_maintenance

AGE = timedelta(days=40)  # how old the loaded jobs are; the retention is the default 30 days
CHUNK = 1000  # jobs per create_many call while loading
TOP_UP = 500  # jobs per create_many call of the producer
SAMPLE = 200  # loaded jobs read back through the API
WARMUP_S = 2.0
TIMEOUT_S = 1800.0


class BehindClock:
    """The system clock, ``behind`` in the past."""

    def __init__(self, behind: timedelta) -> None:
        self.behind = behind

    def now(self) -> datetime:
        return datetime.now(UTC) - self.behind


def progress(what: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(f"\r{what}: {done:,}/{total:,} ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr, flush=True)


async def load(url: str, args: argparse.Namespace) -> float:
    """Create the old completed jobs; returns the seconds it took."""
    started = time.perf_counter()
    async with hm.HiveMind(url, clock=BehindClock(AGE)) as old:
        if args.colony_load:
            for start in range(0, args.n, CHUNK):
                await old.jobs.create_many(hm.call(_jobs.noop, i) for i in range(start, min(args.n, start + CHUNK)))
                progress("enqueue", min(args.n, start + CHUNK), args.n, started)
            colony = old.colony(name="loader", allow=hm.AllowList(modules=["_jobs"]), options=colony_options(args))
            colony.swarm("main", drones=args.drones)
            _jobs.TRACKER.arm(args.n, asyncio.get_running_loop())
            async with bounded("the loading colony", TIMEOUT_S), colony:
                await _jobs.TRACKER.wait(TIMEOUT_S)
        else:
            rand = random.Random(7)
            for start in range(0, args.n, CHUNK):
                duration = timedelta(microseconds=rand.randint(50, 5000))
                state = hm.Succeeded(
                    result=None,
                    duration=duration,
                    overhead=timedelta(microseconds=rand.randint(100, 900)),
                    lead_time=duration + timedelta(milliseconds=rand.randint(1, 50)),
                )
                client = old.jobs.options(state=state, properties={"tenant": f"tenant-{rand.randrange(100):03d}"})
                await client.create_many(hm.call(_jobs.noop, i) for i in range(start, min(args.n, start + CHUNK)))
                progress("create", min(args.n, start + CHUNK), args.n, started)
    return time.perf_counter() - started


async def check_load(url: str, args: argparse.Namespace) -> None:
    async with hm.HiveMind(url) as hive:
        retention = hive.env().options.retention
        assert retention is not None
        assert retention < AGE
        cutoff = datetime.now(UTC) - retention
        old = await hive.jobs.count(hm.where(hm.state == hm.Succeeded, hm.state.elected_at < cutoff))
        if old != args.n:
            raise RuntimeError(f"{old:,} old Succeeded jobs loaded, expected {args.n:,}")
        for job_id in random.Random(11).sample(range(1, args.n + 1), min(SAMPLE, args.n)):
            job = await hive.jobs.get(job_id)
            elected = job.states[-1].elected_at
            age = datetime.now(UTC) - elected if elected is not None else None
            if not isinstance(job.state, hm.Succeeded) or age is None or not AGE <= age < AGE + timedelta(hours=1):
                raise RuntimeError(f"job {job_id} reads back as {job.state!r} elected {age} ago")


def colony_options(args: argparse.Namespace) -> hm.ColonyOptions:
    return hm.ColonyOptions(poll_interval=timedelta(milliseconds=args.poll_ms))


class Producer:
    """Keeps ``backlog`` no-op jobs enqueued ahead of the colony (on the colony's event loop)."""

    def __init__(self, hive: hm.HiveMind, backlog: int) -> None:
        self.hive = hive
        self.backlog = backlog
        self.created = 0
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        tracker = _jobs.TRACKER
        while not self.stopping.is_set():
            if self.created - tracker.count < self.backlog:
                start = self.created
                await self.hive.jobs.create_many(hm.call(_jobs.noop, i) for i in range(start, start + TOP_UP))
                self.created += TOP_UP
            else:
                await asyncio.sleep(0.005)


async def rate_over(seconds: float) -> float:
    """Jobs run per second over the next ``seconds``."""
    tracker = _jobs.TRACKER
    count, started = tracker.count, time.perf_counter()
    await asyncio.sleep(seconds)
    return (tracker.count - count) / (time.perf_counter() - started)


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    figures["load_s"] = await load(url, args)
    await check_load(url, args)
    # The measured colony's own maintenance daemon must not remove the old jobs before the measured
    # pass does: its environment keeps completed jobs (retention=None); the pass runs in a second
    # HiveMind on the same database with the default retention.
    keeping = hm.Options(retention=None)
    async with hm.HiveMind(url, options=keeping) as hive, hm.HiveMind(url) as cleaner:
        environment = cleaner.env()
        colony = hive.colony(name="bench", allow=hm.AllowList(modules=["_jobs"]), options=colony_options(args))
        colony.swarm("main", drones=args.drones)
        tracker = _jobs.TRACKER
        tracker.arm(10**12, asyncio.get_running_loop())  # only counting
        producer = Producer(hive, args.backlog)
        async with bounded("the measured colony", TIMEOUT_S), colony:
            producing = asyncio.create_task(producer.run(), name="producer")
            try:
                await asyncio.sleep(WARMUP_S)
                figures["jobs_per_s_baseline"] = await rate_over(args.baseline_seconds)
                print(f"baseline: {figures['jobs_per_s_baseline']:,.0f} jobs/s", file=sys.stderr, flush=True)
                count, started = tracker.count, time.perf_counter()
                report = await run_maintenance(
                    environment, "bench-cleanup", batch=args.batch, concurrency=1, pause=args.pause
                )
                elapsed = time.perf_counter() - started
                figures["jobs_per_s_during_cleanup"] = (tracker.count - count) / elapsed
                print(f"cleanup: {report.summary()}", file=sys.stderr, flush=True)
                figures["jobs_per_s_after"] = await rate_over(args.baseline_seconds)
            finally:
                producer.stopping.set()
                await producing
            colony.stop(fast=True)
        cutoff = datetime.now(UTC) - AGE + timedelta(hours=1)
        left = await hive.jobs.count(hm.state.elected_at < cutoff)
        counts = await hive.jobs.count_by_state()
    if report.jobs != args.n or left:
        raise RuntimeError(f"the pass removed {report.jobs:,} of {args.n:,} old jobs; {left:,} are left")
    if counts.get("Succeeded", 0) < tracker.count - args.drones:
        raise RuntimeError(f"new jobs were removed: {counts} after {tracker.count:,} ran")
    figures.update(
        deleted_per_s=report.jobs / report.seconds,
        cleanup_s=report.seconds,
        batches=report.total_batches,
        batch_ms_mean=1000 * report.seconds / report.total_batches,
        new_jobs_run=tracker.count,
    )
    figures["during_vs_baseline"] = figures["jobs_per_s_during_cleanup"] / figures["jobs_per_s_baseline"]
    return figures


async def on_fresh_store(stores: Stores, args: argparse.Namespace) -> dict[str, Any]:
    async with stores.hive_url() as url:
        return await measure(url, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(parser)
    parser.add_argument("--n", type=int, default=200_000, help="old completed jobs to remove")
    parser.add_argument("--batch", type=int, default=1000, help="rows per cleanup transaction")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds the pass sleeps between batches")
    parser.add_argument("--drones", type=int, default=32, help="drones of the colony's root swarm")
    parser.add_argument("--poll-ms", type=int, default=200, help="the colony's poll interval (ms)")
    parser.add_argument("--backlog", type=int, default=2000, help="jobs the producer keeps enqueued")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="length of the baseline windows")
    parser.add_argument("--colony-load", action="store_true", help="load the old jobs by running them in a colony")
    args = parser.parse_args()
    if min(args.n, args.batch, args.drones, args.poll_ms, args.backlog) <= 0 or args.baseline_seconds <= 0:
        parser.error("--n, --batch, --drones, --poll-ms, --backlog and --baseline-seconds must be positive")
    if args.pause < 0:
        parser.error("--pause must be >= 0")
    check_store_arguments(parser, args)
    return args


def main() -> None:
    args = parse_args()
    engine = f"SQLite {sqlite3.sqlite_version}"
    if args.backend != "sqlite":
        engine = asyncio.run(server_prepare(args))
    runs = Runs()
    try:
        figures = asyncio.run(on_fresh_store(Stores(args, runs), args))
    finally:
        runs.remove()
    python = sys.version.split()[0]
    loading = "run by a colony" if args.colony_load else "created Succeeded"
    print(
        f"{engine}, Python {python}, {os.cpu_count()} cores; {args.n:,} old jobs ({loading}), batch={args.batch}, "
        f"pause={args.pause} s, drones={args.drones}, backlog={args.backlog}"
    )
    units = {"load_s": "s", "cleanup_s": "s", "batch_ms_mean": "ms", "batches": "", "new_jobs_run": ""}
    width = max(map(len, figures))
    for name, value in figures.items():
        unit = units.get(name, "/s" if "_per_s" in name else "")
        print(f"  {name:<{width}}  {value:>12,.2f} {unit}")
    summary = {name: round(value, 3) if isinstance(value, float) else value for name, value in figures.items()}
    summary.update(
        backend=args.backend,
        engine=engine,
        n=args.n,
        batch=args.batch,
        pause=args.pause,
        drones=args.drones,
        backlog=args.backlog,
        colony_load=args.colony_load,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
