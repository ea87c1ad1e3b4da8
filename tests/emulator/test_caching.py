"""Prompt caching as Bedrock reports it: a cache point writes the prefix on first use, later calls
read it; below the model's minimum nothing is cached; reads refresh, time expires entries."""

from __future__ import annotations

import json
from typing import Any

from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.emulator.cache import PromptCache
from otel_bedrock_tokens.emulator.prompt import CachePrefix, PromptBuilder

from ..support.emulator import HAIKU, SONNET4, headers_of

LONG = " ".join(f"Rule {n}: keep answers short and cite the order number." for n in range(400))


def _claude(question: str, cached: bool = True) -> str:
    system: list[dict[str, Any]] = [{"type": "text", "text": LONG}]
    if cached:
        system[0]["cache_control"] = {"type": "ephemeral"}
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 50,
            "system": system,
            "messages": [{"role": "user", "content": question}],
        }
    )


def _cache_headers(response: dict[str, Any]) -> tuple[int, int, int]:
    h = headers_of(response)
    return (
        int(h["x-amzn-bedrock-input-token-count"]),
        int(h["x-amzn-bedrock-cache-read-input-token-count"]),
        int(h["x-amzn-bedrock-cache-write-input-token-count"]),
    )


def test_invoke_model_writes_then_reads(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    first = client.invoke_model(modelId=HAIKU, body=_claude("Where is order 1?"))
    body = json.loads(first["body"].read())
    input_tokens, read, write = _cache_headers(first)
    assert read == 0 and write > 2048
    assert body["usage"]["cache_creation_input_tokens"] == write
    assert body["usage"]["cache_read_input_tokens"] == 0
    second = client.invoke_model(modelId=f"us.{HAIKU}", body=_claude("Where is order 2?"))
    input_2, read_2, write_2 = _cache_headers(second)
    assert (read_2, write_2) == (write, 0)  # same model behind the profile: same cache
    assert input_2 == input_tokens  # only the uncached question is billed as input
    totals = bedrock_emulator.ledger.totals(by="base_model")[HAIKU]
    assert (totals.cache_write_tokens, totals.cache_read_tokens) == (write, write)


def test_cache_fields_only_when_the_request_used_the_cache(bedrock_emulator: BedrockEmulator) -> None:
    response = bedrock_emulator.client().invoke_model(modelId=HAIKU, body=_claude("Hi", cached=False))
    assert "x-amzn-bedrock-cache-read-input-token-count" not in headers_of(response)
    assert set(json.loads(response["body"].read())["usage"]) == {"input_tokens", "output_tokens"}


def test_below_the_minimum_nothing_is_cached(bedrock_emulator: BedrockEmulator) -> None:
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 20,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}],
                }
            ],
        }
    )
    client = bedrock_emulator.client()
    for _ in range(2):
        assert _cache_headers(client.invoke_model(modelId=HAIKU, body=body))[1:] == (0, 0)
    bedrock_emulator.state.cache_minimum = 0
    assert _cache_headers(client.invoke_model(modelId=HAIKU, body=body))[2] > 0


def test_converse_cache_points_in_system_tools_and_messages(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    request: dict[str, Any] = {
        "modelId": f"global.{SONNET4}",
        "system": [{"text": LONG}, {"cachePoint": {"type": "default"}}],
        "messages": [{"role": "user", "content": [{"text": "Question one"}]}],
    }
    first = client.converse(**request)["usage"]
    assert first["cacheWriteInputTokens"] > 1024 and first["cacheReadInputTokens"] == 0
    request["messages"] = [{"role": "user", "content": [{"text": "Question two, longer"}]}]
    second = client.converse_stream(**request)
    usage = list(second["stream"])[-1]["metadata"]["usage"]
    assert usage["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    assert usage["cacheWriteInputTokens"] == 0
    assert (
        usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] + usage["cacheReadInputTokens"]
    )


def test_a_longer_prefix_reads_the_shorter_and_writes_the_rest(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    system = [{"text": LONG}, {"cachePoint": {"type": "default"}}]
    first = client.converse(
        modelId=SONNET4, system=system, messages=[{"role": "user", "content": [{"text": "q"}]}]
    )
    longer = [
        {"role": "user", "content": [{"text": LONG}, {"cachePoint": {"type": "default"}}]},
        {"role": "assistant", "content": [{"text": "ok"}]},
        {"role": "user", "content": [{"text": "q"}]},
    ]
    second = client.converse(modelId=SONNET4, system=system, messages=longer)["usage"]
    assert second["cacheReadInputTokens"] == first["usage"]["cacheWriteInputTokens"]
    assert second["cacheWriteInputTokens"] > 1000


def test_nova_reports_cache_fields_always_and_caches_with_cache_points(
    bedrock_emulator: BedrockEmulator,
) -> None:
    client = bedrock_emulator.client()
    plain = client.invoke_model(
        modelId="amazon.nova-pro-v1:0",
        body=json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
    )
    assert _cache_headers(plain)[1:] == (0, 0)
    body = {
        "system": [{"text": LONG}, {"cachePoint": {"type": "default"}}],
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
    }
    first = json.loads(
        client.invoke_model(modelId="amazon.nova-pro-v1:0", body=json.dumps(body))["body"].read()
    )
    assert first["usage"]["cacheWriteInputTokenCount"] > 1000
    stream = client.invoke_model_with_response_stream(
        modelId="us.amazon.nova-pro-v1:0", body=json.dumps(body)
    )
    metrics = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]][-1][
        "amazon-bedrock-invocationMetrics"
    ]
    assert metrics["cacheReadInputTokenCount"] == first["usage"]["cacheWriteInputTokenCount"]


def test_models_without_caching_ignore_cache_points(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    request = {
        "system": [{"text": LONG}, {"cachePoint": {"type": "default"}}],
        "messages": [{"role": "user", "content": [{"text": "q"}]}],
    }
    for _ in range(2):
        usage = client.converse(modelId="meta.llama3-1-70b-instruct-v1:0", **request)["usage"]
        assert "cacheReadInputTokens" not in usage


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_and_hits_refresh_them() -> None:
    clock = FakeClock()
    cache = PromptCache(clock)
    prefix = [CachePrefix("abc", 2000, 300.0)]
    assert cache.apply("m", prefix, 1024).write == 2000
    clock.now = 299.0
    assert cache.apply("m", prefix, 1024).read == 2000  # a hit refreshes the lifetime
    clock.now = 598.0
    assert cache.apply("m", prefix, 1024).read == 2000
    clock.now = 1000.0
    assert cache.apply("m", prefix, 1024).write == 2000  # expired: written again
    assert cache.apply("other-model", prefix, 1024).write == 2000  # caches are per model


def test_cache_points_with_nothing_before_them_are_ignored() -> None:
    builder = PromptBuilder()
    builder.cache_point()
    builder.add_text("hello")
    assert not builder.build().uses_cache
