"""Capture what the instrumentation exports during a test: an SDK tracer and meter provider with
in-memory exporters. Shared by the fixtures in conftest.py and by tests that need a second,
independent capture (e.g. inside a hypothesis example, where function fixtures are not reset)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class TelemetryCapture:
    """What the instrumentation exported during a test."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def points(self, metric_name: str) -> list[Any]:
        """Every data point of ``metric_name`` (histogram or sum) collected so far."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == metric_name:
                        found.extend(metric.data.data_points)
        return found

    def histogram_sum(self, metric_name: str, **attributes: Any) -> float:
        """Sum of ``metric_name`` over the points whose attributes include ``attributes``."""
        total = 0.0
        for point in self.points(metric_name):
            if all(point.attributes.get(key) == value for key, value in attributes.items()):
                total += point.sum
        return total


def make_telemetry() -> TelemetryCapture:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return TelemetryCapture(exporter, reader, tracer_provider, meter_provider)
