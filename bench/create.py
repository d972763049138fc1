#!/usr/bin/env python3
"""Job creation on SQLite next to the raw SQLite insert rate, measured in the same run.

Figures (medians of --reps repetitions, a fresh database file for each measurement):

- ``raw_insert_per_s``: single-row INSERT, one transaction per row, stdlib sqlite3, WAL with
  synchronous=NORMAL (the method of ../shared/bench/raw_sqlite.py) - the engine's limit.
- ``raw_insert_hop_per_s``: the same insert, each transaction run in one hop to a dedicated thread
  from asyncio - the limit of any asyncio library that keeps SQLite off the event loop.
- ``raw_batch_insert_per_s``: 1000 rows per transaction.
- ``create_one_per_s``: ``await hive.jobs.create(fn, i)``, one job per transaction.
- ``create_batch_per_s``: ``await hive.jobs.create_many(...)``, 1000 jobs per call and transaction.
- ``create_in_transaction_per_s``: 1000 ``await tx.jobs.create(fn, i)`` calls per transaction.
- ``*_observed_per_s``: ``create_one`` and ``create_batch`` with a (no-op) ``JobSaved`` handler
  registered, so that every job is elected and saved through the full lifecycle path: the ratio to
  the figures above is what the lean path (no handler observes creations) saves.
- ``*_cpu_us``: CPU time of the process (every thread, the SQLite writer's too) per created job,
  steadier than the rates on a busy machine.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import hivemind_jobs as hm
from _runs import Runs


def noop_job(number: int, label: str = "bench") -> None:
    """The job every measurement creates (never run here)."""


RAW_SCHEMA = """
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL DEFAULT 'default',
  priority INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL DEFAULT 0,
  payload TEXT NOT NULL,
  created_at REAL NOT NULL
);
CREATE INDEX jobs_ready ON jobs(priority, id) WHERE status = 0;
"""
RAW_INSERT = "INSERT INTO jobs(queue, priority, payload, created_at) VALUES ('default', 0, ?, ?)"


def raw_connection(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(RAW_SCHEMA)
    return connection


def raw_insert(path: Path, n: int) -> float:
    connection = raw_connection(path)
    started = time.perf_counter()
    for i in range(n):
        connection.execute(RAW_INSERT, (f'{{"i": {i}}}', time.time()))  # autocommit: one transaction a row
    elapsed = time.perf_counter() - started
    connection.close()
    return n / elapsed


def raw_batch_insert(path: Path, n: int, batch: int = 1000) -> float:
    connection = raw_connection(path)
    started = time.perf_counter()
    for start in range(0, n, batch):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(RAW_INSERT, ((f'{{"i": {i}}}', time.time()) for i in range(start, start + batch)))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return n / elapsed


async def raw_insert_hop(path: Path, n: int) -> float:
    """One transaction per row, each in one hop to a dedicated thread."""
    connection = raw_connection(path)
    loop = asyncio.get_running_loop()
    inbox: SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = SimpleQueue()

    def worker() -> None:
        while (item := inbox.get()) is not None:
            function, future = item
            result = function()
            loop.call_soon_threadsafe(future.set_result, result)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()

    def insert(i: int) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(RAW_INSERT, (f'{{"i": {i}}}', time.time()))
        connection.execute("COMMIT")

    started = time.perf_counter()
    for i in range(n):
        future: asyncio.Future[Any] = loop.create_future()
        inbox.put((lambda i=i: insert(i), future))  # type: ignore[misc]
        await future
    elapsed = time.perf_counter() - started
    inbox.put(None)
    thread.join()
    connection.close()
    return n / elapsed


def observe(hive: hm.HiveMind) -> None:
    """A handler of every saved job: creations then take the full lifecycle path."""
    hive.mediator.subscribe(hm.JobSaved, lambda event: None)


async def create_one(path: Path, n: int, *, observed: bool = False) -> tuple[float, float]:
    """Jobs per second and CPU microseconds per job."""
    async with hm.HiveMind(f"sqlite:///{path}") as hive:
        if observed:
            observe(hive)
        jobs = hive.jobs
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            await jobs.create(noop_job, i)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert (await jobs.count_by_state()) == {"Enqueued": n}
    return n / elapsed, cpu / n * 1e6


async def create_batch(path: Path, n: int, batch: int = 1000, *, observed: bool = False) -> tuple[float, float]:
    """Jobs per second and CPU microseconds per job."""
    async with hm.HiveMind(f"sqlite:///{path}") as hive:
        if observed:
            observe(hive)
        jobs = hive.jobs
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, n, batch):
            await jobs.create_many(hm.call(noop_job, i) for i in range(start, start + batch))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert (await jobs.count_by_state()) == {"Enqueued": n}
    return n / elapsed, cpu / n * 1e6


async def create_in_transaction(path: Path, n: int, batch: int = 1000) -> float:
    async with hm.HiveMind(f"sqlite:///{path}") as hive:
        started = time.perf_counter()
        for start in range(0, n, batch):
            async with hive.transaction() as tx:
                for i in range(start, start + batch):
                    await tx.jobs.create(noop_job, i)
        elapsed = time.perf_counter() - started
        assert (await hive.jobs.count_by_state()) == {"Enqueued": n}
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n-one", type=int, default=3000, help="jobs created one per transaction")
    parser.add_argument("--n-batch", type=int, default=20000, help="jobs created in batches of 1000")
    args = parser.parse_args()

    runs = Runs()
    fresh, record, results = runs.fresh, runs.record, runs.figures
    try:
        for rep in range(args.reps):  # the repetition loop is outermost, as in the shared harness
            record("raw_insert_per_s", raw_insert(fresh(), args.n_one))
            record("raw_insert_hop_per_s", asyncio.run(raw_insert_hop(fresh(), args.n_one)))
            record("raw_batch_insert_per_s", raw_batch_insert(fresh(), args.n_batch))
            for observed, suffix in ((False, ""), (True, "_observed")):
                rate, cpu = asyncio.run(create_one(fresh(), args.n_one, observed=observed))
                record(f"create_one{suffix}_per_s", rate)
                record(f"create_one{suffix}_cpu_us", cpu)
                rate, cpu = asyncio.run(create_batch(fresh(), args.n_batch, observed=observed))
                record(f"create_batch{suffix}_per_s", rate)
                record(f"create_batch{suffix}_cpu_us", cpu)
            record("create_in_transaction_per_s", asyncio.run(create_in_transaction(fresh(), args.n_batch)))
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    finally:
        runs.remove()

    summary = {name: round(value, 1) for name, value in runs.medians().items()}
    width = max(map(len, summary))
    python = sys.version.split()[0]
    print(f"SQLite {sqlite3.sqlite_version}, Python {python}, {os.cpu_count()} cores, medians of {args.reps}")
    for name, value in summary.items():
        spread = ", ".join(f"{v:,.0f}" for v in results[name])
        unit = "us/job" if name.endswith("_cpu_us") else "/s"
        print(f"  {name:<{width}}  {value:>12,.0f} {unit}   ({spread})")
    summary["create_one_vs_raw_insert"] = round(summary["create_one_per_s"] / summary["raw_insert_per_s"], 3)
    summary["create_one_vs_raw_insert_hop"] = round(summary["create_one_per_s"] / summary["raw_insert_hop_per_s"], 3)
    summary["create_batch_vs_raw_batch_insert"] = round(
        summary["create_batch_per_s"] / summary["raw_batch_insert_per_s"], 3
    )
    summary["create_one_cpu_vs_observed"] = round(
        summary["create_one_cpu_us"] / summary["create_one_observed_cpu_us"], 3
    )
    summary["create_batch_cpu_vs_observed"] = round(
        summary["create_batch_cpu_us"] / summary["create_batch_observed_cpu_us"], 3
    )
    print(
        "ratios: "
        + ", ".join(
            f"{k}={v}" for k, v in summary.items() if k.endswith(("_raw_insert", "_hop", "_insert", "_observed"))
        )
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
