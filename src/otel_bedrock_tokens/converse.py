"""The Converse wire shape, in one place: the request's generation parameters, the response's usage
and stop reason, and the ConverseStream events that carry them (``messageStop``, ``metadata``).

Plain dicts in, facts out: botocore's parsed results and the decoded JSON of an HTTP client have the
same shape, so every transport reuses these. Nothing here touches spans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .facts import RequestParams, ResponseFacts
from .families._fields import UsageKeys, as_dict, number, read_usage_keys, str_tuple, string, token_count
from .usage import Usage

#: ConverseStream events with this key (text and tool-input deltas) carry no usage and no stop
#: reason: a stream passes over them with one key test.
STREAM_SKIP_KEY = "contentBlockDelta"


def converse_params(params: Mapping[str, Any]) -> RequestParams:
    """``gen_ai.request.*`` from ``inferenceConfig`` (and ``top_k`` / ``topK`` from the model's
    ``additionalModelRequestFields``)."""
    config = as_dict(params.get("inferenceConfig")) or {}
    extra = as_dict(params.get("additionalModelRequestFields")) or {}
    top_k = extra.get("top_k", extra.get("topK"))
    if top_k is None:
        top_k = (as_dict(extra.get("inferenceConfig")) or {}).get("topK")
    return RequestParams(
        max_tokens=token_count(config.get("maxTokens")),
        temperature=number(config.get("temperature")),
        top_p=number(config.get("topP")),
        top_k=number(top_k),
        stop_sequences=str_tuple(config.get("stopSequences")),
    )


_USAGE_KEYS = UsageKeys("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")


def converse_usage(usage: object, into: Usage) -> None:
    """Converse ``usage`` (also the ConverseStream ``metadata`` event's)."""
    read_usage_keys(usage, into, _USAGE_KEYS)


def converse_response(result: Mapping[str, Any], facts: ResponseFacts) -> None:
    """A Converse response's usage and stop reason into ``facts``."""
    converse_usage(result.get("usage"), facts.usage)
    reason = string(result.get("stopReason"))
    if reason is not None:
        facts.finish_reasons = (reason,)


def converse_stream_event(event: Mapping[str, Any], facts: ResponseFacts) -> Usage | None:
    """One ConverseStream event: ``messageStop`` puts the stop reason in ``facts``; a ``metadata``
    event with usage (the last event) returns what Bedrock billed. ``None`` for every other event,
    and for a metadata event without usage (a guardrail trace only: the usage is still to come)."""
    metadata = event.get("metadata")
    if metadata is not None:
        usage = Usage()
        converse_usage(as_dict(metadata) and metadata.get("usage"), usage)
        return None if usage.is_empty() else usage
    stop = event.get("messageStop")
    if stop is not None:
        reason = string(as_dict(stop) and stop.get("stopReason"))
        if reason is not None:
            facts.finish_reasons = (reason,)
    return None
