"""Fuzzing plain responses (InvokeModel, Converse, CountTokens) and request bodies.

Random bytes, random JSON, each model family's body shape with wrong types in its usage fields
(strings, floats, NaN, negatives, huge numbers, nulls, lists), missing or garbage token headers,
error statuses with garbage bodies. Every generated answer goes through real botocore twice, from
the loopback replay server: once without our instrumentation, once with it. Properties:

- the app's view is identical (result dict, body bytes, or exception class and message);
- exactly one span ends per instrumented call;
- our code swallowed no internal error either (nothing logged with an exception);
- a token count on the span is always a non-negative int (never a wrong number).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support.fuzzing import (
    HEADER_VALUE,
    JSON,
    WEIRD,
    Session,
    our_spans,
    outcome,
    session,
    uninstrumented,
)
from .support.replay import Interaction, answer, replay_server
from .support.telemetry import TelemetryCapture, make_telemetry

#: Scheduled first under xdist; deselect with ``-m 'not slow'`` for a quick run.
pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: One model id per body family (and opaque and odd ids).
MODELS = (
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "amazon.titan-text-express-v1",
    "amazon.titan-embed-text-v2:0",
    "amazon.nova-micro-v1:0",
    "meta.llama3-8b-instruct-v1:0",
    "mistral.mistral-7b-instruct-v0:2",
    "cohere.command-r-v1:0",
    "cohere.command-text-v14",
    "cohere.embed-english-v3",
    "ai21.j2-ultra-v1",
    "ai21.jamba-1-5-mini-v1:0",
    "deepseek.r1-v1:0",
    "openai.gpt-oss-20b-1:0",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "x",
    "arn:",
    "%2F%3A",
)

TOKEN_HEADERS = (
    "X-Amzn-Bedrock-Input-Token-Count",
    "X-Amzn-Bedrock-Output-Token-Count",
    "X-Amzn-Bedrock-Cache-Read-Input-Token-Count",
    "X-Amzn-Bedrock-Cache-Write-Input-Token-Count",
)


def _shapes(w: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Each family's response shape, every usage-ish leaf drawn from ``w``."""
    return st.one_of(
        st.fixed_dictionaries(
            {"id": w, "model": w, "stop_reason": w, "content": w},
            optional={
                "usage": st.one_of(
                    w,
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "input_tokens": w,
                            "output_tokens": w,
                            "cache_read_input_tokens": w,
                            "cache_creation_input_tokens": w,
                        },
                    ),
                )
            },
        ),
        st.fixed_dictionaries(
            {"inputTextTokenCount": w},
            optional={
                "results": st.one_of(
                    w, st.lists(st.fixed_dictionaries({"tokenCount": w, "completionReason": w}), max_size=3)
                ),
                "embedding": w,
            },
        ),
        st.fixed_dictionaries(
            {"stopReason": w},
            optional={
                "usage": st.one_of(
                    w,
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "inputTokens": w,
                            "outputTokens": w,
                            "cacheReadInputTokenCount": w,
                            "cacheWriteInputTokenCount": w,
                        },
                    ),
                )
            },
        ),
        st.fixed_dictionaries(
            {"prompt_token_count": w, "generation_token_count": w, "stop_reason": w},
            optional={"generation": w},
        ),
        st.fixed_dictionaries(
            {"id": w},
            optional={
                "choices": st.one_of(w, st.lists(st.fixed_dictionaries({"finish_reason": w}), max_size=3)),
                "usage": st.one_of(
                    w,
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "prompt_tokens": w,
                            "completion_tokens": w,
                            "prompt_tokens_details": st.one_of(
                                w, st.fixed_dictionaries({"cached_tokens": w})
                            ),
                        },
                    ),
                ),
            },
        ),
        st.fixed_dictionaries(
            {"generations": st.one_of(w, st.lists(st.fixed_dictionaries({"finish_reason": w}), max_size=2))},
            optional={"id": w, "response_id": w, "finish_reason": w},
        ),
        st.fixed_dictionaries(
            {"outputs": st.one_of(w, st.lists(st.fixed_dictionaries({"stop_reason": w}), max_size=2))}
        ),
        st.fixed_dictionaries(
            {
                "id": w,
                "prompt": st.one_of(w, st.fixed_dictionaries({"tokens": w})),
                "completions": st.one_of(
                    w,
                    st.lists(
                        st.fixed_dictionaries(
                            {
                                "data": st.one_of(w, st.fixed_dictionaries({"tokens": w})),
                                "finishReason": st.one_of(w, st.fixed_dictionaries({"reason": w})),
                            }
                        ),
                        max_size=2,
                    ),
                ),
            }
        ),
    )


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


