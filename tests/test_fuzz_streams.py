"""Fuzzing event streams (InvokeModelWithResponseStream and ConverseStream).

Frames are built with the emulator's encoder, so each is a valid AWS event-stream frame unless the
test breaks it on purpose: known events with wrong types in every usage field (also in
``amazon-bedrock-invocationMetrics``), unknown event types, events in any order, garbage JSON (or
no JSON) in a chunk's bytes, exception and error frames, a corrupted CRC, a stream cut at any byte.
The app consumes it in one of four ways (to the end; break and close; break and resume; break and
drop it unclosed). Properties, comparing with the uninstrumented run of the very same bytes:

- the app sees the same events, in the same order, and the same exception (class and message);
- exactly one span ends per stream, whichever way it ended;
- our code swallowed no internal error either, and every token count it recorded is a valid one.
"""

from __future__ import annotations

import base64
import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from otel_bedrock_tokens import abandoned
from otel_bedrock_tokens.emulator.eventstream import (
    corrupt,
    encode_frame,
    error_frame,
    event_frame,
    exception_frame,
)

from .support.fuzzing import JSON, WEIRD, Session, our_spans, outcome, session, uninstrumented
from .support.replay import Interaction

#: Scheduled first under xdist; deselect with ``-m 'not slow'`` for a quick run.
pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STREAM_HEADERS = (("Content-Type", "application/vnd.amazon.eventstream"), ("x-amzn-RequestId", "fuzz"))
INVOKE_MODELS = (
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "amazon.titan-text-express-v1",
    "amazon.nova-micro-v1:0",
    "meta.llama3-8b-instruct-v1:0",
    "mistral.mistral-7b-instruct-v0:2",
    "cohere.command-r-v1:0",
    "cohere.command-text-v14",
    "ai21.jamba-1-5-mini-v1:0",
    "openai.gpt-oss-20b-1:0",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
)
EXCEPTIONS = (
    "throttlingException",
    "modelStreamErrorException",
    "validationException",
    "internalServerException",
    "serviceUnavailableException",
    "modelTimeoutException",
    "somethingNewException",
)

METRICS = st.one_of(
    WEIRD,
    st.fixed_dictionaries(
        {},
        optional={
            "inputTokenCount": WEIRD,
            "outputTokenCount": WEIRD,
            "cacheReadInputTokenCount": WEIRD,
            "cacheWriteInputTokenCount": WEIRD,
            "invocationLatency": WEIRD,
            "firstByteLatency": WEIRD,
        },
    ),
)
USAGE = st.one_of(
    WEIRD,
    st.fixed_dictionaries(
        {},
        optional={
            "input_tokens": WEIRD,
            "output_tokens": WEIRD,
            "cache_read_input_tokens": WEIRD,
            "cache_creation_input_tokens": WEIRD,
            "inputTokens": WEIRD,
            "outputTokens": WEIRD,
            "prompt_tokens": WEIRD,
            "completion_tokens": WEIRD,
        },
    ),
)
#: A model chunk: any family's shape, usage-ish fields of any type, sometimes the invocation metrics.
MODEL_CHUNKS = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "message_start",
                    "content_block_start",
                    "content_block_delta",
                    "content_block_stop",
                    "message_delta",
                    "message_stop",
                    "ping",
                    "error",
                    "new_kind",
                ]
            )
        },
        optional={
            "message": st.one_of(WEIRD, st.fixed_dictionaries({"usage": USAGE, "id": WEIRD, "model": WEIRD})),
            "usage": USAGE,
            "delta": st.one_of(WEIRD, st.fixed_dictionaries({"stop_reason": WEIRD, "text": WEIRD})),
            "index": WEIRD,
            "amazon-bedrock-invocationMetrics": METRICS,
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "outputText": WEIRD,
            "completionReason": WEIRD,
            "stop_reason": WEIRD,
            "finish_reason": WEIRD,
            "generation": WEIRD,
            "prompt_token_count": WEIRD,
            "generation_token_count": WEIRD,
            "inputTextTokenCount": WEIRD,
            "totalOutputTextTokenCount": WEIRD,
            "choices": st.one_of(
                WEIRD, st.lists(st.fixed_dictionaries({"finish_reason": WEIRD}), max_size=2)
            ),
            "usage": USAGE,
            "messageStop": st.one_of(WEIRD, st.fixed_dictionaries({"stopReason": WEIRD})),
            "metadata": st.one_of(WEIRD, st.fixed_dictionaries({"usage": USAGE})),
            "amazon-bedrock-invocationMetrics": METRICS,
        },
    ),
    JSON,
)


