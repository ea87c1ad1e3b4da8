"""``otel-bedrock-tokens demo``: the table it prints is built from telemetry alone, and equals the
emulator's ledger to the token; with OTLP configured, the same telemetry leaves the process."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from otel_bedrock_tokens import BedrockTokensInstrumentor, demo
from otel_bedrock_tokens.emulator import ModelTotals

SCRIPT = Path(sys.executable).parent / "otel-bedrock-tokens"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "otel_bedrock_tokens.cli"]


@pytest.fixture
def no_otlp(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_EXPORTER_OTLP"):
            monkeypatch.delenv(name)


def test_the_table_equals_the_ledger(no_otlp: None) -> None:
    out, err = io.StringIO(), io.StringIO()
    result = demo.run(len(demo.STEPS) * 2, stdout=out, stderr=err, color=False)
    assert result.ok, result.problems
    assert result.calls == len(demo.STEPS) * 2
    assert result.failures == {"ThrottlingException": 1}
    models = {step.model_id for step in demo.STEPS}
    assert set(result.rows) == models
    for model, row in result.rows.items():
        billed = result.ledger[model]
        assert (row.calls, row.errors) == (billed.calls, billed.errors)
        assert row.input_tokens == billed.total_input_tokens
        assert (row.output_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
            billed.output_tokens,
            billed.cache_read_tokens,
            billed.cache_write_tokens,
        )
    # The workload exercises what the demo promises.
    assert sum(row.cache_read_tokens for row in result.rows.values()) > 0
    assert sum(row.cache_write_tokens for row in result.rows.values()) > 0
    assert result.rows[demo.THROTTLED_MODEL].errors == 1
    printed = out.getvalue()
    assert "✓ telemetry matches the emulator's ledger" in printed
    assert "\033[" not in printed
    for model in models:
        assert demo._short(model) in printed
    assert "progress:" in err.getvalue()


def test_predictions_show_the_configured_drift(no_otlp: None) -> None:
    result = demo.run(len(demo.STEPS), stdout=io.StringIO(), stderr=io.StringIO(), show_progress=False)
    row = result.rows[demo.DRIFTING_MODEL]
    if not row.predictions:
        pytest.skip("CountTokens prediction is not enabled in this build")
    assert row.predicted_input > row.predicted_actual  # CountTokens 3% high: actual - predicted < 0


def test_json_output(no_otlp: None) -> None:
    out = io.StringIO()
    result = demo.run(len(demo.STEPS), stdout=out, stderr=io.StringIO(), as_json=True)
    data = json.loads(out.getvalue())
    assert data["ok"] is True and data["problems"] == []
    for model, seen in data["telemetry"].items():
        billed = data["ledger"][model]
        assert seen["input_tokens"] == billed["total_input_tokens"]
        assert seen["output_tokens"] == billed["output_tokens"]
        assert seen["calls"] == billed["calls"]
    assert result.ok


def test_compare_names_every_difference() -> None:
    row = demo.Row("m", calls=2, input_tokens=10, output_tokens=5, cache_read_tokens=2)
    billed = ModelTotals(calls=2, input_tokens=8, cache_read_tokens=2, output_tokens=6)
    assert demo.compare({"m": row}, {"m": billed}) == ["m: output tokens: telemetry 5 != billed 6"]
    assert demo.compare({}, {"m": billed})[0] == "m: calls: telemetry 0 != billed 2"
    assert (
        demo.compare(
            {"m": row}, {"m": ModelTotals(calls=2, input_tokens=8, output_tokens=5, cache_read_tokens=2)}
        )
        == []
    )


def test_compare_names_a_cost_difference() -> None:
    row = demo.Row("m", calls=1, input_tokens=10, output_tokens=5, cost_usd=0.25, priced=True)
    billed = ModelTotals(calls=1, input_tokens=10, output_tokens=5)
    assert demo.compare({"m": row}, {"m": billed}, {"m": 0.25}) == []
    assert demo.compare({"m": row}, {"m": billed}, {"m": 0.5}) == [
        "m: cost: telemetry 0.250000000 USD != billed 0.500000000 USD"
    ]


@pytest.mark.skipif(importlib.util.find_spec("genai_prices") is None, reason="genai-prices not installed")
def test_the_cost_column_equals_the_ledger_priced_alike(no_otlp: None) -> None:
    out = io.StringIO()
    result = demo.run(len(demo.STEPS), stdout=out, stderr=io.StringIO(), show_progress=False, color=False)
    assert result.ok, result.problems
    assert result.ledger_costs is not None
    priced = {model: row.cost_usd for model, row in result.rows.items() if row.priced}
    assert priced.keys() == {model for model, usd in result.ledger_costs.items() if usd > 0}
    for model, usd in priced.items():
        assert usd == pytest.approx(result.ledger_costs[model], rel=1e-9)
    total = sum(priced.values())
    assert total > 0
    assert f"{total:.6f}" in out.getvalue().split("TOTAL", 1)[1]


def test_the_check_says_when_points_passed_the_cardinality_limit() -> None:
    """Past the SDK's cardinality limit the overflow point has no model: the demo says so (and by how
    many tokens) instead of showing a silently short table."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import View
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_bedrock_tokens.emulator import BedrockEmulator

    reader = InMemoryMetricReader()
    tight = View(meter_name="otel_bedrock_tokens.telemetry", aggregation_cardinality_limit=4)
    telemetry = demo.DemoProviders(
        TracerProvider(),
        MeterProvider(metric_readers=[reader], views=[tight]),
        reader,
        InMemorySpanExporter(),
        None,
    )
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(meter_provider=telemetry.meter_provider)
    try:
        with BedrockEmulator() as emulator:
            client = emulator.client(retries=0)
            for number in range(4):  # 8 token attribute sets: 4 kept, the rest overflow
                model = f"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/t{number}"
                client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "hi"}]}])
            ledger = emulator.ledger.totals()
    finally:
        instrumentor.uninstrument()
    rows = telemetry.rows()
    billed = sum(totals.total_input_tokens + totals.output_tokens for totals in ledger.values())
    shown = sum(row.input_tokens + row.output_tokens for row in rows.values())
    assert shown + telemetry.overflow_tokens == billed and telemetry.overflow_tokens > 0
    (problem,) = demo.overflow_problems(telemetry)
    assert "gen_ai.client.token.usage" in problem and "otel.metric.overflow=true" in problem
    assert f"{telemetry.overflow_tokens:,} tokens" in problem


