"""Prometheus metrics for HiveMind (extra ``[prometheus]``): what ``hivemind worker --metrics-port``
serves on ``/metrics``.

Counted from the colony's events (no query per job): ``hivemind_jobs_total{environment,queue,
function,outcome}`` (outcome: succeeded, failed, retried, stopped, requeued, ended),
``hivemind_retries_total{environment,queue,function}``, ``hivemind_rescues_total{environment,
queue,poison}`` and the histograms ``hivemind_job_duration_seconds{environment,queue,function}``
and ``hivemind_job_lead_time_seconds{environment,queue}``. Read from the database every
``refresh`` seconds (:meth:`HiveMetrics.refresh`): ``hivemind_queue_depth{environment,queue,state}``
(state ``ready``: due now, ``delayed``: due later) and ``hivemind_colonies{environment}`` (colonies
that reported themselves running); and from the colony of this process: ``hivemind_drones{
environment,colony,state}`` (``busy``, ``idle``).

Several processes (``hivemind worker --processes N``) use prometheus_client's multiprocess mode:
the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` of its children to a directory of its own and
serves the sum of their files; counters and histograms add up over the children (those that
exited included), drones add up over the live ones, queue depth and colonies are the latest any
child read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "hivemind_jobs.prometheus needs prometheus-client: pip install 'hivemind-jobs[prometheus]'"
    ) from error

from hivemind_jobs.colony.events import JobEnded
from hivemind_jobs.core.joblog import job_fields
from hivemind_jobs.daemons.lock_monitor import JobRescued

if TYPE_CHECKING:
    from hivemind_jobs.colony.colony import Colony
    from hivemind_jobs.environment import Environment
    from hivemind_jobs.mediator import Mediator

__all__ = ["MULTIPROCESS_ENV", "HiveMetrics", "process_died", "serve", "serve_processes"]

_log = logging.getLogger("hivemind_jobs.prometheus")


class HiveMind(Protocol):
    """What the metrics read of a :class:`~hivemind_jobs.HiveMind`: its events and its environments."""

    mediator: Mediator

    @property
    def environments(self) -> Mapping[str, Environment]: ...


#: the directory of the multiprocess files (prometheus_client reads it when first imported)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: job durations and lead times: milliseconds to hours
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))


class HiveMetrics:
    """The metrics of one or more hives, on ``registry`` (default: prometheus_client's own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = prometheus_client.REGISTRY if registry is None else registry
        self.registry = registry
        self.jobs = Counter(
            "hivemind_jobs",
            "Job runs whose outcome was written, by outcome",
            ["environment", "queue", "function", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "hivemind_retries", "Failed runs enqueued again", ["environment", "queue", "function"], registry=registry
        )
        self.rescues = Counter(
            "hivemind_rescues",
            "Jobs the lock monitor took over from a worker that stopped heartbeating (poison: failed instead)",
            ["environment", "queue", "poison"],
            registry=registry,
        )
        self.duration = Histogram(
            "hivemind_job_duration_seconds",
            "How long a job ran, per run",
            ["environment", "queue", "function"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.lead_time = Histogram(
            "hivemind_job_lead_time_seconds",
            "How long a job waited from due to started, per run",
            ["environment", "queue"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "hivemind_queue_depth",
            "Jobs waiting per queue: ready (due now) and delayed (due later)",
            ["environment", "queue", "state"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.colonies = Gauge(
            "hivemind_colonies",
            "Colonies that reported themselves running",
            ["environment"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.drones = Gauge(
            "hivemind_drones",
            "Drones of the colonies of this process (of all processes under a supervisor), busy or idle",
            ["environment", "colony", "state"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._unsubscribe: list[Callable[[], None]] = []
        self._depth_seen: set[tuple[str, str, str]] = set()

    # ------------------------------------------------------------------ events
    def instrument(self, hive: HiveMind) -> None:
        """Count the outcomes and rescues of every environment of ``hive``."""
        self._unsubscribe.append(hive.mediator.subscribe(JobEnded, self._ended))
        self._unsubscribe.append(hive.mediator.subscribe(JobRescued, self._rescued))

    def uninstrument(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def _ended(self, event: JobEnded) -> None:
        job = event.job
        function = str(job_fields(job, event.colony)["function"])
        self.jobs.labels(job.environment, job.queue, function, event.outcome).inc()
        self.duration.labels(job.environment, job.queue, function).observe(event.duration)
        self.lead_time.labels(job.environment, job.queue).observe(event.lead_time)
        if event.outcome == "retried":
            self.retries.labels(job.environment, job.queue, function).inc()

    def _rescued(self, event: JobRescued) -> None:
        job = event.job
        self.rescues.labels(job.environment, job.queue, "true" if event.poison else "false").inc()

    # ------------------------------------------------------------------ database and colony
    async def refresh(self, hive: HiveMind, colony: Colony | None = None) -> None:
        """Read the queue depths and the running colonies of every environment of ``hive``, and
        the drones of ``colony``."""
        seen: set[tuple[str, str, str]] = set()
        for name, env in hive.environments.items():
            depth: dict[tuple[str, str, str], int] = {}
            for stat in await env.jobs.queue_stats():
                for state, count in (("ready", stat.ready), ("delayed", stat.delayed)):
                    key = (name, stat.queue, state)
                    depth[key] = depth.get(key, 0) + count
            for key, count in depth.items():
                self.queue_depth.labels(*key).set(count)
            seen.update(depth)
            running = [info for info in await env.colonies.list() if info.status == "running"]
            self.colonies.labels(name).set(len(running))
        for key in self._depth_seen - seen:  # a queue that emptied out reads 0, not its last depth
            self.queue_depth.labels(*key).set(0)
        self._depth_seen |= seen
        if colony is not None:
            self.count_drones(colony)

    def count_drones(self, colony: Colony) -> None:
        busy = idle = 0
        for swarm in colony.describe().get("swarms", []):
            for drone in swarm.get("drones", []):
                if drone.get("job_id") is None:
                    idle += 1
                else:
                    busy += 1
        environment = colony.environment.name
        self.drones.labels(environment, colony.name, "busy").set(busy)
        self.drones.labels(environment, colony.name, "idle").set(idle)

    async def keep_refreshed(self, hive: HiveMind, colony: Colony | None, every: float) -> None:
        """:meth:`refresh` every ``every`` seconds until cancelled (a failed read is logged)."""
        while True:
            try:
                await self.refresh(hive, colony)
            except Exception as error:
                _log.warning("metrics: could not read the queues and colonies: %s", error)
            await asyncio.sleep(every)


def serve(port: int, host: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> Any:
    """Serve ``/metrics`` of ``registry`` (default: prometheus_client's, or the multiprocess files
    when ``PROMETHEUS_MULTIPROC_DIR`` is set) on ``host:port`` in a daemon thread; returns the
    server (``shutdown()`` stops it)."""
    if registry is None:
        if os.environ.get(MULTIPROCESS_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = prometheus_client.REGISTRY
    server, _thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
    return server


def serve_processes(port: int, host: str, directory: str) -> Any:
    """Serve ``/metrics`` summed over the multiprocess files in ``directory`` (a supervisor's)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    server, _thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
    return server


def process_died(pid: int, directory: str) -> None:
    """Drop the live gauges of a child process that exited (multiprocess mode)."""
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, path=directory)  # type: ignore[no-untyped-call]
