"""The two bugs the sync and asyncio copies of the call lifecycle drifted into (issue 14), on every
transport: a span processor that raises while the budget guard refuses must not let the refused
request through, and a failing activation must neither leave the span open nor break the call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_bedrock_tokens import TokenBudgetExceeded
from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.telemetry import Call

from .support.telemetry import TelemetryCapture

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "far more than three tokens in this prompt"}]}]
TRANSPORTS = ("botocore", "aiobotocore")


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def converse(transport: str, emulator: BedrockEmulator) -> Any:
    """One Converse call through a real client of ``transport``; returns its result."""
    if transport == "botocore":
        return emulator.client().converse(modelId=MODEL, messages=MESSAGES)
    pytest.importorskip("aiobotocore")
    from .support.aio import aio_client, run

    async def main() -> Any:
        async with aio_client(emulator.endpoint_url) as client:
            return await client.converse(modelId=MODEL, messages=MESSAGES)

    return run(main())


class RaisingOnEnd(SpanProcessor):
    """A broken span processor: every span's end raises out of ``span.end()``."""

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("a span processor failed")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_request_is_not_sent_when_ending_the_span_raises(
    transport: str, emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    telemetry.tracer_provider.add_span_processor(RaisingOnEnd())
    make_instrumentor(count_tokens="before", max_input_tokens=3)
    with pytest.raises(TokenBudgetExceeded):
        converse(transport, emulator)
    assert emulator.ledger.total().by_operation == {"CountTokens": 1}  # the call itself never sent


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_failed_activation_still_ends_the_span_once(
    transport: str,
    emulator: BedrockEmulator,
    telemetry: TelemetryCapture,
    make_instrumentor: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_activate(self: Call) -> None:
        raise RuntimeError("context attach failed")

    monkeypatch.setattr(Call, "activate", broken_activate)
    make_instrumentor()
    result = converse(transport, emulator)
    assert result["stopReason"] == "end_turn"
    (span,) = telemetry.spans()
    assert span.attributes is not None and span.attributes["gen_ai.usage.output_tokens"] > 0
