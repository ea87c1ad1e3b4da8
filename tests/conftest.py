"""Shared fixtures: an SDK tracer/meter with in-memory exporters and the instrumentor on them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bedrock_tokens import BedrockTokensInstrumentor

from .replay import Replayer, replay_server


@dataclass
class Telemetry:
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


def make_telemetry() -> Telemetry:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return Telemetry(exporter, reader, tracer_provider, meter_provider)


@pytest.fixture
def telemetry() -> Telemetry:
    return make_telemetry()


@pytest.fixture
def make_instrumentor(telemetry: Telemetry) -> Iterator[Any]:
    """``make(**settings)``: an instrumentor on ``telemetry`` with those settings; all removed after
    the test."""
    made: list[BedrockTokensInstrumentor] = []

    def make(**settings: Any) -> BedrockTokensInstrumentor:
        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **settings
        )
        made.append(instrumentor)
        return instrumentor

    yield make
    for instrumentor in made:
        instrumentor.uninstrument()


@pytest.fixture
def instrumented(telemetry: Telemetry) -> Iterator[Telemetry]:
    """The instrumentor active on ``telemetry`` for the test, removed afterwards."""
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        yield telemetry
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def replayer() -> Iterator[Replayer]:
    with replay_server() as server:
        yield server