RESPONSE_BODIES = st.one_of(
    st.binary(max_size=200),
    JSON.map(_dumps),
    _shapes(WEIRD).map(_dumps),
    st.just(b"[" * 50_000 + b"]" * 50_000),  # deeper than the JSON parser's recursion limit
    st.just(b"\xef\xbb\xbf{}"),  # a UTF-8 byte-order mark
)

REQUEST_BODIES = st.one_of(
    st.binary(max_size=100),
    JSON.map(_dumps),
    st.fixed_dictionaries(
        {},
        optional={
            "messages": WEIRD,
            "prompt": WEIRD,
            "inputText": WEIRD,
            "max_tokens": WEIRD,
            "max_gen_len": WEIRD,
            "maxTokens": WEIRD,
            "temperature": WEIRD,
            "top_p": WEIRD,
            "top_k": WEIRD,
            "p": WEIRD,
            "k": WEIRD,
            "stop_sequences": WEIRD,
            "stop": WEIRD,
            "textGenerationConfig": st.one_of(
                WEIRD, st.fixed_dictionaries({}, optional={"maxTokenCount": WEIRD, "stopSequences": WEIRD})
            ),
            "inferenceConfig": st.one_of(
                WEIRD, st.fixed_dictionaries({}, optional={"max_new_tokens": WEIRD, "topK": WEIRD})
            ),
        },
    ).map(_dumps),
)


