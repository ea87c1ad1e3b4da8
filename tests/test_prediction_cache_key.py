"""The prediction cache is keyed by the whole count-model id plus the request: two models never
share a cached prediction, however long a prefix their ids share (issue 13, item 2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens import BedrockTokensInstrumentor, TokenBudgetExceeded
from otel_bedrock_tokens.count_cache import cache_key
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.telemetry import TelemetryCapture

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET = "anthropic.claude-sonnet-4-20250514-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "the same request to two models"}]}]
DRIFT = 100


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        running.set_drift(SONNET, offset=DRIFT)
        yield running


def instrumented(telemetry: TelemetryCapture, **settings: Any) -> BedrockTokensInstrumentor:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **settings
    )
    return instrumentor


def test_a_model_never_gets_another_models_cached_prediction(
    emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    client = emulator.client()
    instrumentor = instrumented(telemetry, count_tokens="before")
    try:
        client.converse(modelId=HAIKU, messages=MESSAGES)
        client.converse(modelId=SONNET, messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    haiku, sonnet = (dict(span.attributes) for span in telemetry.spans())
    assert sonnet["bedrock_tokens.prediction.source"] == "count_tokens"
    assert sonnet["bedrock_tokens.prediction.input_tokens"] == (
        haiku["bedrock_tokens.prediction.input_tokens"] + DRIFT
    )


def test_budget_guard_is_not_bypassed_by_another_models_prediction(
    emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    """The budget sits between the two models' counts: Haiku is sent, Sonnet 4 is refused."""
    client = emulator.client()
    haiku_count = client.count_tokens(modelId=HAIKU, input={"converse": {"messages": MESSAGES}})[
        "inputTokens"
    ]
    instrumentor = instrumented(telemetry, count_tokens="before", max_input_tokens=haiku_count + DRIFT // 2)
    try:
        client.converse(modelId=HAIKU, messages=MESSAGES)
        with pytest.raises(TokenBudgetExceeded):
            client.converse(modelId=SONNET, messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert SONNET not in {model for model, totals in emulator.ledger.totals().items() if totals.calls}


MODEL_IDS = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=80)
PREFIXED = st.tuples(st.text(min_size=16, max_size=40), MODEL_IDS, MODEL_IDS).map(
    lambda parts: (parts[0] + parts[1], parts[0] + parts[2])
)


@given(st.one_of(st.tuples(MODEL_IDS, MODEL_IDS), PREFIXED), st.binary(max_size=64))
def test_two_model_ids_never_share_a_cache_key(models: tuple[str, str], body: bytes) -> None:
    first, second = models
    if first == second:
        return
    assert cache_key(first, {"invokeModel": {"body": body}}) != cache_key(
        second, {"invokeModel": {"body": body}}
    )
    converse = {"converse": {"messages": MESSAGES}}
    assert cache_key(first, converse) != cache_key(second, converse)


@given(MODEL_IDS, st.binary(max_size=32), st.binary(max_size=32))
def test_the_model_id_and_the_body_cannot_trade_bytes(model: str, tail: bytes, body: bytes) -> None:
    """``model + tail`` with ``body`` is not ``model`` with ``tail + body``: the id is length-prefixed."""
    if not tail:
        return
    try:
        longer = model + tail.decode()
    except UnicodeDecodeError:
        return
    assert cache_key(longer, {"invokeModel": {"body": body}}) != cache_key(
        model, {"invokeModel": {"body": tail + body}}
    )