def _chunk(payload: bytes, padding: str | None = None) -> bytes:
    body: dict[str, Any] = {"bytes": base64.b64encode(payload).decode()}
    if padding is not None:
        body["p"] = padding
    return event_frame("chunk", body)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


OTHER_FRAMES = st.one_of(
    st.tuples(st.text(min_size=1, max_size=20), st.dictionaries(st.text(max_size=6), JSON, max_size=3)).map(
        lambda item: event_frame(item[0], item[1])  # an unknown (or known but unexpected) event type
    ),
    st.tuples(st.sampled_from(EXCEPTIONS), st.fixed_dictionaries({"message": WEIRD})).map(
        lambda item: exception_frame(item[0], item[1])
    ),
    st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=30)).map(lambda item: error_frame(*item)),
    st.binary(max_size=40).map(
        lambda payload: encode_frame(((":message-type", "event"), (":event-type", "chunk")), payload)
    ),
)
INVOKE_FRAMES = st.one_of(
    MODEL_CHUNKS.map(_dumps).map(_chunk),
    MODEL_CHUNKS.map(_dumps).map(lambda payload: _chunk(payload, "abcdefgh")),
    st.binary(max_size=60).map(_chunk),  # bytes that are not JSON
    st.just(event_frame("chunk", {"bytes": "not base64!"})),
    st.just(event_frame("chunk", {"bytes": None})),
    OTHER_FRAMES,
)

CONVERSE_USAGE = st.one_of(
    WEIRD,
    st.fixed_dictionaries(
        {},
        optional={
            "inputTokens": WEIRD,
            "outputTokens": WEIRD,
            "totalTokens": WEIRD,
            "cacheReadInputTokens": WEIRD,
            "cacheWriteInputTokens": WEIRD,
        },
    ),
)
CONVERSE_FRAMES = st.one_of(
    st.just(event_frame("messageStart", {"role": "assistant"})),
    st.fixed_dictionaries({"role": WEIRD}).map(lambda payload: event_frame("messageStart", payload)),
    st.fixed_dictionaries(
        {"contentBlockIndex": WEIRD, "delta": st.one_of(WEIRD, st.just({"text": "Hi"}))}
    ).map(lambda payload: event_frame("contentBlockDelta", payload)),
    st.fixed_dictionaries({"contentBlockIndex": WEIRD}).map(
        lambda payload: event_frame("contentBlockStop", payload)
    ),
    st.fixed_dictionaries({"stopReason": WEIRD}).map(lambda payload: event_frame("messageStop", payload)),
    st.fixed_dictionaries(
        {},
        optional={
            "usage": CONVERSE_USAGE,
            "metrics": st.fixed_dictionaries({"latencyMs": WEIRD}),
            "trace": JSON,
        },
    ).map(lambda payload: event_frame("metadata", payload)),
    st.just(
        event_frame(
            "metadata",
            {"usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12}, "metrics": {"latencyMs": 3}},
        )
    ),
    OTHER_FRAMES,
)


COUNT = st.integers(min_value=0, max_value=10**6)
#: Final usage events with valid counts (so that many examples do carry usage).
INVOKE_FINAL = (
    st.fixed_dictionaries(
        {
            "type": st.just("message_stop"),
            "amazon-bedrock-invocationMetrics": st.fixed_dictionaries(
                {"inputTokenCount": COUNT, "outputTokenCount": COUNT},
                optional={"cacheReadInputTokenCount": COUNT, "cacheWriteInputTokenCount": COUNT},
            ),
        }
    )
    .map(_dumps)
    .map(_chunk)
)
CONVERSE_FINAL = st.fixed_dictionaries(
    {
        "usage": st.fixed_dictionaries(
            {"inputTokens": COUNT, "outputTokens": COUNT},
            optional={"cacheReadInputTokens": COUNT, "cacheWriteInputTokens": COUNT},
        )
    }
).map(lambda payload: event_frame("metadata", payload))


@st.composite
def stream_body(draw: st.DrawFn, frames: st.SearchStrategy[bytes], final: st.SearchStrategy[bytes]) -> bytes:
    parts = draw(st.lists(frames, max_size=8))
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), draw(final))
    if parts and draw(st.integers(0, 9)) == 0:
        index = draw(st.integers(0, len(parts) - 1))
        parts[index] = corrupt(parts[index])
    body = b"".join(parts)
    if body and draw(st.integers(0, 4)) == 0:
        body = body[: draw(st.integers(0, len(body) - 1))]  # cut anywhere, also inside a frame
    return body