@st.composite
def token_headers(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    headers = [("Content-Type", draw(st.sampled_from(["application/json", "text/plain", "garbage"])))]
    if draw(st.booleans()):
        headers.append(("x-amzn-RequestId", draw(HEADER_VALUE)))
    for name in TOKEN_HEADERS:
        value = draw(st.none() | HEADER_VALUE)
        if value is not None:
            headers.append((name, value))
    return tuple(headers)


ERROR_STATUSES = st.sampled_from([400, 403, 404, 408, 424, 429, 500, 503])


@st.composite
def error_headers(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    headers = [("Content-Type", "application/json")]
    kind = draw(st.sampled_from(["none", "known", "garbage"]))
    if kind == "known":
        code = draw(st.sampled_from(["ThrottlingException", "ValidationException", "ModelErrorException"]))
        headers.append(("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"))
    elif kind == "garbage":
        headers.append(("x-amzn-ErrorType", draw(HEADER_VALUE)))
    return tuple(headers)


def check_span(telemetry: TelemetryCapture) -> None:
    """Exactly one span, and every token attribute on it a non-negative int (never a wrong number)."""
    (span,) = our_spans(telemetry)
    for key, value in span.attributes.items():
        if key.startswith("gen_ai.usage.") or key == "bedrock_tokens.prediction.input_tokens":
            assert type(value) is int and 0 <= value <= 2**53, (key, value)
    telemetry.exporter.clear()


@pytest.fixture(scope="module")
def fuzz() -> Iterator[Session]:
    with session() as running:
        yield running


def same_with_and_without(fuzz: Session, interaction: Interaction, call: Any) -> None:
    fuzz.replayer.serve(interaction)
    expected = uninstrumented(call)
    assert our_spans(fuzz.telemetry) == []
    fuzz.replayer.serve(interaction)
    with_us = outcome(call)
    assert with_us == expected
    check_span(fuzz.telemetry)
    assert fuzz.errors.describe() == []


@FUZZ
@given(
    model=st.sampled_from(MODELS),
    request=REQUEST_BODIES,
    body=RESPONSE_BODIES,
    headers=token_headers(),
)
def test_invoke_model_bodies_and_token_headers(
    fuzz: Session, model: str, request: bytes, body: bytes, headers: tuple[tuple[str, str], ...]
) -> None:
    fuzz.reset()
    interaction = Interaction("InvokeModel", model, request, 200, headers, body)
    same_with_and_without(fuzz, interaction, lambda: fuzz.client.invoke_model(modelId=model, body=request))


@FUZZ
@given(
    model=st.sampled_from(MODELS),
    operation=st.sampled_from(["InvokeModel", "Converse", "CountTokens"]),
    status=ERROR_STATUSES,
    headers=error_headers(),
    body=st.one_of(
        st.binary(max_size=100), JSON.map(_dumps), st.fixed_dictionaries({"message": WEIRD}).map(_dumps)
    ),
)
def test_error_answers_with_garbage_bodies(
    fuzz: Session, model: str, operation: str, status: int, headers: tuple[tuple[str, str], ...], body: bytes
) -> None:
    fuzz.reset()
    calls = {
        "InvokeModel": lambda client: client.invoke_model(modelId=model, body=b"{}"),
        "Converse": lambda client: client.converse(
            modelId=model, messages=[{"role": "user", "content": [{"text": "hi"}]}]
        ),
        "CountTokens": lambda client: client.count_tokens(
            modelId=model, input={"converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}}
        ),
    }
    interaction = Interaction(operation, model, b"", status, headers, body)
    same_with_and_without(fuzz, interaction, lambda: calls[operation](fuzz.client))
    # check_span cleared the spans; the duration point of this failed call carries error.type.
    assert any(
        "error.type" in point.attributes
        for point in fuzz.telemetry.points("gen_ai.client.operation.duration")
    )


CONVERSE_USAGE = st.one_of(
    WEIRD,
    st.fixed_dictionaries(
        {},
        optional={
            "inputTokens": WEIRD,
            "outputTokens": WEIRD,
            "totalTokens": WEIRD,
            "cacheReadInputTokens": WEIRD,
            "cacheWriteInputTokens": WEIRD,
        },
    ),
)
CONVERSE_BODIES = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "output": st.one_of(
                WEIRD, st.just({"message": {"role": "assistant", "content": [{"text": "Hello."}]}})
            ),
            "stopReason": WEIRD,
            "usage": CONVERSE_USAGE,
            "metrics": st.one_of(WEIRD, st.fixed_dictionaries({"latencyMs": WEIRD})),
        },
    ).map(_dumps),
    JSON.map(_dumps),
    st.binary(max_size=60),
)


@FUZZ
@given(
    model=st.sampled_from(MODELS),
    body=CONVERSE_BODIES,
    max_tokens=st.integers(min_value=1, max_value=2**31 - 1),
    temperature=st.floats(allow_nan=True, allow_infinity=True),
    top_k=WEIRD,
)
def test_converse_bodies_with_wrong_types(
    fuzz: Session, model: str, body: bytes, max_tokens: int, temperature: float, top_k: Any
) -> None:
    fuzz.reset()
    headers = (("Content-Type", "application/json"), ("x-amzn-RequestId", "fuzz"))

    def converse() -> Any:
        return fuzz.client.converse(
            modelId=model,
            messages=[{"role": "user", "content": [{"text": "hi"}]}],
            inferenceConfig={"maxTokens": max_tokens, "temperature": temperature},
            additionalModelRequestFields={"top_k": top_k, "inferenceConfig": {"topK": top_k}},
        )

    interaction = Interaction("Converse", model, b"", 200, headers, body)
    fuzz.replayer.serve(interaction)
    expected = uninstrumented(converse)
    if expected[0] == "raised" and expected[1].__name__ == "ParamValidationError":
        return  # botocore refused the parameters before sending: nothing was served or measured
    fuzz.reset()
    same_with_and_without(fuzz, interaction, converse)


