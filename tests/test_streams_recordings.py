"""Every recorded stream replayed through real boto3: tokens, finish reasons, one span per call, and
events identical to the uninstrumented run."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

from otel_bedrock_tokens import BedrockTokensInstrumentor

from .conftest import Telemetry, make_telemetry
from .replay import Interaction, Replayer, all_recordings, call_recorded, load

STREAM_OPERATIONS = ("InvokeModelWithResponseStream", "ConverseStream")
STREAM_RECORDINGS = [p for p in all_recordings() if load(p)[0].operation in STREAM_OPERATIONS]


def stream_key(interaction: Interaction) -> str:
    return "body" if interaction.operation == "InvokeModelWithResponseStream" else "stream"


def recorded_truth(interaction: Interaction) -> dict[str, Any]:
    """Tokens and finish reason as the recording states them (decoded here, not by our parsers)."""
    buffer = EventStreamBuffer()
    buffer.add_data(interaction.body)
    truth: dict[str, Any] = {"input": None, "output": None, "finish": None}
    for message in buffer:
        payload = json.loads(message.payload)
        if interaction.operation == "ConverseStream":
            if "usage" in payload:
                usage = payload["usage"]
                truth["input"] = (
                    usage["inputTokens"]
                    + usage.get("cacheReadInputTokens", 0)
                    + usage.get("cacheWriteInputTokens", 0)
                )
                truth["output"] = usage["outputTokens"]
            if "stopReason" in payload:
                truth["finish"] = (payload["stopReason"],)
            continue
        chunk = json.loads(base64.b64decode(payload["bytes"]))
        metrics = chunk.get("amazon-bedrock-invocationMetrics")
        if metrics is not None:
            truth["input"] = (
                metrics["inputTokenCount"]
                + metrics.get("cacheReadInputTokenCount", 0)
                + metrics.get("cacheWriteInputTokenCount", 0)
            )
            truth["output"] = metrics["outputTokenCount"]
        elif truth["input"] is None and "totalOutputTextTokenCount" in chunk:
            # A guardrail-blocked Titan stream ends without invocation metrics: its chunk counts.
            truth["input"] = int(chunk["inputTextTokenCount"])
            truth["output"] = int(chunk["totalOutputTextTokenCount"])
        reason = (
            chunk.get("completionReason")
            or (chunk.get("delta") or {}).get("stop_reason")
            or (chunk.get("messageStop") or {}).get("stopReason")
        )
        if reason:
            truth["finish"] = (reason,)
    return truth


def consume(replayer: Replayer, interactions: list[Interaction]) -> list[Any]:
    """Make every recorded call and read each stream to the end; return what the caller saw."""
    replayer.serve(*interactions)
    seen: list[Any] = []
    for interaction in interactions:
        try:
            response = call_recorded(replayer.client, interaction)
        except ClientError as error:
            seen.append(("error", error.response["Error"]["Code"]))
            continue
        seen.append([event for event in response[stream_key(interaction)]])
    return seen


@pytest.mark.parametrize("path", STREAM_RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recorded_stream_tokens_match_the_recording(
    path: Path, instrumented: Telemetry, replayer: Replayer
) -> None:
    interactions = load(path)
    consume(replayer, interactions)
    spans = instrumented.spans()
    assert len(spans) == len(interactions)
    for span, interaction in zip(spans, interactions, strict=True):
        if interaction.status != 200:
            assert span.attributes["error.type"] == interaction.header("x-amzn-ErrorType").split(":")[0]
            assert "gen_ai.usage.input_tokens" not in span.attributes
            continue
        truth = recorded_truth(interaction)
        assert span.attributes.get("gen_ai.usage.input_tokens") == truth["input"]
        assert span.attributes.get("gen_ai.usage.output_tokens") == truth["output"]
        assert span.attributes.get("gen_ai.response.finish_reasons") == truth["finish"]
        assert "error.type" not in span.attributes


@pytest.mark.parametrize("path", STREAM_RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recorded_stream_events_are_identical_to_uninstrumented(path: Path, replayer: Replayer) -> None:
    interactions = load(path)
    plain = consume(replayer, interactions)
    telemetry = make_telemetry()
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        measured = consume(replayer, interactions)
    finally:
        instrumentor.uninstrument()
    assert measured == plain
    assert len(telemetry.spans()) == len(interactions)
