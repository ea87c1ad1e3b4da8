"""Usage from bedrock-mantle responses: Anthropic Messages and OpenAI Chat Completions / Responses.

Anthropic Messages bodies and stream events are the very shapes Claude returns through InvokeModel,
so they are read by :mod:`..families.anthropic` (cache reads and writes included); only
``usage.output_tokens_details.thinking_tokens`` is new. Chat Completions bodies and chunks are read
by :mod:`..families.openai_style` (``prompt_tokens_details.cached_tokens`` split out of the input, as
Bedrock counts input); ``completion_tokens_details.reasoning_tokens`` and
``prompt_tokens_details.cache_write_tokens`` are added here. The Responses API has its own shape
(``input_tokens`` including ``input_tokens_details.cached_tokens``), read here.

Streams are SSE (:mod:`.sse`); an event is parsed only when it can carry usage or a stop reason:
Anthropic ``message_start`` / ``message_delta``, a Chat Completions chunk that mentions ``usage`` or
a non-null ``finish_reason``, a Responses ``response.completed`` / ``.incomplete`` / ``.failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..facts import ResponseFacts
from ..families import anthropic, openai_style
from ..families._fields import as_dict, string, token_count
from ..json_object import parse_json_object
from . import request as ops
from .readers import Reader
from .sse import SseDecoder, SseEvent

#: The content type of every mantle stream.
EVENT_STREAM = "text/event-stream"


def _thinking_tokens(usage: object) -> int | None:
    details = as_dict((as_dict(usage) or {}).get("output_tokens_details"))
    return token_count(details.get("thinking_tokens")) if details is not None else None


def read_messages_body(body: dict[str, Any], facts: ResponseFacts) -> int | None:
    """An Anthropic Messages response; returns the thinking tokens when stated."""
    anthropic.read_response(body, facts)
    return _thinking_tokens(body.get("usage"))


def read_chat_completion(body: dict[str, Any], facts: ResponseFacts) -> int | None:
    """A Chat Completions response or chunk; returns the reasoning tokens when stated."""
    openai_style.read_response(body, facts)
    usage = as_dict(body.get("usage"))
    if usage is None:
        return None
    prompt = as_dict(usage.get("prompt_tokens_details"))
    written = token_count(prompt.get("cache_write_tokens")) if prompt is not None else None
    remaining = facts.usage.input_tokens
    if written and remaining is not None and written <= remaining:
        # Like cached reads, cache writes are inside prompt_tokens: Bedrock counts input without them.
        facts.usage.input_tokens = remaining - written
        facts.usage.cache_write_tokens = written
    completion = as_dict(usage.get("completion_tokens_details"))
    return token_count(completion.get("reasoning_tokens")) if completion is not None else None


def read_response_object(body: dict[str, Any], facts: ResponseFacts) -> int | None:
    """An OpenAI Responses ``response`` object; returns the reasoning tokens when stated."""
    facts.response_id = string(body.get("id")) or facts.response_id
    facts.response_model = string(body.get("model")) or facts.response_model
    status = string(body.get("status"))
    incomplete = as_dict(body.get("incomplete_details"))
    reason = string(incomplete.get("reason")) if incomplete is not None else None
    if reason is not None or status is not None:
        facts.finish_reasons = (reason or status or "",)
    usage = as_dict(body.get("usage"))
    if usage is None:
        return None
    total_input = token_count(usage.get("input_tokens"))
    details = as_dict(usage.get("input_tokens_details")) or {}
    cached = token_count(details.get("cached_tokens")) or 0
    written = token_count(details.get("cache_write_tokens")) or 0
    if total_input is not None and cached + written <= total_input:
        facts.usage.input_tokens = total_input - cached - written
        facts.usage.cache_read_tokens = cached if "cached_tokens" in details else None
        facts.usage.cache_write_tokens = written if "cache_write_tokens" in details else None
    facts.usage.output_tokens = token_count(usage.get("output_tokens"))
    output = as_dict(usage.get("output_tokens_details"))
    return token_count(output.get("reasoning_tokens")) if output is not None else None


class _MantleReader(Reader):
    """A mantle response: a JSON body, or an SSE stream of events (by content type)."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        super().__init__()
        self._decoder = SseDecoder()

    def _body(self, headers: Mapping[str, str], data: bytes) -> None:
        if EVENT_STREAM in headers.get("content-type", ""):
            self._feed(data)
            return
        body = parse_json_object(data)
        if body is not None:
            self._whole(body)
            self.done = not self.facts.usage.is_empty()

    def _feed(self, data: bytes) -> None:
        for event in self._decoder.feed(data):
            self.events += 1
            self._event(event)
            if self.done:
                return

    def _whole(self, body: dict[str, Any]) -> None:
        raise NotImplementedError

    def _event(self, event: SseEvent) -> None:
        raise NotImplementedError

    def _reasoning(self, tokens: int | None) -> None:
        if tokens is not None:
            self.reasoning_tokens = tokens


