"""Billing-term parsers: garbage in never raises and never yields a wrong value; real shapes parse."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from otel_bedrock_tokens.billing import (
    LATENCY_MODES,
    SERVICE_TIERS,
    BillingTerms,
    cache_writes_from_anthropic_usage,
    cache_writes_from_details,
    guardrail_id_from_request,
    terms_from_anthropic_body,
    terms_from_converse,
    terms_from_headers,
)
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.fuzzing import JSON, WEIRD

ROUTED = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
TOKENS = st.integers(min_value=0, max_value=10**9)
#: A value for a field: what Bedrock sends, or anything else.
FIELD = st.one_of(st.sampled_from(sorted(SERVICE_TIERS | LATENCY_MODES)), WEIRD, JSON)


@given(JSON)
def test_converse_parser_never_raises(value: Any) -> None:
    assert isinstance(terms_from_converse(value), BillingTerms)
    assert isinstance(
        terms_from_converse({"usage": value, "serviceTier": value, "trace": value}), BillingTerms
    )


@given(JSON)
def test_header_and_body_parsers_never_raise(value: Any) -> None:
    assert isinstance(terms_from_headers(value), BillingTerms)
    assert isinstance(terms_from_anthropic_body(value), BillingTerms)
    assert isinstance(terms_from_anthropic_body({"usage": {"cache_creation": value}}), BillingTerms)
    guardrail_id_from_request(value)


#: Values for the keys the parsers' fast paths test (present, absent, any shape).
_MAYBE = st.one_of(
    st.none(),
    FIELD,
    st.sampled_from(["INTERVENED", "NONE", "guardrail_intervened"]),
    st.just({"promptRouter": {"invokedModelId": ROUTED}}),
    st.dictionaries(
        st.sampled_from(["cache_creation", "cacheDetails", "input_tokens", "usage", "type", "latency"]),
        FIELD,
        max_size=3,
    ),
)


def _sparse(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts holding any subset of ``keys`` (values of any shape)."""
    return st.dictionaries(st.sampled_from(keys), _MAYBE, max_size=len(keys))


# The parsers take a shortcut for a plain dict that names none of the rarer members; a
# read-only mapping over the same dict goes the general way: both must give the same terms.
@given(_sparse(["usage", "message", "amazon-bedrock-guardrailAction", "id"]))
@example({"usage": {"cache_creation": {"ephemeral_5m_input_tokens": 3}}})
@example({"message": {"usage": {}}, "amazon-bedrock-guardrailAction": "INTERVENED"})
def test_anthropic_body_shortcut_equals_the_general_path(body: dict[str, Any]) -> None:
    assert terms_from_anthropic_body(body) == terms_from_anthropic_body(MappingProxyType(body))


@given(
    _sparse(["usage", "stopReason", "serviceTier", "performanceConfig", "trace", "metrics"]),
    st.one_of(st.none(), st.sampled_from(["end_turn", "guardrail_intervened"]), JSON),
)
@example({"trace": {"promptRouter": {"invokedModelId": ROUTED}}, "stopReason": "end_turn"}, None)
@example({"serviceTier": {"type": "flex"}, "usage": {"cacheDetails": []}}, None)
def test_converse_shortcut_equals_the_general_path(response: dict[str, Any], reason: Any) -> None:
    assert terms_from_converse(response, reason) == terms_from_converse(MappingProxyType(response), reason)


@given(FIELD, FIELD)
def test_tier_and_latency_are_bedrock_values_or_none(tier: Any, latency: Any) -> None:
    terms = terms_from_converse({"serviceTier": {"type": tier}, "performanceConfig": {"latency": latency}})
    assert terms.service_tier == (tier if isinstance(tier, str) and tier in SERVICE_TIERS else None)
    assert terms.latency_mode == (latency if isinstance(latency, str) and latency in LATENCY_MODES else None)
    headers = terms_from_headers(
        {"x-amzn-bedrock-service-tier": tier, "x-amzn-bedrock-performanceconfig-latency": latency}
    )
    assert (headers.service_tier, headers.latency_mode) == (terms.service_tier, terms.latency_mode)


@given(st.lists(st.tuples(st.sampled_from(["5m", "1h"]), TOKENS), max_size=4))
def test_cache_details_sum_per_ttl(details: list[tuple[str, int]]) -> None:
    listed = [{"ttl": ttl, "inputTokens": tokens} for ttl, tokens in details]
    expected_5m = sum(tokens for ttl, tokens in details if ttl == "5m")
    expected_1h = sum(tokens for ttl, tokens in details if ttl == "1h")
    assert cache_writes_from_details(listed) == (expected_5m, expected_1h)


@given(
    st.lists(st.tuples(st.sampled_from(["5m", "1h"]), TOKENS), max_size=3),
    st.one_of(
        st.fixed_dictionaries({"ttl": WEIRD, "inputTokens": TOKENS}),
        st.fixed_dictionaries({"ttl": st.sampled_from(["5m", "1h"]), "inputTokens": WEIRD}),
        JSON,
    ),
    st.integers(min_value=0, max_value=3),
)
def test_one_malformed_cache_detail_spoils_both_numbers(
    details: list[tuple[str, int]], bad: Any, where: int
) -> None:
    listed: list[Any] = [{"ttl": ttl, "inputTokens": tokens} for ttl, tokens in details]
    listed.insert(min(where, len(listed)), bad)
    five, hour = cache_writes_from_details(listed)
    clean = cache_writes_from_details([bad])
    if clean == (None, None):
        assert (five, hour) == (None, None)
    else:  # the generated entry happened to be valid
        assert five is not None and hour is not None


