"""What the collector receives: examples/collector/app.py runs under ``opentelemetry-instrument`` (as in
docker-compose.yaml) against the Bedrock emulator, and the real OTLP/HTTP exporters send its spans and
metrics to a loopback receiver that decodes them with ``opentelemetry-proto``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otel_bedrock_tokens import names, telemetry
from otel_bedrock_tokens.version import __version__

from .support.collector import (
    COLLECTOR_NAMES,
    COUNTER,
    EXAMPLE,
    HISTOGRAM,
    CollectorStandIn,
    ReceivedSpan,
    attributes_dict,
    instrument_definitions,
    load_app,
)

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
SCOPE = "otel_bedrock_tokens.telemetry"
INSTANCE = "otlp-test-1"

BUCKETS = {
    "gen_ai.client.token.usage": telemetry.TOKEN_BUCKETS,
    "gen_ai.client.operation.duration": telemetry.DURATION_BUCKETS,
    "gen_ai.client.operation.time_to_first_chunk": telemetry.DURATION_BUCKETS,
    "gen_ai.client.operation.time_per_output_chunk": telemetry.DURATION_BUCKETS,
    names.CACHE_TOKEN_USAGE: telemetry.TOKEN_BUCKETS,
    names.PREDICTION_TOKENS: telemetry.TOKEN_BUCKETS,
    names.PREDICTION_ERROR: telemetry.PREDICTION_ERROR_BUCKETS,
}


@dataclass
class Run:
    stand_in: CollectorStandIn
    summary: dict[str, Any]
    stderr: str

    @property
    def spans(self) -> list[ReceivedSpan]:
        return self.stand_in.received.spans

    def ours(self) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.scope_name == SCOPE]

    def points(self) -> dict[str, list[tuple[metrics_pb2.Metric, Any]]]:
        """Metric name -> (metric, point), the last export of each series."""
        latest: dict[tuple[str, tuple[Any, ...]], tuple[metrics_pb2.Metric, Any]] = {}
        for request in self.stand_in.received.metric_requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    if scope_metrics.scope.name != SCOPE:
                        continue
                    for metric in scope_metrics.metrics:
                        data = getattr(metric, metric.WhichOneof("data"))
                        for point in data.data_points:
                            key = tuple(sorted(attributes_dict(point.attributes).items()))
                            latest[(metric.name, key)] = (metric, point)
        by_name: dict[str, list[tuple[metrics_pb2.Metric, Any]]] = defaultdict(list)
        for (name, _), item in latest.items():
            by_name[name].append(item)
        return by_name


@pytest.fixture(scope="module")
def run() -> Any:
    app = load_app()
    with CollectorStandIn() as stand_in:
        env = {
            key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "AWS_", "APP_"))
        }
        env.update(
            OTEL_SERVICE_NAME=app.SERVICE_NAME,
            OTEL_RESOURCE_ATTRIBUTES=f"service.instance.id={INSTANCE},deployment.environment.name=test",
            OTEL_EXPORTER_OTLP_ENDPOINT=stand_in.otlp_endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_LOGS_EXPORTER="none",
            OTEL_METRIC_EXPORT_INTERVAL="600000",  # one export, when the app flushes at the end
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="botocore,aiobotocore",
            OTEL_BEDROCK_TOKENS_COUNT_TOKENS="parallel",
            AWS_EC2_METADATA_DISABLED="true",
        )
        result = subprocess.run(
            [
                str(INSTRUMENT),
                sys.executable,
                str(EXAMPLE / "app.py"),
                "--rounds",
                "1",
                "--pause",
                "0",
                "--json",
            ],
            env=env,
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        yield Run(stand_in, summary, result.stderr)


def ledger_models(run: Run) -> dict[str, dict[str, Any]]:
    """Per model id, the emulator's totals of inference calls (CountTokens-only entries left out)."""
    return {
        model: totals
        for model, totals in run.summary["ledger"]["models"].items()
        if totals["calls"] or totals["errors"]
    }


