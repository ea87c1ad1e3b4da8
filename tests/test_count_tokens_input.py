"""The one CountTokens model id (``count_tokens_input.count_model_id``) and both of its callers: the
predictor (a request being sent) and the ``count`` CLI command ask CountTokens about the same
foundation model for every model id form of the guide."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.cli import UsageError
from otel_bedrock_tokens.cli import count_model_id as cli_count_model_id
from otel_bedrock_tokens.count_tokens_input import count_model_id, count_tokens_input
from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.model_id import parse_model_id

from .support.cli import run
from .support.telemetry import TelemetryCapture

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
FOUNDATION_ARN = f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
PROFILE_ARN = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{HAIKU}"
GOV_ARN = f"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{HAIKU}"

#: Id forms that name a foundation model: CountTokens is asked about its plain id.
COUNTABLE = [HAIKU, f"us.{HAIKU}", f"global.{HAIKU}", f"us-gov.{HAIKU}", FOUNDATION_ARN, PROFILE_ARN, GOV_ARN]
#: Opaque id forms: no model CountTokens can count.
OPAQUE = [
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
    "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
    "arn:aws:bedrock:us-east-1:123456789012:imported-model/abc123",
    f"arn:aws:bedrock:us-east-1:123456789012:custom-model/{HAIKU}/abc123",
    "nodots",
]


@pytest.mark.parametrize("model_id", COUNTABLE)
def test_every_foundation_form_counts_the_plain_foundation_id(model_id: str) -> None:
    assert count_model_id(parse_model_id(model_id)) == HAIKU


@pytest.mark.parametrize("model_id", OPAQUE)
def test_opaque_ids_are_not_counted(model_id: str) -> None:
    assert count_model_id(parse_model_id(model_id)) is None


def test_the_model_map_wins_for_the_id_as_passed() -> None:
    opaque = OPAQUE[0]
    assert count_model_id(parse_model_id(opaque), {opaque: HAIKU}) == HAIKU


@pytest.mark.parametrize("model_id", COUNTABLE)
def test_the_cli_counts_the_same_model_as_the_predictor(model_id: str) -> None:
    assert cli_count_model_id(model_id)[0] == count_model_id(parse_model_id(model_id))


@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            "{}{}.{}".format,
            st.sampled_from(["", "us.", "global.", "arn:aws:bedrock:us-east-1::foundation-model/"]),
            st.text(max_size=20),
            st.text(max_size=20),
        ),
    )
)
def test_the_cli_and_the_predictor_agree_on_any_id(model_id: str) -> None:
    counted = count_model_id(parse_model_id(model_id))
    if counted is None:
        with pytest.raises(UsageError):
            cli_count_model_id(model_id)
    else:
        assert cli_count_model_id(model_id)[0] == counted


@pytest.mark.parametrize("model_id", [HAIKU, FOUNDATION_ARN, GOV_ARN])
def test_the_cli_notes_nothing_for_a_form_of_the_same_foundation_model(model_id: str) -> None:
    assert cli_count_model_id(model_id)[1] is None


@pytest.mark.parametrize("model_id", [f"us.{HAIKU}", PROFILE_ARN])
def test_the_cli_notes_the_foundation_model_behind_a_profile(model_id: str) -> None:
    assert cli_count_model_id(model_id)[1] == f"counting with {HAIKU}, the foundation model behind {model_id}"


@pytest.mark.parametrize("model_id", OPAQUE)
def test_the_cli_refuses_an_opaque_id(model_id: str) -> None:
    with pytest.raises(UsageError):
        cli_count_model_id(model_id)


def test_invoke_model_bodies_are_sent_as_bytes() -> None:
    assert count_tokens_input("InvokeModel", {"body": "{}"}) == {"invokeModel": {"body": b"{}"}}


def test_a_file_like_body_is_not_counted() -> None:
    class Stream:
        def read(self) -> bytes:
            raise AssertionError("the caller's body was read")

    assert count_tokens_input("InvokeModelWithResponseStream", {"body": Stream()}) is None


def test_converse_input_keeps_only_the_counted_fields() -> None:
    params: dict[str, Any] = {
        "modelId": HAIKU,
        "messages": [],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 5},
    }
    assert count_tokens_input("Converse", params) == {
        "converse": {"messages": [], "system": [{"text": "be brief"}]}
    }


def test_converse_without_messages_is_not_counted() -> None:
    assert count_tokens_input("ConverseStream", {"system": []}) is None


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


@pytest.mark.parametrize("model_id", [FOUNDATION_ARN, f"us.{HAIKU}"])
def test_the_predictor_counts_a_foundation_arn_and_a_profile(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, model_id: str
) -> None:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        count_tokens="before",
    )
    try:
        emulator.client().converse(modelId=model_id, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    finally:
        instrumentor.uninstrument()
    (span,) = telemetry.spans()
    assert span.attributes is not None
    assert span.attributes["bedrock_tokens.prediction.status"] == "ok"
    assert span.attributes["bedrock_tokens.prediction.delta"] == 0


def test_the_cli_counts_a_foundation_arn_against_the_emulator(emulator: BedrockEmulator) -> None:
    result = run("count", "--model", FOUNDATION_ARN, "--text", "hi", "--endpoint-url", emulator.endpoint_url)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0
    assert "note:" not in result.stderr
