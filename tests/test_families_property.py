"""Property tests: the body parsers never raise, whatever JSON a model (or a proxy) sends back.

Keys are drawn mostly from the field names the parsers look for, so the generated documents reach
their nested paths (``usage.input_tokens``, ``results[].tokenCount``, ``choices[].finish_reason``...).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from otel_bedrock_tokens import families
from otel_bedrock_tokens.errors import error_type_of
from otel_bedrock_tokens.facts import RequestParams, ResponseFacts
from otel_bedrock_tokens.families import generic
from otel_bedrock_tokens.json_object import parse_json_object
from otel_bedrock_tokens.model_id import parse_model_id
from otel_bedrock_tokens.operations import (
    OPERATIONS,
    converse_params,
    converse_usage,
    usage_from_headers,
)
from otel_bedrock_tokens.usage import Usage, token_count

FAMILIES = {family.name: family for _, family in families._BY_PREFIX} | {"generic": generic.FAMILY}

KNOWN_KEYS = (
    # shared / Anthropic
    "usage", "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
    "id", "model", "stop_reason", "type", "message", "delta", "completion", "messages", "max_tokens",
    "max_tokens_to_sample", "temperature", "top_p", "top_k", "stop_sequences",
    # Nova / Converse
    "inferenceConfig", "maxTokens", "max_new_tokens", "topP", "topK", "stopSequences", "inputTokens",
    "outputTokens", "cacheReadInputTokenCount", "cacheWriteInputTokenCount", "cacheReadInputTokens",
    "cacheWriteInputTokens", "stopReason", "messageStop", "metadata", "additionalModelRequestFields",
    # Titan
    "textGenerationConfig", "maxTokenCount", "inputTextTokenCount", "results", "tokenCount",
    "completionReason", "totalOutputTextTokenCount",
    # Llama, Mistral, OpenAI-style, Cohere, AI21
    "prompt_token_count", "generation_token_count", "max_gen_len", "outputs", "choices", "finish_reason",
    "stop", "prompt_tokens", "completion_tokens", "prompt_tokens_details", "cached_tokens",
    "max_completion_tokens", "generations", "response_id", "p", "k", "prompt", "tokens", "completions",
    "data", "finishReason", "reason", "message_start", "message_delta",
)  # fmt: skip

keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8)
#: What ``json.loads`` can produce.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.just(10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["end_turn", "message_start", "message_delta", "28.0", "12", "-1", ""])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=20,
)
json_objects = st.dictionaries(keys, json_values, max_size=8)

family_names = pytest.mark.parametrize("name", sorted(FAMILIES))
relaxed = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)


# Each example runs through every family: one generated document, twelve parsers.


@relaxed
@given(body=json_objects)
def test_operation_name_is_a_string(body: dict[str, Any]) -> None:
    for family in FAMILIES.values():
        assert isinstance(family.operation_name(body), str), family.name


@relaxed
@given(body=json_objects)
def test_request_params_never_raise(body: dict[str, Any]) -> None:
    for family in FAMILIES.values():
        assert isinstance(family.request_params(body), RequestParams), family.name


@relaxed
@given(body=json_objects)
def test_read_response_never_raises(body: dict[str, Any]) -> None:
    for family in FAMILIES.values():
        facts = ResponseFacts()
        family.read_response(body, facts)
        for value in (facts.usage.input_tokens, facts.usage.output_tokens):
            assert value is None or (type(value) is int and value >= 0), family.name


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(chunks=st.lists(json_objects, max_size=4))
def test_read_chunk_never_raises(chunks: list[dict[str, Any]]) -> None:
    for family in FAMILIES.values():
        facts = ResponseFacts()
        for chunk in chunks:
            family.read_chunk(chunk, facts)


HUGE = 10**400  # a valid JSON integer that no float can hold


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_request_params_tolerate_integers_beyond_float_range(name: str) -> None:
    body = json.loads(json.dumps(dict.fromkeys(KNOWN_KEYS, HUGE)))
    body["inferenceConfig"] = body["textGenerationConfig"] = dict(body)
    FAMILIES[name].request_params(body)


def test_converse_params_tolerate_integers_beyond_float_range() -> None:
    converse_params({"inferenceConfig": {"temperature": HUGE, "topP": HUGE}})


@family_names
def test_read_response_tolerates_integers_beyond_float_range(name: str) -> None:
    body: dict[str, Any] = dict.fromkeys(KNOWN_KEYS, HUGE)
    body["usage"] = dict(body)
    FAMILIES[name].read_response(body, ResponseFacts())


@given(data=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
@example(data=b"1" * 5000)  # beyond Python's int-digits limit
@example(data=b"[" * 100_000)  # deeper than the recursion limit
def test_parse_json_object_never_raises(data: bytes) -> None:
    parsed = parse_json_object(data)
    assert parsed is None or isinstance(parsed, dict)


def loads_object(data: bytes | str) -> Any:
    """What ``json.loads`` makes of ``data`` if it is a JSON object (``None`` otherwise)."""
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _json_texts() -> st.SearchStrategy[bytes | str]:
    """JSON documents, then the same mutated the ways bodies go wrong: padded with whitespace or
    garbage, cut short, re-encoded (UTF-8 with BOM, UTF-16, UTF-32), or as ``str``."""
    documents = json_values.map(json.dumps)
    mutated = st.one_of(
        documents,
        st.tuples(documents, st.sampled_from(["", " ", "\n\t", "\x0b", "x", "}", "{}", "\x00"])).map(
            lambda pair: pair[0] + pair[1]
        ),
        st.tuples(st.sampled_from([" ", "\r\n", "\ufeff", "x"]), documents).map(
            lambda pair: pair[0] + pair[1]
        ),
        st.tuples(documents, st.integers(0, 200)).map(lambda pair: pair[0][: pair[1]]),
    )
    encoded = st.tuples(mutated, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32", "str"])).map(
        lambda pair: pair[0] if pair[1] == "str" else pair[0].encode(pair[1], "surrogatepass")
    )
    return encoded | st.binary(max_size=100)


@relaxed
@given(data=_json_texts())
@example(data=b'{"a": 1}\x0b')  # not JSON whitespace
@example(data=b'{"a": 1e999, "b": NaN}')
@example(data=b'{"a": "\\ud800"}')
def test_parse_json_object_reads_exactly_what_json_loads_reads(data: bytes | str) -> None:
    """The fast path (the C scanner called directly) accepts and refuses exactly what ``json.loads``
    does, whatever the encoding, padding or damage."""
    expected, parsed = loads_object(data), parse_json_object(data)
    assert json.dumps(parsed, sort_keys=True) == json.dumps(expected, sort_keys=True)


@relaxed
@given(
    config=json_values,
    extra=json_values,
)
def test_converse_params_never_raise(config: Any, extra: Any) -> None:
    assert isinstance(
        converse_params({"inferenceConfig": config, "additionalModelRequestFields": extra}), RequestParams
    )


@relaxed
@given(usage=json_values)
def test_converse_usage_never_raises(usage: Any) -> None:
    converse_usage(usage, Usage())


@given(value=json_values | st.integers() | st.floats())
def test_token_count_is_a_non_negative_int_or_none(value: Any) -> None:
    count = token_count(value)
    assert count is None or (type(count) is int and 0 <= count <= 2**53)


@given(headers=st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=40), st.text(max_size=20)))
def test_usage_from_headers_never_raises(headers: dict[str, str]) -> None:
    assert isinstance(usage_from_headers(headers), Usage)


@relaxed
@given(data=st.binary(max_size=300) | json_objects.map(lambda v: json.dumps(v).encode()))
@pytest.mark.parametrize("model_id", ["anthropic.claude-v2", "amazon.titan-text-express-v1", "custom"])
def test_invoke_model_response_never_raises_and_replays_exact_bytes(model_id: str, data: bytes) -> None:
    operation = OPERATIONS["InvokeModel"]
    request = operation.request({"modelId": model_id, "body": b"{}"}, ("127.0.0.1", 443))
    result = {
        "body": StreamingBody(io.BytesIO(data), len(data)),
        "ResponseMetadata": {"HTTPHeaders": {}},
    }
    operation.response(request, result)
    assert result["body"].read() == data


@relaxed
@given(result=json_objects)
def test_converse_response_never_raises(result: dict[str, Any]) -> None:
    operation = OPERATIONS["Converse"]
    request = operation.request({"modelId": "anthropic.claude-v2"}, (None, None))
    operation.response(request, result)


@relaxed
@given(params=json_objects, model_id=st.text(max_size=30) | st.sampled_from(["meta.llama3", "ai21.j2-x"]))
def test_invoke_model_request_never_raises(params: dict[str, Any], model_id: str) -> None:
    operation = OPERATIONS["InvokeModel"]
    body = json.dumps(params).encode()
    request = operation.request({"modelId": model_id, "body": body}, (None, None))
    assert request.model_id == model_id
    assert request.model == parse_model_id(model_id)


@given(response=json_objects)
def test_error_type_of_any_client_error_is_a_non_empty_string(response: dict[str, Any]) -> None:
    error = ClientError.__new__(ClientError)
    error.response = response
    assert error_type_of(error)
