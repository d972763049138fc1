#!/usr/bin/env python3
"""Job processing by a colony next to the raw SQLite claim/complete limit and Huey, measured in the same run.

Figures (medians of --reps repetitions, default 1 because each one takes tens of seconds; a fresh
database file for each measurement; the repetition loop is outermost):

- ``jobs_per_s``: one colony (one root swarm of --drones drones, the default "global" queue) works
  off --n no-op jobs that ``hive.jobs.create_many`` enqueued in calls of 1000 before it started; timed
  from the colony's start to the moment the n-th job body runs (``startup_s``: to the first one).
  Every state change is stored, as by default.
- ``p50_ms``, ``p90_ms``, ``p99_ms``, ``max_ms``: latency with the colony running and idle while a
  separate producer process (this script with the hidden --produce option, its own HiveMind on the
  same file) calls ``hive.jobs.create(latency_job, time.time())`` at a steady --rate for
  --lat-seconds; latency = wall clock at the job body - wall clock just before the create call.
  ``producer_rate`` is the rate the producer achieved. An idle colony notices another process's
  commit through the SQLite change marker (a file check every 5 ms, ``ColonyOptions.
  change_check_interval``); --poll-ms is only the fallback full poll.
- ``raw_limit_per_s``: the SQLite limit for the same work with no library on top: stdlib sqlite3,
  WAL with synchronous=NORMAL, --n rows; claim --raw-batch rows (``BEGIN IMMEDIATE``, ``UPDATE ...
  WHERE id IN (SELECT ... ORDER BY priority, id LIMIT b) RETURNING id``, ``COMMIT``), then mark
  them done in a second transaction (crash-safe), each transaction run in one hop to a dedicated
  thread from asyncio - the limit of any asyncio library that keeps SQLite off the event loop.
  ``raw_limit_b1_per_s``: the same with batch size 1.
- ``huey_per_s``: Huey's SqliteHuey (1 worker thread) working off --n no-op jobs, measured by the
  shared peer harness (../shared/bench/run_peer.py, phase ``process``, timed the same way) in a
  subprocess; null if huey is not installed (``pip install -e '.[bench]'``). Set
  HIVEMIND_PEER_BENCH to use another copy of the harness.

Ratios: ``jobs_vs_raw`` = jobs_per_s / raw_limit_per_s, ``jobs_vs_huey`` = jobs_per_s / huey_per_s.
Skip parts with --skip process,latency,raw,huey (their figures are null). Only --backend sqlite
exists for now. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from queue import SimpleQueue
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # job targets are stored as _jobs:<name>

import _jobs
import hivemind_jobs as hm
from _runs import Runs

SCRIPT = Path(__file__).resolve()

BACKENDS = ("sqlite",)
LATER_BACKENDS = ("postgres", "mysql")
PARTS = ("process", "latency", "raw", "huey")
CHUNK = 1000
WAIT_TIMEOUT = 600.0  # seconds a measurement may take before it is given up


# ---------------------------------------------------------------- raw SQLite limit

RAW_SCHEMA = """
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL DEFAULT 'default',
  priority INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL DEFAULT 0,
  payload TEXT NOT NULL,
  created_at REAL NOT NULL,
  started_at REAL,
  finished_at REAL
);
CREATE INDEX jobs_ready ON jobs(priority, id) WHERE status = 0;
"""
RAW_INSERT = "INSERT INTO jobs(queue, priority, payload, created_at) VALUES ('default', 0, ?, ?)"
RAW_CLAIM = (
    "UPDATE jobs SET status = 1, started_at = ? "
    "WHERE id IN (SELECT id FROM jobs WHERE status = 0 ORDER BY priority, id LIMIT ?) RETURNING id"
)


class HopThread:
    """One dedicated thread; ``await run(fn)`` runs ``fn`` there in one hop and returns its result."""

    def __init__(self) -> None:
        self._inbox: SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            function, future = item
            try:
                result = function()
            except BaseException as error:
                self._loop.call_soon_threadsafe(future.set_exception, error)
            else:
                self._loop.call_soon_threadsafe(future.set_result, result)

    async def run(self, function: Callable[[], Any]) -> Any:
        future: asyncio.Future[Any] = self._loop.create_future()
        self._inbox.put((function, future))
        return await future

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join()


def raw_prefill(path: Path, n: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(RAW_SCHEMA)
    now = time.time()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(RAW_INSERT, ((f'{{"i": {i}}}', now) for i in range(n)))
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return connection


async def raw_limit(path: Path, n: int, batch: int) -> float:
    """Claim ``batch`` rows, then mark them done, two transactions, each one hop to a dedicated thread."""
    connection = raw_prefill(path, n)
    hop = HopThread()

    def claim() -> list[int]:
        connection.execute("BEGIN IMMEDIATE")
        ids = [row[0] for row in connection.execute(RAW_CLAIM, (time.time(), batch))]
        connection.execute("COMMIT")
        return ids

    def complete(ids: list[int]) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            f"UPDATE jobs SET status = 2, finished_at = ? WHERE id IN ({','.join('?' * len(ids))})",
            (time.time(), *ids),
        )
        connection.execute("COMMIT")

    done = 0
    started = time.perf_counter()
    while ids := await hop.run(claim):
        # --- the no-op jobs run here ---
        await hop.run(lambda ids=ids: complete(ids))
        done += len(ids)
    elapsed = time.perf_counter() - started
    hop.close()
    connection.close()
    assert done == n, (done, n)
    return n / elapsed


# ---------------------------------------------------------------- HiveMind colony


@contextlib.asynccontextmanager
async def bounded(what: str, seconds: float = WAIT_TIMEOUT + 60) -> AsyncIterator[None]:
    """Give up on a hung colony start, wait or stop with a clear error instead of hanging."""
    async with asyncio.timeout(seconds) as scope:
        try:
            yield
        finally:
            if scope.expired():
                print(f"{what} did not finish within {seconds:.0f} s", file=sys.stderr, flush=True)


def job_functions(sync_jobs: bool) -> tuple[Callable[[int], Any], Callable[[float], Any]]:
    if sync_jobs:
        return _jobs.noop_sync, _jobs.latency_job_sync
    return _jobs.noop, _jobs.latency_job


def make_colony(hive: hm.HiveMind, args: argparse.Namespace) -> Any:
    colony = hive.colony(
        name="bench",
        options=hm.ColonyOptions(poll_interval=timedelta(milliseconds=args.poll_ms)),
        allow=hm.AllowList(modules=["_jobs"]),
    )
    colony.swarm("main", drones=args.drones)  # the root swarm works the global (default) queue
    return colony


async def colony_process(path: Path, args: argparse.Namespace) -> dict[str, float]:
    noop, _ = job_functions(args.sync_jobs)
    hive = hm.HiveMind(f"sqlite:///{path}")
    colony = make_colony(hive, args)
    tracker = _jobs.TRACKER
    async with hive:
        for start in range(0, args.n, CHUNK):
            await hive.jobs.create_many(hm.call(noop, i) for i in range(start, min(args.n, start + CHUNK)))
        await asyncio.sleep(0.5)  # as the peer harness does between enqueueing and starting the worker
        tracker.arm(args.n, asyncio.get_running_loop())
        started = time.perf_counter()
        async with bounded("the colony run (start, all jobs, stop)"), colony:
            await tracker.wait(WAIT_TIMEOUT)
        stopped = time.perf_counter()
        assert tracker.first_at is not None
        assert tracker.last_at is not None
        states = await hive.jobs.count_by_state()
    if states != {"Succeeded": args.n}:
        print(f"warning: after the colony stopped the jobs are {states}", file=sys.stderr, flush=True)
    return {
        "jobs_per_s": args.n / (tracker.last_at - started),
        "startup_s": tracker.first_at - started,
        "stop_s": stopped - tracker.last_at,
    }


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (the method of the peer harness), p in [0, 100]."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, int(p / 100 * len(ordered) + 0.999999)))
    return ordered[rank - 1]


async def colony_latency(path: Path, args: argparse.Namespace) -> dict[str, float]:
    n = int(args.rate * args.lat_seconds)
    hive = hm.HiveMind(f"sqlite:///{path}")
    colony = make_colony(hive, args)
    tracker = _jobs.TRACKER
    async with hive:
        tracker.arm(n, asyncio.get_running_loop())
        async with bounded("the latency run (start, producer, all jobs, stop)"), colony:
            await asyncio.sleep(2.0)  # the colony is up and idle
            command = [sys.executable, str(SCRIPT), "--produce", str(path)]
            command += ["--rate", str(args.rate), "--lat-seconds", str(args.lat_seconds)]
            if args.sync_jobs:
                command.append("--sync-jobs")
            producer = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
            try:
                async with asyncio.timeout(args.lat_seconds + 120):
                    output, _ = await producer.communicate()
            finally:
                if producer.returncode is None:
                    producer.kill()
                    await producer.wait()
            if producer.returncode != 0:
                raise RuntimeError(f"the producer process failed with exit code {producer.returncode}")
            await tracker.wait(WAIT_TIMEOUT)
    produced = json.loads(output.decode().strip().splitlines()[-1])
    milliseconds = [latency * 1000 for latency in tracker.latencies]
    return {
        "p50_ms": percentile(milliseconds, 50),
        "p90_ms": percentile(milliseconds, 90),
        "p99_ms": percentile(milliseconds, 99),
        "max_ms": max(milliseconds),
        "producer_rate": produced["achieved_rate"],
    }


async def produce(path: Path, args: argparse.Namespace) -> None:
    """The latency producer (a process of its own): one create call at a time, at a steady rate."""
    _, latency_job = job_functions(args.sync_jobs)
    n = int(args.rate * args.lat_seconds)
    interval = 1 / args.rate
    async with hm.HiveMind(f"sqlite:///{path}") as hive:
        jobs = hive.jobs
        started = time.perf_counter()
        for i in range(n):
            delay = started + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await jobs.create(latency_job, time.time())
        elapsed = time.perf_counter() - started
    print(json.dumps({"achieved_rate": n / elapsed, "n": n}), flush=True)


# ---------------------------------------------------------------- Huey through the shared peer harness


def peer_bench_dir() -> Path:
    override = os.environ.get("HIVEMIND_PEER_BENCH")
    return Path(override) if override else SCRIPT.parents[2] / "shared" / "bench"


def huey_missing() -> str | None:
    """Why Huey cannot be measured, or None if it can."""
    if importlib.util.find_spec("huey") is None:
        return f"huey is not installed in {sys.prefix}; install it with: pip install -e '.[bench]'"
    if not (peer_bench_dir() / "run_peer.py").is_file():
        return f"the peer harness is not at {peer_bench_dir()} (set HIVEMIND_PEER_BENCH to its folder)"
    return None


def huey_process(directory: Path, n: int) -> float | None:
    """One ``process`` measurement of SqliteHuey (1 worker thread) by run_peer.py; None if it failed."""
    results = directory / "huey-results.jsonl"
    environment = dict(os.environ, BENCH_RESULTS=str(results), BENCH_SQLITE_DIR=str(directory / "huey"))
    command = [sys.executable, "run_peer.py", "bench", "--adapter", "huey", "--config", "default", "--reps", "1"]
    command += ["--n", str(n), "--skip", "enqueue_one,enqueue_many,latency"]
    completed = subprocess.run(
        command, cwd=peer_bench_dir(), env=environment, capture_output=True, text=True, timeout=WAIT_TIMEOUT + 180
    )
    if completed.returncode != 0:
        print(f"huey: run_peer.py failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}", file=sys.stderr)
        return None
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    rates = [record["median"] for record in records if record["name"] == "huey[default].process"]
    return rates[-1] if rates else None


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite", choices=BACKENDS + LATER_BACKENDS)
    parser.add_argument("--reps", type=int, default=1, help="repetitions of every figure (default 1: they are long)")
    parser.add_argument("--n", type=int, default=20000, help="jobs processed by the colony, raw loop and Huey")
    parser.add_argument(
        "--drones",
        type=int,
        default=32,
        help="drones of the colony's root swarm (concurrent jobs; no-op jobs need many for big batches)",
    )
    parser.add_argument("--poll-ms", type=int, default=200, help="the colony's poll interval (ms)")
    parser.add_argument("--rate", type=float, default=200.0, help="jobs/s of the latency producer")
    parser.add_argument("--lat-seconds", type=float, default=10.0, help="how long the latency producer runs")
    parser.add_argument("--raw-batch", type=int, default=10, help="rows claimed per transaction by the raw loop")
    parser.add_argument("--sync-jobs", action="store_true", help="run synchronous job bodies (on the thread pool)")
    parser.add_argument("--skip", default="", help=f"comma list of parts not to measure: {','.join(PARTS)}")
    parser.add_argument("--produce", metavar="DB", type=Path, help=argparse.SUPPRESS)  # the latency producer
    args = parser.parse_args()
    if args.backend in LATER_BACKENDS:
        parser.error(f"--backend {args.backend} is not supported yet; only sqlite can be measured for now")
    args.skip = set(filter(None, args.skip.split(",")))
    if unknown := args.skip - set(PARTS):
        parser.error(f"--skip: unknown parts {sorted(unknown)}; choose from {','.join(PARTS)}")
    if args.n < 1 or args.reps < 1 or args.rate <= 0 or args.lat_seconds <= 0 or args.raw_batch < 1:
        parser.error("--n, --reps, --raw-batch, --rate and --lat-seconds must be positive")
    return args


def main() -> None:
    args = parse_args()
    if args.produce is not None:
        asyncio.run(produce(args.produce, args))
        return

    huey_problem = None if "huey" in args.skip else huey_missing()
    if huey_problem:
        print(f"Huey is not measured: {huey_problem}", file=sys.stderr, flush=True)

    runs = Runs()
    fresh, directory, results = runs.fresh, runs.directory, runs.figures

    def record(figures: dict[str, float | None]) -> None:
        for name, value in figures.items():
            runs.record(name, value)

    try:
        for rep in range(args.reps):  # the repetition loop is outermost, as in the shared harness
            if "raw" not in args.skip:
                record({"raw_limit_per_s": asyncio.run(raw_limit(fresh(), args.n, args.raw_batch))})
                record({"raw_limit_b1_per_s": asyncio.run(raw_limit(fresh(), args.n, 1))})
            if "process" not in args.skip:
                record(asyncio.run(colony_process(fresh(), args)))
            if "latency" not in args.skip:
                record(asyncio.run(colony_latency(fresh(), args)))
            if "huey" not in args.skip and not huey_problem:
                peer_directory = directory / f"huey{rep + 1}"
                peer_directory.mkdir()
                record({"huey_per_s": huey_process(peer_directory, args.n)})
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    finally:
        runs.remove()

    medians = runs.medians()
    python = sys.version.split()[0]
    print(
        f"SQLite {sqlite3.sqlite_version}, Python {python}, {os.cpu_count()} cores, medians of {args.reps}; "
        f"n={args.n}, drones={args.drones}, poll={args.poll_ms} ms, {'sync' if args.sync_jobs else 'async'} jobs"
    )
    width = max(map(len, medians), default=0)
    for name, value in medians.items():
        unit = "/s" if name.endswith("_per_s") or name == "producer_rate" else name.rpartition("_")[2]
        spread = ", ".join(f"{v:,.1f}" for v in results[name])
        print(f"  {name:<{width}}  {value:>12,.1f} {unit:<3} ({spread})")

    def ratio(numerator: str, denominator: str) -> float | None:
        if numerator in medians and medians.get(denominator):
            return round(medians[numerator] / medians[denominator], 3)
        return None

    ratios = {"jobs_vs_raw": ratio("jobs_per_s", "raw_limit_per_s"), "jobs_vs_huey": ratio("jobs_per_s", "huey_per_s")}
    print(f"ratios: jobs_per_s / raw_limit_per_s (batch {args.raw_batch}) = {ratios['jobs_vs_raw']}, ", end="")
    print(f"jobs_per_s / huey_per_s = {ratios['jobs_vs_huey']}")
    names = ["jobs_per_s", "startup_s", "stop_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "producer_rate"]
    names += ["raw_limit_per_s", "raw_limit_b1_per_s", "huey_per_s"]
    summary: dict[str, Any] = {name: round(medians[name], 3) if name in medians else None for name in names}
    summary.update(ratios)
    summary.update(
        backend=args.backend,
        n=args.n,
        reps=args.reps,
        drones=args.drones,
        poll_ms=args.poll_ms,
        rate=args.rate,
        lat_seconds=args.lat_seconds,
        raw_batch=args.raw_batch,
        sync_jobs=args.sync_jobs,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
