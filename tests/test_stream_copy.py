"""``copy.copy``, ``copy.deepcopy`` and ``pickle`` of a stream response, side by side with an
uninstrumented client: the same results, the same exception types and messages.

botocore's ``EventStream`` is a plain object: ``copy.copy`` gives a second ``EventStream`` over the
same raw HTTP response (iterating either reads the one connection), and deep-copying or pickling it
(or the response dict holding it) fails on the socket inside with a ``TypeError``. The proxy's copy is
a plain copy of the wrapped ``EventStream``, unmeasured: the events it reads belong to the one call
whose span the proxy ends, once.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.telemetry import TelemetryCapture

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
BODY = (
    '{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,'
    ' "messages": [{"role": "user", "content": "stream this please"}]}'
)
MESSAGES = [{"role": "user", "content": [{"text": "stream this please"}]}]

CALLS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "converse_stream": (lambda client: client.converse_stream(modelId=MODEL, messages=MESSAGES), "stream"),
    "invoke_stream": (
        lambda client: client.invoke_model_with_response_stream(modelId=MODEL, body=BODY),
        "body",
    ),
}


def _copy_then_iterate(response: dict[str, Any], key: str) -> Any:
    duplicate = copy.copy(response[key])
    return type(duplicate).__name__, len(list(duplicate)), list(response[key])


#: name -> what the app does with the response and its stream key.
USES: dict[str, Callable[[dict[str, Any], str], Any]] = {
    "copy_then_iterate": _copy_then_iterate,
    "deepcopy_stream": lambda response, key: copy.deepcopy(response[key]),
    "pickle_stream": lambda response, key: pickle.dumps(response[key]),
    "deepcopy_response": lambda response, key: copy.deepcopy(response),
    "pickle_response": lambda response, key: pickle.dumps(response),
    "copy_response": lambda response, key: sorted(copy.copy(response)),
}


def outcome(use: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "returned", use()
    except Exception as error:
        return "raised", (f"{type(error).__module__}.{type(error).__qualname__}", str(error))


def run(call: str, use: str) -> tuple[str, Any]:
    """One stream call on a fresh (seeded) emulator, then ``use`` on the response; the stream is
    closed after."""
    make, key = CALLS[call]
    with BedrockEmulator() as emulator:
        response = make(emulator.client())
        try:
            return outcome(lambda: USES[use](response, key))
        finally:
            response[key].close()


@pytest.fixture
def instrumentor(telemetry: TelemetryCapture) -> Iterator[Callable[[], None]]:
    instrumentor = BedrockTokensInstrumentor()

    def turn_on() -> None:
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )

    try:
        yield turn_on
    finally:
        instrumentor.uninstrument()


# A deep copy that fails leaves a half-built http.client.HTTPResponse whose finalizer complains on
# Python 3.13 (an "unraisable" AttributeError), with or without us.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("use", sorted(USES))
@pytest.mark.parametrize("call", sorted(CALLS))
def test_stream_response_copies_as_without_instrumentation(
    call: str, use: str, instrumentor: Callable[[], None], telemetry: TelemetryCapture
) -> None:
    plain = run(call, use)
    instrumentor()
    measured = run(call, use)
    assert measured == plain
    assert len(telemetry.spans()) == 1  # the one call's span, ended once


@pytest.mark.parametrize("call", sorted(CALLS))
def test_iterating_a_copy_leaves_the_span_to_the_original(
    call: str, instrumentor: Callable[[], None], telemetry: TelemetryCapture
) -> None:
    """The copy reads the connection unmeasured; closing the original ends the span, once, as
    ``closed`` (the usage went by in the copy, so the span says it is incomplete)."""
    instrumentor()
    make, key = CALLS[call]
    with BedrockEmulator() as emulator:
        response = make(emulator.client())
        events = list(copy.copy(response[key]))
        response[key].close()
        response[key].close()
    assert events
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.stream.end"] == "closed"
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True


def test_aio_stream_response_copies_as_without_instrumentation(telemetry: TelemetryCapture) -> None:
    """The asyncio proxy inherits the same copies: a plain ``AioEventStream`` copy, and the wrapped
    stream's own deep-copy and pickle errors."""
    pytest.importorskip("aiobotocore")
    from .support.aio import aio_client, run

    async def main(endpoint_url: str) -> list[Any]:
        async with aio_client(endpoint_url) as client:
            response = await client.converse_stream(modelId=MODEL, messages=MESSAGES)
            stream = response["stream"]
            seen = [
                outcome(lambda: type(copy.copy(stream)).__name__),
                outcome(lambda: copy.deepcopy(stream)),
                outcome(lambda: pickle.dumps(stream)),
                outcome(lambda: copy.deepcopy(response)),
                outcome(lambda: pickle.dumps(response)),
            ]
            seen.append(len([event async for event in copy.copy(stream)]))
            stream.close()
            return seen

    def side() -> list[Any]:
        with BedrockEmulator() as emulator:
            return run(main(emulator.endpoint_url))

    plain = side()
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        measured = side()
    finally:
        instrumentor.uninstrument()
    assert measured == plain
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.stream.end"] == "closed"
