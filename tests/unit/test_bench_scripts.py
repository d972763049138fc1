"""The benchmark scripts run end to end with tiny figures (on SQLite, or MariaDB for the MySQL-only one)
and print the keys they document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run(script: str, *arguments: str, **environment: str) -> tuple[int, dict[str, Any], str]:
    """Run ``bench/<script>``; its exit status, the JSON of its last line, and its stderr."""
    completed = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **environment),
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing; stderr:\n{completed.stderr[-3000:]}"
    return completed.returncode, json.loads(lines[-1]), completed.stderr


def test_throughput_reports_cpu_per_job_and_its_targets() -> None:
    status, figures, errors = run(
        "throughput.py", "--n", "300", "--n-one", "50", "--n-bulk", "300", "--skip", "latency,raw,rawschema,peers"
    )
    assert status == 0, errors[-3000:]
    assert figures["jobs_per_s"] > 0
    assert 0 < figures["cpu_us_per_job"] < 1_000_000
    assert figures["server_cpu_us_per_job"] is None  # SQLite runs in this process
    assert figures["enqueue_one_per_s"] > 0
    assert figures["bulk_enqueue_per_s"] > 0
    assert 0 < figures["enqueue_one_cpu_us"] < 1_000_000 and 0 < figures["bulk_cpu_us"] < 1_000_000
    assert figures["huey_per_s"] is None  # skipped
    targets = figures["targets"]
    assert targets["cpu_us_per_job <= 150"]["value"] == figures["cpu_us_per_job"]
    assert targets["cpu_us_per_job <= 150"]["pass"] is (figures["cpu_us_per_job"] <= 150)
    assert targets["jobs_per_s >= 1.5*huey_per_s"] == {"value": figures["jobs_per_s"], "bound": None, "pass": None}
    assert targets["p50_ms <= 3"]["pass"] is None  # latency skipped


def test_a_peer_that_cannot_be_measured_fails_the_run_unless_skipped(tmp_path: Path) -> None:
    nowhere = str(tmp_path / "no-harness")
    only_peers = "process,latency,enqueue,raw,rawschema"
    status, figures, errors = run("throughput.py", "--skip", only_peers, HIVEMIND_PEER_BENCH=nowhere)
    assert status == 1
    assert figures["huey_per_s"] is None
    assert "huey_per_s is null" in errors
    status, figures, errors = run("throughput.py", "--skip", f"{only_peers},huey", HIVEMIND_PEER_BENCH=nowhere)
    assert status == 0, errors[-3000:]
    assert figures["huey_per_s"] is None


def test_a_peers_cpu_per_job_is_measured_next_to_ours_with_the_rate_the_cores_allow() -> None:
    # where bench/throughput.py looks for the shared peer harness
    override = os.environ.get("HIVEMIND_PEER_BENCH")
    places = [Path(override)] if override else [folder / "shared" / "bench" for folder in BENCH.parents]
    if not any((place / "run_peer.py").is_file() for place in places):
        pytest.skip("the shared peer harness (shared/bench/run_peer.py) is not in a folder above bench/")
    status, figures, errors = run("throughput.py", "--n", "300", "--skip", "latency,enqueue,raw,rawschema")
    assert status == 0, errors[-3000:]
    assert figures["huey_per_s"] > 0
    assert 0 < figures["huey_cpu_us_per_job"] < 1_000_000
    assert figures["huey_server_cpu_us_per_job"] is None  # Huey's SQLite runs in its process
    cores = os.cpu_count() or 1
    for prefix in ("", "huey_"):
        ceiling = cores * 1e6 / figures[f"{prefix}cpu_us_per_job"]  # no server CPU on SQLite
        assert abs(figures[f"{prefix}cpu_ceiling_per_s"] - ceiling) <= 0.001 * ceiling, prefix
    status, figures, errors = run("throughput.py", "--n", "300", "--skip", "latency,enqueue,raw,rawschema,peercpu")
    assert status == 0, errors[-3000:]
    assert figures["huey_per_s"] > 0
    assert figures["huey_cpu_us_per_job"] is None and figures["huey_cpu_ceiling_per_s"] is None


def test_throughput_reports_the_limits_of_its_own_schema() -> None:
    sizes = ["--n", "300", "--n-one", "50", "--n-bulk", "1500"]
    status, figures, errors = run("throughput.py", *sizes, "--skip", "process,latency,enqueue,raw,peers")
    assert status == 0, errors[-3000:]
    for name in (
        "schema_limit_per_s",
        "schema_limit_colony_per_s",
        "schema_create_one_per_s",
        "schema_create_bulk_per_s",
    ):
        assert figures[name] > 0, name
    assert figures["schema_colony_server_cpu_us"] is None  # SQLite runs in this process
    assert figures["raw_limit_per_s"] is None  # skipped
    assert figures["jobs_vs_schema"] is None  # jobs_per_s was not measured
    assert figures["jobs_vs_schema_colony"] is None


def test_throughput_reads_the_servers_cpu_over_the_colony_window(mariadb_url: str) -> None:
    """On a server on this machine, the server's CPU per job is read next to the colony's; the
    schema limit of one colony (one connection, batches of --drones) is measured on it too."""
    sizes = ["--n", "300", "--n-one", "20", "--n-bulk", "1000", "--drones", "8"]
    skip = ["--skip", "latency,enqueue,raw"]
    status, figures, errors = run("throughput.py", "--backend", "mysql", "--mysql-url", mariadb_url, *sizes, *skip)
    assert status == 0, errors[-3000:]
    assert figures["jobs_per_s"] > 0 and 0 < figures["server_cpu_us_per_job"] < 1_000_000
    assert figures["schema_limit_colony_per_s"] > 0
    assert 0 < figures["schema_colony_server_cpu_us"] < 1_000_000  # the server's share of that limit
    assert figures["jobs_vs_schema_colony"] == round(figures["jobs_per_s"] / figures["schema_limit_colony_per_s"], 3)


def test_scale_reports_backlog_and_process_figures() -> None:
    sizes = ["--n", "200", "--backlog-small", "100", "--backlog-large", "400"]
    status, figures, errors = run("scale.py", *sizes, "--processes", "2", "--start-margin", "1")
    assert status == 0, errors[-3000:]
    for key in ("backlog_10k_per_s", "backlog_1m_per_s", "backlog_1m_fill_per_s", "processes_2_per_s"):
        assert figures[key] > 0, key
    assert figures["processes_1_per_s"] is None  # not among --processes
    assert figures["processes_4_per_s"] is None
    assert figures["backlog_1m_vs_10k"] == round(figures["backlog_1m_per_s"] / figures["backlog_10k_per_s"], 3)
    assert figures["targets"]["backlog_1m_vs_10k >= 0.8"]["pass"] is (figures["backlog_1m_vs_10k"] >= 0.8)
    assert "processes_2_per_s > processes_1_per_s" not in figures["targets"]  # a PostgreSQL target


def test_mysql_scripts_replays_the_create_scripts(mariadb_url: str) -> None:
    status, figures, errors = run("mysql_scripts.py", "--mysql-url", mariadb_url, "--n-one", "20", "--n-bulk", "1200")
    assert status == 0, errors[-3000:]
    for form in ("compound", "plain"):
        assert figures[f"one_{form}_per_s"] > 0 and figures[f"one_{form}_client_us"] > 0
    assert figures["batch_per_s"] > 0 and figures["batch_client_us"] > 0
    assert figures["n_bulk"] == 1200 and figures["engine"].startswith("MariaDB")
