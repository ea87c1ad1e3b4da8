"""Whatever a client sends, the emulator answers like Bedrock (200 or a modeled 4xx), never with a
crash: request parsing is fuzzed for every family and operation, without the network."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_bedrock_tokens.emulator.service import Service, State
from otel_bedrock_tokens.emulator.wire import Delivery, PlainResponse, Timing

MODELS = [
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-v2",
    "amazon.titan-text-express-v1",
    "amazon.titan-embed-text-v2:0",
    "amazon.nova-pro-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
    "mistral.mistral-7b-instruct-v0:2",
    "cohere.command-text-v14",
    "cohere.command-r-v1:0",
    "cohere.embed-english-v3",
    "ai21.j2-mid-v1",
    "ai21.jamba-1-5-mini-v1:0",
    "deepseek.r1-v1:0",
    "openai.gpt-oss-20b-1:0",
]
OPERATIONS = ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream", "CountTokens"]
KEYS = [
    "messages", "system", "prompt", "inputText", "texts", "message", "max_tokens", "max_gen_len", "maxTokens",
    "anthropic_version", "tools", "toolConfig", "inferenceConfig", "content", "role", "text", "type",
    "cache_control", "cachePoint", "toolUse", "toolResult", "chat_history", "preamble", "input", "dimensions",
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=25,
)
bodies = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)


def answer(service: Service, operation: str, model: str, body: bytes) -> int:
    response = service.handle(operation, model, {}, body)
    if isinstance(response, PlainResponse):
        response.render(Timing())
        status = response.status
    else:
        for event in response.events:
            event.render(Timing())
        status = 200
    response.settle(
        Delivery(headers_sent=True, completed=True, events_sent=len(getattr(response, "events", [])))
    )
    return status


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(OPERATIONS), st.sampled_from(MODELS), bodies)
def test_any_json_body_gets_a_bedrock_answer(operation: str, model: str, body: dict[str, Any]) -> None:
    state = State()
    state.count_tokens_accepts_profiles = True
    state.count_tokens_support.set(True)
    payload = body
    if operation == "CountTokens":
        payload = {"input": {"invokeModel": {"body": base64.b64encode(json.dumps(body).encode()).decode()}}}
    status = answer(Service(state), operation, model, json.dumps(payload).encode())
    assert status in (200, 400)
    (entry,) = state.ledger.entries()
    assert entry.error in (None, "ValidationException")


@given(st.binary(max_size=200))
def test_any_bytes_get_a_bedrock_answer(body: bytes) -> None:
    state = State()
    for operation in OPERATIONS:
        assert answer(Service(state), operation, MODELS[0], body) in (200, 400)
