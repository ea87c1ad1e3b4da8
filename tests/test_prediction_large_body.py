"""A request body over ``count_tokens_max_body_bytes`` is not predicted: skipped with
``skip_reason=too_large``, without copying, hashing or sending it again (issue 13, item 9). Below
the limit nothing changes; 0 lifts the limit."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.count_tokens_input import request_size
from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.settings import SettingError

from .support.child_emulator import child_emulator, client_for
from .support.telemetry import TelemetryCapture

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
LIMIT = 1_000_000  # the default
#: Twenty limits: big enough that one copy of it stands out from everything else a call allocates.
BIG = 20 * LIMIT


def claude_body(size: int) -> bytes:
    """An Anthropic messages body of about ``size`` bytes."""
    text = "token " * (size // 6)
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": text}],
    }
    return json.dumps(body).encode()


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def prediction_of(telemetry: TelemetryCapture) -> dict[str, Any]:
    (span,) = telemetry.spans()
    return {
        key: value for key, value in span.attributes.items() if key.startswith("bedrock_tokens.prediction.")
    }


@pytest.mark.parametrize("mode", ["parallel", "before"])
def test_a_body_over_the_limit_is_skipped_as_too_large(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any, mode: str
) -> None:
    instrumentor = make_instrumentor(count_tokens=mode)
    body = claude_body(2 * LIMIT)
    response = emulator.client().invoke_model(modelId=MODEL, body=body)
    assert json.loads(response["body"].read())["usage"]["input_tokens"] > 0  # the call itself is untouched
    assert instrumentor.wait_for_predictions(10)
    assert prediction_of(telemetry) == {
        "bedrock_tokens.prediction.status": "skipped",
        "bedrock_tokens.prediction.skip_reason": "too_large",
    }
    assert emulator.ledger.totals()[MODEL].count_tokens_calls == 0


def test_a_converse_request_over_the_limit_is_skipped_as_too_large(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    make_instrumentor(count_tokens="before")
    document = {"document": {"format": "txt", "name": "big", "source": {"bytes": b"x" * (2 * LIMIT)}}}
    emulator.client().converse(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "read this"}, document]}]
    )
    assert prediction_of(telemetry)["bedrock_tokens.prediction.skip_reason"] == "too_large"
    assert emulator.ledger.totals()[MODEL].count_tokens_calls == 0


def test_a_body_under_the_limit_is_predicted(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    make_instrumentor(count_tokens="before")
    emulator.client().invoke_model(modelId=MODEL, body=claude_body(LIMIT // 2))
    assert prediction_of(telemetry)["bedrock_tokens.prediction.status"] == "ok"


def test_zero_lifts_the_limit(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    make_instrumentor(count_tokens="before", count_tokens_max_body_bytes=0)
    emulator.client().invoke_model(modelId=MODEL, body=claude_body(2 * LIMIT))
    assert prediction_of(telemetry)["bedrock_tokens.prediction.status"] == "ok"


def test_the_limit_comes_from_the_environment(
    emulator: BedrockEmulator,
    telemetry: TelemetryCapture,
    make_instrumentor: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_BEDROCK_TOKENS_COUNT_TOKENS_MAX_BODY_BYTES", "1000")
    make_instrumentor(count_tokens="before")
    emulator.client().invoke_model(modelId=MODEL, body=claude_body(2000))
    assert prediction_of(telemetry)["bedrock_tokens.prediction.skip_reason"] == "too_large"


def test_a_bad_limit_names_the_setting() -> None:
    with pytest.raises(SettingError, match="count_tokens_max_body_bytes"):
        BedrockTokensInstrumentor().instrument(count_tokens="parallel", count_tokens_max_body_bytes=-1)


def peak_during(instrumentor: BedrockTokensInstrumentor, client: Any, body: Any) -> int:
    """Peak traced memory of the process (every thread) during one call and its prediction."""
    tracemalloc.start()
    try:
        client.invoke_model(modelId=MODEL, body=body)["body"].read()
        assert instrumentor.wait_for_predictions(30)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def remote_emulator() -> Iterator[str]:
    """One emulator in a child process for the memory tests: its parsing of 20 MB bodies is then
    neither in this process's peak nor slowed by tracemalloc (it was about 15 s a test in-process)."""
    with child_emulator() as url:
        yield url


@pytest.mark.parametrize("mode", ["parallel", "before"])
@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_a_large_body_costs_no_extra_copy(
    remote_emulator: str, make_instrumentor: Any, mode: str, kind: type
) -> None:
    """Memory the call takes with prediction on, against the same call with it off: less than
    half a body more (a copy, a base64 of it for CountTokens, would be one body or more)."""
    client = client_for(remote_emulator)
    body = kind(claude_body(BIG))
    instrumentor = make_instrumentor(count_tokens="off")
    client.invoke_model(modelId=MODEL, body=body)["body"].read()  # warm: the connection, the models
    without = peak_during(instrumentor, client, body)
    instrumentor.uninstrument()
    instrumentor = make_instrumentor(count_tokens=mode)
    with_prediction = peak_during(instrumentor, client, body)
    assert with_prediction - without < BIG // 2, (with_prediction, without)


LEAVES = st.one_of(st.text(max_size=20), st.binary(max_size=20), st.integers(), st.booleans(), st.none())
TREES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=30,
)


def reference_size(item: Any) -> int:
    if isinstance(item, (str, bytes)):
        return len(item)
    if isinstance(item, dict):
        return sum(reference_size(value) for value in item.values())
    if isinstance(item, list):
        return sum(reference_size(value) for value in item)
    return 0


@given(st.dictionaries(st.sampled_from(["messages", "system", "toolConfig", "modelId"]), TREES))
def test_converse_size_is_the_text_and_bytes_in_the_counted_fields(params: dict[str, Any]) -> None:
    counted = {key: value for key, value in params.items() if key != "modelId"}
    assert request_size("Converse", params, 1 << 40) == reference_size(counted)


@given(st.dictionaries(st.sampled_from(["messages", "system"]), TREES), st.integers(0, 50))
def test_converse_size_says_over_exactly_when_it_is(params: dict[str, Any], limit: int) -> None:
    """It may stop counting early, but only once it is past the limit."""
    assert (request_size("Converse", params, limit) > limit) == (reference_size(params) > limit)
