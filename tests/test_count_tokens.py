"""``otel_bedrock_tokens.count_tokens``: Bedrock's CountTokens figure, through boto3, against the
emulator; never recorded as telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from otel_bedrock_tokens import count_tokens
from otel_bedrock_tokens.counting import count_input
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.telemetry import TelemetryCapture

CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
ANTHROPIC_MESSAGES = [{"role": "user", "content": "Name three rivers of Europe, briefly."}]
CONVERSE_MESSAGES = [{"role": "user", "content": [{"text": "Name three rivers of Europe, briefly."}]}]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


@pytest.fixture
def client(emulator: BedrockEmulator) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=emulator.endpoint_url,
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
    )


def _counted(emulator: BedrockEmulator) -> int | None:
    return emulator.ledger.entries()[-1].counted_tokens


def test_anthropic_messages_arguments(emulator: BedrockEmulator, client: Any) -> None:
    tokens = count_tokens(CLAUDE, messages=ANTHROPIC_MESSAGES, system="Be terse.", client=client)
    assert tokens == _counted(emulator)
    assert tokens > 0


def test_converse_arguments(emulator: BedrockEmulator, client: Any) -> None:
    tokens = count_tokens(CLAUDE, messages=CONVERSE_MESSAGES, system="Be terse.", client=client)
    assert tokens == _counted(emulator)


def test_a_whole_invoke_model_body(emulator: BedrockEmulator, client: Any) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": ANTHROPIC_MESSAGES}
    assert count_tokens(CLAUDE, body=body, client=client) == _counted(emulator)


def test_the_count_equals_what_the_call_is_billed(emulator: BedrockEmulator, client: Any) -> None:
    counted = count_tokens(CLAUDE, messages=CONVERSE_MESSAGES, client=client)
    response = client.converse(modelId=CLAUDE, messages=CONVERSE_MESSAGES)
    assert counted == response["usage"]["inputTokens"]


def test_the_geo_prefix_is_mapped_as_for_prediction(emulator: BedrockEmulator, client: Any) -> None:
    sent: list[str] = []
    client.meta.events.register(
        "provide-client-params.bedrock-runtime.CountTokens",
        lambda params, **_: sent.append(params["modelId"]),
    )
    count_tokens(CLAUDE, messages=ANTHROPIC_MESSAGES, client=client)
    assert sent == ["anthropic.claude-sonnet-4-20250514-v1:0"]


def test_it_is_not_recorded_as_telemetry(
    emulator: BedrockEmulator, client: Any, instrumented: TelemetryCapture
) -> None:
    count_tokens(CLAUDE, messages=ANTHROPIC_MESSAGES, client=client)
    assert instrumented.spans() == ()


def test_body_and_messages_together_are_refused() -> None:
    with pytest.raises(ValueError):
        count_input(messages=ANTHROPIC_MESSAGES, body=b"{}")
