"""The OpenTelemetry Collector's metric path, stood in for in-process, and its unit tests.

``examples/collector`` runs app -> OTLP -> Collector (``prometheus`` exporter, OpenMetrics with
exemplars) -> Prometheus scrape -> Grafana. Docker is not available in CI and the Debian Prometheus
(2.42) predates the OTLP receiver (2.47), so the tests stand in for the collector: a loopback OTLP/HTTP
receiver that decodes with ``opentelemetry-proto`` (what a collector receives) and a ``/metrics``
endpoint that serves it the way the collector's ``prometheus`` exporter does. The rules are ported from

- ``exporter/prometheusexporter/collector.go`` (opentelemetry-collector-contrib 0.147): labels from the
  point attributes, ``otel_scope_name`` / ``otel_scope_version`` / ``otel_scope_schema_url`` /
  ``otel_scope_<attribute>``, ``job`` = ``[service.namespace/]service.name``, ``instance`` =
  ``service.instance.id``, ``target_info`` for the other resource attributes, exemplars (``trace_id``,
  ``span_id``) on histogram buckets and counters in OpenMetrics;
- ``prometheus/otlptranslator`` (``metric_namer.go``, ``unit_namer.go``, ``normalize_label.go``): the
  ``UnderscoreEscapingWithSuffixes`` strategy, the collector's default.

``test_collector_prometheus`` cross-checks the names against ``opentelemetry-exporter-prometheus`` (an
independent port of the same rules), so a mistake here cannot silently agree with the dashboard.
"""

from __future__ import annotations

import math

import pytest

from .support.collector import (
    COLLECTOR_NAMES,
    COUNTER,
    GAUGE,
    HISTOGRAM,
    PrometheusExporterState,
    _number,
    instrument_definitions,
    label_name,
    metric_name,
)

# --- tests ----------------------------------------------------------------------------------------

# From otlptranslator's metric_namer_test.go (WithMetricSuffixes, no UTF-8, no namespace).
NAMER_CASES = [
    ("requests", "", COUNTER, "requests_total"),
    ("cpu_usage", "1", GAUGE, "cpu_usage_ratio"),
    ("items", "1", COUNTER, "items_total"),
    ("response_time", "ms", GAUGE, "response_time_milliseconds"),
    ("memory_usage", "By", GAUGE, "memory_usage_bytes"),
    ("requests", "1/s", GAUGE, "requests_per_second"),
    ("throughput", "By/s", GAUGE, "throughput_bytes_per_second"),
    ("custom_metric", "custom_unit", GAUGE, "custom_metric_custom_unit"),
    ("custom_metric", "{custom}", GAUGE, "custom_metric"),
    ("custom_metric", "By/{custom}", GAUGE, "custom_metric_bytes"),
    ("requests_total", "", COUNTER, "requests_total"),
    ("cpu_usage_ratio", "1", GAUGE, "cpu_usage_ratio"),
    ("response_time_seconds", "s", GAUGE, "response_time_seconds"),
    ("123_requests", "", COUNTER, "_123_requests_total"),
    (
        "metric__with__multiple__underscores",
        "unit__multiple__underscores",
        GAUGE,
        "metric_with_multiple_underscores_unit_multiple_underscores",
    ),
    ("custom_metric", "unit@with#special/chars", GAUGE, "custom_metric_unit_with_special_per_chars"),
    ("request_duration", "s", HISTOGRAM, "request_duration_seconds"),
    ("http.server.duration", "s", HISTOGRAM, "http_server_duration_seconds"),
    ("uptime", "d", GAUGE, "uptime_days"),
    ("ratio.of.things", "1", HISTOGRAM, "ratio_of_things"),
]