class MessagesReader(_MantleReader):
    """Anthropic Messages: usage from ``message_start`` (input, cache) and ``message_delta`` (output,
    cumulative), ``message_stop`` ends it; an ``error`` event names the error type."""

    __slots__ = ()

    def _whole(self, body: dict[str, Any]) -> None:
        self._reasoning(read_messages_body(body, self.facts))

    def _event(self, event: SseEvent) -> None:
        name = event.event
        if name == "message_delta" or name == "message_start":
            chunk = parse_json_object(event.data)
            if chunk is not None:
                anthropic.read_chunk(chunk, self.facts)
                if name == "message_delta":
                    self._reasoning(_thinking_tokens(chunk.get("usage")))
        elif name == "message_stop":
            self.done = True
        elif name == "error":
            error = as_dict((parse_json_object(event.data) or {}).get("error"))
            self.error_code = (string(error.get("type")) if error is not None else None) or "error"


class MessagesCountTokensReader(_MantleReader):
    """Anthropic ``count_tokens``: ``{"input_tokens": n}``, a prediction rather than usage."""

    __slots__ = ()

    def _whole(self, body: dict[str, Any]) -> None:
        self.facts.predicted_input_tokens = token_count(body.get("input_tokens"))

    def _body(self, headers: Mapping[str, str], data: bytes) -> None:
        body = parse_json_object(data)
        if body is not None:
            self._whole(body)
            self.done = True

    def _event(self, event: SseEvent) -> None:
        return None


_NULL_REASONS = ('"finish_reason":null', '"finish_reason": null')


class ChatCompletionsReader(_MantleReader):
    """Chat Completions: the usage rides on the last chunk (``stream_options.include_usage``, which
    bedrock-mantle sends by default), after the chunk with the finish reason; ``[DONE]`` ends it."""

    __slots__ = ()

    def _whole(self, body: dict[str, Any]) -> None:
        self._reasoning(read_chat_completion(body, self.facts))

    def _event(self, event: SseEvent) -> None:
        data = event.data
        if data == "[DONE]":
            self.done = True
            return
        if '"usage"' not in data and ('"finish_reason"' not in data or any(n in data for n in _NULL_REASONS)):
            return
        chunk = parse_json_object(data)
        if chunk is None:
            return
        if "error" in chunk and "choices" not in chunk:
            error = as_dict(chunk.get("error"))
            self.error_code = (string(error.get("type")) if error is not None else None) or "error"
            return
        self._reasoning(read_chat_completion(chunk, self.facts))


_RESPONSE_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesReader(_MantleReader):
    """OpenAI Responses: the final ``response.completed`` (or ``.incomplete`` / ``.failed``) event holds
    the whole response object, usage included."""

    __slots__ = ()

    def _whole(self, body: dict[str, Any]) -> None:
        self._reasoning(read_response_object(body, self.facts))

    def _event(self, event: SseEvent) -> None:
        name = event.event
        if name not in _RESPONSE_FINAL:
            if name == "error":
                stated = parse_json_object(event.data) or {}
                self.error_code = string(stated.get("code")) or "error"
            return
        payload = parse_json_object(event.data)
        response = as_dict(payload.get("response")) if payload is not None else None
        if response is None:
            return
        self._whole(response)
        if name == "response.failed":
            error = as_dict(response.get("error"))
            self.error_code = (string(error.get("code")) if error is not None else None) or "failed"
        self.done = True


def reader_for(operation: str, *, streamed: bool) -> Reader | None:
    """The reader of a mantle operation (``streamed`` does not change the class: each reader reads
    both its JSON body and its SSE events)."""
    if operation == ops.MESSAGES:
        return MessagesReader()
    if operation == ops.MESSAGES_COUNT_TOKENS:
        return MessagesCountTokensReader()
    if operation == ops.CHAT_COMPLETIONS:
        return ChatCompletionsReader()
    if operation == ops.RESPONSES:
        return ResponsesReader()
    return None
