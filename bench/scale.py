#!/usr/bin/env python3
"""How job processing scales: with a long backlog, and with several worker processes on one database.

--backend sqlite (default), postgres or mysql (MySQL/MariaDB). Every measurement starts on empty
tables in a fresh store (see bench/_stores.py: a fresh database file, PostgreSQL schema or MySQL
database, removed afterwards). Figures are medians of --reps repetitions (default 1; the repetition
loop is outermost). The jobs are no-op async jobs; every state change is stored, as by default.

- ``backlog_10k_per_s``, ``backlog_1m_per_s``: the colony of bench/throughput.py's ``jobs_per_s``
  (in this process, one root swarm of --drones drones on the global queue, polling every --poll-ms)
  works with a backlog: --backlog-small (10,000) resp. --backlog-large (1,000,000) jobs plus --n
  (20,000) jobs are queued before it starts, and the first --n jobs are timed, from the colony's
  start to the n-th job body, so at least the backlog's jobs wait throughout. The queue is filled
  by ``hive.jobs.create_many`` in calls of 1000 jobs (the library's own bulk insert: exactly the
  rows an application's create_many makes), with --fill-tasks calls at a time on the servers (each
  its own transaction and connection) and one at a time on SQLite (one writer);
  ``backlog_10k_fill_per_s`` and ``backlog_1m_fill_per_s`` are the fill rates. Nothing is analyzed
  or vacuumed by hand after the fill: the claim runs on whatever statistics the server has then.
  ``backlog_10k_cpu_us_per_job``, ``backlog_1m_cpu_us_per_job``: CPU time of this process (the
  colony's) over the timed window / --n, in microseconds. ``backlog_1m_vs_10k`` =
  backlog_1m_per_s / backlog_10k_per_s: the claim must not slow with the backlog (target >= 0.8).
- ``processes_1_per_s``, ``processes_2_per_s``, ``processes_4_per_s`` (the counts of --processes):
  N worker processes on one store, each ``python -m hivemind_jobs worker _worker_app:hive`` with its
  own colony (``scale-1`` ... ``scale-N``, --worker-drones drones, idle polls every --worker-poll-ms)
  started side by side; with --use-supervisor one ``hivemind worker --processes N`` instead. Once
  all N colonies report running, --n jobs are enqueued by create_many, due --start-margin seconds
  later (``delay_until``; default 2 + n / 2000 s, and the run fails if enqueueing took longer), so
  every worker is up and idle when they become due; timed from the
  first job body in any process to the last one (each process records the wall-clock time,
  ``time.time()``, of its first and latest job and writes them when it exits after SIGTERM).
  ``processes_<N>_vs_1`` = processes_<N>_per_s / processes_1_per_s. Target (PostgreSQL):
  processes_2_per_s > processes_1_per_s. SQLite has one writer per file, so more processes mostly
  wait for each other there.

Targets print one line each (figure, bound, PASS/FAIL, or n/a when not measured) and go into the
JSON under ``"targets"``; they never change the exit status. Skip parts with --skip backlog,processes
(their figures are null). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
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
from _stores import (
    WAIT_TIMEOUT,
    Stores,
    add_store_arguments,
    bounded,
    check_store_arguments,
    make_colony,
    server_prepare,
)
from _worker_app import STATS_ENV, URL_ENV

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
PARTS = ("backlog", "processes")
CHUNK = 1000
WORKER_START_TIMEOUT = 120.0  # seconds for the worker processes to report their colonies running
WORKER_STOP_TIMEOUT = 60.0  # seconds a SIGTERMed worker may take to exit before it is killed


# ---------------------------------------------------------------- backlog


async def fill(
    hive: hm.HiveMind, function: Any, count: int, tasks: int, *, delay_until: datetime | None = None
) -> None:
    """Enqueue ``count`` calls ``function(i)`` by create_many in calls of CHUNK, ``tasks`` calls at a time."""
    jobs = hive.jobs if delay_until is None else hive.jobs.options(delay_until=delay_until)
    starts = iter(range(0, count, CHUNK))

    async def feed() -> None:
        for start in starts:  # the tasks share one iterator: each chunk is enqueued once
            await jobs.create_many(hm.call(function, i) for i in range(start, min(count, start + CHUNK)))

    await asyncio.gather(*(feed() for _ in range(tasks)))


async def backlog_rate(url: str, args: argparse.Namespace, backlog: int) -> dict[str, float]:
    """The colony's rate over the first --n jobs of ``backlog + n`` queued ones."""
    total = backlog + args.n
    hive = hm.HiveMind(url)
    colony = make_colony(hive, args.drones, args.poll_ms)
    tracker = _jobs.TRACKER
    async with hive:
        started = time.perf_counter()
        await fill(hive, _jobs.noop, total, 1 if args.backend == "sqlite" else args.fill_tasks)
        fill_s = time.perf_counter() - started
        print(f"backlog {backlog:,}: {total:,} jobs queued in {fill_s:.1f} s", file=sys.stderr, flush=True)
        await asyncio.sleep(0.5)  # as bench/throughput.py does between enqueueing and starting the colony
        tracker.arm(args.n, asyncio.get_running_loop())
        cpu_started = time.process_time()
        started = time.perf_counter()
        async with bounded("the colony run (start, n jobs, stop)"), colony:
            await tracker.wait(WAIT_TIMEOUT)
        assert tracker.last_at is not None
        assert tracker.last_cpu is not None
        states = await hive.jobs.count_by_state()
    if states.get("Succeeded", 0) < args.n or sum(states.values()) != total:
        print(f"warning: after the colony stopped the jobs are {states}", file=sys.stderr, flush=True)
    return {
        "per_s": args.n / (tracker.last_at - started),
        "cpu_us_per_job": (tracker.last_cpu - cpu_started) / args.n * 1e6,
        "fill_per_s": total / fill_s,
    }