@pytest.mark.parametrize(("name", "unit", "kind", "expected"), NAMER_CASES)
def test_metric_names_follow_otlptranslator(name: str, unit: str, kind: str, expected: str) -> None:
    assert metric_name(name, unit, kind) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, "0.0"),
        (1.0, "1.0"),
        (0.01, "0.01"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1024.0, "1024.0"),
        (262144.0, "262144.0"),
        (1048576.0, "1.048576e+06"),
        (67108864.0, "6.7108864e+07"),
        (81.92, "81.92"),
        (-0.5, "-0.5"),
        (123456.789, "123456.789"),
        (1234567.5, "1.2345675e+06"),
        (math.inf, "+Inf"),
    ],
)
def test_numbers_are_written_as_client_golang_writes_them(value: float, expected: str) -> None:
    """``le`` label values depend on it (``le="1.048576e+06"``), as does prometheus_client's
    ``floatToGoString``, which imitates the same Go formatting."""
    from prometheus_client.utils import floatToGoString

    assert _number(value) == expected
    assert floatToGoString(value) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http.method", "http_method"),
        ("gen_ai.request.model", "gen_ai_request_model"),
        ("error.type", "error_type"),
        ("bedrock_tokens.cache.type", "bedrock_tokens_cache_type"),
        ("123invalid", "key_123invalid"),
        ("_private", "key_private"),
        ("__reserved__", "__reserved__"),
        ("label-with-dash", "label_with_dash"),
    ],
)
def test_label_names_follow_otlptranslator(key: str, expected: str) -> None:
    assert label_name(key) == expected


def test_every_instrument_has_its_documented_collector_name() -> None:
    """A new or renamed instrument must be added to the dashboard's README table (and this one)."""
    definitions = instrument_definitions()
    assert set(definitions) == set(COLLECTOR_NAMES)
    for name, (unit, kind) in definitions.items():
        assert metric_name(name, unit, kind) == COLLECTOR_NAMES[name], name


def test_exposition_is_valid_openmetrics_with_exemplars() -> None:
    """What the stand-in serves parses with prometheus_client's strict OpenMetrics parser, with the
    collector's labels (job, instance, scope) and trace-linked exemplars on the right buckets."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    resource = Resource.create({"service.name": "svc", "service.instance.id": "i-1", "team": "ml"})
    reader = InMemoryMetricReader()
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    tracer = TracerProvider(resource=resource).get_tracer("test")
    meter = meters.get_meter("scope.one", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.37.0")
    duration = meter.create_histogram(
        "gen_ai.client.operation.duration", unit="s", explicit_bucket_boundaries_advisory=(0.1, 1.0)
    )
    counter = meter.create_counter("x.outcomes", unit="{prediction}", description='say "hi"')
    with tracer.start_as_current_span("call") as span:
        duration.record(0.5, {"gen_ai.request.model": "m:1", "server.port": 443})
        counter.add(2, {"status": "ok"})
    duration.record(5.0, {"gen_ai.request.model": "m:1", "server.port": 443})  # no span: no exemplar
    state = PrometheusExporterState()
    state.ingest(encode_metrics(reader.get_metrics_data()))
    text = state.render()
    meters.shutdown()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert set(families) == {"target_info", "gen_ai_client_operation_duration_seconds", "x_outcomes"}
    (target,) = families["target_info"].samples
    assert target.labels["job"] == "svc" and target.labels["instance"] == "i-1"
    assert target.labels["team"] == "ml" and "service_name" not in target.labels
    trace_id = format(span.get_span_context().trace_id, "032x")
    buckets = {
        s.labels["le"]: s
        for s in families["gen_ai_client_operation_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert [buckets[le].value for le in ("0.1", "1.0", "+Inf")] == [0, 1, 2]
    assert buckets["1.0"].exemplar is not None and buckets["1.0"].exemplar.labels["trace_id"] == trace_id
    assert buckets["+Inf"].exemplar is None and buckets["0.1"].exemplar is None
    sample = buckets["1.0"]
    assert sample.labels["gen_ai_request_model"] == "m:1" and sample.labels["server_port"] == "443"
    assert sample.labels["otel_scope_name"] == "scope.one" and sample.labels["otel_scope_version"] == "1.2.3"
    assert sample.labels["job"] == "svc" and sample.labels["instance"] == "i-1"
    (total,) = families["x_outcomes"].samples
    assert total.name == "x_outcomes_total" and total.value == 2
    assert total.exemplar is not None and total.exemplar.labels["trace_id"] == trace_id
    assert families["x_outcomes"].documentation == 'say "hi"'
    assert trace.get_current_span() is trace.INVALID_SPAN
