"""A user hook raising a BaseException that is not an Exception (``KeyboardInterrupt``, ``SystemExit``,
``GeneratorExit``): never swallowed, so the app gets that very exception object, but the span still
ends, once, with ``error.type``, and the call's metrics are recorded as far as they are known (after
the response: its tokens too). Sync and aiobotocore clients, plain and streaming calls, both hooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.telemetry import TelemetryCapture

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Tell me about interrupts."}]}]
INTERRUPTS = pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, GeneratorExit])
HOOKS = pytest.mark.parametrize("hook", ["request_hook", "response_hook"])
KINDS = pytest.mark.parametrize("operation", ["Converse", "ConverseStream"])


@pytest.fixture(scope="module")
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


class Raiser:
    """A user hook that raises ``interrupt``, keeping the object it raised."""

    def __init__(self, interrupt: type[BaseException]) -> None:
        self.interrupt = interrupt
        self.raised: BaseException | None = None

    def __call__(self, *args: Any) -> None:
        self.raised = self.interrupt()
        raise self.raised


def instrument(telemetry: TelemetryCapture, hook: str, raiser: Raiser) -> BedrockTokensInstrumentor:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **{hook: raiser}
    )
    return instrumentor


def call(client: Any, operation: str) -> Any:
    if operation == "Converse":
        return client.converse(modelId=CLAUDE, messages=MESSAGES)
    return client.converse_stream(modelId=CLAUDE, messages=MESSAGES)


def expected_error_type(interrupt: type[BaseException]) -> str:
    return interrupt.__qualname__  # builtins: the bare class name, as errors.error_type_of gives it


def assert_recorded(
    telemetry: TelemetryCapture, interrupt: type[BaseException], hook: str, operation: str
) -> None:
    error_type = expected_error_type(interrupt)
    (span,) = telemetry.spans()  # exported: it ended
    assert span.end_time is not None
    assert span.attributes["error.type"] == error_type
    durations = telemetry.points("gen_ai.client.operation.duration")
    assert [(p.count, p.attributes.get("error.type")) for p in durations] == [(1, error_type)]
    tokens = telemetry.points("gen_ai.client.token.usage")
    if hook == "response_hook" and operation == "Converse":
        # The response was known when the hook ran: its tokens are recorded, with the error type.
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
        assert sorted(p.attributes["gen_ai.token.type"] for p in tokens) == ["input", "output"]
        assert {p.attributes["error.type"] for p in tokens} == {error_type}
        assert span.attributes.get("aws.request_id")
    else:
        # Before the request was sent, or a stream not yet read: no usage is known.
        assert tokens == []


# --- sync client ---------------------------------------------------------------------------------------


@INTERRUPTS
@HOOKS
@KINDS
def test_sync_hook_interrupt_ends_the_span_and_propagates(
    interrupt: type[BaseException],
    hook: str,
    operation: str,
    emulator: BedrockEmulator,
    telemetry: TelemetryCapture,
) -> None:
    raiser = Raiser(interrupt)
    client = emulator.client()
    instrumentor = instrument(telemetry, hook, raiser)
    try:
        with pytest.raises(interrupt) as caught:
            call(client, operation)
    finally:
        instrumentor.uninstrument()
    assert caught.value is raiser.raised
    assert_recorded(telemetry, interrupt, hook, operation)


# --- aiobotocore client ----------------------------------------------------------------------------------


@INTERRUPTS
@HOOKS
@KINDS
def test_aio_hook_interrupt_ends_the_span_and_propagates(
    interrupt: type[BaseException],
    hook: str,
    operation: str,
    emulator: BedrockEmulator,
    telemetry: TelemetryCapture,
) -> None:
    pytest.importorskip("aiobotocore")
    from .support.aio import aio_client, run

    raiser = Raiser(interrupt)

    async def main() -> BaseException | None:
        async with aio_client(emulator.endpoint_url) as client:
            try:
                if operation == "Converse":
                    await client.converse(modelId=CLAUDE, messages=MESSAGES)
                else:
                    await client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
            except BaseException as error:  # caught here: the interrupt never crosses the task
                return error
        return None

    instrumentor = instrument(telemetry, hook, raiser)
    try:
        caught = run(main())
    finally:
        instrumentor.uninstrument()
    assert raiser.raised is not None and caught is raiser.raised
    assert_recorded(telemetry, interrupt, hook, operation)