def test_absent_cache_details_are_unknown_and_empty_ones_zero() -> None:
    assert terms_from_converse({"usage": {"inputTokens": 3}}).cache_write_1h is None
    terms = terms_from_converse({"usage": {"cacheDetails": []}})
    assert (terms.cache_write_5m, terms.cache_write_1h) == (0, 0)


@given(TOKENS, TOKENS)
def test_anthropic_cache_creation(five: int, hour: int) -> None:
    usage = {"cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour}}
    assert cache_writes_from_anthropic_usage(usage) == (five, hour)
    body = terms_from_anthropic_body({"type": "message_start", "message": {"usage": usage}})
    assert (body.cache_write_5m, body.cache_write_1h) == (five, hour)


@given(TOKENS, WEIRD)
def test_anthropic_cache_creation_with_a_bad_count_is_unknown(five: int, hour: Any) -> None:
    usage = {"cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour}}
    result = cache_writes_from_anthropic_usage(usage)
    if isinstance(hour, int) and not isinstance(hour, bool) and 0 <= hour <= 1 << 53:
        assert result == (five, hour)
    elif (
        isinstance(hour, str)
        and hour.strip().isdigit()
        and hour.strip().isascii()
        and len(hour.strip()) <= 16
    ):
        assert result[0] == five  # a decimal string is a count (headers send them)
    elif isinstance(hour, float) and hour.is_integer() and 0 <= hour <= 1 << 53:
        assert result == (five, int(hour))
    else:
        assert result == (None, None)


@given(st.one_of(st.sampled_from(["end_turn", "max_tokens", "guardrail_intervened", "tool_use"]), JSON))
def test_guardrail_intervened_only_from_the_stop_reason(reason: Any) -> None:
    intervened = terms_from_converse({"stopReason": reason}).guardrail_intervened
    if isinstance(reason, str) and reason:
        assert intervened is (reason == "guardrail_intervened")
    else:
        assert intervened is None


@given(st.one_of(st.sampled_from(["INTERVENED", "NONE"]), JSON))
def test_guardrail_action(action: Any) -> None:
    intervened = terms_from_anthropic_body({"amazon-bedrock-guardrailAction": action}).guardrail_intervened
    expected = {"INTERVENED": True, "NONE": False}.get(action) if isinstance(action, str) else None
    assert intervened is expected


@given(st.one_of(st.just(ROUTED), JSON))
def test_routed_model_is_a_printable_id_or_none(value: Any) -> None:
    routed = terms_from_converse({"trace": {"promptRouter": {"invokedModelId": value}}}).routed_model
    if routed is not None:
        assert routed == value and routed.isprintable() and " " not in routed


def test_stream_stop_reason_is_passed_separately() -> None:
    metadata = {"usage": {}, "metrics": {}, "serviceTier": {"type": "flex"}}
    assert terms_from_converse(metadata, stop_reason="guardrail_intervened").guardrail_intervened is True
    assert terms_from_converse(metadata).guardrail_intervened is None


def test_merged_prefers_known_values() -> None:
    first = BillingTerms(service_tier="flex", cache_write_1h=None)
    second = BillingTerms(service_tier="default", cache_write_1h=5, routed_model=ROUTED)
    assert first.merged(second) == BillingTerms(service_tier="flex", cache_write_1h=5, routed_model=ROUTED)
    assert BillingTerms().is_empty() and not first.is_empty()


def test_guardrail_id_from_either_request_shape() -> None:
    assert guardrail_id_from_request({"guardrailIdentifier": "gr-1"}) == "gr-1"
    assert guardrail_id_from_request({"guardrailConfig": {"guardrailIdentifier": "gr-2"}}) == "gr-2"
    assert guardrail_id_from_request({"guardrailConfig": {"guardrailIdentifier": 3}}) is None


def test_real_responses_parse() -> None:
    """What botocore returns for the emulator's Bedrock-shaped answers."""
    with BedrockEmulator(cache_minimum=0) as emulator:
        client = emulator.client()
        system = [{"text": "Be brief. " * 50}, {"cachePoint": {"type": "default", "ttl": "1h"}}]
        messages = [{"role": "user", "content": [{"text": "Hi"}]}]
        response = client.converse(
            modelId=HAIKU,
            messages=messages,
            system=system,
            serviceTier={"type": "flex"},
            performanceConfig={"latency": "optimized"},
        )
        terms = terms_from_converse(response)
        assert terms.service_tier == "flex" and terms.latency_mode == "optimized"
        assert terms.cache_write_1h == response["usage"]["cacheWriteInputTokens"] > 0
        assert terms.cache_write_5m == 0 and terms.guardrail_intervened is False
        routed = client.converse(
            modelId="arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1",
            messages=messages,
        )
        assert terms_from_converse(routed).routed_model == ROUTED
        invoked = client.invoke_model(
            modelId=HAIKU,
            body='{"anthropic_version":"bedrock-2023-05-31","max_tokens":9,"messages":[{"role":"user",'
            '"content":"Hi"}]}',
            serviceTier="priority",
        )
        assert terms_from_headers(invoked["ResponseMetadata"]["HTTPHeaders"]).service_tier == "priority"
