"""instrument() / uninstrument() for aiobotocore: one wrapper while instrumented, the original
method afterwards, nothing measured after uninstrument(), and one settings object for both clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from aiobotocore.client import AioBaseClient
from botocore.client import BaseClient

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.aio import CLAUDE, aio_client, messages, run
from .support.telemetry import Telemetry

ORIGINAL = AioBaseClient.__dict__["_make_api_call"]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def converse(endpoint_url: str, times: int = 1) -> None:
    async def main() -> None:
        async with aio_client(endpoint_url) as client:
            for _ in range(times):
                await client.converse(modelId=CLAUDE, messages=messages("lifecycle"))

    run(main())


def instrument(telemetry: Telemetry, **settings: Any) -> BedrockTokensInstrumentor:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **settings
    )
    return instrumentor


def test_instrument_wraps_and_uninstrument_restores(telemetry: Telemetry) -> None:
    assert AioBaseClient.__dict__["_make_api_call"] is ORIGINAL
    instrumentor = instrument(telemetry)
    wrapper = AioBaseClient.__dict__["_make_api_call"]
    assert type(wrapper._self_wrapper).__name__ == "AioBotocoreAdapter"
    assert wrapper.__wrapped__ is ORIGINAL
    # Both hooks of one instrument() share one state.
    assert wrapper._self_wrapper.lifecycle is BaseClient.__dict__["_make_api_call"]._self_wrapper.lifecycle
    instrumentor.uninstrument()
    assert AioBaseClient.__dict__["_make_api_call"] is ORIGINAL


def test_nothing_is_measured_after_uninstrument(emulator: BedrockEmulator, telemetry: Telemetry) -> None:
    instrument(telemetry).uninstrument()
    converse(emulator.endpoint_url)
    assert telemetry.spans() == ()


def test_reinstrumenting_measures_each_call_once(emulator: BedrockEmulator, telemetry: Telemetry) -> None:
    instrumentor = instrument(telemetry)
    instrumentor.uninstrument()
    instrumentor = instrument(telemetry)
    try:
        converse(emulator.endpoint_url, times=2)
    finally:
        instrumentor.uninstrument()
    assert len(telemetry.spans()) == 2
    assert AioBaseClient.__dict__["_make_api_call"] is ORIGINAL


def test_sync_and_async_clients_share_settings(emulator: BedrockEmulator, telemetry: Telemetry) -> None:
    seen: list[str] = []
    instrumentor = instrument(
        telemetry, request_hook=lambda span, service, operation, params: seen.append(operation)
    )
    try:
        emulator.client().converse(modelId=CLAUDE, messages=messages("sync"))
        converse(emulator.endpoint_url)
    finally:
        instrumentor.uninstrument()
    assert seen == ["Converse", "Converse"]
    sync_span, aio_span = telemetry.spans()
    assert sync_span.instrumentation_scope == aio_span.instrumentation_scope


def test_a_call_in_flight_at_uninstrument_still_ends_its_span(
    emulator: BedrockEmulator, telemetry: Telemetry
) -> None:
    instrumentor = instrument(telemetry)

    async def main() -> None:
        async with aio_client(emulator.endpoint_url) as client:
            response = await client.converse_stream(modelId=CLAUDE, messages=messages("in flight"))
            instrumentor.uninstrument()
            events = [event async for event in response["stream"]]
            assert events

    run(main())
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.stream.end"] == "completed"


def test_the_patched_method_is_still_a_coroutine_function(telemetry: Telemetry) -> None:
    """Code that checks ``inspect.iscoroutinefunction`` on the method sees what aiobotocore has."""
    import inspect

    instrumentor = instrument(telemetry)
    try:
        assert inspect.iscoroutinefunction(AioBaseClient._make_api_call)
        assert AioBaseClient.__dict__["_make_api_call"].__name__ == ORIGINAL.__name__
    finally:
        instrumentor.uninstrument()
