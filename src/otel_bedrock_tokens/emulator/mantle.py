"""bedrock-mantle's APIs on the emulator: Anthropic Messages and OpenAI Chat Completions / Responses.

Mantle (``https://bedrock-mantle.{region}.api.aws``) takes the model in the body and answers in the
provider's own shapes, streamed as Server-Sent Events. The emulator serves each request with the very
machinery of InvokeModel (same prompt accounting, prompt cache, reply, ledger), only dressed in the
mantle shape: an Anthropic Messages request is a Claude InvokeModel body plus ``model`` and
``stream``; a Chat Completions request is the gpt-oss InvokeModel body; a Responses request is
turned into one. Billing follows the same rule as Converse: a plain body is billed once completely
sent, a stream once its usage-bearing event is.

Ledger operations are the names of :mod:`otel_bedrock_tokens.wire.request` (``Messages``,
``ChatCompletions``, ``Responses``); ``count_tokens`` is recorded as ``CountTokens`` (free).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import BedrockError
from .eventstream import compact_json
from .families import Answer, Json
from .families.base import as_dict
from .ledger import COUNT_TOKENS
from .wire import Delivery, Header, PlainResponse, Response, StreamEvent, Timing

if TYPE_CHECKING:
    from .service import Call, Service

MESSAGES = "Messages"
MESSAGES_COUNT_TOKENS = "MessagesCountTokens"
CHAT_COMPLETIONS = "ChatCompletions"
RESPONSES = "Responses"

#: Path suffixes, after any base-URL prefix (``/anthropic``, ``/openai``).
_ROUTES = (
    ("/v1/messages/count_tokens", MESSAGES_COUNT_TOKENS),
    ("/v1/messages", MESSAGES),
    ("/v1/chat/completions", CHAT_COMPLETIONS),
    ("/v1/responses", RESPONSES),
)
SSE = "text/event-stream"
_MALFORMED = "Malformed input request, please reformat your input and try again."
_DROPPED = ("model", "stream", "stream_options")
JSON = "application/json"


def route(path: str) -> str | None:
    """The mantle operation of a request path (query ignored), or ``None``."""
    path = path.split("?", 1)[0].rstrip("/")
    for suffix, operation in _ROUTES:
        if path.endswith(suffix):
            return operation
    return None


def _sse(event: str | None, data: Any) -> bytes:
    text = data if isinstance(data, str) else compact_json(data).decode()
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


def _request(body: bytes) -> Json:
    try:
        value = json.loads(body) if body else None
    except (ValueError, RecursionError):
        raise BedrockError.validation(
            "Malformed input request, please reformat your input and try again."
        ) from None
    if not isinstance(value, dict) or not isinstance(value.get("model"), str):
        raise BedrockError.validation("The request must be a JSON object with a model.")
    return value


def _responses_as_chat(request: Json) -> Json:
    """A Responses request as the equivalent Chat Completions body (``input`` -> ``messages``)."""
    messages: list[Json] = []
    if isinstance(request.get("instructions"), str):
        messages.append({"role": "system", "content": request["instructions"]})
    given = request.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        for item in given:
            item = as_dict(item)
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(str(as_dict(part).get("text", "")) for part in content)
            messages.append(
                {"role": item.get("role", "user"), "content": content if isinstance(content, str) else ""}
            )
    chat: Json = {"messages": messages}
    if request.get("max_output_tokens") is not None:
        chat["max_tokens"] = request["max_output_tokens"]
    return chat


def _chat_usage(answer: Answer) -> Json:
    usage = answer.usage
    total_input = usage.input + usage.cache_read + usage.cache_write
    out: Json = {
        "prompt_tokens": total_input,
        "completion_tokens": usage.output,
        "total_tokens": total_input + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
    }
    return out


def _response_object(answer: Answer, status: str) -> Json:
    usage = answer.usage
    total_input = usage.input + usage.cache_read + usage.cache_write
    done = status == "completed"
    return {
        "id": f"resp_{answer.message_id}",
        "object": "response",
        "created_at": int(time.time()),
        "model": answer.response_model,
        "status": status,
        "output": (
            [
                {
                    "type": "message",
                    "id": f"msg_{answer.message_id}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": answer.reply.text, "annotations": []}],
                }
            ]
            if done
            else []
        ),
        "usage": (
            {
                "input_tokens": total_input,
                "input_tokens_details": {"cached_tokens": usage.cache_read},
                "output_tokens": usage.output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": total_input + usage.output,
            }
            if done
            else None
        ),
    }


def handle(service: Service, operation: str, headers: Mapping[str, str], body: bytes) -> Response:
    """Serve one mantle request (``headers`` lower-case)."""
    from .service import Call

    state = service.state
    try:
        request = _request(body)
    except BedrockError as error:
        return service.error_response(Call(operation, "", state.ids.uuid(), None, None), error)
    model_id = str(request["model"])
    _, spec = state.catalog.resolve(model_id)
    base = spec.model_id if spec is not None else None
    ledger_operation = COUNT_TOKENS if operation == MESSAGES_COUNT_TOKENS else operation
    call = Call(
        ledger_operation,
        model_id,
        state.ids.uuid(),
        base,
        state.faults.take(ledger_operation, model_id, base),
    )
    try:
        if call.fault is not None and call.fault.kind == "error":
            raise call.fault.as_error()
        if spec is None:
            raise BedrockError.validation("The provided model identifier is invalid.")
        stream = request.get("stream") is True
        inner = {
            key: value for key, value in request.items() if key not in ("model", "stream", "stream_options")
        }
        if operation in (MESSAGES, MESSAGES_COUNT_TOKENS):
            inner.setdefault("anthropic_version", "bedrock-2023-05-31")
            inner.setdefault("max_tokens", 1024)
        elif operation == RESPONSES:
            inner = _responses_as_chat(request)
        family, answer, _ = service._invoke_plan(call, spec, headers, compact_json(inner))
        if operation == MESSAGES_COUNT_TOKENS:
            return _count_tokens(service, call, answer)
        if stream:
            return _stream(service, call, operation, family, answer)
        return _plain(service, call, operation, family, answer)
    except BedrockError as error:
        return service.error_response(call, error)


def _count_tokens(service: Service, call: Call, answer: Answer) -> Response:
    total = answer.plan.prompt.total_tokens
    data = compact_json({"input_tokens": total})

    def render(timing: Timing) -> tuple[list[Header], bytes]:
        return [("Content-Type", JSON), ("x-amzn-RequestId", call.request_id)], data

    return PlainResponse(200, render, settle=service._settle(call, 200, None, lambda d: False, counted=total))


def _plain(service: Service, call: Call, operation: str, family: Any, answer: Answer) -> Response:
    if operation == MESSAGES:
        payload = family.body(answer)
    elif operation == CHAT_COMPLETIONS:
        payload = family.body(answer)
        payload["usage"] = _chat_usage(answer)
    else:
        payload = _response_object(answer, "completed")
    data = compact_json(payload)

    def render(timing: Timing) -> tuple[list[Header], bytes]:
        return [("Content-Type", JSON), ("x-amzn-RequestId", call.request_id)], data

    return service.answer_response(call, answer, render, lambda d: d.completed)


def _stream(service: Service, call: Call, operation: str, family: Any, answer: Answer) -> Response:
    latency = service._latency(call)
    frames: list[tuple[bytes, int]] = []
    if operation == MESSAGES:
        for chunk in family.chunks(answer):
            frames.append((_sse(str(chunk.payload.get("type")), chunk.payload), chunk.tokens))
    elif operation == CHAT_COMPLETIONS:
        chunks = family.chunks(answer)
        for chunk in chunks[:-1]:
            frames.append((_sse(None, chunk.payload), chunk.tokens))
        final = dict(chunks[-1].payload)
        del final["usage"]
        frames.append((_sse(None, final), 0))
        # stream_options.include_usage: one more chunk, no choices, the usage.
        usage_chunk = {key: final[key] for key in ("id", "object", "model")}
        frames.append((_sse(None, {**usage_chunk, "choices": [], "usage": _chat_usage(answer)}), 0))
        frames.append((_sse(None, "[DONE]"), 0))
    else:
        started = _response_object(answer, "in_progress")
        frames.append((_sse("response.created", {"type": "response.created", "response": started}), 0))
        for number, delta in enumerate(answer.reply.deltas):
            event = {
                "type": "response.output_text.delta",
                "item_id": f"msg_{answer.message_id}",
                "output_index": 0,
                "content_index": 0,
                "delta": delta,
                "sequence_number": number + 1,
            }
            frames.append((_sse("response.output_text.delta", event), 1))
        done = {"type": "response.completed", "response": _response_object(answer, "completed")}
        frames.append((_sse("response.completed", done), 0))
    events = [StreamEvent(frame, latency.per_token * tokens) for frame, tokens in frames]
    # The usage is in the last event but for Messages (message_delta, before message_stop) and Chat
    # Completions (the usage chunk, before [DONE]).
    usage_index = len(events) - 2 if operation in (MESSAGES, CHAT_COMPLETIONS) else len(events) - 1

    def billed(delivery: Delivery) -> bool:
        return delivery.events_sent > usage_index

    from .wire import StreamResponse

    return StreamResponse(
        headers=[("Content-Type", SSE), ("Cache-Control", "no-cache"), ("x-amzn-RequestId", call.request_id)],
        events=events,
        delay=latency.first_byte + call.extra_delay,
        reset_after=call.cut_after(),
        clean_cut=call.has("short_body"),
        settle=service._settle(call, 200, answer.usage, billed, answer=answer),
    )
