"""aiobotocore's InvokeModel body with us behaves as without us, side by side over real HTTP from
the emulator: a connection reset in the middle of the body, an orderly close short of the
``Content-Length``, and reads after ``close()``. Each step's outcome is the value or the exception's
class and message (see ``test_body_semantics`` for the botocore side)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

from .support.aio import aio_client, run
from .support.telemetry import Telemetry

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
BODY = (
    '{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,'
    ' "messages": [{"role": "user", "content": "read me slowly"}]}'
)
CUT_AFTER = 20

Step = Callable[[Any], Awaitable[Any]]


async def _close(body: Any) -> Any:
    return body.close()


async def _readinto(body: Any) -> Any:
    buffer = bytearray(8)
    count = await body.readinto(buffer)
    return count, bytes(buffer[:count])


def _read(amt: int | None = None) -> Step:
    async def step(body: Any) -> Any:
        return await body.read(amt)

    return step


USES: dict[str, list[Step]] = {
    "read": [_read(), _read()],
    "read_amounts": [_read(10), _read(10), _read(10), _read(5), _read(), _read()],
    "read_across": [_read(CUT_AFTER + 5), _read()],
    "readinto": [_readinto, _readinto, _readinto, _readinto],
    "close_then_read": [_close, _read(), _read(5), _readinto],
    "read_some_close_read": [_read(5), _close, _read()],
    "read_all_close_read": [_read(), _read(), _close, _read(), _read(3)],
}


async def outcome(step: Step, body: Any) -> tuple[str, Any]:
    try:
        return "returned", await step(body)
    except Exception as error:
        return "raised", (f"{type(error).__module__}.{type(error).__qualname__}", str(error))


def run_uses(steps: list[Step], fault: Fault | None) -> list[tuple[str, Any]]:
    async def main(endpoint_url: str) -> list[tuple[str, Any]]:
        async with aio_client(endpoint_url) as client:
            body = (await client.invoke_model(modelId=MODEL, body=BODY))["body"]
            return [await outcome(step, body) for step in steps]

    with BedrockEmulator() as emulator:
        if fault is not None:
            emulator.inject(fault, operation="InvokeModel")
        return run(main(emulator.endpoint_url))


FAULTS: dict[str, Callable[[], Fault | None]] = {
    "whole": lambda: None,
    "reset": lambda: Fault.connection_reset(after_bytes=CUT_AFTER),
    "short_body": lambda: Fault.short_body(after_bytes=CUT_AFTER),
}


@pytest.mark.parametrize("use", sorted(USES))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_aio_body_behaves_as_without_instrumentation(fault: str, use: str, telemetry: Telemetry) -> None:
    plain = run_uses(USES[use], FAULTS[fault]())
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        measured = run_uses(USES[use], FAULTS[fault]())
    finally:
        instrumentor.uninstrument()
    assert measured == plain
    assert len(telemetry.spans()) == 1