def test_the_app_exports_protobuf_over_http(run: Run) -> None:
    received = run.stand_in.received
    assert received.content_types == {"application/x-protobuf"}
    assert received.metric_requests and received.spans
    assert "not instrumented" not in run.stderr
    assert run.summary["errors"] == {"ThrottlingException": 1, "modelStreamErrorException": 1}


def test_spans_carry_the_genai_attributes(run: Run) -> None:
    ours = run.ours()
    app = load_app()
    assert len(ours) == run.summary["calls"] == len(app.emulator_steps())
    app_spans = {span.span.span_id: span for span in run.spans if span.scope_name != SCOPE}
    for received in ours:
        span, attributes = received.span, received.attributes
        assert received.resource["service.name"] == app.SERVICE_NAME
        assert received.resource["service.instance.id"] == INSTANCE
        assert span.kind == trace_pb2.Span.SPAN_KIND_CLIENT
        assert span.name == f"{attributes['gen_ai.operation.name']} {attributes['gen_ai.request.model']}"
        assert attributes["gen_ai.provider.name"] == "aws.bedrock"
        assert attributes["gen_ai.operation.name"] in {"chat", "text_completion", "embeddings"}
        assert attributes["server.address"] == "127.0.0.1" and isinstance(attributes["server.port"], int)
        assert "gen_ai.system" not in attributes
        parent = app_spans[span.parent_span_id]  # each call runs inside an application span
        assert parent.span.trace_id == span.trace_id and parent.span.name == "handle question"
        if "error.type" in attributes:
            assert span.status.code == trace_pb2.Status.STATUS_CODE_ERROR
        else:
            assert isinstance(attributes["gen_ai.usage.input_tokens"], int)
            if attributes["gen_ai.operation.name"] != "embeddings":
                assert isinstance(attributes["gen_ai.usage.output_tokens"], int)
    # Typed on the wire: ints stay ints, finish reasons an array of strings.
    values = {item.key: item.value for received in ours for item in received.span.attributes}
    assert values["gen_ai.usage.input_tokens"].WhichOneof("value") == "int_value"
    assert values["server.port"].WhichOneof("value") == "int_value"
    reasons = values["gen_ai.response.finish_reasons"]
    assert reasons.WhichOneof("value") == "array_value"
    assert all(item.WhichOneof("value") == "string_value" for item in reasons.array_value.values)


def test_span_tokens_and_errors_match_the_ledger(run: Run) -> None:
    tokens: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    errors: dict[str, int] = defaultdict(int)
    for received in run.ours():
        attributes = received.attributes
        model = attributes["gen_ai.request.model"]
        if "error.type" in attributes:
            errors[attributes["error.type"]] += 1
            continue
        tokens[model]["input"] += attributes.get("gen_ai.usage.input_tokens", 0)
        tokens[model]["output"] += attributes.get("gen_ai.usage.output_tokens", 0)
        tokens[model]["cache_read"] += attributes.get("gen_ai.usage.cache_read.input_tokens", 0)
        tokens[model]["cache_write"] += attributes.get("gen_ai.usage.cache_creation.input_tokens", 0)
    for model, totals in ledger_models(run).items():
        assert tokens[model]["input"] == totals["total_input_tokens"], model
        assert tokens[model]["output"] == totals["output_tokens"], model
        assert tokens[model]["cache_read"] == totals["cache_read_tokens"], model
        assert tokens[model]["cache_write"] == totals["cache_write_tokens"], model
    assert dict(errors) == run.summary["errors"]
    assert sum(t["cache_read"] for t in tokens.values()) > 0, "the workload reads the prompt cache"
    predicted = [r.attributes for r in run.ours() if names.PREDICTED_INPUT_TOKENS in r.attributes]
    assert predicted, "count_tokens=parallel puts predictions on spans"


