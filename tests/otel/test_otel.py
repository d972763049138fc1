"""OpenTelemetry: producer and consumer spans with the SDK's in-memory exporter, the trace context
stored with the job, links, retries in one trace, and the metrics, on every backend."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import hivemind_jobs as hm
from hivemind_jobs.otel import TRACEPARENT_PROPERTY
from tests.otel import app, jobs
from tests.processes.support import REPO
from tests.worker.conftest import FAST

ALLOW = hm.AllowList(modules=["tests.otel"])


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])
        self.tracer = self.tracer_provider.get_tracer("tests")

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def points(self, metric: str) -> list[Any]:
        """The data points of ``metric`` (collected in a thread other than the event loop's)."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        found: list[Any] = []
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend(item.data.data_points)
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    found = Telemetry()
    yield found
    found.tracer_provider.shutdown()
    found.meter_provider.shutdown()


async def _run(hive: hm.HiveMind) -> None:
    colony = hive.colony(name="traced", allow=ALLOW, options=FAST)
    colony.swarm("main", drones=2, queues=["mail"])
    await colony.run(burst=True)


def _traceparent(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


async def test_a_trace_runs_from_the_creating_request_to_the_execution(db_url: str, telemetry: Telemetry) -> None:
    async with hm.HiveMind(db_url) as hive:
        hm.otel.instrument(hive, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        try:
            with telemetry.tracer.start_as_current_span("POST /orders") as request:
                sync_id = await hive.jobs.options(queue="mail").create(jobs.traced, "in a thread")
                async_id = await hive.jobs.create(jobs.traced_async, "on the loop")
            untraced_id = await hive.jobs.create(jobs.traced, "no request around it")
            await _run(hive)
            job = await hive.jobs.get(sync_id)
        finally:
            hm.otel.uninstrument(hive)

    trace_id = request.get_span_context().trace_id
    creates = {
        int(span.attributes["messaging.message.id"]): span
        for span in telemetry.spans.get_finished_spans()
        if span.kind is SpanKind.PRODUCER
    }
    assert set(creates) == {sync_id, async_id, untraced_id}
    create = creates[sync_id]
    assert create.name == "create mail"
    assert create.parent is not None and create.parent.span_id == request.get_span_context().span_id
    assert create.context.trace_id == trace_id
    expected = {
        "messaging.system": "hivemind",
        "messaging.operation.type": "create",
        "messaging.destination.name": "mail",
        "hivemind.environment": "main",
        "hivemind.job.function": "tests.otel.jobs:traced",
    }
    assert {name: create.attributes[name] for name in expected} == expected
    # the creating span's W3C context is stored with the job
    assert job.get_property(TRACEPARENT_PROPERTY) == _traceparent(create)

    processes = {
        int(span.attributes["messaging.message.id"]): span
        for span in telemetry.spans.get_finished_spans()
        if span.kind is SpanKind.CONSUMER
    }
    assert set(processes) == {sync_id, async_id, untraced_id}
    process = processes[sync_id]
    assert process.name == "process mail"
    assert process.context.trace_id == trace_id  # one trace from the request to the execution
    assert process.parent is not None and process.parent.span_id == create.context.span_id
    assert [link.context.span_id for link in process.links] == [create.context.span_id]
    assert process.attributes["hivemind.job.attempt"] == 1
    assert process.attributes["hivemind.colony"] == "traced"
    assert process.attributes["test.label"] == "in a thread"  # the sync job saw its span as current
    assert process.status.status_code is StatusCode.UNSET
    assert processes[async_id].attributes["test.label"] == "on the loop"
    assert processes[async_id].context.trace_id == trace_id
    # a job created outside any span starts its own trace at its creation
    untraced = processes[untraced_id]
    assert untraced.context.trace_id == creates[untraced_id].context.trace_id != trace_id


async def test_retries_stay_in_the_trace_and_failures_are_recorded(
    db_url: str, telemetry: Telemetry, tmp_path: Path
) -> None:
    options = hm.Options(retry=hm.RetryPolicy(max_retries=1, delays=[timedelta(0)]))
    async with hm.HiveMind(db_url, options=options) as hive:
        hm.otel.instrument(hive, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        try:
            with telemetry.tracer.start_as_current_span("request") as request:
                job_id = await hive.jobs.create(jobs.fails_once, str(tmp_path / "marker"))
            await _run(hive)
        finally:
            hm.otel.uninstrument(hive)
        assert (await hive.jobs.get(job_id)).state.name == "Succeeded"

    [create] = telemetry.finished("create global")
    first, second = sorted(telemetry.finished("process global"), key=lambda span: span.start_time or 0)
    for span in (first, second):
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.parent is not None and span.parent.span_id == create.context.span_id
    assert (first.attributes["hivemind.job.attempt"], second.attributes["hivemind.job.attempt"]) == (1, 2)
    assert first.status.status_code is StatusCode.ERROR
    [exception] = [event for event in first.events if event.name == "exception"]
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "first run fails"
    assert second.status.status_code is StatusCode.UNSET


async def test_metrics_count_outcomes_durations_and_queue_depth(db_url: str, telemetry: Telemetry) -> None:
    async with hm.HiveMind(db_url, options=hm.Options(retry=hm.RetryPolicy(max_retries=0))) as hive:
        instrumentation = hm.otel.instrument(
            hive, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        try:
            await hive.jobs.create_many([hm.call(jobs.traced, "a"), hm.call(jobs.traced, "b")])
            await hive.jobs.create(jobs.fails_once, "/nonexistent-directory/marker")  # fails: cannot write
            await hive.jobs.options(queue="later", delay=timedelta(hours=1)).create(jobs.traced, "delayed")
            await _run(hive)
            # collected from another thread, the gauge counts the queues on the hive's loop
            depth = await asyncio.to_thread(telemetry.points, "hivemind.queue.depth")
            processed = telemetry.points("hivemind.jobs.processed")
            durations = telemetry.points("hivemind.job.duration")
            lead_times = telemetry.points("hivemind.job.lead_time")
            created = telemetry.points("hivemind.jobs.created")
            # on the loop's own thread a collection gives the counts of the last refresh
            await hive.jobs.options(queue="fresh").create(jobs.traced, "waiting")
            await instrumentation.refresh_queue_depth()
            refreshed = telemetry.points("hivemind.queue.depth")
        finally:
            hm.otel.uninstrument(hive)

    counts = {(p.attributes["hivemind.job.function"], p.attributes["hivemind.job.outcome"]): p.value for p in processed}
    assert counts == {("tests.otel.jobs:traced", "succeeded"): 2, ("tests.otel.jobs:fails_once", "failed"): 1}
    [failed] = [p for p in processed if p.attributes["hivemind.job.outcome"] == "failed"]
    assert failed.attributes["error.type"] in ("builtins.FileNotFoundError", "builtins.PermissionError")
    assert sum(point.count for point in durations) == 3
    assert all(point.min >= 0 for point in durations)
    assert sum(point.count for point in lead_times) == 3
    assert sum(point.value for point in created) == 4
    by_queue = {(p.attributes["messaging.destination.name"], p.attributes["state"]): p.value for p in depth}
    assert by_queue.get(("later", "delayed")) == 1
    assert by_queue.get(("later", "ready"), 0) == 0
    assert by_queue.get(("global", "ready"), 0) == 0  # everything due ran
    assert ("fresh", "ready") not in by_queue
    after = {(p.attributes["messaging.destination.name"], p.attributes["state"]): p.value for p in refreshed}
    assert after[("fresh", "ready")] == 1 and after[("later", "delayed")] == 1


async def test_instrumenting_twice_is_refused_and_uninstrument_stops_tracing(db_url: str, telemetry: Telemetry) -> None:
    async with hm.HiveMind(db_url) as hive:
        hm.otel.instrument(hive, tracer_provider=telemetry.tracer_provider)
        with pytest.raises(RuntimeError, match="instrumented already"):
            hm.otel.instrument(hive, tracer_provider=telemetry.tracer_provider)
        hm.otel.uninstrument(hive)
        job_id = await hive.jobs.create(jobs.traced, "quiet")
        await _run(hive)
        assert (await hive.jobs.get(job_id)).get_property(TRACEPARENT_PROPERTY) is None
    assert telemetry.spans.get_finished_spans() == ()


async def test_the_trace_context_crosses_into_a_real_worker_process(
    db_url: str, telemetry: Telemetry, tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    async with hm.HiveMind(db_url) as hive:
        hm.otel.instrument(hive, tracer_provider=telemetry.tracer_provider)
        try:
            with telemetry.tracer.start_as_current_span("POST /signup") as request:
                job_id = await hive.jobs.options(queue="mail").create(jobs.traced, "welcome mail")
        finally:
            hm.otel.uninstrument(hive)
        environment = {**os.environ, app.URL_ENV: db_url, app.SPANS_ENV: str(spans_file)}
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "hivemind_jobs.cli", "worker", "tests.otel.app:hive", "--burst"]
        command += ["--allow", "tests.otel", "--swarm", "main:2:mail", "--name", "mailer", "--poll-interval", "0.1"]
        worker = await asyncio.create_subprocess_exec(
            *command, cwd=REPO, env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(worker.communicate(), timeout=60)
        assert worker.returncode == 0, output.decode(errors="replace")
        assert (await hive.jobs.get(job_id)).state.name == "Succeeded"

    [create] = telemetry.finished("create mail")
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    [process] = [span for span in spans if span["kind"] == "CONSUMER"]
    assert process["name"] == "process mail"
    assert process["trace_id"] == f"{request.get_span_context().trace_id:032x}"
    assert process["parent_id"] == process["links"][0] == f"{create.context.span_id:016x}"
    assert process["attributes"]["messaging.message.id"] == str(job_id)
    assert process["attributes"]["hivemind.colony"] == "mailer"
    assert process["attributes"]["test.label"] == "welcome mail"
    assert process["status"] == "UNSET"


def test_a_blocking_create_is_traced_under_the_callers_span(db_url: str, telemetry: Telemetry) -> None:
    with hm.SyncHiveMind(db_url) as hive:
        hm.otel.instrument(hive, tracer_provider=telemetry.tracer_provider)
        try:
            with telemetry.tracer.start_as_current_span("GET /report") as request:
                job_id = hive.jobs.create(jobs.traced, "from a thread")  # runs on the facade's loop thread
            job = hive.jobs.get(job_id)
        finally:
            hm.otel.uninstrument(hive)
    [create] = telemetry.finished("create global")
    assert create.parent is not None and create.parent.span_id == request.get_span_context().span_id
    assert create.attributes["messaging.message.id"] == str(job_id)
    assert job.get_property(TRACEPARENT_PROPERTY) == _traceparent(create)
