"""Model ids: every form Bedrock accepts reaches the emulator intact and resolves to its model."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.serialize import create_serializer
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.emulator.catalog import DEFAULT_OPAQUE_BACKING, Catalog
from otel_bedrock_tokens.emulator.server import route

from ..support.emulator import MESSAGES

SONNET37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"

_SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
_SERIALIZER = create_serializer("rest-json", include_validation=False)

segment = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
plain_ids = st.builds(
    lambda v, m, s: f"{v}.{m}{s}", segment, segment, st.sampled_from(["", "-v1:0", ":1", "-v2"])
)
geo = st.sampled_from(["us", "eu", "apac", "us-gov", "jp", "au", "global", "ca"])
partition = st.sampled_from(["aws", "aws-us-gov", "aws-cn"])
arns = st.one_of(
    st.builds(lambda p, m: f"arn:{p}:bedrock:us-east-1::foundation-model/{m}", partition, plain_ids),
    st.builds(
        lambda p, g, m: f"arn:{p}:bedrock:us-west-2:123456789012:inference-profile/{g}.{m}",
        partition,
        geo,
        plain_ids,
    ),
    st.builds(
        lambda k, i: f"arn:aws:bedrock:us-east-1:123456789012:{k}/{i}",
        st.sampled_from(["application-inference-profile", "provisioned-model", "imported-model"]),
        segment,
    ),
)
model_ids = st.one_of(plain_ids, st.builds(lambda g, m: f"{g}.{m}", geo, plain_ids), arns)
ACTIONS = {
    "InvokeModel": {"body": b"{}"},
    "InvokeModelWithResponseStream": {"body": b"{}"},
    "Converse": {"messages": []},
    "ConverseStream": {"messages": []},
    "CountTokens": {"input": {"converse": {"messages": []}}},
}


@given(model_ids, st.sampled_from(sorted(ACTIONS)))
def test_botocore_paths_route_back_to_the_exact_id(model_id: str, operation: str) -> None:
    request = _SERIALIZER.serialize_to_request(
        {"modelId": model_id, **ACTIONS[operation]}, _SERVICE.operation_model(operation)
    )
    assert route(request["url_path"]) == (operation, model_id)


@pytest.mark.parametrize(
    ("model_id", "backing"),
    [
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("anthropic.claude-sonnet-4-6", "anthropic.claude-sonnet-4-6"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4-20250514-v1:0"),
        ("eu.amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"),
        ("apac.anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("jp.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("au.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("us-gov.anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-70b-instruct-v1:0",
            "meta.llama3-70b-instruct-v1:0",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
        ),
        (
            "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/amazon.titan-text-express-v1",
            "amazon.titan-text-express-v1",
        ),
        ("arn:aws-cn:bedrock:cn-north-1::foundation-model/cohere.command-r-v1:0", "cohere.command-r-v1:0"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/anthropic.claude-3-haiku-20240307-v1:0/abc123def456",
            "anthropic.claude-3-haiku-20240307-v1:0",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
            DEFAULT_OPAQUE_BACKING,
        ),
        ("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123def456", DEFAULT_OPAQUE_BACKING),
        ("arn:aws:bedrock:us-east-1:123456789012:imported-model/abc123def456", DEFAULT_OPAQUE_BACKING),
        ("openai.gpt-oss-20b-1:0", "openai.gpt-oss-20b-1:0"),
        ("us.deepseek.r1-v1:0", "deepseek.r1-v1:0"),
        ("ai21.jamba-1-5-mini-v1:0", "ai21.jamba-1-5-mini-v1:0"),
    ],
)
def test_every_id_form_resolves(model_id: str, backing: str) -> None:
    _, spec = Catalog().resolve(model_id)
    assert spec is not None and spec.model_id == backing


@pytest.mark.parametrize("model_id", ["does-not-exist", "foo.bar-v1", "us.", "", "anthropic"])
def test_unknown_ids_do_not_resolve(model_id: str) -> None:
    assert Catalog().resolve(model_id)[1] is None


def test_aliases_back_opaque_ids_with_any_model_or_family() -> None:
    profile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x1"
    catalog = Catalog({profile: "amazon.nova-pro-v1:0"})
    assert catalog.resolve(profile)[1].model_id == "amazon.nova-pro-v1:0"  # type: ignore[union-attr]
    catalog.alias(profile, "openai-completion")
    assert catalog.resolve(profile)[1].family.name == "openai-completion"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        catalog.alias(profile, "no-such-family")


@pytest.mark.parametrize("operation", ["converse", "converse_stream", "invoke_model", "count_tokens"])
def test_invalid_model_is_a_validation_error(bedrock_client: object, operation: str) -> None:
    kwargs = {
        "converse": {"messages": MESSAGES},
        "converse_stream": {"messages": MESSAGES},
        "invoke_model": {"body": b""},
        "count_tokens": {"input": {"converse": {"messages": MESSAGES}}},
    }[operation]
    with pytest.raises(ClientError) as raised:
        getattr(bedrock_client, operation)(modelId="does-not-exist", **kwargs)
    assert raised.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The provided model identifier is invalid.",
    }
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_arn_ids_round_trip_through_a_real_client(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    model_id = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/" + "us." + SONNET37
    client.converse(modelId=model_id, messages=MESSAGES)
    (entry,) = bedrock_emulator.ledger.entries()
    assert entry.model_id == model_id
    assert entry.base_model == "anthropic.claude-3-7-sonnet-20250219-v1:0"