def test_metrics_have_the_documented_names_units_buckets_and_attributes(run: Run) -> None:
    definitions = instrument_definitions()
    points = run.points()
    assert set(points) == set(definitions) == set(COLLECTOR_NAMES), "the workload exercises every instrument"
    common = {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "server.address",
        "server.port",
    }
    for name, items in points.items():
        unit, kind = definitions[name]
        for metric, point in items:
            assert metric.unit == unit, name
            attributes = attributes_dict(point.attributes)
            assert common <= set(attributes), name
            if kind == HISTOGRAM:
                assert metric.WhichOneof("data") == "histogram", name
                assert (
                    metric.histogram.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
                )
                assert tuple(point.explicit_bounds) == tuple(float(b) for b in BUCKETS[name]), name
            else:
                assert kind == COUNTER and metric.WhichOneof("data") == "sum", name
                assert metric.sum.is_monotonic
                assert metric.sum.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    kinds = {
        "gen_ai.client.token.usage": ("gen_ai.token.type", {"input", "output"}),
        names.CACHE_TOKEN_USAGE: (names.CACHE_TYPE, {"read", "write"}),
        names.PREDICTION_TOKENS: (names.PREDICTION_KIND, {"predicted", "actual"}),
    }
    for name, (key, values) in kinds.items():
        assert {attributes_dict(point.attributes)[key] for _, point in points[name]} == values, name
    errors = {
        attributes_dict(point.attributes).get("error.type")
        for _, point in points["gen_ai.client.operation.duration"]
    }
    assert errors == {None, "ThrottlingException", "modelStreamErrorException"}
    for _, point in points["gen_ai.client.token.usage"]:
        assert "error.type" not in attributes_dict(point.attributes), "no tokens for a failed call"


def test_metrics_come_from_our_scope_with_its_version_and_schema(run: Run) -> None:
    scopes = {
        (scope_metrics.scope.name, scope_metrics.scope.version, scope_metrics.schema_url)
        for request in run.stand_in.received.metric_requests
        for resource_metrics in request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        if scope_metrics.scope.name == SCOPE
    }
    assert scopes == {(SCOPE, __version__, telemetry.SCHEMA_URL)}


def test_metric_tokens_match_the_ledger(run: Run) -> None:
    points = run.points()
    seen: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, key in (
        ("gen_ai.client.token.usage", "gen_ai.token.type"),
        (names.CACHE_TOKEN_USAGE, names.CACHE_TYPE),
    ):
        for _, point in points[name]:
            attributes = attributes_dict(point.attributes)
            seen[attributes["gen_ai.request.model"]][attributes[key]] += point.sum
    calls: dict[str, int] = defaultdict(int)
    for _, point in points["gen_ai.client.operation.duration"]:
        calls[attributes_dict(point.attributes)["gen_ai.request.model"]] += point.count
    for model, totals in ledger_models(run).items():
        assert seen[model]["input"] == totals["total_input_tokens"], model
        assert seen[model]["output"] == totals["output_tokens"], model
        assert seen[model]["read"] == totals["cache_read_tokens"], model
        assert seen[model]["write"] == totals["cache_write_tokens"], model
        assert calls[model] == totals["calls"] + totals["errors"], model


def test_exemplars_link_points_to_the_calls_traces(run: Run) -> None:
    """The SDK keeps an exemplar (trace and span id) when a sampled span is current at recording:
    here the application span around each call, whose trace holds the Bedrock span. Exemplars come
    with the export that follows the recording (the SDK starts afresh after each collection)."""
    traces = {span.span.trace_id for span in run.ours()}
    for name in ("gen_ai.client.operation.duration", "gen_ai.client.token.usage"):
        exemplars = [
            exemplar
            for request in run.stand_in.received.metric_requests
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == name
            for point in metric.histogram.data_points
            for exemplar in point.exemplars
        ]
        assert exemplars, name
        assert {exemplar.trace_id for exemplar in exemplars} <= traces, name


def test_the_collector_path_serves_every_instrument_under_its_documented_name(run: Run) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    families = {
        family.name: family for family in text_string_to_metric_families(run.stand_in.exporter.render())
    }
    expected = {family.removesuffix("_total") for family in COLLECTOR_NAMES.values()}
    assert set(families) == expected | {"target_info"}
    (target,) = families["target_info"].samples
    assert target.labels["job"] == load_app().SERVICE_NAME and target.labels["instance"] == INSTANCE
    assert target.labels["deployment_environment_name"] == "test"
