"""Stream faults from the emulator: the span ends once with error.type, the caller meets exactly the
exception it would have met without us, and the usage that arrived is kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

from .support.telemetry import TelemetryCapture

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
BODY = (
    '{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,'
    ' "messages": [{"role": "user", "content": "stream this please"}]}'
)
MESSAGE_ID = re.compile(rb'"id":"[^"]*"')
MESSAGES = [{"role": "user", "content": [{"text": "stream this please"}]}]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def invoke_stream(client: Any) -> Any:
    return client.invoke_model_with_response_stream(modelId=MODEL, body=BODY)["body"]


def converse_stream(client: Any) -> Any:
    return client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]


STREAMS = {"invoke": invoke_stream, "converse": converse_stream}


def consume(stream: Any) -> tuple[list[Any], BaseException | None]:
    events: list[Any] = []
    try:
        for event in stream:
            events.append(event)
    except Exception as error:
        return events, error
    return events, None


def run_both(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, fault: Fault, kind: str
) -> tuple[Any, Any]:
    """The same faulty stream uninstrumented, then instrumented: what the caller saw, twice."""
    client = emulator.client()
    emulator.inject(fault)
    plain = consume(STREAMS[kind](client))
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        emulator.inject(fault)
        measured = consume(STREAMS[kind](client))
    finally:
        instrumentor.uninstrument()
    return plain, measured


def without_ids(events: list[Any]) -> list[Any]:
    """Events with the per-call message id blanked (the emulator mints a new one per call)."""
    return [
        {"chunk": {"bytes": MESSAGE_ID.sub(b'"id":"-"', event["chunk"]["bytes"])}}
        if "chunk" in event
        else event
        for event in events
    ]


def same_outcome(plain: Any, measured: Any) -> None:
    (plain_events, plain_error), (events, error) = plain, measured
    assert without_ids(events) == without_ids(plain_events)
    assert type(error) is type(plain_error)
    assert str(error) == str(plain_error)


@pytest.mark.parametrize("kind", sorted(STREAMS))
@pytest.mark.parametrize("code", ["modelStreamErrorException", "throttlingException"])
def test_mid_stream_exception_frame(
    kind: str, code: str, emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    plain, measured = run_both(emulator, telemetry, Fault.stream_exception(after_events=3, code=code), kind)
    same_outcome(plain, measured)
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == code
    assert span.attributes["bedrock_tokens.stream.end"] == "error"
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True
    assert span.attributes["bedrock_tokens.stream.events"] == 3
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == code


@pytest.mark.parametrize("kind", sorted(STREAMS))
def test_truncated_stream_is_incomplete_without_error(
    kind: str, emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    plain, measured = run_both(
        emulator, telemetry, Fault.truncated_stream(after_events=4, mid_frame=True), kind
    )
    same_outcome(plain, measured)
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True
    assert span.attributes["bedrock_tokens.stream.end"] == "completed"
    assert "gen_ai.usage.output_tokens" not in span.attributes


@pytest.mark.parametrize("kind", sorted(STREAMS))
def test_connection_reset_mid_stream(
    kind: str, emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    plain, measured = run_both(emulator, telemetry, Fault.connection_reset(after_bytes=400), kind)
    same_outcome(plain, measured)
    (span,) = telemetry.spans()
    error = measured[1]
    if error is None:  # the reset fell between frames botocore had already read: a clean end
        assert span.attributes["bedrock_tokens.stream.incomplete"] is True
    else:
        assert span.attributes["error.type"] == f"{type(error).__module__}.{type(error).__qualname__}"


def test_slow_first_byte_shows_in_time_to_first_chunk(
    emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        emulator.inject(Fault.slow_first_byte(0.3), operation="ConverseStream")
        events, error = consume(converse_stream(emulator.client()))
    finally:
        instrumentor.uninstrument()
    assert error is None and events
    (first,) = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    assert first.sum >= 0.3
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.sum >= first.sum


def test_stream_tokens_equal_the_ledger(emulator: BedrockEmulator, instrumented: TelemetryCapture) -> None:
    client = emulator.client()
    for _ in range(3):
        consume(invoke_stream(client))
        consume(converse_stream(client))
    totals = emulator.ledger.totals()[MODEL]
    assert instrumented.histogram_sum("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"}) == (
        totals.total_input_tokens
    )
    assert instrumented.histogram_sum("gen_ai.client.token.usage", **{"gen_ai.token.type": "output"}) == (
        totals.output_tokens
    )
    assert len(instrumented.spans()) == totals.calls == 6
