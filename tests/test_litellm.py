"""The real litellm (``completion`` / ``acompletion``) against the emulator, with the instrumentor on.

litellm signs with its own SigV4 and sends with plain ``httpx``, also when handed a boto3 client
(``aws_bedrock_client=``, deprecated: it only takes the credentials from it), so the httpx adapter is
the only layer that sees these calls. For each route (``bedrock/`` = Converse, ``bedrock/converse/``,
``bedrock/invoke/``), streamed and not, sync and async: exactly one span of ours, whose tokens equal the
emulator's ledger and the usage litellm reports, and nothing logged by us. Skipped without litellm
(it is heavy: the ``test-litellm`` extra).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

# litellm fetches a price map from GitHub at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

import boto3  # noqa: E402

from otel_bedrock_tokens._semconv import (  # noqa: E402
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from otel_bedrock_tokens.emulator import BedrockEmulator  # noqa: E402

from .support.telemetry import TelemetryCapture  # noqa: E402

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
HELLO = [{"role": "user", "content": "Name three rivers of Europe, briefly."}]
CREDENTIALS = {
    "aws_access_key_id": "emulator",
    "aws_secret_access_key": "emulator",
    "aws_region_name": "us-east-1",
}
ROUTES = [
    ("bedrock/", "Converse"),
    ("bedrock/converse/", "Converse"),
    ("bedrock/invoke/", "InvokeModel"),
]

Tokens = tuple[int, int]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(cache_minimum=0) as running:
        yield running


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if our code logged anything (litellm's own logs are its business)."""
    with caplog.at_level(logging.DEBUG, logger="otel_bedrock_tokens"):
        yield
    assert [r for r in caplog.records if r.name.startswith("otel_bedrock_tokens")] == []


def _arguments(emulator: BedrockEmulator, route: str, stream: bool) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": route + MODEL,
        "messages": HELLO,
        "max_tokens": 32,
        "aws_bedrock_runtime_endpoint": emulator.endpoint_url,
        **CREDENTIALS,
    }
    if stream:
        arguments.update(stream=True, stream_options={"include_usage": True})
    return arguments


def _reported(usage: Any) -> Tokens:
    """litellm's ``prompt_tokens`` leaves the cache out (Bedrock's figure); none is used here."""
    assert not usage.cache_read_input_tokens and not usage.cache_creation_input_tokens
    return usage.prompt_tokens, usage.completion_tokens


def _streamed_usage(chunks: list[Any]) -> Any:
    (usage,) = [chunk.usage for chunk in chunks if getattr(chunk, "usage", None)][-1:]
    return usage


def _span_and_ledger(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, operation: str
) -> tuple[Tokens, Tokens]:
    (span,) = telemetry.spans()
    entry = emulator.ledger.entries()[-1]
    assert entry.billed and entry.operation.startswith(operation)
    tokens = (span.attributes[GEN_AI_USAGE_INPUT_TOKENS], span.attributes[GEN_AI_USAGE_OUTPUT_TOKENS])
    return tokens, (entry.input_tokens, entry.output_tokens)


@pytest.mark.parametrize(("route", "operation"), ROUTES)
def test_completion(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, quiet: None, route: str, operation: str
) -> None:
    response = litellm.completion(**_arguments(emulator, route, stream=False))
    span, ledger = _span_and_ledger(emulator, instrumented, operation)
    assert span == ledger == _reported(response.usage)


@pytest.mark.parametrize(("route", "operation"), ROUTES)
def test_completion_streamed(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, quiet: None, route: str, operation: str
) -> None:
    chunks = list(litellm.completion(**_arguments(emulator, route, stream=True)))
    span, ledger = _span_and_ledger(emulator, instrumented, operation)
    assert span == ledger == _reported(_streamed_usage(chunks))


@pytest.mark.parametrize(("route", "operation"), ROUTES)
def test_acompletion(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, quiet: None, route: str, operation: str
) -> None:
    response = asyncio.run(litellm.acompletion(**_arguments(emulator, route, stream=False)))
    span, ledger = _span_and_ledger(emulator, instrumented, operation)
    assert span == ledger == _reported(response.usage)


@pytest.mark.parametrize(("route", "operation"), ROUTES)
def test_acompletion_streamed(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, quiet: None, route: str, operation: str
) -> None:
    async def run() -> list[Any]:
        stream = await litellm.acompletion(**_arguments(emulator, route, stream=True))
        return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    span, ledger = _span_and_ledger(emulator, instrumented, operation)
    assert span == ledger == _reported(_streamed_usage(chunks))


def test_handed_a_boto3_client_is_still_one_span(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, quiet: None
) -> None:
    """litellm takes only the credentials from the client and sends over httpx: no botocore span."""
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
    )
    arguments = _arguments(emulator, "bedrock/", stream=False)
    for key in CREDENTIALS:
        del arguments[key]
    response = litellm.completion(**arguments, aws_bedrock_client=client)
    span, ledger = _span_and_ledger(emulator, instrumented, "Converse")
    assert span == ledger == _reported(response.usage)