def test_refuses_to_run_when_botocore_is_already_instrumented(no_otlp: None) -> None:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument()
    try:
        with pytest.raises(demo.DemoError):
            demo.run(1, stdout=io.StringIO(), stderr=io.StringIO())
    finally:
        instrumentor.uninstrument()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_off() -> None:
    tty = _Tty()
    progress = demo.Progress(4, tty)
    for done in range(1, 5):
        progress.update(done, "Converse x")
    progress.close()
    assert tty.getvalue().count("\r") == 4 and "[##############################]    4/4" in tty.getvalue()
    plain = io.StringIO()
    progress = demo.Progress(100, plain)
    for done in range(1, 101):
        progress.update(done, "x")
    assert plain.getvalue().count("progress:") == 5  # first call and every quarter
    silent = io.StringIO()
    demo.Progress(3, silent, enabled=False).update(1, "x")
    assert silent.getvalue() == ""


# --- OTLP -----------------------------------------------------------------------------------------


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_exports_over_otlp_when_configured(
    monkeypatch: pytest.MonkeyPatch, collector: tuple[str, list[tuple[str, bytes]]]
) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    out = io.StringIO()
    result = demo.run(len(demo.STEPS), stdout=out, stderr=io.StringIO(), show_progress=False)
    assert result.ok and f"exported over OTLP/HTTP to {endpoint}" in out.getvalue()
    paths = {path for path, _ in received}
    assert paths == {"/v1/metrics", "/v1/traces"}
    spans = 0
    input_tokens = 0
    for path, body in received:
        if path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            spans += sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
            continue
        metrics = ExportMetricsServiceRequest.FromString(body)
        for resource_metrics in metrics.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "gen_ai.client.token.usage":
                        continue
                    for point in metric.histogram.data_points:
                        attributes = {a.key: a.value.string_value for a in point.attributes}
                        if attributes.get("gen_ai.token.type") == "input":
                            input_tokens += int(point.sum)
    assert spans >= result.calls
    assert input_tokens == sum(totals.total_input_tokens for totals in result.ledger.values())


# --- as a user runs it ----------------------------------------------------------------------------


def test_the_demo_command() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_"))}
    started = time.perf_counter()
    result = subprocess.run(
        [*COMMAND, "demo", "--calls", "40", "--no-color"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ telemetry matches the emulator's ledger" in result.stdout
    assert "TOTAL" in result.stdout and "\033[" not in result.stdout
    assert elapsed < 30
