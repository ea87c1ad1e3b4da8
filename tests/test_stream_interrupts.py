"""BaseExceptions (KeyboardInterrupt, SystemExit) and streams (issue 13, item 6, stream half).

Raised from inside the iteration (botocore interrupted mid-read): the proxy sees it, ends the span
with ``error.type`` and the metrics known so far, and the very same exception propagates. Raised by
the app's own loop body: the proxy cannot see it (its generator is only closed, exactly as for
``break``), so the stream stays open until it is closed or dropped, like after a ``break``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.eventstream import EventStream

from otel_bedrock_tokens import abandoned
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.telemetry import TelemetryCapture

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
BODY = (
    '{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,'
    ' "messages": [{"role": "user", "content": "stream this please"}]}'
)
INTERRUPTS = [KeyboardInterrupt, SystemExit]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def interrupt_parsing(monkeypatch: pytest.MonkeyPatch, cls: Any, error: BaseException, after: int) -> None:
    """botocore's (or aiobotocore's) event parsing raises ``error`` on event ``after + 1``."""
    original = cls._parse_event
    parsed = [0]

    def check() -> None:
        parsed[0] += 1
        if parsed[0] > after:
            raise error

    if getattr(original, "__code__", None) is not None and original.__code__.co_flags & 0x80:  # async

        async def parse_async(self: Any, event: Any) -> Any:
            check()
            return await original(self, event)

        monkeypatch.setattr(cls, "_parse_event", parse_async)
    else:

        def parse(self: Any, event: Any) -> Any:
            check()
            return original(self, event)

        monkeypatch.setattr(cls, "_parse_event", parse)


def only_span(telemetry: TelemetryCapture) -> Any:
    (span,) = telemetry.spans()
    return span


def assert_ended_with(telemetry: TelemetryCapture, error_type: str) -> None:
    span = only_span(telemetry)
    assert span.attributes["bedrock_tokens.stream.end"] == "error"
    assert span.attributes["error.type"] == error_type
    assert span.attributes["bedrock_tokens.stream.events"] == 2
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True
    assert span.attributes["gen_ai.usage.input_tokens"] > 0  # message_start told it: known so far
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == error_type
    assert len(telemetry.points("gen_ai.client.operation.time_to_first_chunk")) == 1
    (tokens,) = telemetry.points("gen_ai.client.token.usage")  # input only: output is not known
    assert tokens.attributes["gen_ai.token.type"] == "input"
    assert tokens.attributes["error.type"] == error_type


@pytest.mark.parametrize("error_class", INTERRUPTS)
def test_interrupt_inside_iteration_ends_the_span_and_propagates(
    error_class: type[BaseException],
    emulator: BedrockEmulator,
    instrumented: TelemetryCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raised = error_class()
    interrupt_parsing(monkeypatch, EventStream, raised, after=2)
    stream = emulator.client().invoke_model_with_response_stream(modelId=MODEL, body=BODY)["body"]
    seen = []
    with pytest.raises(error_class) as caught:
        for event in stream:
            seen.append(event)
    assert caught.value is raised
    assert len(seen) == 2
    assert_ended_with(instrumented, error_class.__qualname__)


@pytest.mark.parametrize("error_class", INTERRUPTS)
def test_interrupt_inside_async_iteration_ends_the_span_and_propagates(
    error_class: type[BaseException],
    emulator: BedrockEmulator,
    instrumented: TelemetryCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("aiobotocore")
    from aiobotocore.eventstream import AioEventStream

    from .support.aio import aio_client, run

    raised = error_class()
    interrupt_parsing(monkeypatch, AioEventStream, raised, after=2)

    async def main() -> tuple[list[Any], BaseException | None]:
        seen: list[Any] = []
        async with aio_client(emulator.endpoint_url) as client:
            response = await client.invoke_model_with_response_stream(modelId=MODEL, body=BODY)
            try:
                async for event in response["body"]:
                    seen.append(event)
            except error_class as error:  # caught here, before asyncio's own handling of it
                return seen, error
        return seen, None

    seen, caught = run(main())
    assert caught is raised
    assert len(seen) == 2
    assert_ended_with(instrumented, error_class.__qualname__)


@pytest.mark.parametrize("error_class", INTERRUPTS)
def test_interrupt_in_the_loop_body_leaves_the_stream_open_like_break(
    error_class: type[BaseException], emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    """Not observable by the proxy: Python closes its generator with GeneratorExit, as for ``break``
    (no trace of the exception in flight: ``sys.exc_info()`` and ``__context__`` show only the
    GeneratorExit). The stream ends when the app closes it, or as ``abandoned`` when dropped."""
    raised = error_class()
    stream = emulator.client().invoke_model_with_response_stream(modelId=MODEL, body=BODY)["body"]
    with pytest.raises(error_class) as caught:
        for _event in stream:
            raise raised
    assert caught.value is raised
    assert instrumented.spans() == ()  # like break: the app may still resume, close or drop it
    del stream, caught
    gc.collect()
    abandoned.drain()
    assert only_span(instrumented).attributes["bedrock_tokens.stream.end"] == "abandoned"
