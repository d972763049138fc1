"""OpenTelemetry tracing and metrics for HiveMind (extra ``[otel]``): ``hm.otel.instrument(hive)``.

Traces follow the messaging semantic conventions (``messaging.system = "hivemind"``):

- each ``create``/``create_many`` is a PRODUCER span ``create <queue>`` around the write, with the
  queue as ``messaging.destination.name`` and the new job's id as ``messaging.message.id``; the
  W3C ``traceparent`` of that span is stored with each job as the property ``hm.traceparent``
  (queryable: ``prop("hm.traceparent").like("00-<trace id>-*")`` finds a trace's jobs);
- each execution is a CONSUMER span ``process <queue>``, child of the creating span and linked to
  it, so one trace runs from the request that created the job through every run of it, retries
  included. The job's own spans nest under it (sync jobs too: they run in a copy of the context).
  A job that raises ends its span with an ERROR status and the exception recorded.

Metrics go through the meter: ``hivemind.jobs.created`` and ``hivemind.jobs.processed`` (by
outcome) counters, ``hivemind.job.duration`` and ``hivemind.job.lead_time`` histograms (seconds),
and the ``hivemind.queue.depth`` gauge (jobs ready and delayed per queue, read from the database
when the metric reader collects from its own thread, e.g. a periodic exporter).

Tracing is middleware-based: the execution span is the outermost middleware of every colony of
the instrumented environments, and the creation span a creation hook
(:mod:`hivemind_jobs.core.hooks`). Instrument after adding the environments; :func:`uninstrument`
takes it all away again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import Link, SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "hivemind_jobs.otel needs OpenTelemetry: pip install 'hivemind-jobs[otel]' "
        "(opentelemetry-api, and opentelemetry-sdk to export)"
    ) from error

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.colony.events import JobEnded
from hivemind_jobs.core.hooks import JobCreation
from hivemind_jobs.core.joblog import job_fields
from hivemind_jobs.middleware.protocol import CallNext

if TYPE_CHECKING:
    from hivemind_jobs.environment import Environment
    from hivemind_jobs.hive import HiveMind
    from hivemind_jobs.sync import SyncHiveMind

__all__ = ["TRACEPARENT_PROPERTY", "TRACESTATE_PROPERTY", "Instrumentation", "instrument", "uninstrument"]

_log = logging.getLogger("hivemind_jobs.otel")

#: the job property holding the W3C traceparent of the span that created the job
TRACEPARENT_PROPERTY = "hm.traceparent"
#: the W3C tracestate of that span, when it has one
TRACESTATE_PROPERTY = "hm.tracestate"
SYSTEM = "hivemind"
_SCOPE = "hivemind_jobs"
#: the longest a collection waits for the database to count the queues (seconds)
_DEPTH_TIMEOUT = 5.0
_W3C = TraceContextTextMapPropagator()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hivemind-jobs")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


class Instrumentation:
    """What :func:`instrument` added to a HiveMind: its tracer, meter and instruments."""

    def __init__(
        self,
        hive: HiveMind,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.hive = hive
        version = _version()
        self.tracer = trace.get_tracer(_SCOPE, version, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, version, meter_provider=meter_provider)
        self.created = meter.create_counter("hivemind.jobs.created", unit="{job}", description="Jobs created")
        self.processed = meter.create_counter(
            "hivemind.jobs.processed", unit="{job}", description="Job runs whose outcome was written, by outcome"
        )
        self.duration = meter.create_histogram(
            "hivemind.job.duration", unit="s", description="How long a job ran, per run"
        )
        self.lead_time = meter.create_histogram(
            "hivemind.job.lead_time", unit="s", description="How long a job waited from due to started, per run"
        )
        self.queue_depth = meter.create_observable_gauge(
            "hivemind.queue.depth",
            callbacks=[self._observe_depth],
            unit="{job}",
            description="Jobs waiting per queue: ready (due now) and delayed",
        )
        self._environments: list[Environment] = []
        self._names: set[str] = set()
        self._middleware = _ExecutionSpans(self)
        self._unsubscribe: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._depth: list[Observation] = []
        self._depth_lock = threading.Lock()

    # ------------------------------------------------------------------ wiring
    def _attach(self, environments: Iterable[Environment]) -> None:
        for env in environments:
            env.create_hooks.append(self._creating)
            env.middleware.insert(0, self._middleware)
            self._environments.append(env)
            self._names.add(env.name)
        self._unsubscribe = self.hive.mediator.subscribe(JobEnded, self._ended)

    def detach(self) -> None:
        """Stop tracing and counting (what :func:`uninstrument` does)."""
        for env in self._environments:
            with contextlib.suppress(ValueError):
                env.create_hooks.remove(self._creating)
            with contextlib.suppress(ValueError):
                env.middleware.remove(self._middleware)
        self._environments.clear()
        self._names.clear()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------------ producer
    @contextlib.contextmanager
    def _creating(self, creation: JobCreation) -> Iterator[None]:
        self._remember_loop()
        count = len(creation.functions)
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "create",
            "messaging.operation.name": "create",
            "messaging.destination.name": creation.queue,
            "hivemind.environment": creation.environment,
        }
        if count == 1:
            attributes["hivemind.job.function"] = creation.functions[0]
        else:
            attributes["messaging.batch.message_count"] = count
        with self.tracer.start_as_current_span(
            f"create {creation.queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            _W3C.inject(carrier)
            if "traceparent" in carrier:
                creation.properties[TRACEPARENT_PROPERTY] = carrier["traceparent"]
            if carrier.get("tracestate"):
                creation.properties[TRACESTATE_PROPERTY] = carrier["tracestate"]
            yield
            if count == 1 and creation.ids:
                span.set_attribute("messaging.message.id", str(creation.ids[0]))
            elif creation.ids:
                span.set_attribute("hivemind.job.ids", [str(job_id) for job_id in creation.ids])
        if creation.ids:
            self.created.add(
                len(creation.ids),
                {"hivemind.environment": creation.environment, "messaging.destination.name": creation.queue},
            )

    # ------------------------------------------------------------------ metrics
    def _ended(self, event: JobEnded) -> None:
        job = event.job
        if job.environment not in self._names:
            return
        self._remember_loop()
        fields = job_fields(job, event.colony)
        attributes = {
            "hivemind.environment": job.environment,
            "messaging.destination.name": job.queue,
            "hivemind.job.function": fields["function"],
        }
        self.lead_time.record(event.lead_time, attributes)
        attributes["hivemind.job.outcome"] = event.outcome
        if event.error is not None:
            attributes["error.type"] = f"{type(event.error).__module__}.{type(event.error).__qualname__}"
        self.processed.add(1, attributes)
        self.duration.record(event.duration, attributes)

    def _remember_loop(self) -> None:
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()

    def _observe_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        """Count the queues on the hive's loop when called from another thread (a periodic reader);
        on the loop's own thread (it cannot wait for itself) the last counts are given again."""
        loop = self._loop
        on_loop = False
        with contextlib.suppress(RuntimeError):
            on_loop = asyncio.get_running_loop() is loop
        if loop is not None and not loop.is_closed() and not on_loop:
            try:
                future = asyncio.run_coroutine_threadsafe(self._count_queues(), loop)
                observations = future.result(timeout=min(options.timeout_millis / 1000, _DEPTH_TIMEOUT))
            except Exception as error:
                _log.warning("hivemind.queue.depth: the queues could not be counted: %s", error)
            else:
                with self._depth_lock:
                    self._depth = observations
        with self._depth_lock:
            return list(self._depth)

    async def _count_queues(self) -> list[Observation]:
        observations: list[Observation] = []
        for env in self._environments:
            depth: dict[tuple[str, str], int] = {}
            for stat in await env.jobs.queue_stats():
                for state, count in (("ready", stat.ready), ("delayed", stat.delayed)):
                    depth[(stat.queue, state)] = depth.get((stat.queue, state), 0) + count
            for (queue, state), count in sorted(depth.items()):
                attributes = {"hivemind.environment": env.name, "messaging.destination.name": queue, "state": state}
                observations.append(Observation(count, attributes))
        return observations

    async def refresh_queue_depth(self) -> None:
        """Count the queues now (on the hive's loop): what ``hivemind.queue.depth`` reports until the
        next collection from another thread counts them again."""
        self._remember_loop()
        observations = await self._count_queues()
        with self._depth_lock:
            self._depth = observations