# ---------------------------------------------------------------- worker processes


class WorkerProcesses:
    """Worker processes (``python -m hivemind_jobs worker``) on one store, their output in log files."""

    def __init__(self, url: str, folder: Path, args: argparse.Namespace) -> None:
        self.url = url
        self.folder = folder
        self.stats = folder / "stats"
        self.stats.mkdir(parents=True)
        self.args = args
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, count: int) -> None:
        environment = dict(os.environ, **{URL_ENV: self.url, STATS_ENV: str(self.stats)})
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), str(BENCH), os.environ.get("PYTHONPATH")]))
        base = [sys.executable, "-m", "hivemind_jobs", "worker", "_worker_app:hive", "--allow", "_jobs"]
        base += ["--drones", str(self.args.worker_drones), "--poll-interval", str(self.args.worker_poll_ms / 1000)]
        base += ["--log-level", "WARNING"]
        if self.args.use_supervisor:
            commands = [[*base, "--name", "scale", "--processes", str(count)]]
        else:
            commands = [[*base, "--name", f"scale-{i + 1}"] for i in range(count)]
        for index, command in enumerate(commands):
            log = self.folder / f"worker-{index + 1}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(command, cwd=BENCH, env=environment, stdout=sink, stderr=subprocess.STDOUT)
            self.processes.append((process, log))

    def logs(self) -> str:
        return "\n".join(
            f"----- worker {process.pid} (exit {process.poll()}):\n{log.read_text(errors='replace')[-3000:]}"
            for process, log in self.processes
        )

    def check_alive(self) -> None:
        for process, _ in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"a worker process exited early with status {process.returncode}\n{self.logs()}")

    def stop(self) -> None:
        """SIGTERM every process (its colony stops gracefully and it writes its stamps), then wait."""
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT
        for process, _ in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"worker {process.pid} did not stop within {WORKER_STOP_TIMEOUT:.0f} s: killed", file=sys.stderr)
                process.kill()
                process.wait()

    def stamps(self) -> list[dict[str, Any]]:
        return [json.loads(path.read_text()) for path in sorted(self.stats.glob("worker-*.json"))]


async def poll(check: Any, timeout: float, what: str, workers: WorkerProcesses, interval: float = 0.2) -> None:
    """Wait until ``await check()`` is true, at most ``timeout`` seconds; the workers must stay up."""
    for _ in range(int(timeout / interval) + 1):
        workers.check_alive()
        if await check():
            return
        await asyncio.sleep(interval)
    raise TimeoutError(f"not within {timeout:.0f} s: {what}\n{workers.logs()}")


