"""Every model id form (GUIDE §2): parsed right, and measured right through a real boto3 call."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.families import family_for
from otel_bedrock_tokens.model_id import parse_model_id

from .support.replay import Replayer, call_recorded, claude_body, synthetic, token_headers
from .support.telemetry import TelemetryCapture

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"


class Form(NamedTuple):
    model_id: str
    kind: str
    vendor: str | None
    base_model: str | None
    geo: str | None


FORMS = [
    Form(HAIKU, "foundation", "anthropic", HAIKU, None),
    Form("anthropic.claude-sonnet-4-6", "foundation", "anthropic", "anthropic.claude-sonnet-4-6", None),
    *(
        Form(f"{geo}.{HAIKU}", "inference-profile", "anthropic", HAIKU, geo)
        for geo in ("us", "eu", "apac", "us-gov", "jp", "au", "global")
    ),
    Form(
        f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}", "foundation-model", "anthropic", HAIKU, None
    ),
    Form(
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{HAIKU}",
        "inference-profile",
        "anthropic",
        HAIKU,
        "us",
    ),
    Form(
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
        "application-inference-profile",
        None,
        None,
        None,
    ),
    Form(
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/a1b2c3d4e5f6",
        "provisioned-model",
        None,
        None,
        None,
    ),
    Form(
        "arn:aws:bedrock:us-east-1:123456789012:imported-model/k2j3h4g5f6d7",
        "imported-model",
        None,
        None,
        None,
    ),
    Form(
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/anthropic.claude-3-haiku-20240307-v1:0:200k/x1y2z3",
        "custom-model",
        "anthropic",
        "anthropic.claude-3-haiku-20240307-v1:0:200k",
        None,
    ),
    Form(
        f"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{HAIKU}",
        "foundation-model",
        "anthropic",
        HAIKU,
        None,
    ),
    Form(
        f"arn:aws-cn:bedrock:cn-north-1:123456789012:inference-profile/apac.{HAIKU}",
        "inference-profile",
        "anthropic",
        HAIKU,
        "apac",
    ),
]
#: Forms parsed only (their bodies are not Claude's).
OTHER_VENDORS = [
    Form("ca.amazon.nova-lite-v1:0", "inference-profile", "amazon", "amazon.nova-lite-v1:0", "ca"),
    Form(
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.meta.llama3-2-1b-instruct-v1:0",
        "inference-profile",
        "meta",
        "meta.llama3-2-1b-instruct-v1:0",
        "eu",
    ),
    Form("does-not-exist", "unknown", None, None, None),
    Form("arn:aws:sagemaker:us-east-1:123456789012:endpoint/my-endpoint", "arn", None, None, None),
    Form("arn:aws:bedrock:us-east-1:123456789012", "arn", None, None, None),
]

form_ids = pytest.mark.parametrize("form", FORMS, ids=[f.model_id for f in FORMS])
OPAQUE = [f for f in FORMS if f.vendor is None]


@pytest.mark.parametrize("form", FORMS + OTHER_VENDORS, ids=[f.model_id for f in FORMS + OTHER_VENDORS])
def test_parse_every_form(form: Form) -> None:
    ref = parse_model_id(form.model_id)
    assert (ref.raw, ref.kind, ref.vendor, ref.base_model, ref.geo) == form


@form_ids
def test_parse_percent_encoded_form_gives_the_same_model(form: Form) -> None:
    ref = parse_model_id(quote(form.model_id, safe=""))
    assert (ref.vendor, ref.base_model, ref.geo) == (form.vendor, form.base_model, form.geo)


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        (HAIKU, "anthropic"),
        ("us.anthropic.claude-sonnet-4-6", "anthropic"),
        ("amazon.titan-text-express-v1", "amazon.titan-text"),
        ("amazon.titan-embed-text-v2:0", "amazon.titan-embed"),
        ("global.amazon.nova-pro-v1:0", "amazon.nova"),
        ("meta.llama3-1-70b-instruct-v1:0", "meta.llama"),
        ("mistral.mistral-7b-instruct-v0:2", "mistral"),
        ("cohere.command-r-plus-v1:0", "cohere.command-r"),
        ("cohere.command-text-v14", "cohere.command"),
        ("cohere.embed-english-v3", "cohere.embed"),
        ("ai21.j2-mid-v1", "ai21.j2"),
        ("ai21.jamba-1-5-large-v1:0", "openai"),
        ("us.deepseek.r1-v1:0", "openai"),
        ("openai.gpt-oss-120b-1:0", "openai"),
        ("arn:aws:bedrock:us-east-1:123456789012:imported-model/k2j3h4g5f6d7", "generic"),
        ("newvendor.model-v1", "generic"),
        ("does-not-exist", "generic"),
    ],
)
def test_family_for_model(model_id: str, family: str) -> None:
    assert family_for(parse_model_id(model_id)).name == family


@given(st.text())
def test_parse_never_raises_on_any_text(text: str) -> None:
    ref = parse_model_id(text)
    assert ref.raw == text


@given(st.text(alphabet=st.sampled_from("arn:aws/bedrock.-_%3A2F1us")))
def test_parse_never_raises_on_arn_like_text(text: str) -> None:
    assert parse_model_id(text).raw == text


# --- every form through a real call ----------------------------------------------------------------


@form_ids
def test_request_model_keeps_the_id_exactly(
    form: Form, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    interaction = synthetic(claude_body(), model_id=form.model_id)
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)["body"].read()
    (span,) = instrumented.spans()
    assert span.attributes["gen_ai.request.model"] == form.model_id
    assert span.name == f"chat {form.model_id}"


@form_ids
def test_tokens_from_headers_for_every_form(
    form: Form, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    headers = token_headers(input_tokens=21, output_tokens=9, cache_read=100, cache_write=0)
    interaction = synthetic(claude_body(1, 1), model_id=form.model_id, headers=headers)
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)["body"].read()
    (span,) = instrumented.spans()
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (
        121,
        9,
    )


@form_ids
def test_tokens_from_claude_body_without_headers_for_every_form(
    form: Form, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    """No token headers: the body's usage is read, by the id's family or, for opaque ids, by shape."""
    body = claude_body(input_tokens=30, output_tokens=12, cache_read=5, cache_write=7)
    interaction = synthetic(body, model_id=form.model_id, headers=(("Content-Type", "application/json"),))
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)["body"].read()
    (span,) = instrumented.spans()
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (
        42,
        12,
    )


@form_ids
def test_converse_request_model_keeps_the_id_exactly(
    form: Form, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    body = b'{"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, '
    body += b'"stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, '
    body += b'"metrics": {"latencyMs": 10}}'
    interaction = synthetic(
        body,
        operation="Converse",
        model_id=form.model_id,
        headers=(("Content-Type", "application/json"),),
        request_body=b'{"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}',
    )
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)
    (span,) = instrumented.spans()
    assert (span.attributes["gen_ai.request.model"], span.attributes["gen_ai.usage.input_tokens"]) == (
        form.model_id,
        3,
    )


def test_the_wire_carries_the_percent_encoded_id(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    form = FORMS[-1]
    interaction = synthetic(claude_body(), model_id=form.model_id)
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)["body"].read()
    path, _ = replayer.received[0]
    assert path == f"/model/{quote(form.model_id, safe='')}/invoke"


@pytest.mark.parametrize("form", OPAQUE, ids=[f.model_id for f in OPAQUE])
def test_opaque_ids_have_no_family_but_still_get_header_tokens(
    form: Form, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    """An opaque id with a body that has no usage at all (Mistral-like): only the headers tell."""
    body = b'{"outputs": [{"text": "Hi", "stop_reason": "stop"}]}'
    headers = token_headers(input_tokens=8, output_tokens=4)
    interaction = synthetic(
        body, model_id=form.model_id, headers=headers, request_body=b'{"prompt": "Hi", "max_tokens": 5}'
    )
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)["body"].read()
    (span,) = instrumented.spans()
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (
        8,
        4,
    )
