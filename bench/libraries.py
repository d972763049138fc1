#!/usr/bin/env python3
"""CPU cost of the JSON library and the event loop on HiveMind's own hot path.

Parts (``--parts``, default all):

- ``json``: CPU µs per call (best of 5 rounds of --calls calls, ``time.process_time``) to write and read
  the JSON text a job costs: at creation its invocation and middleware list are written; a colony
  reads them back and writes the Executing and Succeeded state fields (the documents below are the
  ones ``bench/throughput.py`` stores). Libraries: the standard library (``json``, one shared compact
  encoder), orjson and msgspec (``Encoder().encode``/``Decoder().decode``; text written as ``str``).
  ``msgspec_typed`` reads the invocation into a ``msgspec.Struct`` (validated types) and is compared
  with HiveMind's own ``Invocation.from_stored`` (read + checks in Python).
- ``create``: CPU µs per ``await hive.jobs.create(noop, i)`` (--n-one calls, one transaction each) on
  asyncio's loop and on uvloop, with the JSON library HiveMind uses.
- ``colony``: a colony drains --n no-op jobs (as ``bench/throughput.py``'s ``jobs_per_s``, the same
  options); CPU µs per job of this process (every thread: the SQLite writer thread is in it; the
  database server's CPU is not) from the colony's start to the n-th job, and jobs/s, for: the
  standard library on asyncio (before), msgspec on asyncio, msgspec on uvloop. --reps rounds, the
  configurations interleaved in each; medians (and the least CPU of
  the rounds, ``cpu_us_min``: other work on the machine only ever adds to it).

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _jobs
import hivemind_jobs as hm
import throughput
from hivemind_jobs.core import codec as codec_module
from hivemind_jobs.core import loop
from hivemind_jobs.core.invocation import Invocation

INVOCATION = {"v": 1, "target": "_jobs:noop", "async": True, "args": {"number": 12345}}
MIDDLEWARE: list[Any] = []
EXECUTING = {
    "colony": "bench",
    "swarm": "main",
    "drone": "main.drone-1",
    "due_at": {"$hm": "datetime", "v": "2026-12-04T16:26:07.425888+00:00"},
}
SUCCEEDED = {
    "duration": {"$hm": "timedelta", "v": [0, 0, 346]},
    "overhead": {"$hm": "timedelta", "v": [0, 0, 5946]},
    "lead_time": {"$hm": "timedelta", "v": [0, 0, 525975]},
}
DOCUMENTS = {"invocation": INVOCATION, "middleware": MIDDLEWARE, "executing": EXECUTING, "succeeded": SUCCEEDED}
#: per job: written at creation, read by the colony, written by the colony
WRITTEN_AT_CREATE = ("invocation", "middleware")
READ_BY_COLONY = ("invocation", "middleware")
WRITTEN_BY_COLONY = ("executing", "succeeded")


def cpu_us(function: Callable[[Any], Any], argument: Any, calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(calls):
            function(argument)
        best = min(best, (time.process_time() - started) / calls * 1e6)
    return round(best, 3)


def json_part(calls: int) -> dict[str, Any]:
    import msgspec
    import orjson

    stdlib = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    ms_encoder, ms_decoder = msgspec.json.Encoder(), msgspec.json.Decoder()
    writers: dict[str, Callable[[Any], str]] = {
        "stdlib": stdlib.encode,
        "orjson": lambda value: orjson.dumps(value).decode(),
        "msgspec": lambda value: ms_encoder.encode(value).decode(),
    }
    readers: dict[str, Callable[[str], Any]] = {
        "stdlib": json.loads,
        "orjson": orjson.loads,
        "msgspec": ms_decoder.decode,
    }
    texts = {name: stdlib.encode(document) for name, document in DOCUMENTS.items()}
    write = {lib: {n: cpu_us(f, DOCUMENTS[n], calls) for n in DOCUMENTS} for lib, f in writers.items()}
    read = {lib: {n: cpu_us(f, texts[n], calls) for n in DOCUMENTS} for lib, f in readers.items()}
    per_job = {
        lib: round(
            sum(write[lib][n] for n in WRITTEN_AT_CREATE + WRITTEN_BY_COLONY)
            + sum(read[lib][n] for n in READ_BY_COLONY),
            3,
        )
        for lib in writers
    }

    class StoredInvocation(msgspec.Struct, forbid_unknown_fields=True):
        target: str
        args: dict[str, Any] = {}
        v: int = 1
        method: str | None = None
        is_async: bool = msgspec.field(default=False, name="async")

    typed = msgspec.json.Decoder(StoredInvocation)
    hivemind: dict[str, Any] = {}
    for library in ("stdlib", "msgspec"):
        codec_module._use_json_library(library)
        hivemind[library] = {
            "compact_json_executing": cpu_us(codec_module.compact_json, EXECUTING, calls),
            "load_json_invocation": cpu_us(codec_module.load_json, texts["invocation"], calls),
            "invocation_from_stored": cpu_us(Invocation.from_stored, texts["invocation"], calls),
        }
    codec_module._use_json_library("msgspec")
    return {
        "write_us": write,
        "read_us": read,
        "json_us_per_job": per_job,
        "hivemind_us": hivemind,
        "msgspec_typed_invocation_us": cpu_us(typed.decode, texts["invocation"], calls),
        "msgspec_untyped_invocation_us": read["msgspec"]["invocation"],
    }


def rusage_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def create_one_by_one(url: str, args: argparse.Namespace) -> dict[str, float]:
    async with hm.HiveMind(url) as hive:
        for i in range(50):  # warm up: imports, caches, prepared statements
            await hive.jobs.create(_jobs.noop, i)
        started, cpu = time.perf_counter(), rusage_cpu()
        for i in range(args.n_one):
            await hive.jobs.create(_jobs.noop, i)
        cpu, wall = rusage_cpu() - cpu, time.perf_counter() - started
    return {"cpu_us": cpu / args.n_one * 1e6, "per_s": args.n_one / wall}


async def colony_drain(url: str, args: argparse.Namespace) -> dict[str, float]:
    hive = hm.HiveMind(url)
    colony = throughput.make_colony(hive, args.drones, args.poll_ms)
    tracker = _jobs.TRACKER
    async with hive:
        for start in range(0, args.n, throughput.CHUNK):
            await hive.jobs.create_many(hm.call(_jobs.noop, i) for i in range(start, min(args.n, start + 1000)))
        await asyncio.sleep(0.5)
        tracker.arm(args.n, asyncio.get_running_loop())
        started, cpu = time.perf_counter(), rusage_cpu()
        async with colony:
            await tracker.wait(throughput.WAIT_TIMEOUT)
            cpu = rusage_cpu() - cpu
        assert tracker.last_at is not None
    return {"cpu_us": cpu / args.n * 1e6, "per_s": args.n / (tracker.last_at - started)}


CONFIGS = {
    "stdlib+asyncio": ("stdlib", False),
    "msgspec+asyncio": ("msgspec", False),
    "msgspec+uvloop": ("msgspec", True),
}


def run_measure(stores: throughput.Stores, part: Any, args: argparse.Namespace, library: str, uv: bool) -> Any:
    codec_module._use_json_library(library)
    try:
        return loop.run(throughput.on_fresh_store(stores, part, args), use_uvloop=uv)
    finally:
        codec_module._use_json_library("msgspec")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="json,create,colony")
    parser.add_argument("--calls", type=int, default=100_000, help="calls per round of the json part")
    known, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    args = throughput.parse_args()  # --backend, --n, --n-one, --reps, --drones, --pg-url, ... as throughput.py
    parts = set(known.parts.split(","))
    result: dict[str, Any] = {"backend": args.backend, "python": sys.version.split()[0]}
    if "json" in parts:
        result["json"] = json_part(known.calls)
        print(json.dumps(result["json"]), file=sys.stderr, flush=True)
    if parts & {"create", "colony"}:
        result["engine"] = "SQLite" if args.backend == "sqlite" else asyncio.run(throughput.server_prepare(args))
        runs = throughput.Runs()
        stores = throughput.Stores(args, runs)
        figures: dict[str, dict[str, list[float]]] = {}
        try:
            for rep in range(args.reps):
                order = list(CONFIGS) if rep % 2 == 0 else list(reversed(CONFIGS))
                for name in order:
                    library, uv = CONFIGS[name]
                    if "create" in parts and library == "msgspec":
                        got = run_measure(stores, create_one_by_one, args, library, uv)
                        for key, value in got.items():
                            figures.setdefault(f"create_{name}", {}).setdefault(key, []).append(value)
                    if "colony" in parts:
                        got = run_measure(stores, colony_drain, args, library, uv)
                        for key, value in got.items():
                            figures.setdefault(f"colony_{name}", {}).setdefault(key, []).append(value)
                print(f"rep {rep + 1}/{args.reps}: {json.dumps(figures)}", file=sys.stderr, flush=True)
        finally:
            runs.remove()
        for name, measured in figures.items():
            result[name] = {key: round(statistics.median(values), 1) for key, values in measured.items()}
            result[name]["cpu_us_min"] = round(min(measured["cpu_us"]), 1)
        result.update(n=args.n, n_one=args.n_one, reps=args.reps, drones=args.drones)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
