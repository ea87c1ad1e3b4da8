"""Every operation, every family, through a real botocore client over loopback: the shapes Bedrock
returns, and the emulator's core promise: CountTokens predicts exactly what the call bills."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from otel_bedrock_tokens.emulator import BedrockEmulator

from ..support.emulator import HAIKU, MESSAGES, SONNET4, claude_body, headers_of

ASK = "What is the weather in Seattle today?"
TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Weather in a city",
        "inputSchema": {
            "json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        },
    }
}

#: model id, request body, top-level keys of the response body.
FAMILIES: list[tuple[str, dict[str, Any], set[str]]] = [
    (
        HAIKU,
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": ASK}],
        },
        {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"},
    ),
    (
        "anthropic.claude-v2:1",
        {"prompt": f"\n\nHuman: {ASK}\n\nAssistant:", "max_tokens_to_sample": 100},
        {"type", "completion", "stop_reason", "stop"},
    ),
    (
        "amazon.titan-text-express-v1",
        {"inputText": ASK, "textGenerationConfig": {"maxTokenCount": 100}},
        {"inputTextTokenCount", "results"},
    ),
    (
        "amazon.titan-embed-text-v2:0",
        {"inputText": ASK, "dimensions": 256},
        {"embedding", "embeddingsByType", "inputTextTokenCount"},
    ),
    ("amazon.titan-embed-text-v1", {"inputText": ASK}, {"embedding", "inputTextTokenCount"}),
    (
        "us.amazon.nova-lite-v1:0",
        {
            "schemaVersion": "messages-v1",
            "system": [{"text": "Be brief."}],
            "messages": MESSAGES,
            "inferenceConfig": {"maxTokens": 100},
        },
        {"output", "stopReason", "usage"},
    ),
    (
        "meta.llama3-1-70b-instruct-v1:0",
        {"prompt": ASK, "max_gen_len": 100},
        {"generation", "prompt_token_count", "generation_token_count", "stop_reason"},
    ),
    (
        "mistral.mistral-7b-instruct-v0:2",
        {"prompt": f"<s>[INST] {ASK} [/INST]", "max_tokens": 100},
        {"outputs"},
    ),
    (
        "mistral.mistral-large-2407-v1:0",
        {"messages": [{"role": "user", "content": ASK}], "max_tokens": 100},
        {"choices"},
    ),
    ("cohere.command-text-v14", {"prompt": ASK, "max_tokens": 100}, {"id", "generations", "prompt"}),
    (
        "cohere.command-r-plus-v1:0",
        {"message": ASK, "preamble": "Be brief.", "max_tokens": 100},
        {"response_id", "text", "generation_id", "chat_history", "finish_reason"},
    ),
    (
        "cohere.embed-english-v3",
        {"texts": [ASK, "second"], "input_type": "search_query"},
        {"embeddings", "id", "response_type", "texts"},
    ),
    ("ai21.j2-mid-v1", {"prompt": ASK, "maxTokens": 100}, {"id", "prompt", "completions"}),
    (
        "ai21.jamba-1-5-mini-v1:0",
        {"messages": [{"role": "user", "content": ASK}], "max_tokens": 100},
        {"id", "object", "created", "model", "choices", "usage"},
    ),
    ("us.deepseek.r1-v1:0", {"prompt": ASK, "max_tokens": 100}, {"choices"}),
    (
        "openai.gpt-oss-120b-1:0",
        {"messages": [{"role": "user", "content": ASK}], "max_completion_tokens": 100},
        {"id", "object", "created", "model", "choices", "usage"},
    ),
]
EMBEDDINGS = {"amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v1", "cohere.embed-english-v3"}


def _usage_from_headers(headers: dict[str, str]) -> tuple[int, int, int, int]:
    def value(name: str) -> int:
        return int(headers.get(f"x-amzn-bedrock-{name}-token-count", "0"))

    return value("input"), value("output"), value("cache-read-input"), value("cache-write-input")


@pytest.mark.parametrize(("model_id", "body", "keys"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_invoke_model_bodies_and_headers(
    bedrock_emulator: BedrockEmulator, model_id: str, body: dict[str, Any], keys: set[str]
) -> None:
    client = bedrock_emulator.client()
    response = client.invoke_model(modelId=model_id, body=json.dumps(body))
    headers = headers_of(response)
    payload = json.loads(response["body"].read())
    assert set(payload) == keys
    assert response["contentType"] == "application/json"
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 1
    assert headers["x-amzn-requestid"] == response["ResponseMetadata"]["RequestId"]
    input_tokens, output_tokens, _, _ = _usage_from_headers(headers)
    assert input_tokens > 0
    if model_id in EMBEDDINGS:
        assert "x-amzn-bedrock-output-token-count" not in headers
    else:
        assert output_tokens > 0
    totals = bedrock_emulator.ledger.totals()[model_id]
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (1, input_tokens, output_tokens)


STREAMING = [f for f in FAMILIES if f[0] not in EMBEDDINGS and f[0] != "ai21.j2-mid-v1"]


@pytest.mark.parametrize(("model_id", "body", "keys"), STREAMING, ids=[f[0] for f in STREAMING])
def test_invoke_streams_end_with_invocation_metrics(
    bedrock_emulator: BedrockEmulator, model_id: str, body: dict[str, Any], keys: set[str]
) -> None:
    client = bedrock_emulator.client()
    response = client.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
    assert response["contentType"] == "application/json"
    chunks = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert all("amazon-bedrock-invocationMetrics" not in chunk for chunk in chunks[:-1])
    assert set(metrics) >= {"inputTokenCount", "outputTokenCount", "invocationLatency", "firstByteLatency"}
    totals = bedrock_emulator.ledger.totals()[model_id]
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (
        1,
        metrics["inputTokenCount"],
        metrics["outputTokenCount"],
    )
    # The same request, not streamed, bills the same.
    headers = headers_of(client.invoke_model(modelId=model_id, body=json.dumps(body)))
    assert _usage_from_headers(headers)[:2] == (metrics["inputTokenCount"], metrics["outputTokenCount"])


def test_anthropic_stream_events_in_order(bedrock_client: Any) -> None:
    response = bedrock_client.invoke_model_with_response_stream(modelId=HAIKU, body=claude_body())
    kinds = [json.loads(event["chunk"]["bytes"])["type"] for event in response["body"]]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}


def test_streamed_text_adds_up_to_the_billed_output(bedrock_client: Any) -> None:
    from otel_bedrock_tokens.emulator.tokenizer import count_text

    response = bedrock_client.converse_stream(modelId="amazon.nova-micro-v1:0", messages=MESSAGES)
    events = list(response["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert count_text(text) == events[-1]["metadata"]["usage"]["outputTokens"]


def test_converse_and_converse_stream(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    reply = client.converse(
        modelId="us.meta.llama3-2-3b-instruct-v1:0",
        system=[{"text": "Be brief."}],
        messages=MESSAGES,
        inferenceConfig={"maxTokens": 50},
    )
    assert reply["stopReason"] == "end_turn"
    assert reply["metrics"]["latencyMs"] >= 1
    usage = reply["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    events = list(
        client.converse_stream(
            modelId="us.meta.llama3-2-3b-instruct-v1:0",
            system=[{"text": "Be brief."}],
            messages=MESSAGES,
            inferenceConfig={"maxTokens": 50},
        )["stream"]
    )
    names = [next(iter(event)) for event in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    assert events[-1]["metadata"]["usage"] == usage  # same request, same bill


def test_converse_tool_use_round_trip(bedrock_client: Any) -> None:
    first = bedrock_client.converse(modelId=SONNET4, messages=MESSAGES, toolConfig={"tools": [TOOL]})
    assert first["stopReason"] == "tool_use"
    call = next(block["toolUse"] for block in first["output"]["message"]["content"] if "toolUse" in block)
    assert call["name"] == "get_weather" and call["input"] == {"city": "Seattle"}
    follow_up = [
        *MESSAGES,
        first["output"]["message"],
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": call["toolUseId"], "content": [{"text": "Rain, 12C"}]}}],
        },
    ]
    second = bedrock_client.converse(modelId=SONNET4, messages=follow_up, toolConfig={"tools": [TOOL]})
    assert second["stopReason"] == "end_turn"
    assert second["usage"]["inputTokens"] > first["usage"]["inputTokens"]
    stream = bedrock_client.converse_stream(modelId=SONNET4, messages=MESSAGES, toolConfig={"tools": [TOOL]})
    events = list(stream["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    assert json.loads(next(d["toolUse"]["input"] for d in deltas if "toolUse" in d)) == {"city": "Seattle"}


def test_max_tokens_is_honoured_exactly(bedrock_client: Any) -> None:
    reply = bedrock_client.converse(
        modelId="amazon.nova-micro-v1:0", messages=MESSAGES, inferenceConfig={"maxTokens": 3}
    )
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["outputTokens"] == 3
    body = json.loads(
        bedrock_client.invoke_model(modelId=HAIKU, body=claude_body(max_tokens=2))["body"].read()
    )
    assert body["stop_reason"] == "max_tokens" and body["usage"]["output_tokens"] == 2


def test_embedding_models_refuse_converse_and_streams(bedrock_client: Any) -> None:
    with pytest.raises(ClientError, match="doesn't support the model"):
        bedrock_client.converse(modelId="amazon.titan-embed-text-v2:0", messages=MESSAGES)
    with pytest.raises(ClientError, match="unsupported for streaming"):
        bedrock_client.invoke_model_with_response_stream(
            modelId="cohere.embed-english-v3", body=json.dumps({"texts": ["a"]})
        )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"messages": []}).encode(),
        json.dumps({"anthropic_version": "x", "messages": []}).encode(),
    ],
)
def test_malformed_bodies_are_validation_errors(bedrock_client: Any, body: bytes) -> None:
    with pytest.raises(ClientError) as raised:
        bedrock_client.invoke_model(modelId=HAIKU, body=body)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "Malformed input request" in raised.value.response["Error"]["Message"]


# --- CountTokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("model_id", "body", "keys"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_count_tokens_predicts_exactly_what_invoke_model_bills(
    bedrock_emulator: BedrockEmulator, model_id: str, body: dict[str, Any], keys: set[str]
) -> None:
    bedrock_emulator.set_count_tokens_support("*", True)
    bedrock_emulator.state.count_tokens_accepts_profiles = True
    client = bedrock_emulator.client()
    counted = client.count_tokens(modelId=model_id, input={"invokeModel": {"body": json.dumps(body)}})[
        "inputTokens"
    ]
    input_tokens, _, read, write = _usage_from_headers(
        headers_of(client.invoke_model(modelId=model_id, body=json.dumps(body)))
    )
    assert counted == input_tokens + read + write


CONVERSE_REQUESTS: list[dict[str, Any]] = [
    {"messages": MESSAGES},
    {"messages": MESSAGES, "system": [{"text": "You are terse."}], "toolConfig": {"tools": [TOOL]}},
    {
        "messages": [
            *MESSAGES,
            {
                "role": "assistant",
                "content": [
                    {"text": "Let me check."},
                    {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Seattle"}}},
                ],
            },
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"temp": 12}}]}}],
            },
        ],
        "toolConfig": {"tools": [TOOL]},
    },
    {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Look:"},
                    {"image": {"format": "png", "source": {"bytes": b"\x89PNG" * 400}}},
                ],
            }
        ]
    },
]


@pytest.mark.parametrize("request_fields", CONVERSE_REQUESTS)
@pytest.mark.parametrize("model_id", [SONNET4, "amazon.nova-pro-v1:0", "meta.llama3-1-8b-instruct-v1:0"])
def test_count_tokens_predicts_exactly_what_converse_bills(
    bedrock_emulator: BedrockEmulator, model_id: str, request_fields: dict[str, Any]
) -> None:
    bedrock_emulator.set_count_tokens_support("*", True)
    client = bedrock_emulator.client()
    counted = client.count_tokens(modelId=model_id, input={"converse": request_fields})["inputTokens"]
    usage = client.converse(modelId=model_id, **request_fields)["usage"]
    billed = (
        usage["inputTokens"] + usage.get("cacheReadInputTokens", 0) + usage.get("cacheWriteInputTokens", 0)
    )
    assert counted == billed


def test_count_tokens_support_and_id_forms(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    converse_input = {"converse": {"messages": MESSAGES}}
    assert client.count_tokens(modelId=HAIKU, input=converse_input)["inputTokens"] > 0
    arn = f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
    assert client.count_tokens(modelId=arn, input=converse_input)["inputTokens"] > 0
    for unsupported in ("amazon.nova-micro-v1:0", "meta.llama3-1-8b-instruct-v1:0", "anthropic.claude-v2"):
        with pytest.raises(ClientError, match="doesn't support counting tokens"):
            client.count_tokens(modelId=unsupported, input=converse_input)
    with pytest.raises(ClientError, match="model identifier is invalid"):
        client.count_tokens(modelId=f"us.{HAIKU}", input=converse_input)
    bedrock_emulator.state.count_tokens_accepts_profiles = True
    assert client.count_tokens(modelId=f"us.{HAIKU}", input=converse_input)["inputTokens"] > 0
    totals = bedrock_emulator.ledger.totals()
    assert totals[HAIKU].count_tokens_calls == 1 and totals[HAIKU].calls == 0
    assert totals["amazon.nova-micro-v1:0"].count_tokens_errors == 1


def test_drift_makes_predictions_wrong_by_design(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    body = claude_body("A prompt with a handful of tokens in it, say twenty or so, for the drift test.")
    exact = client.count_tokens(modelId=HAIKU, input={"invokeModel": {"body": body}})["inputTokens"]
    bedrock_emulator.set_drift(HAIKU, offset=5)
    assert (
        client.count_tokens(modelId=HAIKU, input={"invokeModel": {"body": body}})["inputTokens"] == exact + 5
    )
    bedrock_emulator.set_drift(HAIKU, factor=2.0)
    assert (
        client.count_tokens(modelId=HAIKU, input={"invokeModel": {"body": body}})["inputTokens"] == exact * 2
    )
    # Drift never touches what is billed.
    assert (
        int(headers_of(client.invoke_model(modelId=HAIKU, body=body))["x-amzn-bedrock-input-token-count"])
        == exact
    )


def test_count_tokens_rejects_a_bad_input(bedrock_client: Any) -> None:
    with pytest.raises(ClientError, match="Malformed input request"):
        bedrock_client.count_tokens(modelId=HAIKU, input={"invokeModel": {"body": b"not json"}})
    assert base64  # the body travels base64-encoded; botocore does that for us
