"""Every recorded InvokeModel and Converse answer, replayed through a real boto3 client.

The truth is read from each recording by this module (never by the package's parsers): InvokeModel
tokens from the ``X-Amzn-Bedrock-*-Token-Count`` headers first, else the body's usage; Converse
tokens from ``usage``; ``gen_ai.usage.input_tokens`` = input + cache read + cache write; finish
reasons from the body's raw stop-reason fields; ``error.type`` from the ``x-amzn-ErrorType``
header. Stream recordings are out of scope here (``streams.py`` has its own tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_bedrock_tokens import BedrockTokensInstrumentor

from .support.replay import (
    RECORDINGS,
    Interaction,
    Replayer,
    all_recordings,
    call_recorded,
    load,
    replay_server,
)
from .support.telemetry import TelemetryCapture

CORE_OPERATIONS = ("InvokeModel", "Converse")

INPUT = "gen_ai.usage.input_tokens"
OUTPUT = "gen_ai.usage.output_tokens"
CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE = "gen_ai.usage.cache_creation.input_tokens"
FINISH = "gen_ai.response.finish_reasons"


def core_interactions(path: Path) -> list[Interaction]:
    return [i for i in load(path) if i.operation in CORE_OPERATIONS]


CORE_FILES = [path for path in all_recordings() if core_interactions(path)]


def recording_id(path: Path) -> str:
    return str(path.relative_to(RECORDINGS))


# --- the truth, read straight from the recording --------------------------------------------------


@dataclass(frozen=True)
class Truth:
    input_tokens: int | None
    output_tokens: int | None
    cache_read: int | None
    cache_write: int | None
    finish_reasons: tuple[str, ...] | None
    error_type: str | None
    request_id: str | None

    @property
    def total_input(self) -> int | None:
        if self.input_tokens is None:
            return None
        return self.input_tokens + (self.cache_read or 0) + (self.cache_write or 0)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    assert number.is_integer(), value
    return int(number)


def _first(mapping: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


# Body usage fields, by meaning, in the spellings the recorded families use.
_BODY_INPUT = ("input_tokens", "inputTokens", "prompt_tokens")
_BODY_OUTPUT = ("output_tokens", "outputTokens", "completion_tokens")
_BODY_CACHE_READ = ("cache_read_input_tokens", "cacheReadInputTokenCount", "cacheReadInputTokens")
_BODY_CACHE_WRITE = ("cache_creation_input_tokens", "cacheWriteInputTokenCount", "cacheWriteInputTokens")


def _body_usage(body: dict[str, Any]) -> tuple[int | None, int | None, int | None, int | None]:
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    input_tokens = _first(usage, *_BODY_INPUT)
    if input_tokens is None:
        input_tokens = _first(body, "inputTextTokenCount", "prompt_token_count")
    output_tokens = _first(usage, *_BODY_OUTPUT)
    if output_tokens is None:
        output_tokens = body.get("generation_token_count")
    if output_tokens is None and isinstance(body.get("results"), list):
        output_tokens = sum(_int(result["tokenCount"]) or 0 for result in body["results"])
    return (
        _int(input_tokens),
        _int(output_tokens),
        _int(_first(usage, *_BODY_CACHE_READ)),
        _int(_first(usage, *_BODY_CACHE_WRITE)),
    )


def _finish_reasons(body: dict[str, Any]) -> tuple[str, ...] | None:
    """The provider's raw stop reasons, wherever this body shape keeps them; a guardrail's
    intervention (``amazon-bedrock-guardrailAction: INTERVENED``) is the finish reason instead."""
    if body.get("amazon-bedrock-guardrailAction") == "INTERVENED":
        return ("guardrail_intervened",)
    for key in ("stop_reason", "stopReason", "finish_reason"):
        if isinstance(body.get(key), str):
            return (body[key],)
    for items, key in (
        ("results", "completionReason"),
        ("generations", "finish_reason"),
        ("outputs", "stop_reason"),
        ("choices", "finish_reason"),
    ):
        if isinstance(body.get(items), list):
            return tuple(item[key] for item in body[items])
    if isinstance(body.get("completions"), list):
        return tuple(item["finishReason"]["reason"] for item in body["completions"])
    return None


def truth_of(interaction: Interaction) -> Truth:
    request_id = interaction.header("x-amzn-RequestId")
    if interaction.status >= 400:
        error_type = (interaction.header("x-amzn-ErrorType") or "").split(":", 1)[0]
        return Truth(None, None, None, None, None, error_type, request_id)
    body = json.loads(interaction.body)
    body_input, body_output, body_cache_read, body_cache_write = _body_usage(body)

    def header_or(name: str, fallback: int | None) -> int | None:
        value = interaction.header(f"X-Amzn-Bedrock-{name}-Token-Count")
        return int(value) if value is not None else fallback

    if interaction.operation == "InvokeModel":
        tokens = (
            header_or("Input", body_input),
            header_or("Output", body_output),
            header_or("Cache-Read-Input", body_cache_read),
            header_or("Cache-Write-Input", body_cache_write),
        )
    else:  # Converse: usage in the body, no token headers
        tokens = (body_input, body_output, body_cache_read, body_cache_write)
    return Truth(*tokens, _finish_reasons(body), None, request_id)


# --- replay -----------------------------------------------------------------------------------------


def replay(path: Path, replayer: Replayer) -> list[tuple[Interaction, Any]]:
    """Issue every core call of ``path``; return (interaction, result or the ClientError raised)."""
    interactions = core_interactions(path)
    replayer.serve(*interactions)
    outcomes: list[tuple[Interaction, Any]] = []
    for interaction in interactions:
        try:
            result = call_recorded(replayer.client, interaction)
        except ClientError as error:
            outcomes.append((interaction, error))
            continue
        if interaction.operation == "InvokeModel":
            result["body"] = result["body"].read()
        outcomes.append((interaction, result))
    return outcomes


def replayed_spans(
    path: Path, replayer: Replayer, telemetry: TelemetryCapture
) -> list[tuple[Interaction, ReadableSpan]]:
    outcomes = replay(path, replayer)
    spans = telemetry.spans()
    assert len(spans) == len(outcomes), "one span per call"
    return [(interaction, span) for (interaction, _), span in zip(outcomes, spans, strict=True)]


def comparable(outcome: Any) -> Any:
    """What the user got, less what varies between two replays of one answer (server date)."""
    if isinstance(outcome, ClientError):
        return (type(outcome), outcome.response.get("Error"), str(outcome))
    result = dict(outcome)
    result.pop("ResponseMetadata")
    return result


@pytest.fixture(scope="module")
def shared_replayer() -> Iterator[Replayer]:
    with replay_server() as server:
        yield server


@pytest.fixture
def replayer(shared_replayer: Replayer) -> Replayer:
    """One loopback server for the module (hundreds of tests), emptied before each test."""
    shared_replayer._server.queues.clear()
    shared_replayer._server.received.clear()
    return shared_replayer


core_files = pytest.mark.parametrize("path", CORE_FILES, ids=recording_id)


def test_every_recorded_core_operation_is_replayed() -> None:
    operations = {i.operation for path in CORE_FILES for i in core_interactions(path)}
    statuses = {i.status for path in CORE_FILES for i in core_interactions(path)}
    assert operations == set(CORE_OPERATIONS)
    assert 400 in statuses
    assert len(CORE_FILES) >= 80


@core_files
def test_input_tokens_match_recording(path: Path, instrumented: TelemetryCapture, replayer: Replayer) -> None:
    for interaction, span in replayed_spans(path, replayer, instrumented):
        assert span.attributes.get(INPUT) == truth_of(interaction).total_input


@core_files
def test_output_tokens_match_recording(
    path: Path, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    for interaction, span in replayed_spans(path, replayer, instrumented):
        assert span.attributes.get(OUTPUT) == truth_of(interaction).output_tokens


@core_files
def test_cache_tokens_match_recording(path: Path, instrumented: TelemetryCapture, replayer: Replayer) -> None:
    for interaction, span in replayed_spans(path, replayer, instrumented):
        truth = truth_of(interaction)
        assert (span.attributes.get(CACHE_READ), span.attributes.get(CACHE_WRITE)) == (
            truth.cache_read,
            truth.cache_write,
        )


@core_files
def test_finish_reasons_match_recording(
    path: Path, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    for interaction, span in replayed_spans(path, replayer, instrumented):
        reasons = span.attributes.get(FINISH)
        assert (tuple(reasons) if reasons is not None else None) == truth_of(interaction).finish_reasons


@core_files
def test_error_type_matches_recording(path: Path, instrumented: TelemetryCapture, replayer: Replayer) -> None:
    for interaction, span in replayed_spans(path, replayer, instrumented):
        error_type = truth_of(interaction).error_type
        assert span.attributes.get("error.type") == error_type
        assert span.status.status_code == (StatusCode.ERROR if error_type else StatusCode.UNSET)


@core_files
def test_request_id_matches_recording(path: Path, instrumented: TelemetryCapture, replayer: Replayer) -> None:
    for interaction, span in replayed_spans(path, replayer, instrumented):
        assert span.attributes.get("aws.request_id") == truth_of(interaction).request_id


@core_files
def test_token_metrics_match_recording(
    path: Path, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    truths = [truth_of(interaction) for interaction, _ in replay(path, replayer)]
    points = instrumented.points("gen_ai.client.token.usage")
    recorded = {
        kind: sum(p.sum for p in points if p.attributes["gen_ai.token.type"] == kind)
        for kind in ("input", "output")
    }
    expected = {
        "input": sum(t.total_input or 0 for t in truths),
        "output": sum(t.output_tokens or 0 for t in truths),
    }
    assert recorded == expected
    assert sum(p.count for p in points) == sum(
        (t.total_input is not None) + (t.output_tokens is not None) for t in truths
    )


@core_files
def test_duration_recorded_once_per_call(
    path: Path, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    truths = [truth_of(interaction) for interaction, _ in replay(path, replayer)]
    points = instrumented.points("gen_ai.client.operation.duration")
    errors = sorted(p.attributes.get("error.type", "") for p in points for _ in range(p.count))
    assert errors == sorted(t.error_type or "" for t in truths)


@core_files
def test_caller_gets_what_an_uninstrumented_client_gets(
    path: Path, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    plain = [comparable(outcome) for _, outcome in replay(path, replayer)]
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        measured = [comparable(outcome) for _, outcome in replay(path, replayer)]
    finally:
        instrumentor.uninstrument()
    assert measured == plain
    assert len(telemetry.spans()) == len(plain)
