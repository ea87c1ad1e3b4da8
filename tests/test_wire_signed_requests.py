"""wire readers on Converse and ConverseStream as the httpx-based clients send them (litellm signs with
botocore's SigV4Auth and posts with httpx): signed raw requests to the emulator, bytes teed to the
readers, usage equal to the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

httpx2 = pytest.importorskip("httpx2")

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from otel_bedrock_tokens.emulator import BedrockEmulator  # noqa: E402
from otel_bedrock_tokens.wire import request as ops  # noqa: E402

from .support.wire_tee import TeeTransport  # noqa: E402

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
BODY = {"messages": [{"role": "user", "content": [{"text": "Name three rivers of Europe."}]}]}


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def _signed(url: str, body: dict[str, object]) -> tuple[str, dict[str, str], bytes]:
    data = json.dumps(body).encode()
    request = AWSRequest("POST", url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("emulator", "emulator"), "bedrock", "us-east-1").add_auth(request)
    return url, dict(request.headers.items()), data


def _ledger(emulator: BedrockEmulator) -> tuple[int, int, int, int]:
    entry = emulator.ledger.entries()[-1]
    assert entry.billed
    return (entry.input_tokens, entry.output_tokens, entry.cache_read_tokens, entry.cache_write_tokens)


def _read(transport: TeeTransport, operation: str) -> tuple[int, int, int, int]:
    (seen,) = transport.seen
    assert seen.request.operation == operation
    assert seen.reader.done
    usage = seen.reader.usage
    return (
        usage.input_tokens or 0,
        usage.output_tokens or 0,
        usage.cache_read_tokens or 0,
        usage.cache_write_tokens or 0,
    )


def test_converse_signed_request(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    url, headers, data = _signed(f"{emulator.endpoint_url}/model/{MODEL.replace(':', '%3A')}/converse", BODY)
    with httpx2.Client(transport=transport) as client:
        response = client.post(url, headers=headers, content=data)
    usage = response.json()["usage"]
    reported = (usage["inputTokens"], usage["outputTokens"], 0, 0)
    assert _read(transport, ops.CONVERSE) == _ledger(emulator) == reported


def test_converse_stream_signed_request(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    path = f"/model/{MODEL.replace(':', '%3A')}/converse-stream"
    url, headers, data = _signed(emulator.endpoint_url + path, BODY)
    with (
        httpx2.Client(transport=transport) as client,
        client.stream("POST", url, headers=headers, content=data) as response,
    ):
        for _ in response.iter_bytes(7):  # small reads: frames split across them
            pass
    assert _read(transport, ops.CONVERSE_STREAM) == _ledger(emulator)