@FUZZ
@given(body=st.one_of(st.fixed_dictionaries({"inputTokens": WEIRD}).map(_dumps), JSON.map(_dumps)))
def test_the_callers_own_count_tokens(fuzz: Session, body: bytes) -> None:
    fuzz.reset()
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    headers = (("Content-Type", "application/json"), ("x-amzn-RequestId", "fuzz"))
    interaction = Interaction("CountTokens", model, b"", 200, headers, body)
    same_with_and_without(
        fuzz,
        interaction,
        lambda: fuzz.client.count_tokens(
            modelId=model,
            input={"converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}},
        ),
    )


@settings(FUZZ, max_examples=40)
@given(
    mode=st.sampled_from(["parallel", "before"]),
    status=st.sampled_from([200, 200, 200, 400, 429, 500]),
    count_body=st.one_of(st.fixed_dictionaries({"inputTokens": WEIRD}).map(_dumps), st.binary(max_size=30)),
    body=RESPONSE_BODIES,
    headers=token_headers(),
)
def test_predictions_with_garbage_count_tokens_answers(
    fuzz: Session,
    mode: str,
    status: int,
    count_body: bytes,
    body: bytes,
    headers: tuple[tuple[str, str], ...],
) -> None:
    """CountTokens answers anything: the app's InvokeModel result is untouched, one span, and the
    prediction recorded is a non-negative int or nothing."""
    fuzz.reset()
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    request = b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": []}'
    count_answer = Interaction(
        "CountTokens", model, b"", status, answer("CountTokens", status, {}).headers, count_body
    )
    interaction = Interaction("InvokeModel", model, request, 200, headers, body)
    fuzz.replayer.serve(interaction)
    expected = uninstrumented(lambda: fuzz.client.invoke_model(modelId=model, body=request))
    with fuzz.configured(
        count_tokens=mode, count_tokens_timeout=5, count_tokens_cache_size=0
    ) as instrumentor:
        fuzz.replayer.serve(interaction, count_answer)
        got = outcome(lambda: fuzz.client.invoke_model(modelId=model, body=request))
        assert instrumentor.wait_for_predictions(5.0)
    assert got == expected
    check_span(fuzz.telemetry)
    assert fuzz.errors.describe() == []
    for point in fuzz.telemetry.points("bedrock_tokens.client.prediction.tokens"):
        assert point.sum >= 0 and math.isfinite(point.sum)


def test_deeply_nested_json_in_request_and_response(fuzz: Session) -> None:
    """Nesting deeper than Python's recursion limit: JSON parsing raises RecursionError, which must
    stay inside (the app still gets its bytes)."""
    fuzz.reset()
    deep = b"[" * 100_000 + b"]" * 100_000
    interaction = Interaction(
        "InvokeModel", MODELS[0], deep, 200, (("X-Amzn-Bedrock-Input-Token-Count", "3"),), deep
    )
    same_with_and_without(fuzz, interaction, lambda: fuzz.client.invoke_model(modelId=MODELS[0], body=deep))


def test_fuzz_helpers_see_a_difference() -> None:
    """The comparison is not vacuous: two different bodies give different app views."""
    telemetry = make_telemetry()
    with replay_server() as replayer:
        for body in (b"one", b"two"):
            replayer.serve(Interaction("InvokeModel", MODELS[0], b"{}", 200, (), body))
        first = uninstrumented(lambda: replayer.client.invoke_model(modelId=MODELS[0], body=b"{}"))
        second = uninstrumented(lambda: replayer.client.invoke_model(modelId=MODELS[0], body=b"{}"))
    assert first != second
    assert our_spans(telemetry) == []
