"""The app of the worker process in the OpenTelemetry tests: a HiveMind on the database named by
``HIVEMIND_OTEL_TEST_URL``, instrumented, exporting each finished span as one JSON line to the file
named by ``HIVEMIND_OTEL_TEST_SPANS``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import hivemind_jobs as hm

URL_ENV = "HIVEMIND_OTEL_TEST_URL"
SPANS_ENV = "HIVEMIND_OTEL_TEST_SPANS"


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as sink:
            for span in spans:
                context = span.get_span_context()
                assert context is not None
                line = {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": f"{context.trace_id:032x}",
                    "span_id": f"{context.span_id:016x}",
                    "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
                    "links": [f"{link.context.span_id:016x}" for link in span.links],
                    "attributes": dict(span.attributes or {}),
                    "status": span.status.status_code.name,
                }
                sink.write(json.dumps(line) + "\n")
        return SpanExportResult.SUCCESS


def hive() -> hm.HiveMind:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(os.environ[SPANS_ENV])))
    instance = hm.HiveMind(os.environ[URL_ENV])
    hm.otel.instrument(instance, tracer_provider=provider)
    return instance
