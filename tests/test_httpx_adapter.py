"""The httpx2 adapter with the real anthropic and openai SDKs, over loopback, against the emulator.

Each test: the instrumentor is on (the ``instrumented`` fixture), the client sends through its own
``httpx2`` client, and our span carries the tokens the emulator's ledger billed and the client
reported. The clients' results are the same as without us, nothing is logged, and the span ends
exactly once on every path.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

from otel_bedrock_tokens import BedrockTokensInstrumentor, names  # noqa: E402
from otel_bedrock_tokens._semconv import (  # noqa: E402
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from otel_bedrock_tokens.emulator import BedrockEmulator  # noqa: E402

from .support.telemetry import TelemetryCapture  # noqa: E402

CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
GPT_OSS = "openai.gpt-oss-120b-1:0"
HELLO = [{"role": "user", "content": "Name three rivers of Europe, briefly."}]
AWS = {"aws_access_key": "emulator", "aws_secret_key": "emulator", "aws_region": "us-east-1"}
MANTLE_HOST = "bedrock-mantle.us-east-1.api.aws"


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(cache_minimum=0) as running:
        yield running


def _ledger(emulator: BedrockEmulator) -> tuple[int, int]:
    entry = emulator.ledger.entries()[-1]
    assert entry.billed
    return entry.input_tokens, entry.output_tokens


def _span(telemetry: TelemetryCapture) -> Any:
    (span,) = telemetry.spans()
    return span


def _tokens(span: Any) -> tuple[int, int]:
    return span.attributes[GEN_AI_USAGE_INPUT_TOKENS], span.attributes[GEN_AI_USAGE_OUTPUT_TOKENS]


def _bedrock(emulator: BedrockEmulator) -> Any:
    return anthropic.AnthropicBedrock(**AWS, base_url=emulator.endpoint_url, http_client=httpx2.Client())


def test_anthropic_bedrock_create_is_one_span_with_billed_tokens(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    message = _bedrock(emulator).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    span = _span(instrumented)
    assert span.attributes["gen_ai.request.model"] == CLAUDE
    assert _tokens(span) == _ledger(emulator) == (message.usage.input_tokens, message.usage.output_tokens)


def test_a_plain_call_has_no_stream_attributes(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    _bedrock(emulator).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    assert names.STREAM_END not in _span(instrumented).attributes


def test_anthropic_bedrock_stream_ends_the_span_completed(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    with _bedrock(emulator).messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
        final = stream.get_final_message()
    span = _span(instrumented)
    assert span.attributes[names.STREAM_END] == "completed"
    assert _tokens(span) == _ledger(emulator) == (final.usage.input_tokens, final.usage.output_tokens)


def test_results_are_identical_to_an_uninstrumented_run(
    emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    def run() -> tuple[Any, list[Any]]:
        message = _bedrock(emulator).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
        stream = _bedrock(emulator).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO, stream=True)
        return _without_ids(message.model_dump()), [_without_ids(event.model_dump()) for event in stream]

    without = run()
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        with_us = run()
    finally:
        instrumentor.uninstrument()
    assert len(telemetry.spans()) == 2
    assert with_us == without


_PER_CALL = frozenset({"id", "invocationLatency", "firstByteLatency"})


def _without_ids(data: Any) -> Any:
    """The emulator's message ids and latencies differ per call; everything else is the same."""
    if isinstance(data, dict):
        return {key: _without_ids(value) for key, value in data.items() if key not in _PER_CALL}
    return data


def test_nothing_is_logged(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="otel_bedrock_tokens"):
        _bedrock(emulator).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
        with _bedrock(emulator).messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
            stream.get_final_message()
    assert [r for r in caplog.records if r.name.startswith("otel_bedrock_tokens")] == []


def test_a_broken_off_stream_ends_closed_and_incomplete(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    stream = _bedrock(emulator).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO, stream=True)
    first = next(iter(stream))
    stream.close()
    span = _span(instrumented)
    assert first.type == "message_start"
    assert span.attributes[names.STREAM_END] == "closed"
    assert span.attributes[names.STREAM_INCOMPLETE] is True


def test_async_cancellation_ends_the_span_once_with_the_error(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    emulator.set_latency(per_token=0.05)
    started = asyncio.Event()

    async def consume() -> None:
        client = anthropic.AsyncAnthropicBedrockMantle(
            **AWS, base_url=emulator.endpoint_url + "/anthropic", http_client=httpx2.AsyncClient()
        )
        async with client.messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
            async for _ in stream:
                started.set()

    async def run() -> None:
        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    span = _span(instrumented)
    assert span.attributes[names.STREAM_INCOMPLETE] is True
    assert span.attributes["error.type"] in ("asyncio.exceptions.CancelledError", "CancelledError")


def test_async_anthropic_bedrock_create(emulator: BedrockEmulator, instrumented: TelemetryCapture) -> None:
    async def run() -> Any:
        client = anthropic.AsyncAnthropicBedrock(
            **AWS, base_url=emulator.endpoint_url, http_client=httpx2.AsyncClient()
        )
        return await client.messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)

    message = asyncio.run(run())
    span = _span(instrumented)
    assert _tokens(span) == _ledger(emulator) == (message.usage.input_tokens, message.usage.output_tokens)


def test_mantle_messages_create(emulator: BedrockEmulator, instrumented: TelemetryCapture) -> None:
    client = anthropic.AnthropicBedrockMantle(
        **AWS, base_url=emulator.endpoint_url + "/anthropic", http_client=httpx2.Client()
    )
    message = client.messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    span = _span(instrumented)
    assert span.attributes["gen_ai.request.model"] == CLAUDE
    assert _tokens(span) == _ledger(emulator) == (message.usage.input_tokens, message.usage.output_tokens)