def consume(response: Any, key: str, how: str, take: int) -> Any:
    """The app's view of a stream consumed ``how``: the events it saw, then its exception if any."""
    stream = response[key]
    seen: list[Any] = []
    try:
        if how == "all":
            seen.extend(stream)
        else:
            for event in stream:
                seen.append(event)
                if len(seen) >= take:
                    break
            if how == "close":
                stream.close()
                stream.close()  # twice: as some apps do
            elif how == "resume":
                seen.extend(stream)
            else:  # drop unclosed
                del stream, response
    except Exception as error:
        return ("events", seen, "raised", type(error), str(error))
    return ("events", seen)


@pytest.fixture(scope="module")
def fuzz() -> Iterator[Session]:
    with session() as running:
        yield running


def check(fuzz: Session, operation: str, model: str, body: bytes, how: str, take: int) -> None:
    fuzz.reset()
    key = "body" if operation == "InvokeModelWithResponseStream" else "stream"
    interaction = Interaction(operation, model, b"{}", 200, STREAM_HEADERS, body)

    def start() -> Any:
        if operation == "InvokeModelWithResponseStream":
            return fuzz.client.invoke_model_with_response_stream(modelId=model, body=b"{}")
        return fuzz.client.converse_stream(
            modelId=model, messages=[{"role": "user", "content": [{"text": "hi"}]}]
        )

    def view(response: Any) -> Any:
        metadata = dict(response["ResponseMetadata"])
        metadata["HTTPHeaders"] = {k: v for k, v in metadata["HTTPHeaders"].items() if k != "date"}
        return (metadata, consume(response, key, how, take))

    fuzz.replayer.serve(interaction)
    expected = uninstrumented(start, view)
    fuzz.replayer.serve(interaction)
    got = outcome(start, view)
    if how == "drop":
        fuzz.dropped = True
        gc.collect()
        abandoned.drain()  # the finalizer only queued the dropped stream
    assert got == expected
    spans = our_spans(fuzz.telemetry)
    assert len(spans) == 1, [dict(span.attributes) for span in spans]
    for key_, value in spans[0].attributes.items():
        if key_.startswith("gen_ai.usage."):
            assert type(value) is int and 0 <= value <= 2**53, (key_, value)
    assert fuzz.errors.describe() == []
    attributes = spans[0].attributes
    event(f"stream end: {attributes.get('bedrock_tokens.stream.end')}")
    event(f"app met an exception: {len(expected) > 1 and len(expected[1][1]) > 2}")
    event(f"usage recorded: {'gen_ai.usage.input_tokens' in attributes}")


HOW = st.sampled_from(["all", "all", "close", "resume", "drop"])


@FUZZ
@given(
    model=st.sampled_from(INVOKE_MODELS),
    body=stream_body(INVOKE_FRAMES, INVOKE_FINAL),
    how=HOW,
    take=st.integers(1, 4),
)
def test_invoke_model_streams(fuzz: Session, model: str, body: bytes, how: str, take: int) -> None:
    check(fuzz, "InvokeModelWithResponseStream", model, body, how, take)


@FUZZ
@given(body=stream_body(CONVERSE_FRAMES, CONVERSE_FINAL), how=HOW, take=st.integers(1, 4))
def test_converse_streams(fuzz: Session, body: bytes, how: str, take: int) -> None:
    check(fuzz, "ConverseStream", "anthropic.claude-3-5-haiku-20241022-v1:0", body, how, take)


@settings(FUZZ, max_examples=30)
@given(
    events=st.permutations(
        [
            {"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}},
            {
                "type": "message_stop",
                "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": 4},
            },
        ]
    ),
    how=HOW,
    take=st.integers(1, 6),
)
def test_reordered_anthropic_stream(fuzz: Session, events: list[dict[str, Any]], how: str, take: int) -> None:
    """A well-formed Claude stream in any order (the first delta before its block start, the
    metrics first...): same events for the app, one span."""
    body = b"".join(_chunk(_dumps(event)) for event in events)
    check(fuzz, "InvokeModelWithResponseStream", INVOKE_MODELS[0], body, how, take)
