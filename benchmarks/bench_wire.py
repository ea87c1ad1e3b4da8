"""Cost of the wire layer: recognizing requests, and decoding response bytes per event.

- Reject: :func:`recognize` on requests that are not Bedrock (the price every request of an
  instrumented HTTP client pays): a GET, a POST to an ordinary API path, a POST with a query string.
  Headers are an ``httpx2.Headers`` (or ``httpx.Headers``) when installed, as the adapter will pass.
- Accept: :func:`recognize` on a SigV4-signed InvokeModel request.
- Decode: bytes of a 1000-event stream fed in the pieces a client reads (one frame or one SSE event
  per piece), per event, through the decoder alone and through the full reader (decoder + usage):
  InvokeModelWithResponseStream (Claude), ConverseStream, mantle Anthropic Messages, mantle Chat
  Completions.

Timings are the best of ``--rounds`` (``timeit``-style: the minimum is the cost without
interference from the other processes on the machine).

    python benchmarks/bench_wire.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from otel_bedrock_tokens.emulator.eventstream import chunk_frame, event_frame
from otel_bedrock_tokens.wire import request as ops
from otel_bedrock_tokens.wire.eventstream import EventStreamDecoder
from otel_bedrock_tokens.wire.readers import reader_for
from otel_bedrock_tokens.wire.request import recognize
from otel_bedrock_tokens.wire.sse import SseDecoder

try:
    from httpx2 import Headers
except ImportError:  # Python 3.10: httpx
    try:
        from httpx import Headers  # type: ignore[assignment,no-redef]
    except ImportError:
        Headers = dict  # type: ignore[assignment,misc]

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64
)
EVENTS = 1000


def best_per_call(function: Callable[[], Any], calls: int, rounds: int) -> float:
    """Seconds per call: the best of ``rounds`` loops of ``calls`` calls."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, time.perf_counter() - started)
    return best / calls


def bench_recognize(rounds: int) -> dict[str, float]:
    ordinary = Headers({"authorization": "Bearer sk-abc", "content-type": "application/json"})
    signed = Headers({"authorization": SIGV4, "content-type": "application/json"})
    cases = {
        "reject GET": ("GET", "/v1/models", "api.example.com", ordinary),
        "reject POST /api/v2/items": ("POST", "/api/v2/items", "api.example.com", ordinary),
        "reject POST api.openai.com /v1/chat/completions": (
            "POST",
            "/v1/chat/completions",
            "api.openai.com",
            ordinary,
        ),
        "reject POST with query": ("POST", "/search?q=x", "api.example.com", ordinary),
        "accept InvokeModel (SigV4)": ("POST", f"/model/{CLAUDE}/invoke", "127.0.0.1", signed),
    }
    out = {}
    for name, args in cases.items():
        out[name] = best_per_call(lambda args=args: recognize(*args), 100_000, rounds) * 1e6
    # The loop and lambda alone, to subtract by eye.
    out["empty lambda (overhead)"] = best_per_call(lambda: None, 100_000, rounds) * 1e6
    return out


def _claude_chunks() -> list[bytes]:
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}
    start = {
        "type": "message_start",
        "message": {"id": "m", "model": CLAUDE, "usage": {"input_tokens": 10, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 998}}
    stop = {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {"inputTokenCount": 10, "outputTokenCount": 998},
    }
    return [
        chunk_frame(payload, index)
        for index, payload in enumerate([start, *[text] * (EVENTS - 3), delta, stop])
    ]


def _converse_chunks() -> list[bytes]:
    delta = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "word "}})
    return [
        event_frame("messageStart", {"role": "assistant"}),
        *[delta] * (EVENTS - 3),
        event_frame("messageStop", {"stopReason": "end_turn"}),
        event_frame("metadata", {"usage": {"inputTokens": 10, "outputTokens": 998}, "metrics": {}}),
    ]


def _sse(name: str | None, data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {name}\n" if name else "").encode() + f"data: {text}\n\n".encode()


def _messages_chunks() -> list[bytes]:
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}
    start = {
        "type": "message_start",
        "message": {"id": "m", "usage": {"input_tokens": 10, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 998}}
    return [
        _sse("message_start", start),
        *[_sse("content_block_delta", text)] * (EVENTS - 3),
        _sse("message_delta", delta),
        _sse("message_stop", {"type": "message_stop"}),
    ]


def _chat_chunks() -> list[bytes]:
    base = {"id": "c", "object": "chat.completion.chunk", "model": "openai.gpt-oss-120b-1:0"}
    text = {**base, "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]}
    final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 998}}
    return [*[_sse(None, text)] * (EVENTS - 3), _sse(None, final), _sse(None, usage), _sse(None, "[DONE]")]


def bench_decode(rounds: int) -> dict[str, float]:
    streams = {
        "InvokeModelWithResponseStream": (
            _claude_chunks(),
            ops.INVOKE_MODEL_STREAM,
            CLAUDE,
            EventStreamDecoder,
        ),
        "ConverseStream": (_converse_chunks(), ops.CONVERSE_STREAM, CLAUDE, EventStreamDecoder),
        "mantle Messages (SSE)": (_messages_chunks(), ops.MESSAGES, None, SseDecoder),
        "mantle ChatCompletions (SSE)": (_chat_chunks(), ops.CHAT_COMPLETIONS, None, SseDecoder),
    }
    out = {}
    for name, (chunks, operation, model, decoder_class) in streams.items():

        def decode_only(chunks: list[bytes] = chunks, decoder_class: Any = decoder_class) -> None:
            feed = decoder_class().feed
            for chunk in chunks:
                feed(chunk)

        def read(chunks: list[bytes] = chunks, operation: str = operation, model: str | None = model) -> None:
            reader = reader_for(operation, model, streamed=True)
            assert reader is not None
            for chunk in chunks:
                reader.feed(chunk)
            assert reader.done, operation

        out[f"{name}: decoder"] = best_per_call(decode_only, 20, rounds) / len(chunks) * 1e6
        out[f"{name}: reader (decoder + usage)"] = best_per_call(read, 20, rounds) / len(chunks) * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"recognize() per request, µs (headers: {Headers.__module__}.{Headers.__name__}):")
    for name, micros in bench_recognize(args.rounds).items():
        print(f"  {name:50s} {micros:7.3f}")
    print(f"decode per event, µs ({EVENTS}-event streams, one piece per event):")
    for name, micros in bench_decode(args.rounds).items():
        print(f"  {name:60s} {micros:7.3f}")


if __name__ == "__main__":
    main()