class _ExecutionSpans:
    """The outermost middleware: a CONSUMER span around each run, child of the creating span."""

    def __init__(self, instrumentation: Instrumentation) -> None:
        self._instrumentation = instrumentation

    async def __call__(self, context: JobContext, input: Any, call_next: CallNext) -> Any:
        job = context.job.job
        parent = None
        links: list[Link] = []
        traceparent = job.get_property(TRACEPARENT_PROPERTY)
        if isinstance(traceparent, str):
            carrier = {"traceparent": traceparent}
            tracestate = job.get_property(TRACESTATE_PROPERTY)
            if isinstance(tracestate, str):
                carrier["tracestate"] = tracestate
            parent = _W3C.extract(carrier, context=otel_context.Context())
            creator = trace.get_current_span(parent).get_span_context()
            if creator.is_valid:
                links.append(Link(creator, {"hivemind.link": "created by"}))
            else:
                parent = None
        fields = job_fields(job, context.colony)
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": job.queue,
            "messaging.message.id": str(job.id),
            "hivemind.environment": job.environment,
            "hivemind.job.function": fields["function"],
            "hivemind.job.attempt": fields["attempt"],
            "hivemind.job.execution_id": str(fields["execution_id"]),
            "hivemind.colony": context.colony,
        }
        self._instrumentation._remember_loop()
        with self._instrumentation.tracer.start_as_current_span(
            f"process {job.queue}", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
        ):
            return await call_next()


#: the instrumentation of each instrumented HiveMind
_instrumented: weakref.WeakKeyDictionary[HiveMind, Instrumentation] = weakref.WeakKeyDictionary()


def _hive_of(hive: HiveMind | SyncHiveMind) -> HiveMind:
    inner = getattr(hive, "hive", None)  # a SyncHiveMind wraps a HiveMind
    return inner if inner is not None else hive  # type: ignore[return-value]


def instrument(
    hive: HiveMind | SyncHiveMind,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    environments: Iterable[str] | None = None,
) -> Instrumentation:
    """Trace job creations and executions and count outcomes for ``hive`` (every environment, or
    those named). The providers default to OpenTelemetry's global ones. Instrumenting twice is an
    error; :func:`uninstrument` first."""
    target = _hive_of(hive)
    if target in _instrumented:
        raise RuntimeError("this HiveMind is instrumented already; call hm.otel.uninstrument(hive) first")
    names = list(target.environments) if environments is None else list(environments)
    chosen = [target.env(name) for name in names]
    instrumentation = Instrumentation(target, tracer_provider=tracer_provider, meter_provider=meter_provider)
    instrumentation._attach(chosen)
    _instrumented[target] = instrumentation
    return instrumentation


def uninstrument(hive: HiveMind | SyncHiveMind) -> None:
    """Take away what :func:`instrument` added (nothing happens when it was not instrumented)."""
    instrumentation = _instrumented.pop(_hive_of(hive), None)
    if instrumentation is not None:
        instrumentation.detach()
