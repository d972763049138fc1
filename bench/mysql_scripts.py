#!/usr/bin/env python3
"""MySQL/MariaDB: what HiveMind's create scripts cost the server, replayed without the library.

HiveMind writes a created job (its row, history rows, queue entry, the COMMIT) as one script per
call (``storage/mysql/backend.py``: ``_insert_script``). This script lets HiveMind create jobs on a
fresh database (named like the other benchmarks' stores, dropped afterwards) and keeps the scripts
it sent; then it runs them again on one session of HiveMind's own pool, with nothing of the library
around them, so the figures are the floor any client of that schema and server pays:

- ``one_<form>_per_s``, ``one_<form>_client_us``, ``one_<form>_server_us``: --n-one creates of one
  job, one after the other (the captured script again with a fresh execution id each time); creates
  per second, CPU µs per create of this process and of the server (``mariadbd``/``mysqld`` from
  /proc/<pid>/stat: null unless the server runs on this machine). ``<form>``: ``prepared``, a
  common create as MariaDB gets it (``EXECUTE`` of the compound statement prepared on the session,
  ``_plain_statement``), ``compound``, the script of any other create on MariaDB (one ``BEGIN NOT
  ATOMIC ... END`` statement), and ``plain``, the same statements as a multi-statement script (as
  MySQL gets it).
- ``batch_per_s``, ``batch_client_us``, ``batch_server_us``: the scripts of --n-bulk jobs created by
  ``create_many`` in calls of 1000 (pipelined parts of 250 included), replayed once on emptied
  tables; jobs per second and CPU µs per job. Next to ``bulk_enqueue_per_s`` of
  ``bench/throughput.py`` it tells how much of a batch's time is the server's.

--reps rounds (the forms interleaved), medians. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # job targets are stored as _jobs:<name>

import _jobs
import hivemind_jobs as hm
import throughput
from hivemind_jobs.storage.mysql import backend as mysql

CHUNK = 1000


def server_pid() -> int | None:
    """The local MariaDB/MySQL server's process id, or None."""
    for name in ("mariadbd", "mysqld"):
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False).stdout.split()
        if found:
            return int(found[0])
    return None


def ticks(pid: int | None) -> float | None:
    """CPU seconds of process ``pid`` so far (:func:`throughput.ticks`); None without one."""
    return None if pid is None else throughput.ticks(pid)


async def replay(cursor: Any, scripts: list[str], pid: int | None, jobs: int) -> dict[str, float | None]:
    """Run ``scripts`` one after the other; rate and CPU per job."""
    started, cpu, server = time.perf_counter(), time.process_time(), ticks(pid)
    for script in scripts:
        await cursor.execute(script)
        if cursor.description:
            await cursor.fetchall()
        while await cursor.nextset():
            if cursor.description:
                await cursor.fetchall()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = ticks(pid)
    return {
        "per_s": jobs / elapsed,
        "client_us": cpu / jobs * 1e6,
        "server_us": None if server is None or after is None else (after - server) / jobs * 1e6,
    }


def plain(script: str) -> str:
    """A compound create script as the multi-statement script it wraps."""
    return script.removeprefix("BEGIN NOT ATOMIC\n").removesuffix(";\nEND")


async def one_round(args: argparse.Namespace, stores: throughput.Stores, pid: int | None) -> dict[str, Any]:
    captured: list[str] = []
    render = mysql._insert_script

    def keep(*arguments: Any, **options: Any) -> str | None:
        script = render(*arguments, **options)
        if script is not None:
            captured.append(script)
        return script

    sent: list[str] = []
    run_part = mysql._MySQLConnection._insert_part

    async def recorded(self: Any, script: str) -> Any:
        sent.append(script)
        return await run_part(self, script)

    plain_values = mysql._plain_values
    mysql._insert_script = keep  # type: ignore[assignment]
    mysql._MySQLConnection._insert_part = recorded  # type: ignore[method-assign]
    figures: dict[str, Any] = {}
    try:
        async with stores.hive_url() as url, hm.HiveMind(url) as hive:
            driver = hive.env().storage.driver  # type: ignore[attr-defined]
            if not driver.compound_statements:
                raise SystemExit("the server runs no compound statements (not MariaDB): nothing to compare")
            await hive.jobs.create(_jobs.noop, 0)  # the prepared statement's EXECUTE
            [execute] = [statement for statement in sent if statement.startswith("EXECUTE ")]
            mysql._plain_values = lambda job: None  # type: ignore[assignment]
            await hive.jobs.create(_jobs.noop, 0)  # the same job's script
            mysql._plain_values = plain_values
            one = captured[-1]
            captured.clear()
            queries = hive.env().storage.queries  # type: ignore[attr-defined]
            _, text, _ = mysql._plain_statement(
                queries["job_insert"], queries["job_state_insert"], queries["queue_upsert"]
            )
            for start in range(0, args.n_bulk, CHUNK):
                numbers = range(start, min(args.n_bulk, start + CHUNK))
                await hive.jobs.create_many(hm.call(_jobs.noop, i) for i in numbers)
            batches = list(captured)
            raw = await driver.acquire()
            try:
                async with raw.cursor() as cursor:
                    name = execute.split()[1]
                    await cursor.execute(f"PREPARE {name} FROM {raw.escape(text)}")
                    forms = {"prepared": execute, "compound": one, "plain": plain(one)}
                    for name in forms if args.rep % 2 == 0 else reversed(forms):
                        execution = forms[name].split("'global', 2, '")[1][:36]
                        scripts = [forms[name].replace(execution, str(uuid.uuid4())) for _ in range(args.n_one)]
                        for key, value in (await replay(cursor, scripts, pid, args.n_one)).items():
                            figures[f"one_{name}_{key}"] = value
                    prefix = f"`{driver.url.database}`.`{driver.prefix}"
                    for table in ("queue", "job_state", "job"):
                        await cursor.execute(f"DELETE FROM {prefix}{table}`")
                    await raw.commit()
                    for key, value in (await replay(cursor, batches, pid, args.n_bulk)).items():
                        figures[f"batch_{key}"] = value
            finally:
                await driver.release(raw, discard=False)
    finally:
        mysql._insert_script = render  # type: ignore[assignment]
        mysql._MySQLConnection._insert_part = run_part  # type: ignore[method-assign]
        mysql._plain_values = plain_values
    return figures


def main() -> None:
    sys.argv = [sys.argv[0], "--backend", "mysql", *sys.argv[1:]]
    args = throughput.parse_args()  # --n-one, --n-bulk, --reps, --mysql-url as throughput.py
    engine = asyncio.run(throughput.server_prepare(args))
    pid = server_pid()
    runs = throughput.Runs()
    stores = throughput.Stores(args, runs)
    rounds = []
    try:
        for rep in range(args.reps):
            args.rep = rep
            rounds.append(asyncio.run(one_round(args, stores, pid)))
            print(f"rep {rep + 1}/{args.reps}: {json.dumps(rounds[-1])}", file=sys.stderr, flush=True)
    finally:
        runs.remove()
    medians = {
        key: None if rounds[0][key] is None else round(statistics.median(r[key] for r in rounds), 1)
        for key in rounds[0]
    }
    for key, value in medians.items():
        print(f"  {key:<24} {value}")
    print(json.dumps({"engine": engine, "n_one": args.n_one, "n_bulk": args.n_bulk, "reps": args.reps, **medians}))


if __name__ == "__main__":
    main()
