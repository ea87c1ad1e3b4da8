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
from otel_bedrock_tokens.facts import ResponseFacts
from otel_bedrock_tokens.families import family_for
from otel_bedrock_tokens.metering import INVOCATION_METRICS
from otel_bedrock_tokens.model_id import parse_model_id

from .support.replay import Interaction, Replayer, all_recordings, call_recorded, load
from .support.telemetry import TelemetryCapture, make_telemetry

STREAM_OPERATIONS = ("InvokeModelWithResponseStream", "ConverseStream")
STREAM_RECORDINGS = [p for p in all_recordings() if load(p)[0].operation in STREAM_OPERATIONS]


def stream_key(interaction: Interaction) -> str:
    return "body" if interaction.operation == "InvokeModelWithResponseStream" else "stream"


def recorded_truth(interaction: Interaction) -> dict[str, Any]:
    """Tokens and finish reason as the recording states them (decoded here, not by our parsers)."""
    buffer = EventStreamBuffer()
    buffer.add_data(interaction.body)
    truth: dict[str, Any] = {"input": None, "output": None, "finish": None}
    intervened = False
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
        if chunk.get("amazon-bedrock-guardrailAction") == "INTERVENED":
            intervened = True
    if intervened:  # a guardrail's intervention is the finish reason, whatever the model said
        truth["finish"] = ("guardrail_intervened",)
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
    path: Path, instrumented: TelemetryCapture, replayer: Replayer
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


def recorded_chunks(interaction: Interaction) -> list[bytes]:
    """The model JSON of each InvokeModelWithResponseStream chunk, as Bedrock serialised it."""
    buffer = EventStreamBuffer()
    buffer.add_data(interaction.body)
    return [base64.b64decode(json.loads(message.payload)["bytes"]) for message in buffer]


INVOKE_STREAMS = [
    interaction
    for path in STREAM_RECORDINGS
    for interaction in load(path)
    if interaction.operation == "InvokeModelWithResponseStream" and interaction.status == 200
]


@pytest.mark.parametrize("family_name", ["anthropic", "amazon.nova"])
def test_chunks_passed_over_by_their_prefix_carry_nothing_we_read(family_name: str) -> None:
    """``Family.skip_prefixes`` lets the stream loop pass over text deltas unparsed: in every recorded
    stream of the family, a chunk with such a prefix holds no invocation metrics and teaches the
    family's chunk reader nothing, and the prefixes really match Bedrock's serialisation."""
    passed_over = 0
    for interaction in INVOKE_STREAMS:
        family = family_for(parse_model_id(interaction.model_id))
        if family.name != family_name:
            continue
        assert family.skip_prefixes
        for chunk in recorded_chunks(interaction):
            if not chunk.startswith(family.skip_prefixes):
                continue
            passed_over += 1
            body = json.loads(chunk)
            assert INVOCATION_METRICS not in body
            facts = ResponseFacts()
            family.read_chunk(body, facts)
            assert facts == ResponseFacts()
    assert passed_over >= 20
