"""The wire decoders fed the real anthropic and openai SDKs' bytes, over loopback, against the emulator.

For every client and operation: the usage the wire readers read from the bytes the client received
equals the emulator's ledger and what the client itself reports (with the cache tokens the OpenAI
shapes fold into the input split back out). Sync and async, streamed and not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

from otel_bedrock_tokens.emulator import BedrockEmulator  # noqa: E402
from otel_bedrock_tokens.wire import request as ops  # noqa: E402

from .support.wire_tee import AsyncTeeTransport, Seen, TeeTransport  # noqa: E402

CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
GPT_OSS = "openai.gpt-oss-120b-1:0"
HELLO = [{"role": "user", "content": "Name three rivers of Europe, briefly."}]
AWS = {"aws_access_key": "emulator", "aws_secret_key": "emulator", "aws_region": "us-east-1"}

Tokens = tuple[int, int, int, int]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(cache_minimum=0) as running:
        yield running


def _read(seen: Seen) -> Tokens:
    usage = seen.reader.usage
    return (
        usage.input_tokens or 0,
        usage.output_tokens or 0,
        usage.cache_read_tokens or 0,
        usage.cache_write_tokens or 0,
    )


def _ledger(emulator: BedrockEmulator) -> Tokens:
    entry = emulator.ledger.entries()[-1]
    assert entry.billed
    return (entry.input_tokens, entry.output_tokens, entry.cache_read_tokens, entry.cache_write_tokens)


def _anthropic_usage(usage: Any) -> Tokens:
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens or 0,
        usage.cache_creation_input_tokens or 0,
    )


def _only(transport: TeeTransport | AsyncTeeTransport, operation: str) -> Seen:
    (seen,) = transport.seen
    assert seen.request.operation == operation
    return seen


# --- AnthropicBedrock: InvokeModel / InvokeModelWithResponseStream ---------------------------------


def _bedrock(emulator: BedrockEmulator, transport: TeeTransport) -> Any:
    return anthropic.AnthropicBedrock(
        **AWS, base_url=emulator.endpoint_url, http_client=httpx2.Client(transport=transport)
    )


def _async_bedrock(emulator: BedrockEmulator, transport: AsyncTeeTransport) -> Any:
    return anthropic.AsyncAnthropicBedrock(
        **AWS, base_url=emulator.endpoint_url, http_client=httpx2.AsyncClient(transport=transport)
    )


def test_anthropic_bedrock_create(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    message = _bedrock(emulator, transport).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    seen = _only(transport, ops.INVOKE_MODEL)
    assert seen.request.model_id == CLAUDE
    assert _read(seen) == _ledger(emulator) == _anthropic_usage(message.usage)


def test_anthropic_bedrock_create_stream_true(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    stream = _bedrock(emulator, transport).messages.create(
        model=CLAUDE, max_tokens=64, messages=HELLO, stream=True
    )
    events = list(stream)
    seen = _only(transport, ops.INVOKE_MODEL_STREAM)
    start = events[0].message.usage
    output = events[-2].usage.output_tokens  # message_delta, before message_stop
    reported = (start.input_tokens, output, start.cache_read_input_tokens or 0, 0)
    assert seen.reader.done
    assert _read(seen) == _ledger(emulator) == reported


def test_anthropic_bedrock_messages_stream_helper(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    with _bedrock(emulator, transport).messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
        final = stream.get_final_message()
    seen = _only(transport, ops.INVOKE_MODEL_STREAM)
    assert _read(seen) == _ledger(emulator) == _anthropic_usage(final.usage)


def test_anthropic_bedrock_beta_with_beta_header(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    message = _bedrock(emulator, transport).beta.messages.create(
        model=CLAUDE, max_tokens=64, messages=HELLO, betas=["token-efficient-tools-2025-02-19"]
    )
    seen = _only(transport, ops.INVOKE_MODEL)
    assert _read(seen) == _ledger(emulator) == _anthropic_usage(message.usage)


def test_anthropic_bedrock_prompt_cache_read(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    client = _bedrock(emulator, transport)
    system = [{"type": "text", "text": "You answer tersely. " * 40, "cache_control": {"type": "ephemeral"}}]
    client.messages.create(model=CLAUDE, max_tokens=32, system=system, messages=HELLO)
    message = client.messages.create(model=CLAUDE, max_tokens=32, system=system, messages=HELLO)
    read = _read(transport.seen[-1])
    assert read[2] > 0
    assert read == _ledger(emulator) == _anthropic_usage(message.usage)


def test_async_anthropic_bedrock_create(emulator: BedrockEmulator) -> None:
    transport = AsyncTeeTransport()

    async def run() -> Any:
        return await _async_bedrock(emulator, transport).messages.create(
            model=CLAUDE, max_tokens=64, messages=HELLO
        )

    message = asyncio.run(run())
    seen = _only(transport, ops.INVOKE_MODEL)
    assert _read(seen) == _ledger(emulator) == _anthropic_usage(message.usage)


def test_async_anthropic_bedrock_stream(emulator: BedrockEmulator) -> None:
    transport = AsyncTeeTransport()

    async def run() -> Any:
        client = _async_bedrock(emulator, transport)
        async with client.messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
            return await stream.get_final_message()

    final = asyncio.run(run())
    seen = _only(transport, ops.INVOKE_MODEL_STREAM)
    assert _read(seen) == _ledger(emulator) == _anthropic_usage(final.usage)


# --- AnthropicBedrockMantle: Anthropic Messages over SSE ------------------------------------------


def _mantle(emulator: BedrockEmulator, transport: TeeTransport) -> Any:
    return anthropic.AnthropicBedrockMantle(
        **AWS,
        base_url=emulator.endpoint_url + "/anthropic",
        http_client=httpx2.Client(transport=transport),
    )


def test_mantle_messages_create_sigv4(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    message = _mantle(emulator, transport).messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    seen = _only(transport, ops.MESSAGES)
    assert seen.request.service == "bedrock-mantle"
    assert _read(seen) == _ledger(emulator) == _anthropic_usage(message.usage)


def test_mantle_messages_stream(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    with _mantle(emulator, transport).messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
        final = stream.get_final_message()
    seen = _only(transport, ops.MESSAGES)
    assert seen.streamed and seen.reader.done
    assert _read(seen) == _ledger(emulator) == _anthropic_usage(final.usage)


def test_mantle_count_tokens_is_a_prediction(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    counted = _mantle(emulator, transport).messages.count_tokens(model=CLAUDE, messages=HELLO)
    seen = _only(transport, ops.MESSAGES_COUNT_TOKENS)
    assert seen.reader.facts.predicted_input_tokens == counted.input_tokens
    assert emulator.ledger.entries()[-1].counted_tokens == counted.input_tokens


def test_async_mantle_messages_stream(emulator: BedrockEmulator) -> None:
    transport = AsyncTeeTransport()

    async def run() -> Any:
        client = anthropic.AsyncAnthropicBedrockMantle(
            **AWS,
            base_url=emulator.endpoint_url + "/anthropic",
            http_client=httpx2.AsyncClient(transport=transport),
        )
        async with client.messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
            return await stream.get_final_message()

    final = asyncio.run(run())
    seen = _only(transport, ops.MESSAGES)
    assert _read(seen) == _ledger(emulator) == _anthropic_usage(final.usage)


# --- openai SDK on bedrock-mantle: Chat Completions and Responses ----------------------------------

MANTLE_HOST = "bedrock-mantle.us-east-1.api.aws"


def _openai(emulator: BedrockEmulator, transport: TeeTransport) -> Any:
    # A bearer token is Bedrock only on a Bedrock host: the request names it in Host, as a proxy
    # or a VPC endpoint in front of mantle would.
    return openai.OpenAI(
        api_key="bedrock-api-key",
        base_url=emulator.endpoint_url + "/v1",
        default_headers={"Host": MANTLE_HOST},
        http_client=httpx2.Client(transport=transport),
    )


def _chat_usage(usage: Any) -> Tokens:
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    return (usage.prompt_tokens - (cached or 0), usage.completion_tokens, cached or 0, 0)


def _responses_usage(usage: Any) -> Tokens:
    cached = usage.input_tokens_details.cached_tokens or 0
    return (usage.input_tokens - cached, usage.output_tokens, cached, 0)


def test_openai_chat_completions(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    completion = _openai(emulator, transport).chat.completions.create(model=GPT_OSS, messages=HELLO)
    seen = _only(transport, ops.CHAT_COMPLETIONS)
    assert _read(seen) == _ledger(emulator) == _chat_usage(completion.usage)


def test_openai_chat_completions_stream(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    chunks = list(
        _openai(emulator, transport).chat.completions.create(
            model=GPT_OSS, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    seen = _only(transport, ops.CHAT_COMPLETIONS)
    assert seen.reader.done
    assert _read(seen) == _ledger(emulator) == _chat_usage(chunks[-1].usage)


def test_openai_responses(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    response = _openai(emulator, transport).responses.create(model=GPT_OSS, input="Name a river.")
    seen = _only(transport, ops.RESPONSES)
    assert _read(seen) == _ledger(emulator) == _responses_usage(response.usage)
    assert seen.reader.reasoning_tokens == response.usage.output_tokens_details.reasoning_tokens


def test_openai_responses_stream(emulator: BedrockEmulator) -> None:
    transport = TeeTransport()
    events = list(
        _openai(emulator, transport).responses.create(model=GPT_OSS, input="Name a river.", stream=True)
    )
    seen = _only(transport, ops.RESPONSES)
    assert events[-1].type == "response.completed"
    assert _read(seen) == _ledger(emulator) == _responses_usage(events[-1].response.usage)


def test_async_openai_chat_completions_stream(emulator: BedrockEmulator) -> None:
    transport = AsyncTeeTransport()

    async def run() -> list[Any]:
        client = openai.AsyncOpenAI(
            api_key="bedrock-api-key",
            base_url=emulator.endpoint_url + "/v1",
            default_headers={"Host": MANTLE_HOST},
            http_client=httpx2.AsyncClient(transport=transport),
        )
        stream = await client.chat.completions.create(
            model=GPT_OSS, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    seen = _only(transport, ops.CHAT_COMPLETIONS)
    assert _read(seen) == _ledger(emulator) == _chat_usage(chunks[-1].usage)


def test_a_stream_broken_off_early_is_not_done(emulator: BedrockEmulator) -> None:
    emulator.set_latency(per_token=0.0)
    transport = TeeTransport()
    stream = _bedrock(emulator, transport).messages.create(
        model=CLAUDE, max_tokens=64, messages=HELLO, stream=True
    )
    first = next(iter(stream))
    stream.close()
    seen = _only(transport, ops.INVOKE_MODEL_STREAM)
    assert first.type == "message_start"
    assert seen.closed
    assert seen.reader.usage.input_tokens == first.message.usage.input_tokens


def test_async_mantle_stream_cancelled_mid_way_is_not_done(emulator: BedrockEmulator) -> None:
    emulator.set_latency(per_token=0.05)  # paced, so the cancellation lands before the usage event
    transport = AsyncTeeTransport()
    started = asyncio.Event()

    async def consume() -> None:
        client = anthropic.AsyncAnthropicBedrockMantle(
            **AWS,
            base_url=emulator.endpoint_url + "/anthropic",
            http_client=httpx2.AsyncClient(transport=transport),
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
    seen = _only(transport, ops.MESSAGES)
    assert not seen.reader.done
    assert seen.reader.usage.input_tokens is not None  # message_start arrived
    assert seen.reader.usage.output_tokens is None  # message_delta did not
