"""wire.mantle: usage from Anthropic Messages and OpenAI Chat Completions / Responses bodies and SSE."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.wire import request as ops
from otel_bedrock_tokens.wire.mantle import reader_for
from otel_bedrock_tokens.wire.readers import Reader

JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}


def _sse(events: list[tuple[str, object]]) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def _reader(operation: str) -> Reader:
    reader = reader_for(operation, streamed=False)
    assert reader is not None
    return reader


MESSAGES_STREAM = _sse(
    [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "model": "claude-sonnet-4-6",
                    "usage": {
                        "input_tokens": 12,
                        "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 7,
                        "output_tokens": 1,
                    },
                },
            },
        ),
        ("content_block_start", {"type": "content_block_start", "index": 0}),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "hi"}}),
        ("ping", {"type": "ping"}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 30, "output_tokens_details": {"thinking_tokens": 9}},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
)


def test_messages_body_with_cache_and_thinking() -> None:
    reader = _reader(ops.MESSAGES)
    body = {
        "id": "msg_1",
        "model": "claude-sonnet-4-6",
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 12,
            "output_tokens": 30,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 7,
            "output_tokens_details": {"thinking_tokens": 9},
        },
    }
    reader.read_body(JSON, json.dumps(body).encode())
    usage = reader.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        12,
        30,
        100,
        7,
    )
    assert reader.reasoning_tokens == 9
    assert reader.facts.finish_reasons == ("end_turn",)


@given(st.lists(st.integers(min_value=0, max_value=len(MESSAGES_STREAM)), max_size=20))
def test_messages_stream_any_chunking(cuts: list[int]) -> None:
    reader = _reader(ops.MESSAGES)
    start = 0
    for cut in [*sorted(cuts), len(MESSAGES_STREAM)]:
        reader.feed(MESSAGES_STREAM[start:cut])
        start = max(start, cut)
    usage = reader.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        12,
        30,
        100,
        7,
    )
    assert reader.reasoning_tokens == 9
    assert reader.done


def test_chat_completion_body_splits_cached_tokens_out_of_prompt_tokens() -> None:
    reader = _reader(ops.CHAT_COMPLETIONS)
    body = {
        "id": "chatcmpl-1",
        "model": "openai.gpt-oss-120b",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "x"}}],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 20,
            "total_tokens": 70,
            "prompt_tokens_details": {"cached_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 5},
        },
    }
    reader.read_body(JSON, json.dumps(body).encode())
    usage = reader.usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens, usage.total_input) == (
        20,
        30,
        20,
        50,
    )
    assert reader.reasoning_tokens == 5
    assert reader.facts.finish_reasons == ("stop",)


def test_chat_completion_stream_usage_chunk_and_done() -> None:
    reader = _reader(ops.CHAT_COMPLETIONS)
    chunk = {
        "id": "c",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}],
    }
    final = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    usage = {"id": "c", "model": "m", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
    reader.feed(_sse([("", chunk), ("", final), ("", usage), ("", "[DONE]")]))
    assert (reader.usage.input_tokens, reader.usage.output_tokens) == (9, 4)
    assert reader.facts.finish_reasons == ("length",)
    assert reader.done


def _response(usage: dict[str, object]) -> dict[str, object]:
    return {"id": "resp_1", "model": "openai.gpt-oss-20b", "status": "completed", "usage": usage}


RESPONSE_USAGE = {
    "input_tokens": 40,
    "input_tokens_details": {"cached_tokens": 16},
    "output_tokens": 11,
    "output_tokens_details": {"reasoning_tokens": 3},
    "total_tokens": 51,
}


def test_responses_body_input_includes_cached() -> None:
    reader = _reader(ops.RESPONSES)
    reader.read_body(JSON, json.dumps(_response(RESPONSE_USAGE)).encode())
    usage = reader.usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens, usage.total_input) == (
        24,
        16,
        11,
        40,
    )
    assert reader.reasoning_tokens == 3
    assert reader.facts.finish_reasons == ("completed",)


def test_responses_stream_reads_the_completed_event() -> None:
    reader = _reader(ops.RESPONSES)
    created = {"type": "response.created", "response": _response({})}
    delta = {"type": "response.output_text.delta", "delta": "x"}
    done = {"type": "response.completed", "response": _response(RESPONSE_USAGE)}
    reader.feed(_sse([("response.created", created), ("response.output_text.delta", delta)]))
    assert not reader.done
    reader.feed(_sse([("response.completed", done)]))
    assert reader.done and reader.usage.output_tokens == 11


def test_count_tokens_is_a_prediction_not_usage() -> None:
    reader = _reader(ops.MESSAGES_COUNT_TOKENS)
    reader.read_body(JSON, b'{"input_tokens": 321}')
    assert reader.facts.predicted_input_tokens == 321
    assert reader.usage.is_empty()


@given(st.binary(max_size=200))
def test_readers_never_raise_on_garbage(data: bytes) -> None:
    for operation in (ops.MESSAGES, ops.CHAT_COMPLETIONS, ops.RESPONSES, ops.MESSAGES_COUNT_TOKENS):
        _reader(operation).feed(data)
        _reader(operation).read_body(JSON, data)
        _reader(operation).read_body(SSE, data)


def test_a_gzip_body_is_read_as_it_arrives() -> None:
    import gzip

    compressed = gzip.compress(MESSAGES_STREAM)
    reader = _reader(ops.MESSAGES)
    reader.content_encoding("gzip")
    for start in range(0, len(compressed), 5):
        reader.feed(compressed[start : start + 5])
    assert reader.done and reader.usage.output_tokens == 30


def test_an_unknown_content_coding_is_not_read() -> None:
    reader = _reader(ops.MESSAGES)
    reader.content_encoding("br")
    reader.feed(MESSAGES_STREAM)
    assert not reader.done and reader.usage.is_empty()
