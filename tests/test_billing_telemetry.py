"""Billing terms on the call path, through real boto3 against the emulator: the served service tier
and latency mode on the span and on every metric point of the call, cache writes by TTL, the
guardrail id and its intervention, a prompt router's choice, and the semantic-convention opt-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_bedrock_tokens import names
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.replay import Replayer, all_recordings, call_recorded, load
from .support.telemetry import TelemetryCapture

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
ROUTER = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"
ROUTED = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Hi"}]}]
#: A system prompt long enough to cache, with a one-hour cache point.
SYSTEM_1H = [{"text": "Be brief. " * 50}, {"cachePoint": {"type": "default", "ttl": "1h"}}]
TOKEN_USAGE = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(cache_minimum=0) as running:
        yield running


def anthropic_body(**extra: Any) -> str:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 9,
        "messages": [{"role": "user", "content": "Hi"}],
        **extra,
    }
    return json.dumps(body)


def all_points(telemetry: TelemetryCapture, *metric_names: str) -> list[Any]:
    return [point for name in metric_names for point in telemetry.points(name)]


def test_converse_tier_and_latency_on_span(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    emulator.client().converse(
        modelId=HAIKU,
        messages=MESSAGES,
        serviceTier={"type": "flex"},
        performanceConfig={"latency": "optimized"},
    )
    (span,) = instrumented.spans()
    assert span.attributes[names.SERVICE_TIER] == "flex"
    assert span.attributes[names.PERFORMANCE_CONFIG_LATENCY] == "optimized"


def test_converse_tier_and_latency_on_every_metric_point(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    emulator.client().converse(
        modelId=HAIKU,
        messages=MESSAGES,
        system=SYSTEM_1H,
        serviceTier={"type": "priority"},
        performanceConfig={"latency": "standard"},
    )
    points = all_points(instrumented, TOKEN_USAGE, DURATION, names.CACHE_TOKEN_USAGE)
    assert len(points) >= 4  # input, output, duration, a cache write
    for point in points:
        assert point.attributes[names.SERVICE_TIER] == "priority"
        assert point.attributes[names.PERFORMANCE_CONFIG_LATENCY] == "standard"


def test_tier_omitted_when_not_reported(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    emulator.client().converse(modelId=HAIKU, messages=MESSAGES)
    (span,) = instrumented.spans()
    reported = span.attributes.get(names.SERVICE_TIER)
    # The emulator, like Bedrock, may report the default tier; never a tier it did not report.
    assert reported in (None, "default")
    for point in all_points(instrumented, TOKEN_USAGE, DURATION):
        assert point.attributes.get(names.SERVICE_TIER) == reported


def test_invoke_model_tier_from_the_header(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    emulator.client().invoke_model(modelId=HAIKU, body=anthropic_body(), serviceTier="priority")
    (span,) = instrumented.spans()
    assert span.attributes[names.SERVICE_TIER] == "priority"
    for point in all_points(instrumented, TOKEN_USAGE, DURATION):
        assert point.attributes[names.SERVICE_TIER] == "priority"


def test_converse_stream_tier_from_the_metadata_event(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    response = emulator.client().converse_stream(
        modelId=HAIKU, messages=MESSAGES, serviceTier={"type": "flex"}
    )
    for _ in response["stream"]:
        pass
    (span,) = instrumented.spans()
    assert span.attributes[names.SERVICE_TIER] == "flex"
    for point in all_points(
        instrumented, TOKEN_USAGE, DURATION, "gen_ai.client.operation.time_to_first_chunk"
    ):
        assert point.attributes[names.SERVICE_TIER] == "flex"


def test_invoke_stream_tier_from_the_header(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    response = emulator.client().invoke_model_with_response_stream(
        modelId=HAIKU, body=anthropic_body(), serviceTier="flex"
    )
    for _ in response["body"]:
        pass
    (span,) = instrumented.spans()
    assert span.attributes[names.SERVICE_TIER] == "flex"


def test_converse_one_hour_cache_writes(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    response = emulator.client().converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM_1H)
    written = response["usage"]["cacheWriteInputTokens"]
    assert written > 0
    (span,) = instrumented.spans()
    assert span.attributes[names.USAGE_CACHE_CREATION_1H] == written
    assert span.attributes[names.USAGE_CACHE_CREATION_5M] == 0


def test_cache_write_points_split_by_ttl(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    response = emulator.client().converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM_1H)
    written = response["usage"]["cacheWriteInputTokens"]
    writes = [
        point
        for point in instrumented.points(names.CACHE_TOKEN_USAGE)
        if point.attributes[names.CACHE_TYPE] == names.CACHE_TYPE_WRITE
    ]
    assert [(point.attributes.get(names.CACHE_TTL), point.sum) for point in writes] == [("1h", written)]


def test_anthropic_body_one_hour_cache_writes(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    system = [
        {"type": "text", "text": "Be brief. " * 50, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    response = emulator.client().invoke_model(modelId=HAIKU, body=anthropic_body(system=system))
    usage = json.loads(response["body"].read())["usage"]
    (span,) = instrumented.spans()
    assert span.attributes[names.USAGE_CACHE_CREATION_1H] == usage["cache_creation_input_tokens"] > 0
    assert span.attributes[names.USAGE_CACHE_CREATION_5M] == 0


def test_anthropic_stream_one_hour_cache_writes(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    system = [
        {"type": "text", "text": "Be brief. " * 50, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    response = emulator.client().invoke_model_with_response_stream(
        modelId=HAIKU, body=anthropic_body(system=system)
    )
    for _ in response["body"]:
        pass
    (span,) = instrumented.spans()
    assert span.attributes[names.USAGE_CACHE_CREATION_1H] > 0
    assert span.attributes[names.USAGE_CACHE_CREATION_5M] == 0


def test_converse_guardrail_id_on_span(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    emulator.client().converse(
        modelId=HAIKU,
        messages=MESSAGES,
        guardrailConfig={"guardrailIdentifier": "gr-converse", "guardrailVersion": "1"},
    )
    (span,) = instrumented.spans()
    assert span.attributes[names.GUARDRAIL_ID] == "gr-converse"


def test_invoke_model_guardrail_id_on_span(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    emulator.client().invoke_model(
        modelId=HAIKU, body=anthropic_body(), guardrailIdentifier="gr-invoke", guardrailVersion="1"
    )
    (span,) = instrumented.spans()
    assert span.attributes[names.GUARDRAIL_ID] == "gr-invoke"


def test_invoke_model_guardrail_intervention_is_the_finish_reason(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    emulator.deny_topic("gr-block", "secret")
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 9,
            "messages": [{"role": "user", "content": "tell me the secret"}],
        }
    )
    response = emulator.client().invoke_model(
        modelId=HAIKU, body=body, guardrailIdentifier="gr-block", guardrailVersion="1"
    )
    assert json.loads(response["body"].read())["amazon-bedrock-guardrailAction"] == "INTERVENED"
    (span,) = instrumented.spans()
    assert span.attributes["gen_ai.response.finish_reasons"] == ("guardrail_intervened",)


def test_prompt_router_choice_is_the_response_model(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    emulator.client().converse(modelId=ROUTER, messages=MESSAGES)
    (span,) = instrumented.spans()
    assert span.attributes["gen_ai.request.model"] == ROUTER
    assert span.attributes["gen_ai.response.model"] == ROUTED


def test_released_cache_write_name_by_default(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    emulator.client().converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM_1H)
    (span,) = instrumented.spans()
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] > 0
    assert names.LATEST_CACHE_WRITE_INPUT_TOKENS not in span.attributes


def test_latest_experimental_cache_write_name(
    monkeypatch: pytest.MonkeyPatch,
    telemetry: TelemetryCapture,
    make_instrumentor: Any,
    emulator: BedrockEmulator,
) -> None:
    monkeypatch.setenv(names.SEMCONV_OPT_IN_ENV, "http, gen_ai_latest_experimental")
    make_instrumentor()
    emulator.client().converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM_1H)
    (span,) = telemetry.spans()
    assert span.attributes[names.LATEST_CACHE_WRITE_INPUT_TOKENS] > 0
    assert "gen_ai.usage.cache_creation.input_tokens" not in span.attributes


def test_opt_in_list_parsing() -> None:
    assert names.latest_experimental({names.SEMCONV_OPT_IN_ENV: "gen_ai_latest_experimental"})
    assert names.latest_experimental({names.SEMCONV_OPT_IN_ENV: "http,gen_ai_latest_experimental"})
    assert not names.latest_experimental({names.SEMCONV_OPT_IN_ENV: "http"})
    assert not names.latest_experimental({})


# --- recordings: guardrail ids and interventions as Bedrock sent them ------------------------------


def _guarded_converse_recordings() -> list[Path]:
    found = []
    for path in all_recordings():
        for interaction in load(path):
            if interaction.operation not in ("Converse", "ConverseStream") or interaction.status >= 400:
                continue
            body = json.loads(interaction.request_body or b"{}")
            if isinstance(body.get("guardrailConfig"), dict):
                found.append(path)
                break
    return found


@pytest.mark.parametrize("path", _guarded_converse_recordings(), ids=lambda path: path.name)
def test_recorded_guardrail_id_and_intervention(
    path: Path, replayer: Replayer, instrumented: TelemetryCapture
) -> None:
    interactions = [i for i in load(path) if i.operation in ("Converse", "ConverseStream")]
    replayer.serve(*interactions)
    for interaction in interactions:
        outcome = call_recorded(replayer.client, interaction)
        stream = outcome.get("stream") if isinstance(outcome, dict) else None
        for _ in stream or ():
            pass
    spans = instrumented.spans()
    assert len(spans) == len(interactions)
    for interaction, span in zip(interactions, spans, strict=True):
        expected = json.loads(interaction.request_body)["guardrailConfig"]["guardrailIdentifier"]
        assert span.attributes[names.GUARDRAIL_ID] == expected
        reasons = span.attributes.get("gen_ai.response.finish_reasons")
        if b"guardrail_intervened" in interaction.body:
            assert reasons == ("guardrail_intervened",)


# --- asyncio: the same terms and cost through aiobotocore ------------------------------------------


def test_aio_converse_stream_terms(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    pytest.importorskip("aiobotocore")
    from .support.aio import aio_client, run

    async def converse() -> None:
        async with aio_client(emulator.endpoint_url) as client:
            response = await client.converse_stream(
                modelId=HAIKU, messages=MESSAGES, system=SYSTEM_1H, serviceTier={"type": "flex"}
            )
            async for _ in response["stream"]:
                pass

    run(converse())
    (span,) = instrumented.spans()
    assert span.attributes[names.SERVICE_TIER] == "flex"
    assert span.attributes[names.USAGE_CACHE_CREATION_1H] > 0
    for point in all_points(instrumented, TOKEN_USAGE, DURATION):
        assert point.attributes[names.SERVICE_TIER] == "flex"


# --- reasoning tokens --------------------------------------------------------------------------------


def test_openai_style_reasoning_tokens_are_read() -> None:
    """OpenAI Chat Completions bodies (gpt-oss on Bedrock) report reasoning inside completion_tokens."""
    from otel_bedrock_tokens.operations import OPERATIONS

    model = "openai.gpt-oss-20b-1:0"
    request = OPERATIONS["InvokeModel"].request(
        {"modelId": model, "body": json.dumps({"messages": [{"role": "user", "content": "Hi"}]})},
        (None, None),
    )
    body = {
        "id": "x",
        "choices": [{"finish_reason": "stop", "message": {"content": "Hi"}}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 30,
            "completion_tokens_details": {"reasoning_tokens": 12},
        },
    }
    facts = OPERATIONS["InvokeModel"].parse_response(request, {}, json.dumps(body).encode())  # type: ignore[attr-defined]
    assert facts.usage.reasoning_output_tokens == 12
    assert facts.usage.output_tokens == 30