async def processes_rate(url: str, args: argparse.Namespace, count: int, folder: Path) -> float:
    """Jobs per second of ``count`` worker processes working --n jobs that became due together."""
    workers = WorkerProcesses(url, folder, args)
    async with hm.HiveMind(url) as hive:  # opening it creates the tables before any worker starts
        try:
            workers.start(count)

            async def colonies_running() -> bool:
                return sum(info.status == "running" for info in await hive.colonies.list()) >= count

            await poll(colonies_running, WORKER_START_TIMEOUT, f"{count} colonies running", workers)
            due = datetime.now(UTC) + timedelta(seconds=args.start_margin)
            await fill(hive, _jobs.stamp, args.n, 1 if args.backend == "sqlite" else args.fill_tasks, delay_until=due)
            if datetime.now(UTC) >= due:
                raise RuntimeError(f"enqueueing {args.n} jobs took longer than --start-margin {args.start_margin} s")

            async def all_succeeded() -> bool:
                succeeded: int = (await hive.jobs.count_by_state()).get("Succeeded", 0)
                return succeeded >= int(args.n)

            await poll(all_succeeded, WAIT_TIMEOUT, f"{args.n} jobs succeeded", workers)
        finally:
            workers.stop()
    stamps = [stamp for stamp in workers.stamps() if stamp["count"]]
    ran = sum(stamp["count"] for stamp in stamps)
    if ran != args.n:
        raise RuntimeError(f"the worker processes report {ran} job runs, not {args.n}\n{workers.logs()}")
    first = min(float(stamp["first"]) for stamp in stamps)
    last = max(float(stamp["last"]) for stamp in stamps)
    split = ", ".join(str(stamp["count"]) for stamp in stamps)
    print(f"{count} process(es): {args.n} jobs in {last - first:.2f} s, per process {split}", file=sys.stderr)
    return int(args.n) / (last - first)


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(parser)
    parser.add_argument("--reps", type=int, default=1, help="repetitions of every figure (default 1: they are long)")
    parser.add_argument("--n", type=int, default=20000, help="jobs timed in every measurement")
    parser.add_argument("--backlog-small", type=int, default=10_000, help="backlog of backlog_10k_per_s")
    parser.add_argument("--backlog-large", type=int, default=1_000_000, help="backlog of backlog_1m_per_s")
    parser.add_argument("--drones", type=int, default=32, help="drones of the backlog colony (as throughput.py)")
    parser.add_argument("--poll-ms", type=int, default=200, help="the backlog colony's poll interval (ms)")
    parser.add_argument("--fill-tasks", type=int, default=4, help="concurrent create_many calls filling a server")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts measured (comma list)")
    parser.add_argument("--worker-drones", type=int, default=32, help="drones of each worker process's colony")
    parser.add_argument("--worker-poll-ms", type=int, default=50, help="idle poll interval of the worker processes")
    parser.add_argument(
        "--start-margin",
        type=float,
        default=None,
        help="seconds from enqueueing the processes' jobs to their due time (default: 2 + n / 2000)",
    )
    parser.add_argument(
        "--use-supervisor", action="store_true", help="start N workers as one `hivemind worker --processes N`"
    )
    parser.add_argument("--skip", default="", help=f"comma list of parts not to measure: {','.join(PARTS)}")
    args = parser.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    if unknown := args.skip - set(PARTS):
        parser.error(f"--skip: unknown parts {sorted(unknown)}; choose from {','.join(PARTS)}")
    try:
        args.process_counts = sorted({int(item) for item in args.processes.split(",") if item.strip()})
    except ValueError:
        parser.error(f"--processes: expected a comma list of whole numbers, got {args.processes!r}")
    if args.start_margin is None:
        args.start_margin = 2 + args.n / 2000
    numbers = (args.n, args.reps, args.drones, args.poll_ms, args.fill_tasks, args.worker_drones, args.worker_poll_ms)
    if min(numbers) <= 0 or args.start_margin <= 0 or not args.process_counts or min(args.process_counts) <= 0:
        parser.error(
            "--n, --reps, --drones, --poll-ms, --fill-tasks, --processes, --worker-* and --start-margin "
            "must be positive"
        )
    if args.backlog_small < 0 or args.backlog_large < 0:
        parser.error("--backlog-small and --backlog-large must be 0 or more")
    check_store_arguments(parser, args)
    return args


