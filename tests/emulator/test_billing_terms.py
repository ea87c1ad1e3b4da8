"""Billing terms as Bedrock reports them, through real boto3: the served service tier, the latency
mode, cache writes by TTL, prompt routers' choices and guardrail ids, and the ledger's record of each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.emulator.cache import PromptCache
from otel_bedrock_tokens.emulator.prompt import CachePrefix

from ..support.emulator import HAIKU, MESSAGES, SONNET4, claude_body, headers_of

LONG = " ".join(f"Rule {n}: keep answers short and cite the order number." for n in range(50))
OTHER = " ".join(f"Fact {n}: shipping takes three days." for n in range(50))
ROUTER = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"
CUSTOM_ROUTER = "arn:aws:bedrock:eu-west-1:123456789012:prompt-router/abcdef123456"


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(cache_minimum=0) as running:
        yield running


def _metadata(stream: Any) -> dict[str, Any]:
    events = [event for event in stream if "metadata" in event]
    assert len(events) == 1
    return dict(events[0]["metadata"])


def _cached_system(*ttls: str | None) -> list[dict[str, Any]]:
    """System blocks: one text and one cache point per TTL (``None``: no ttl key)."""
    blocks: list[dict[str, Any]] = []
    for index, ttl in enumerate(ttls):
        blocks.append({"text": (LONG, OTHER)[index % 2] + f" part {index}"})
        point: dict[str, Any] = {"type": "default"}
        if ttl is not None:
            point["ttl"] = ttl
        blocks.append({"cachePoint": point})
    return blocks


# --- service tier -----------------------------------------------------------------------------


def test_converse_reports_default_tier_when_none_was_asked(emulator: BedrockEmulator) -> None:
    response = emulator.client().converse(modelId=HAIKU, messages=MESSAGES)
    assert response["serviceTier"] == {"type": "default"}
    assert "performanceConfig" not in response
    assert emulator.ledger.entries()[-1].service_tier == "default"


def test_converse_reports_the_tier_asked(emulator: BedrockEmulator) -> None:
    response = emulator.client().converse(modelId=HAIKU, messages=MESSAGES, serviceTier={"type": "flex"})
    assert response["serviceTier"] == {"type": "flex"}
    assert emulator.ledger.entries()[-1].service_tier == "flex"


def test_converse_stream_metadata_carries_tier_and_latency(emulator: BedrockEmulator) -> None:
    response = emulator.client().converse_stream(
        modelId=HAIKU,
        messages=MESSAGES,
        serviceTier={"type": "priority"},
        performanceConfig={"latency": "optimized"},
    )
    metadata = _metadata(response["stream"])
    assert metadata["serviceTier"] == {"type": "priority"}
    assert metadata["performanceConfig"] == {"latency": "optimized"}
    entry = emulator.ledger.entries()[-1]
    assert (entry.service_tier, entry.latency_mode) == ("priority", "optimized")


def test_converse_reports_latency_mode_asked(emulator: BedrockEmulator) -> None:
    response = emulator.client().converse(
        modelId=HAIKU, messages=MESSAGES, performanceConfig={"latency": "standard"}
    )
    assert response["performanceConfig"] == {"latency": "standard"}


def test_invoke_model_reports_tier_and_latency_headers(emulator: BedrockEmulator) -> None:
    response = emulator.client().invoke_model(
        modelId=HAIKU, body=claude_body(), serviceTier="flex", performanceConfigLatency="optimized"
    )
    assert response["serviceTier"] == "flex"
    assert response["performanceConfigLatency"] == "optimized"
    headers = headers_of(response)
    assert headers["x-amzn-bedrock-service-tier"] == "flex"
    assert headers["x-amzn-bedrock-performanceconfig-latency"] == "optimized"


def test_invoke_model_reports_default_tier_header_when_none_was_asked(emulator: BedrockEmulator) -> None:
    response = emulator.client().invoke_model(modelId=HAIKU, body=claude_body())
    assert response["serviceTier"] == "default"
    assert "x-amzn-bedrock-performanceconfig-latency" not in headers_of(response)


def test_invoke_model_stream_reports_tier_header(emulator: BedrockEmulator) -> None:
    response = emulator.client().invoke_model_with_response_stream(
        modelId=HAIKU, body=claude_body(), serviceTier="priority"
    )
    list(response["body"])
    assert response["serviceTier"] == "priority"
    assert emulator.ledger.entries()[-1].service_tier == "priority"


def test_unknown_tier_is_refused(emulator: BedrockEmulator) -> None:
    with pytest.raises(ClientError) as raised:
        emulator.client().converse(modelId=HAIKU, messages=MESSAGES, serviceTier={"type": "cheapest"})
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_unknown_latency_mode_is_refused(emulator: BedrockEmulator) -> None:
    with pytest.raises(ClientError) as raised:
        emulator.client().invoke_model(modelId=HAIKU, body=claude_body(), performanceConfigLatency="turbo")
    assert "enum value set: [optimized, standard]" in raised.value.response["Error"]["Message"]


def test_reserved_tier_needs_a_reservation(emulator: BedrockEmulator) -> None:
    client = emulator.client()
    with pytest.raises(ClientError) as raised:
        client.converse(modelId=HAIKU, messages=MESSAGES, serviceTier={"type": "reserved"})
    assert raised.value.response["Error"]["Message"] == "Reservation not found."
    emulator.reserve(HAIKU)
    response = client.converse(modelId=f"us.{HAIKU}", messages=MESSAGES, serviceTier={"type": "reserved"})
    assert response["serviceTier"] == {"type": "reserved"}


def test_without_billing_fields_the_tier_is_reported_only_when_asked() -> None:
    with BedrockEmulator(billing_fields=False) as emulator:
        client = emulator.client()
        assert "serviceTier" not in client.converse(modelId=HAIKU, messages=MESSAGES)
        assert "x-amzn-bedrock-service-tier" not in headers_of(
            client.invoke_model(modelId=HAIKU, body=claude_body())
        )
        asked = client.converse(modelId=HAIKU, messages=MESSAGES, serviceTier={"type": "flex"})
        assert asked["serviceTier"] == {"type": "flex"}


# --- cache writes by TTL ------------------------------------------------------------------------


def test_converse_reports_one_hour_writes_in_cache_details(emulator: BedrockEmulator) -> None:
    usage = emulator.client().converse(modelId=SONNET4, messages=MESSAGES, system=_cached_system("1h"))[
        "usage"
    ]
    assert usage["cacheWriteInputTokens"] > 0
    assert usage["cacheDetails"] == [{"ttl": "1h", "inputTokens": usage["cacheWriteInputTokens"]}]
    entry = emulator.ledger.entries()[-1]
    assert entry.cache_write_1h_tokens == usage["cacheWriteInputTokens"]
    assert entry.cache_write_5m_tokens == 0


def test_mixed_ttls_split_the_writes_one_hour_first(emulator: BedrockEmulator) -> None:
    usage = emulator.client().converse(modelId=SONNET4, messages=MESSAGES, system=_cached_system("1h", "5m"))[
        "usage"
    ]
    details = usage["cacheDetails"]
    assert [detail["ttl"] for detail in details] == ["1h", "5m"]
    assert sum(detail["inputTokens"] for detail in details) == usage["cacheWriteInputTokens"]
    assert emulator.ledger.total().cache_write_1h_tokens == details[0]["inputTokens"]


def test_default_ttl_is_five_minutes(emulator: BedrockEmulator) -> None:
    usage = emulator.client().converse(modelId=SONNET4, messages=MESSAGES, system=_cached_system(None))[
        "usage"
    ]
    assert usage["cacheDetails"] == [{"ttl": "5m", "inputTokens": usage["cacheWriteInputTokens"]}]


def test_no_cache_details_without_writes(emulator: BedrockEmulator) -> None:
    client = emulator.client()
    client.converse(modelId=SONNET4, messages=MESSAGES, system=_cached_system("1h"))
    usage = client.converse(modelId=SONNET4, messages=MESSAGES, system=_cached_system("1h"))["usage"]
    assert usage["cacheReadInputTokens"] > 0 and usage["cacheWriteInputTokens"] == 0
    assert "cacheDetails" not in usage


def test_converse_stream_usage_carries_cache_details(emulator: BedrockEmulator) -> None:
    response = emulator.client().converse_stream(
        modelId=SONNET4, messages=MESSAGES, system=_cached_system("1h")
    )
    usage = _metadata(response["stream"])["usage"]
    assert usage["cacheDetails"][0]["ttl"] == "1h"


def test_the_cache_keeps_entries_per_ttl(emulator: BedrockEmulator) -> None:
    client = emulator.client()
    client.converse(modelId=SONNET4, messages=MESSAGES, system=_cached_system("5m"))
    usage = client.converse(modelId=SONNET4, messages=MESSAGES, system=_cached_system("1h"))["usage"]
    assert usage["cacheReadInputTokens"] == 0  # the 5m entry is not the 1h entry
    assert usage["cacheDetails"][0]["ttl"] == "1h"


def test_anthropic_body_reports_cache_creation_by_ttl(emulator: BedrockEmulator) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "system": [
            {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": OTHER, "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [{"role": "user", "content": "Where is order 1?"}],
    }
    response = emulator.client().invoke_model(modelId=SONNET4, body=json.dumps(body))
    usage = json.loads(response["body"].read())["usage"]
    creation = usage["cache_creation"]
    assert creation["ephemeral_1h_input_tokens"] > 0 and creation["ephemeral_5m_input_tokens"] > 0
    total = creation["ephemeral_1h_input_tokens"] + creation["ephemeral_5m_input_tokens"]
    assert total == usage["cache_creation_input_tokens"]
    assert headers_of(response)["x-amzn-bedrock-cache-write-input-token-count"] == str(total)


def test_anthropic_stream_start_reports_cache_creation(emulator: BedrockEmulator) -> None:
    body = json.loads(claude_body())
    body["system"] = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    response = emulator.client().invoke_model_with_response_stream(modelId=SONNET4, body=json.dumps(body))
    chunks = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    usage = chunks[0]["message"]["usage"]
    assert usage["cache_creation"]["ephemeral_1h_input_tokens"] == usage["cache_creation_input_tokens"]


def test_prompt_cache_splits_writes_between_cache_points() -> None:
    cache = PromptCache(lambda: 0.0)
    outcome = cache.apply("m", [CachePrefix("a", 100, 3600.0), CachePrefix("b", 250, 300.0)], 0)
    assert (outcome.write, outcome.write_1h, outcome.write_5m) == (250, 100, 150)
    again = cache.apply("m", [CachePrefix("a", 100, 3600.0), CachePrefix("c", 400, 300.0)], 0)
    assert (again.read, again.write, again.write_1h) == (100, 300, 0)


# --- prompt routers ---------------------------------------------------------------------------


def test_default_prompt_router_reports_the_model_it_chose(emulator: BedrockEmulator) -> None:
    response = emulator.client().converse(modelId=ROUTER, messages=MESSAGES)
    invoked = response["trace"]["promptRouter"]["invokedModelId"]
    assert invoked == (
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    )
    entry = emulator.ledger.entries()[-1]
    assert entry.routed_model == "anthropic.claude-3-haiku-20240307-v1:0"
    assert entry.base_model == entry.routed_model and entry.model_id == ROUTER


def test_prompt_router_trace_in_the_stream_metadata(emulator: BedrockEmulator) -> None:
    response = emulator.client().converse_stream(modelId=ROUTER, messages=MESSAGES)
    assert "invokedModelId" in _metadata(response["stream"])["trace"]["promptRouter"]


def test_custom_prompt_router_runs_its_alias(emulator: BedrockEmulator) -> None:
    emulator.alias(CUSTOM_ROUTER, SONNET4)
    response = emulator.client().converse(modelId=CUSTOM_ROUTER, messages=MESSAGES)
    assert response["trace"]["promptRouter"]["invokedModelId"].endswith(f":inference-profile/eu.{SONNET4}")


def test_invoke_model_through_a_router_answers_as_the_routed_model(emulator: BedrockEmulator) -> None:
    response = emulator.client().invoke_model(modelId=ROUTER, body=claude_body())
    assert json.loads(response["body"].read())["model"] == "claude-3-haiku-20240307"
    assert emulator.ledger.entries()[-1].routed_model == "anthropic.claude-3-haiku-20240307-v1:0"


def test_plain_ids_have_no_router_trace(emulator: BedrockEmulator) -> None:
    assert "trace" not in emulator.client().converse(modelId=HAIKU, messages=MESSAGES)
    assert emulator.ledger.entries()[-1].routed_model is None


# --- guardrails -------------------------------------------------------------------------------


def test_ledger_records_the_guardrail_id(emulator: BedrockEmulator) -> None:
    emulator.client().converse(
        modelId=HAIKU,
        messages=MESSAGES,
        guardrailConfig={"guardrailIdentifier": "gr-123", "guardrailVersion": "1"},
    )
    emulator.client().invoke_model(
        modelId=HAIKU, body=claude_body(), guardrailIdentifier="gr-456", guardrailVersion="DRAFT"
    )
    assert [entry.guardrail_id for entry in emulator.ledger.entries()] == ["gr-123", "gr-456"]
