"""The application bench/scale.py's worker processes run: ``hivemind worker _worker_app:hive``.

``hive`` is a factory (the worker command calls it in each worker process): it opens the store named
by $HIVEMIND_BENCH_URL and, when the process exits (after the SIGTERM that stops its colony), writes
what the process ran (``_jobs.STAMPS``: count, first and latest wall-clock time) as JSON to a file
of its own in the folder $HIVEMIND_BENCH_STATS. The worker runs in bench/ (the current directory is
importable), with ``--allow _jobs``.
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path

import _jobs
import hivemind_jobs as hm

URL_ENV = "HIVEMIND_BENCH_URL"
STATS_ENV = "HIVEMIND_BENCH_STATS"


def _write_stats(folder: Path) -> None:
    record = dict(_jobs.STAMPS.as_dict(), pid=os.getpid())
    path = folder / f"worker-{os.getpid()}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(path)  # the reader never sees half a file


def hive() -> hm.HiveMind:
    """The worker's HiveMind; its stamps are written when the process exits."""
    atexit.register(_write_stats, Path(os.environ[STATS_ENV]))
    return hm.HiveMind(os.environ[URL_ENV])
