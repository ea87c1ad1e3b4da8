"""The transport-independent wire parsers (``converse``, ``metering``) on arbitrary JSON: they never
raise, and what they return is a token count or nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.converse import converse_response, converse_stream_event
from otel_bedrock_tokens.facts import ResponseFacts
from otel_bedrock_tokens.metering import invocation_metrics_usage, response_metadata
from otel_bedrock_tokens.usage import Usage

KEYS = st.sampled_from(
    (
        "metadata", "messageStop", "usage", "stopReason", "inputTokens", "outputTokens",
        "cacheReadInputTokens", "cacheWriteInputTokens", "inputTokenCount", "outputTokenCount",
        "cacheReadInputTokenCount", "cacheWriteInputTokenCount", "ResponseMetadata", "RequestId",
        "RetryAttempts", "HTTPHeaders",
    )
) | st.text(max_size=8)  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=6)


def is_count(value: object) -> bool:
    return value is None or (type(value) is int and value >= 0)


@given(event=OBJECTS)
def test_converse_stream_event_never_raises(event: dict[str, Any]) -> None:
    facts = ResponseFacts()
    billed = converse_stream_event(event, facts)
    assert billed is None or (isinstance(billed, Usage) and not billed.is_empty())
    assert facts.finish_reasons is None or all(isinstance(r, str) for r in facts.finish_reasons)


@given(result=OBJECTS)
def test_converse_response_never_raises(result: dict[str, Any]) -> None:
    facts = ResponseFacts()
    converse_response(result, facts)
    usage = facts.usage
    assert all(
        is_count(n)
        for n in (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
    )


@given(metrics=JSON)
def test_invocation_metrics_usage_never_raises(metrics: Any) -> None:
    usage = invocation_metrics_usage(metrics)
    assert usage is None or is_count(usage.input_tokens)


@given(result=OBJECTS)
def test_response_metadata_never_raises(result: dict[str, Any]) -> None:
    facts = ResponseFacts()
    response_metadata(result, facts)
    assert is_count(facts.retry_attempts)
