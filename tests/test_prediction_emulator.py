"""Predicted against actual through real boto3 against the emulator, whose CountTokens predicts
exactly what it then bills unless a drift is configured."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from otel_bedrock_tokens import BedrockTokensInstrumentor, TokenBudgetExceeded
from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

from .support.telemetry import TelemetryCapture

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
SYSTEM = " ".join(["trace span metric token cloud model stream cache"] * 400)  # > cache minimum


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def instrumented(telemetry: TelemetryCapture, **settings: Any) -> BedrockTokensInstrumentor:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **settings
    )
    return instrumentor


def converse(client: Any, text: str, cached: bool = False) -> Any:
    system: list[dict[str, Any]] = [{"text": SYSTEM}]
    if cached:
        system.append({"cachePoint": {"type": "default"}})
    return client.converse(
        modelId=MODEL, system=system, messages=[{"role": "user", "content": [{"text": text}]}]
    )


def spans_by_status(telemetry: TelemetryCapture) -> list[dict[str, Any]]:
    return [dict(span.attributes) for span in telemetry.spans()]


def test_prediction_is_exact_without_drift(emulator: BedrockEmulator, telemetry: TelemetryCapture) -> None:
    instrumentor = instrumented(telemetry, count_tokens="before")
    try:
        converse(emulator.client(), "how many tokens is this")
    finally:
        instrumentor.uninstrument()
    (span,) = spans_by_status(telemetry)
    assert span["bedrock_tokens.prediction.delta"] == 0
    assert span["bedrock_tokens.prediction.input_tokens"] == span["gen_ai.usage.input_tokens"]


def test_prediction_counts_cached_tokens_too(emulator: BedrockEmulator, telemetry: TelemetryCapture) -> None:
    instrumentor = instrumented(telemetry, count_tokens="before", count_tokens_cache_size=0)
    try:
        client = emulator.client()
        converse(client, "first, writes the cache", cached=True)
        converse(client, "second, reads the cache", cached=True)
    finally:
        instrumentor.uninstrument()
    write, read = spans_by_status(telemetry)
    assert write["gen_ai.usage.cache_creation.input_tokens"] > 0
    assert read["gen_ai.usage.cache_read.input_tokens"] > 0
    assert write["bedrock_tokens.prediction.delta"] == read["bedrock_tokens.prediction.delta"] == 0


def test_drift_shows_as_an_exact_delta(emulator: BedrockEmulator, telemetry: TelemetryCapture) -> None:
    emulator.set_drift(MODEL, offset=-7)
    instrumentor = instrumented(telemetry, count_tokens="before")
    try:
        converse(emulator.client(), "drifting prediction")
    finally:
        instrumentor.uninstrument()
    (span,) = spans_by_status(telemetry)
    assert span["bedrock_tokens.prediction.delta"] == 7
    (error,) = telemetry.points("bedrock_tokens.client.prediction.error")
    assert error.attributes["bedrock_tokens.prediction.direction"] == "under"
    assert error.sum == pytest.approx(7 / span["bedrock_tokens.prediction.input_tokens"])


def test_budget_guard_sends_nothing(emulator: BedrockEmulator, telemetry: TelemetryCapture) -> None:
    instrumentor = instrumented(telemetry, count_tokens="before", max_input_tokens=100)
    try:
        with pytest.raises(TokenBudgetExceeded):
            converse(emulator.client(), "far too long for the budget")
    finally:
        instrumentor.uninstrument()
    totals = emulator.ledger.totals()[MODEL]
    assert (totals.calls, totals.count_tokens_calls) == (0, 1)


def test_unsupported_model_is_asked_once(emulator: BedrockEmulator, telemetry: TelemetryCapture) -> None:
    emulator.set_count_tokens_support(MODEL, False)
    instrumentor = instrumented(telemetry, count_tokens="before")
    try:
        client = emulator.client()
        for text in ("one", "two", "three"):
            converse(client, text)
    finally:
        instrumentor.uninstrument()
    totals = emulator.ledger.totals()[MODEL]
    assert totals.calls == 3
    assert totals.count_tokens_calls + totals.count_tokens_errors == 1
    statuses = [span["bedrock_tokens.prediction.status"] for span in spans_by_status(telemetry)]
    assert statuses == ["unsupported"] * 3


def test_parallel_mode_does_not_wait_for_a_slow_count_tokens(
    emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    """Loose check (the benchmark measures it): a 0.5 s CountTokens adds well under 0.5 s."""
    emulator.set_latency(first_byte=0.5, operation="CountTokens")
    instrumentor = instrumented(telemetry, count_tokens="parallel")
    try:
        client = emulator.client()
        converse(client, "warm up the connection pool")
        assert instrumentor.wait_for_predictions(timeout=10)
        started = time.perf_counter()
        converse(client, "measure me")
        elapsed = time.perf_counter() - started
        assert instrumentor.wait_for_predictions(timeout=10)
    finally:
        instrumentor.uninstrument()
    assert elapsed < 0.25
    assert spans_by_status(telemetry)[-1]["bedrock_tokens.prediction.status"] == "late"
    ok = [p for p in telemetry.points("bedrock_tokens.client.prediction.outcomes") if p.value]
    assert sum(p.value for p in ok) == 2


def test_throttled_count_tokens_skips_one_prediction(
    emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    emulator.inject(Fault.throttle(), operation="CountTokens")
    instrumentor = instrumented(telemetry, count_tokens="before")
    try:
        client = emulator.client()
        converse(client, "throttled prediction")
        converse(client, "fine prediction")
    finally:
        instrumentor.uninstrument()
    first, second = spans_by_status(telemetry)
    assert first["bedrock_tokens.prediction.status"] == "throttled"
    assert second["bedrock_tokens.prediction.status"] == "ok"
    assert "error.type" not in first
