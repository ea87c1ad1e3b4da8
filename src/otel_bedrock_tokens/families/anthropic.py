"""Anthropic Claude on InvokeModel: the Messages API body and the legacy Text Completions body."""

from __future__ import annotations

from ..facts import RequestParams, ResponseFacts
from ..usage import Usage
from ._fields import UsageKeys, as_dict, number, read_usage_keys, str_tuple, string, token_count
from .base import Body, Family, chat_if_messages


def request_params(body: Body) -> RequestParams:
    max_tokens = body.get("max_tokens", body.get("max_tokens_to_sample"))
    return RequestParams(
        max_tokens=token_count(max_tokens),
        temperature=number(body.get("temperature")),
        top_p=number(body.get("top_p")),
        top_k=number(body.get("top_k")),
        stop_sequences=str_tuple(body.get("stop_sequences")),
    )


_USAGE_KEYS = UsageKeys(
    "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"
)


def read_usage(usage: object, into: Usage) -> None:
    """Anthropic ``usage``: input excludes cache reads and writes, as billed."""
    read_usage_keys(usage, into, _USAGE_KEYS)


def read_response(body: Body, facts: ResponseFacts) -> None:
    facts.response_id = string(body.get("id"))
    facts.response_model = string(body.get("model"))
    reason = string(body.get("stop_reason"))
    if reason is not None:
        facts.finish_reasons = (reason,)
    read_usage(body.get("usage"), facts.usage)


def read_chunk(chunk: Body, facts: ResponseFacts) -> None:
    kind = chunk.get("type")
    if kind == "message_start":
        message = as_dict(chunk.get("message"))
        if message is not None:
            facts.response_id = string(message.get("id"))
            facts.response_model = string(message.get("model"))
            read_usage(message.get("usage"), facts.usage)
            # Its output count is a placeholder (usually 1); the real one comes in message_delta.
            facts.usage.output_tokens = None
    elif kind == "message_delta":
        delta = as_dict(chunk.get("delta"))
        reason = string(delta.get("stop_reason")) if delta is not None else None
        if reason is not None:
            facts.finish_reasons = (reason,)
        usage = as_dict(chunk.get("usage"))
        if usage is not None:
            # message_delta usage is cumulative: the last one is the total.
            output = token_count(usage.get("output_tokens"))
            if output is not None:
                facts.usage.output_tokens = output
            for key, attr in (
                ("input_tokens", "input_tokens"),
                ("cache_read_input_tokens", "cache_read_tokens"),
                ("cache_creation_input_tokens", "cache_write_tokens"),
            ):
                value = token_count(usage.get(key))
                if value is not None:
                    setattr(facts.usage, attr, value)
    elif kind is None and "completion" in chunk:  # legacy text completion chunk
        reason = string(chunk.get("stop_reason"))
        if reason is not None:
            facts.finish_reasons = (reason,)


FAMILY = Family(
    "anthropic",
    chat_if_messages,
    request_params,
    read_response,
    read_chunk,
    # message_start (id, model, input usage) and message_delta (stop reason, output usage); the
    # legacy text-completion stream states its stop reason in the final chunk.
    chunk_markers=(b'"message_',),
    # Content block chunks (start, deltas, stop) come before message_delta and message_stop, and the
    # invocation metrics ride on message_stop (every recorded stream).
    skip_prefixes=(b'{"type":"content_block_',),
)
