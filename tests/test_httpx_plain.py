"""The adapter on plain ``httpx`` (litellm's HTTP client; also Python 3.10): SigV4-signed Bedrock
requests, as litellm signs them, against the emulator, sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

httpx = pytest.importorskip("httpx")

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from otel_bedrock_tokens import names  # noqa: E402
from otel_bedrock_tokens._semconv import GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS  # noqa: E402
from otel_bedrock_tokens.emulator import BedrockEmulator  # noqa: E402

from .support.telemetry import TelemetryCapture  # noqa: E402

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
BODY = {"messages": [{"role": "user", "content": [{"text": "Name three rivers of Europe."}]}]}


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def _signed(emulator: BedrockEmulator, action: str) -> tuple[str, dict[str, str], bytes]:
    url = f"{emulator.endpoint_url}/model/{MODEL.replace(':', '%3A')}/{action}"
    data = json.dumps(BODY).encode()
    request = AWSRequest("POST", url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("emulator", "emulator"), "bedrock", "us-east-1").add_auth(request)
    return url, dict(request.headers.items()), data


def _billed(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> tuple[tuple[int, int], tuple[int, int]]:
    (span,) = instrumented.spans()
    entry = emulator.ledger.entries()[-1]
    tokens = (span.attributes[GEN_AI_USAGE_INPUT_TOKENS], span.attributes[GEN_AI_USAGE_OUTPUT_TOKENS])
    return tokens, (entry.input_tokens, entry.output_tokens)


def test_converse(emulator: BedrockEmulator, instrumented: TelemetryCapture) -> None:
    url, headers, data = _signed(emulator, "converse")
    with httpx.Client() as client:
        usage = client.post(url, headers=headers, content=data).json()["usage"]
    span_tokens, ledger = _billed(emulator, instrumented)
    assert span_tokens == ledger == (usage["inputTokens"], usage["outputTokens"])


def test_async_converse_stream(emulator: BedrockEmulator, instrumented: TelemetryCapture) -> None:
    url, headers, data = _signed(emulator, "converse-stream")

    async def run() -> None:
        async with (
            httpx.AsyncClient() as client,
            client.stream("POST", url, headers=headers, content=data) as response,
        ):
            async for _ in response.aiter_bytes():
                pass

    asyncio.run(run())
    span_tokens, ledger = _billed(emulator, instrumented)
    assert span_tokens == ledger
    assert instrumented.spans()[0].attributes[names.STREAM_END] == "completed"


def test_a_request_that_is_not_bedrock_is_untouched(instrumented: TelemetryCapture) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"ok"))
    with httpx.Client(transport=transport) as client:
        response = client.post("http://example.test/model/x/converse", content=b"{}")
    assert response.content == b"ok"
    assert instrumented.spans() == ()


_IMPORTED_LATER = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_bedrock_tokens import BedrockTokensInstrumentor

assert "httpx" not in sys.modules
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
instrumentor = BedrockTokensInstrumentor()
instrumentor.instrument(tracer_provider=provider)
import httpx  # imported after instrument(): the post-import hook patches it now

sigv4 = ("AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request, "
         "SignedHeaders=host, Signature=0")
answer = httpx.Response(200, content=b'{"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}}')
client = httpx.Client(transport=httpx.MockTransport(lambda request: answer))
client.post("https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse",
            headers={"authorization": sigv4}, content=b'{"messages": []}').read()
(span,) = exporter.get_finished_spans()
original = httpx.Client.__dict__["_send_single_request"].__wrapped__
instrumentor.uninstrument()
assert httpx.Client.__dict__["_send_single_request"] is original
print(span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"])
"""


def test_httpx_imported_after_instrument_is_patched_then_restored() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED_LATER], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["7", "3"]


_INVOKE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Name three rivers of Europe."}],
}


class _Pieces(httpx.SyncByteStream):
    """A recorded body handed on in 7-byte pieces: reads that split and join event frames."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        return (self.body[at : at + 7] for at in range(0, len(self.body), 7))


@pytest.mark.parametrize("action", ["converse-stream", "invoke-with-response-stream"])
def test_stream_events_counts_decoded_events_as_the_botocore_path_does(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, action: str
) -> None:
    """The same stream through boto3, through httpx over loopback, and replayed through httpx in
    7-byte reads: ``bedrock_tokens.stream.events`` is the number of events the boto3 caller
    iterated on every path, whatever the sizes of the byte reads."""
    import boto3

    runtime = boto3.client(
        "bedrock-runtime",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
    )
    if action == "converse-stream":
        events = list(runtime.converse_stream(modelId=MODEL, **BODY)["stream"])
        data = json.dumps(BODY).encode()
    else:
        data = json.dumps(_INVOKE_BODY).encode()
        events = list(runtime.invoke_model_with_response_stream(modelId=MODEL, body=data)["body"])
    url = f"{emulator.endpoint_url}/model/{MODEL.replace(':', '%3A')}/{action}"
    request = AWSRequest("POST", url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("emulator", "emulator"), "bedrock", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    with httpx.Client() as client, client.stream("POST", url, headers=headers, content=data) as response:
        recorded = b"".join(response.iter_bytes())
        content_type = response.headers["content-type"]

    def replay(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, stream=_Pieces(recorded))

    with (
        httpx.Client(transport=httpx.MockTransport(replay)) as client,
        client.stream("POST", url, headers=headers, content=data) as response,
    ):
        for _ in response.iter_bytes():
            pass
    counted = [span.attributes[names.STREAM_EVENTS] for span in instrumented.spans()]
    assert counted == [len(events)] * 3
    assert len(events) > 2