def main() -> None:
    args = parse_args()
    engine = f"SQLite {sqlite3.sqlite_version}"
    if args.backend != "sqlite":
        engine = asyncio.run(server_prepare(args))
    runs = Runs()
    stores = Stores(args, runs)

    async def backlog(size: int) -> dict[str, float]:
        async with stores.hive_url() as url:
            return await backlog_rate(url, args, size)

    async def processes(count: int, folder: Path) -> float:
        async with stores.hive_url() as url:
            return await processes_rate(url, args, count, folder)

    try:
        for rep in range(args.reps):
            if "backlog" not in args.skip:
                for key, size in (("10k", args.backlog_small), ("1m", args.backlog_large)):
                    figures = asyncio.run(backlog(size))
                    runs.record(f"backlog_{key}_per_s", figures["per_s"])
                    runs.record(f"backlog_{key}_cpu_us_per_job", figures["cpu_us_per_job"])
                    runs.record(f"backlog_{key}_fill_per_s", figures["fill_per_s"])
            if "processes" not in args.skip:
                for count in args.process_counts:
                    folder = runs.directory / f"processes{count}-{rep + 1}"
                    runs.record(f"processes_{count}_per_s", asyncio.run(processes(count, folder)))
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    finally:
        runs.remove()

    medians = runs.medians()
    how = "one `hivemind worker --processes N`" if args.use_supervisor else "N `hivemind worker` processes"
    print(
        f"{engine}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, medians of {args.reps}; n={args.n}, "
        f"backlogs {args.backlog_small:,} and {args.backlog_large:,}, drones={args.drones}; {how} with "
        f"{args.worker_drones} drones each"
    )
    width = max(map(len, medians), default=0)
    for name, value in medians.items():
        unit = "us" if name.endswith("_us_per_job") else "/s"
        spread = ", ".join(f"{v:,.1f}" for v in runs.figures[name])
        print(f"  {name:<{width}}  {value:>12,.1f} {unit:<3} ({spread})")

    def ratio(numerator: str, denominator: str) -> float | None:
        if numerator in medians and medians.get(denominator):
            return round(medians[numerator] / medians[denominator], 3)
        return None

    names = [f"backlog_{key}_{figure}" for key in ("10k", "1m") for figure in ("per_s", "cpu_us_per_job", "fill_per_s")]
    names += [f"processes_{count}_per_s" for count in sorted({1, 2, 4, *args.process_counts})]
    summary: dict[str, Any] = {name: round(medians[name], 3) if name in medians else None for name in names}
    summary["backlog_1m_vs_10k"] = ratio("backlog_1m_per_s", "backlog_10k_per_s")
    for count in args.process_counts:
        if count != 1:
            summary[f"processes_{count}_vs_1"] = ratio(f"processes_{count}_per_s", "processes_1_per_s")
    targets: dict[str, dict[str, Any]] = {}
    #: (label, figure, bound, whether the figure must exceed the bound rather than reach it)
    checks: list[tuple[str, float | None, float | None, bool]] = [
        ("backlog_1m_vs_10k >= 0.8", summary["backlog_1m_vs_10k"], 0.8, False)
    ]
    if args.backend == "postgres":
        label = "processes_2_per_s > processes_1_per_s"
        checks.append((label, summary["processes_2_per_s"], summary["processes_1_per_s"], True))
    print("targets:")
    for label, figure, bound, strict in checks:
        passed = None if figure is None or bound is None else (figure > bound if strict else figure >= bound)
        targets[label] = {"value": figure, "bound": bound, "pass": passed}
        verdict = {True: "PASS", False: "FAIL", None: "n/a (not measured)"}[passed]
        shown = "-" if figure is None else f"{figure:,.3f}"
        print(f"  {label:<40} {shown:>12} vs {'-' if bound is None else f'{bound:,.3f}':>12}  {verdict}")
    summary.update(
        backend=args.backend,
        engine=engine,
        n=args.n,
        reps=args.reps,
        backlog_small=args.backlog_small,
        backlog_large=args.backlog_large,
        drones=args.drones,
        poll_ms=args.poll_ms,
        fill_tasks=1 if args.backend == "sqlite" else args.fill_tasks,
        processes=args.process_counts,
        worker_drones=args.worker_drones,
        worker_poll_ms=args.worker_poll_ms,
        use_supervisor=args.use_supervisor,
        targets=targets,
    )
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