def test_openai_chat_completions_stream_on_mantle(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    client = openai.OpenAI(
        api_key="bedrock-api-key",
        base_url=emulator.endpoint_url + "/v1",
        default_headers={"Host": MANTLE_HOST},
        http_client=httpx2.Client(),
    )
    chunks = list(
        client.chat.completions.create(
            model=GPT_OSS, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    span = _span(instrumented)
    assert span.attributes[names.STREAM_END] == "completed"
    assert _tokens(span) == _ledger(emulator) == (usage.prompt_tokens, usage.completion_tokens)


def test_a_non_bedrock_request_passes_through_unmeasured(instrumented: TelemetryCapture) -> None:
    client = httpx2.Client(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, content=b"ok"))
    )
    response = client.post("http://example.test/model/x/invoke", content=b"{}")
    assert response.content == b"ok"
    assert instrumented.spans() == ()


def test_uninstrument_leaves_nothing_behind(telemetry: TelemetryCapture) -> None:
    before = (
        httpx2.Client.__dict__["_send_single_request"],
        httpx2.AsyncClient.__dict__["_send_single_request"],
    )
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    assert httpx2.Client.__dict__["_send_single_request"] is not before[0]
    instrumentor.uninstrument()
    after = (
        httpx2.Client.__dict__["_send_single_request"],
        httpx2.AsyncClient.__dict__["_send_single_request"],
    )
    assert after == before


# --- SigV4 over httpx2, as litellm sends: Converse and ConverseStream ------------------------------

CONVERSE_BODY = {"messages": [{"role": "user", "content": [{"text": "Name three rivers of Europe."}]}]}


def _signed(url: str, body: dict[str, object]) -> tuple[str, dict[str, str], bytes]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = json.dumps(body).encode()
    request = AWSRequest("POST", url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("emulator", "emulator"), "bedrock", "us-east-1").add_auth(request)
    return url, dict(request.headers.items()), data


def _model_url(emulator: BedrockEmulator, action: str) -> str:
    return f"{emulator.endpoint_url}/model/{CLAUDE.replace(':', '%3A')}/{action}"


def test_signed_converse_over_httpx2(emulator: BedrockEmulator, instrumented: TelemetryCapture) -> None:
    url, headers, data = _signed(_model_url(emulator, "converse"), CONVERSE_BODY)
    with httpx2.Client() as client:
        usage = client.post(url, headers=headers, content=data).json()["usage"]
    span = _span(instrumented)
    assert span.attributes["gen_ai.request.model"] == CLAUDE
    assert _tokens(span) == _ledger(emulator) == (usage["inputTokens"], usage["outputTokens"])


def test_signed_converse_stream_read_in_small_pieces(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    url, headers, data = _signed(_model_url(emulator, "converse-stream"), CONVERSE_BODY)
    with httpx2.Client() as client, client.stream("POST", url, headers=headers, content=data) as response:
        for _ in response.iter_bytes(7):  # frames split across reads
            pass
    span = _span(instrumented)
    assert span.attributes[names.STREAM_END] == "completed"
    assert _tokens(span) == _ledger(emulator)


def test_a_throttled_call_ends_with_the_service_error_type(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    emulator.inject("throttle")
    with pytest.raises(anthropic.RateLimitError):
        anthropic.AnthropicBedrock(
            **AWS, base_url=emulator.endpoint_url, http_client=httpx2.Client(), max_retries=0
        ).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    span = _span(instrumented)
    assert span.attributes["error.type"] == "ThrottlingException"


def test_a_response_dropped_unread_ends_abandoned(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    from otel_bedrock_tokens import abandoned

    url, headers, data = _signed(_model_url(emulator, "converse-stream"), CONVERSE_BODY)
    client = httpx2.Client()
    response = client.send(client.build_request("POST", url, headers=headers, content=data), stream=True)
    del response
    gc.collect()
    abandoned.drain()  # the finalizer only queued it: the next call, the reaper or exit ends it
    span = _span(instrumented)
    assert span.attributes[names.STREAM_END] == "abandoned"
    client.close()


def test_the_hooks_get_the_httpx_request_and_response(
    emulator: BedrockEmulator, make_instrumentor: Any
) -> None:
    seen: list[Any] = []
    make_instrumentor(
        request_hook=lambda span, service, operation, data: seen.append(("request", operation, data)),
        response_hook=lambda span, service, operation, data: seen.append(("response", operation, data)),
    )
    _bedrock(emulator).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    assert [(kind, operation) for kind, operation, _ in seen] == [
        ("request", "InvokeModel"),
        ("response", "InvokeModel"),
    ]
    assert isinstance(seen[0][2], httpx2.Request)
    assert isinstance(seen[1][2], httpx2.Response)


def test_openai_reasoning_tokens_reach_the_span(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    client = openai.OpenAI(
        api_key="bedrock-api-key",
        base_url=emulator.endpoint_url + "/v1",
        default_headers={"Host": MANTLE_HOST},
        http_client=httpx2.Client(),
    )
    response = client.responses.create(model=GPT_OSS, input="Name three rivers of Europe, briefly.")
    reasoning = response.usage.output_tokens_details.reasoning_tokens
    span = _span(instrumented)
    assert span.attributes.get(names.USAGE_REASONING_OUTPUT_TOKENS) == reasoning
    assert _tokens(span)[1] == response.usage.output_tokens == _ledger(emulator)[1]


def test_a_transport_error_ends_the_span_and_propagates(instrumented: TelemetryCapture) -> None:
    url, headers, data = _signed("http://127.0.0.1:9/model/m/converse", CONVERSE_BODY)
    with httpx2.Client() as client, pytest.raises(httpx2.ConnectError):
        client.post(url, headers=headers, content=data)
    assert _span(instrumented).attributes["error.type"].endswith("ConnectError")
