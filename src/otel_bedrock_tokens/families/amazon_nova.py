"""Amazon Nova (messages-v1 schema) bodies and stream chunks."""

from __future__ import annotations

from ..facts import RequestParams, ResponseFacts
from ..usage import Usage
from ._fields import UsageKeys, as_dict, number, read_usage_keys, str_tuple, string, token_count
from .base import Body, Family


def _chat(body: Body) -> str:
    return "chat"


def request_params(body: Body) -> RequestParams:
    config = as_dict(body.get("inferenceConfig")) or {}
    max_tokens = config.get("maxTokens", config.get("max_new_tokens"))
    return RequestParams(
        max_tokens=token_count(max_tokens),
        temperature=number(config.get("temperature")),
        top_p=number(config.get("topP")),
        top_k=number(config.get("topK")),
        stop_sequences=str_tuple(config.get("stopSequences")),
    )


_USAGE_KEYS = UsageKeys(
    "inputTokens", "outputTokens", "cacheReadInputTokenCount", "cacheWriteInputTokenCount"
)


def read_usage(usage: object, into: Usage) -> None:
    read_usage_keys(usage, into, _USAGE_KEYS)


def read_response(body: Body, facts: ResponseFacts) -> None:
    reason = string(body.get("stopReason"))
    if reason is not None:
        facts.finish_reasons = (reason,)
    read_usage(body.get("usage"), facts.usage)


def read_chunk(chunk: Body, facts: ResponseFacts) -> None:
    stop = as_dict(chunk.get("messageStop"))
    if stop is not None:
        reason = string(stop.get("stopReason"))
        if reason is not None:
            facts.finish_reasons = (reason,)
        return
    metadata = as_dict(chunk.get("metadata"))
    if metadata is not None:
        read_usage(metadata.get("usage"), facts.usage)


FAMILY = Family(
    "amazon.nova",
    _chat,
    request_params,
    read_response,
    read_chunk,
    chunk_markers=(b'"messageStop"',),
    # Deltas and block starts/stops; the invocation metrics ride on the final metadata chunk.
    skip_prefixes=(b'{"contentBlock',),
)
