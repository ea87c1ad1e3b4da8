"""An aiobotocore stream span ends exactly once, whichever way the consuming task finishes with the
stream: an error, cancellation of the task, or abandonment. The behaviours shared with the sync proxy
(exhaustion, break, close, events out of order, chunk timing...) are in tests/test_stream_lifecycle.py,
run on every transport."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from aiobotocore.eventstream import AioEventStream
from botocore.exceptions import EventStreamError

from otel_bedrock_tokens import BedrockTokensInstrumentor, abandoned
from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

from .support.aio import CLAUDE, aio_client, call_recorded_async, claude_request, messages, run
from .support.replay import RECORDINGS, Interaction, RawServer, Replayer, load, read_http_request
from .support.streams import frames
from .support.telemetry import TelemetryCapture

CLAUDE_STREAM = (
    RECORDINGS / "openllmetry" / "traces__test_anthropic__test_anthropic_3_completion_streaming.yaml"
)
CONVERSE_STREAM = RECORDINGS / "otel-contrib" / "test_converse_stream_no_content_different_events.yaml"
CANCELLED = "asyncio.exceptions.CancelledError"


def only_span(telemetry: TelemetryCapture) -> Any:
    (span,) = telemetry.spans()
    return span


def key_of(interaction: Interaction) -> str:
    return "body" if interaction.operation == "InvokeModelWithResponseStream" else "stream"


def with_stream(replayer: Replayer, use: Any, path: Any = CLAUDE_STREAM) -> Any:
    """Start the recorded stream on an aiobotocore client and run ``await use(stream)``."""
    (interaction,) = load(path)
    replayer.serve(interaction)

    async def main() -> Any:
        async with aio_client(replayer.endpoint_url) as client:
            response = await call_recorded_async(client, interaction)
            return await use(response[key_of(interaction)])

    return run(main())


async def drain(stream: Any) -> list[Any]:
    return [event async for event in stream]


def test_abandoned_stream_ends_when_collected(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    async def use(stream: Any) -> None:
        iterator = aiter(stream)
        await anext(iterator)
        await iterator.aclose()  # the iterator is closed; the stream itself is neither closed nor read
        del stream, iterator

    with_stream(replayer, use)
    gc.collect()
    abandoned.drain()  # the finalizer only queued it: the next call, the reaper or exit ends it
    span = only_span(instrumented)
    assert span.attributes["bedrock_tokens.stream.end"] == "abandoned"
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True


def test_sync_iteration_is_refused_as_before_and_ends_nothing(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    async def use(stream: Any) -> int:
        with pytest.raises(NotImplementedError, match="async-for"):
            iter(stream)
        return len(await drain(stream))

    assert with_stream(replayer, use) == 23
    assert only_span(instrumented).attributes["bedrock_tokens.stream.end"] == "completed"


def test_proxy_is_transparent(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    async def use(stream: Any) -> None:
        assert isinstance(stream, AioEventStream)
        assert asyncio.iscoroutinefunction(stream.get_initial_response)
        stream.close()

    with_stream(replayer, use)


# --- errors in the stream (emulator faults) ------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


async def _start_stream(client: Any, kind: str) -> Any:
    if kind == "invoke":
        response = await client.invoke_model_with_response_stream(modelId=CLAUDE, body=claude_request())
        return response["body"]
    return (await client.converse_stream(modelId=CLAUDE, messages=messages("stream this")))["stream"]


async def _events_then_error(endpoint_url: str, kind: str) -> tuple[int, BaseException | None]:
    async with aio_client(endpoint_url) as client:
        stream = await _start_stream(client, kind)
        count = 0
        try:
            async for _event in stream:
                count += 1
        except Exception as error:
            return count, error
        return count, None


@pytest.mark.parametrize("kind", ["invoke", "converse"])
def test_exception_frame_is_raised_unchanged_and_ends_the_span(
    kind: str, emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    emulator.inject(Fault.stream_exception(after_events=3))
    plain_count, plain_error = run(_events_then_error(emulator.endpoint_url, kind))
    emulator.inject(Fault.stream_exception(after_events=3))
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        count, error = run(_events_then_error(emulator.endpoint_url, kind))
    finally:
        instrumentor.uninstrument()
    assert isinstance(error, EventStreamError) and type(error) is type(plain_error)
    assert str(error) == str(plain_error)
    assert count == plain_count == 3
    span = only_span(telemetry)
    assert span.attributes["error.type"] == "modelStreamErrorException"
    assert span.attributes["bedrock_tokens.stream.end"] == "error"
    assert span.attributes["bedrock_tokens.stream.events"] == 3


# --- cancellation of the consuming task ------------------------------------------------------------


class _Withholding:
    """Answers a stream request with its head and the first ``sent`` frames of a recording, then
    withholds the rest until the server stops: the consumer is left awaiting the next event."""

    def __init__(self, interaction: Interaction, sent: int) -> None:
        self.interaction = interaction
        self.sent = sent

    def __call__(self, conn: Any, server: RawServer) -> None:
        read_http_request(conn)
        head = [
            b"HTTP/1.1 200 OK",
            b"Content-Type: application/vnd.amazon.eventstream",
            b"x-amzn-RequestId: req-withheld",
            b"Connection: close",
        ]
        conn.sendall(b"\r\n".join(head) + b"\r\n\r\n" + b"".join(frames(self.interaction.body)[: self.sent]))
        server.release.wait(timeout=30)


@pytest.mark.parametrize("path", [CLAUDE_STREAM, CONVERSE_STREAM], ids=["invoke", "converse"])
def test_task_cancelled_mid_stream_ends_its_span_once(path: Any, instrumented: TelemetryCapture) -> None:
    (interaction,) = load(path)

    async def main(endpoint_url: str) -> tuple[int, bool]:
        received = 0
        got_two = asyncio.Event()
        async with aio_client(endpoint_url) as client:
            response = await call_recorded_async(client, interaction)

            async def consume() -> None:
                nonlocal received
                async for _event in response[key_of(interaction)]:
                    received += 1
                    if received == 2:
                        got_two.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(got_two.wait(), 10)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            assert done == {task}
            cancelled = task.cancelled()  # CancelledError went through our iterator unchanged
            assert len(instrumented.spans()) == 1  # ended at the cancellation, not later
            response[key_of(interaction)].close()  # closing afterwards ends nothing twice
            return received, cancelled

    with RawServer(_Withholding(interaction, sent=2)) as server:
        received, cancelled = run(main(server.endpoint_url))
    assert cancelled
    assert received == 2
    span = only_span(instrumented)
    assert span.attributes["error.type"] == CANCELLED
    assert span.attributes["bedrock_tokens.stream.end"] == "error"
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True
    assert span.attributes["bedrock_tokens.stream.events"] == 2
    assert not span.status.is_ok
    (point,) = instrumented.points("gen_ai.client.operation.duration")
    assert (point.count, point.attributes["error.type"]) == (1, CANCELLED)


def test_wait_for_timeout_on_the_next_event_ends_the_span_once(instrumented: TelemetryCapture) -> None:
    """``asyncio.wait_for(anext(...))`` timing out cancels the await inside our iterator."""
    (interaction,) = load(CLAUDE_STREAM)

    async def main(endpoint_url: str) -> type[BaseException]:
        async with aio_client(endpoint_url) as client:
            stream = (await call_recorded_async(client, interaction))["body"]
            iterator = aiter(stream)
            await asyncio.wait_for(anext(iterator), 10)
            with pytest.raises(asyncio.TimeoutError) as caught:
                await asyncio.wait_for(anext(iterator), 0.05)
            with pytest.raises(StopAsyncIteration):  # as without us: the iterator is finished
                await anext(iterator)
            stream.close()
            return caught.type

    with RawServer(_Withholding(interaction, sent=1)) as server:
        run(main(server.endpoint_url))
    span = only_span(instrumented)
    assert span.attributes["error.type"] == CANCELLED
    assert span.attributes["bedrock_tokens.stream.events"] == 1


class _Silent:
    """Reads the request and never answers until the server stops; ``received`` says it has it."""

    def __init__(self) -> None:
        self.received = threading.Event()

    def __call__(self, conn: Any, server: RawServer) -> None:
        read_http_request(conn)
        self.received.set()
        server.release.wait(timeout=30)


def test_task_cancelled_while_the_call_is_in_flight_ends_its_span(instrumented: TelemetryCapture) -> None:
    silent = _Silent()

    async def main(endpoint_url: str) -> bool:
        async with aio_client(endpoint_url) as client:
            task = asyncio.create_task(client.converse(modelId=CLAUDE, messages=messages("never answered")))
            assert await asyncio.to_thread(silent.received.wait, 10)
            task.cancel()
            await asyncio.wait({task}, timeout=10)
            return task.cancelled()

    with RawServer(silent) as server:
        assert run(main(server.endpoint_url))
    span = only_span(instrumented)
    assert span.attributes["error.type"] == CANCELLED
    assert "gen_ai.usage.input_tokens" not in span.attributes
