"""The InvokeModel body we hand back behaves byte for byte like the client's own body, on every
transport (botocore's ``StreamingBody``, aiobotocore's).

Side by side: the same sequence of reads on an uninstrumented client and an instrumented one, over
real HTTP from the emulator: the whole body, a connection reset in the middle of it, and an orderly
close short of the ``Content-Length``. Each step's outcome is the value returned or the exception's
class and message, so a difference in where an error surfaces (a read that should have returned the
first bytes), in its type (``ResponseStreamingError`` instead of ``IncompleteReadError``) or its text
shows up.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable, Generator, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

from .support.telemetry import TelemetryCapture
from .support.transports import Driver, SyncDriver

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
BODY = (
    '{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,'
    ' "messages": [{"role": "user", "content": "read me slowly"}]}'
)
RESET_AFTER = 20

#: One step the app takes on its body: returns the value (botocore) or the awaitable (aiobotocore).
Step = Callable[[Any], Any]


def _read(amt: int | None = None) -> Step:
    return lambda body: body.read(amt)


def _readinto(size: int) -> Step:
    """``readinto`` a fresh buffer: the count and the bytes filled (read by ``outcome``)."""

    def step(body: Any) -> Any:
        buffer = bytearray(size)
        step.buffer = buffer  # type: ignore[attr-defined]
        return body.readinto(buffer)

    return step


def _close(body: Any) -> Any:
    return body.close()


def _entered_read(body: StreamingBody) -> Any:
    with body as raw:
        return raw.read(7), raw.read()


#: name -> the steps the app takes on its body, one after the other: the API every transport's body
#: has (``read``, ``readinto``, ``close``).
USES: dict[str, list[Step]] = {
    "read": [_read(), _read()],
    "read_amounts": [_read(n) for n in (10, 10, 10, 5, None, None)],
    "read_exact_then_one": [_read(RESET_AFTER), _read(1)],
    "read_across": [_read(RESET_AFTER + 5), _read()],
    "read_bytes": [_read(1) for _ in range(RESET_AFTER + 3)],
    "read_zero": [_read(0), _read(4), _read()],
    "readinto": [_readinto(8), _readinto(8), _readinto(8), _readinto(8)],
    "close_then_read": [_close, _read(), _read(5), _readinto(4)],
    "read_some_close_read": [_read(5), _close, _read()],
    "read_all_close_read": [_read(), _read(), _close, _read(), _read(3)],
}

#: The same, with botocore's ``StreamingBody``-only API.
SYNC_USES: dict[str, list[Step]] = {
    "iter_chunks": [lambda body: list(body.iter_chunks(8)), _read()],
    "iter_lines": [lambda body: list(body.iter_lines())] * 2,
    "iterate": [list, lambda body: body.readlines()],
    "readlines": [lambda body: body.readlines(), _read()],
    "tell": [_read(9), lambda body: body.tell()],
    "close_then_lines_and_tell": [
        _close,
        _read(),
        lambda body: list(body.iter_lines()),
        lambda body: body.readinto(bytearray(4)),
        lambda body: body.tell(),
    ],
    "read_some_close_tell": [_read(5), _close, _read(), lambda body: body.tell()],
    "context_manager": [_entered_read, _read()],
    "readable": [lambda body: body.readable(), _read(3)],
}

FAULTS: dict[str, Callable[[], Fault | None]] = {
    "whole": lambda: None,
    # urllib3 answers a reset differently from an orderly close short of Content-Length (the read
    # that crosses the cut returns the bytes; a whole read() raises): both are checked.
    "reset": lambda: Fault.connection_reset(after_bytes=RESET_AFTER),
    "short_body": lambda: Fault.short_body(after_bytes=RESET_AFTER),
}


def outcome(step: Step, body: Any) -> Generator[Any, Any, tuple[str, Any]]:
    """What the app meets at one step: the value, or the exception's class and text."""
    try:
        value = yield step(body)
    except Exception as error:
        return "raised", (f"{type(error).__module__}.{type(error).__qualname__}", str(error))
    buffer = getattr(step, "buffer", None)
    if buffer is not None:
        return "returned", (value, bytes(buffer[:value]))
    return "returned", value


def run_uses(driver: Driver, steps: list[Step], fault: Fault | None) -> list[tuple[str, Any]]:
    """One InvokeModel call on a fresh emulator (its ids are seeded: both sides get the same bytes),
    then ``steps`` on the body, in one go as an app would."""

    def scenario(client: Any) -> Generator[Any, Any, list[tuple[str, Any]]]:
        body = (yield client.invoke_model(modelId=MODEL, body=BODY))["body"]
        outcomes = []
        for step in steps:
            outcomes.append((yield from outcome(step, body)))
        return outcomes

    with BedrockEmulator() as emulator:
        if fault is not None:
            emulator.inject(fault, operation="InvokeModel")
        return driver.scenario(emulator.endpoint_url, scenario)


make_sync = SyncDriver


@pytest.fixture
def instrumentor(telemetry: TelemetryCapture) -> Iterator[Callable[[], None]]:
    """Call the yielded function to turn the instrumentation on; it is off again after the test."""
    instrumentor = BedrockTokensInstrumentor()

    def turn_on() -> None:
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )

    try:
        yield turn_on
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize("use", sorted(USES))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_body_behaves_as_without_instrumentation(
    fault: str, use: str, transport: Driver, instrumentor: Callable[[], None], telemetry: TelemetryCapture
) -> None:
    plain = run_uses(transport, USES[use], FAULTS[fault]())
    instrumentor()
    measured = run_uses(transport, USES[use], FAULTS[fault]())
    assert measured == plain
    assert len(telemetry.spans()) == 1


@pytest.mark.parametrize("use", sorted(SYNC_USES))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_streaming_body_api_behaves_as_without_instrumentation(
    fault: str, use: str, instrumentor: Callable[[], None], telemetry: TelemetryCapture
) -> None:
    """botocore's ``StreamingBody``-only methods (aiobotocore's body has none of them)."""
    plain = run_uses(make_sync(), SYNC_USES[use], FAULTS[fault]())
    instrumentor()
    measured = run_uses(make_sync(), SYNC_USES[use], FAULTS[fault]())
    assert measured == plain
    assert len(telemetry.spans()) == 1


def test_the_app_gets_its_own_body_object_back(
    instrumentor: Callable[[], None], telemetry: TelemetryCapture
) -> None:
    """The body is the very object botocore built (its class, not a replacement)."""
    instrumentor()
    with BedrockEmulator() as emulator:
        response = emulator.client().invoke_model(modelId=MODEL, body=BODY)
    assert type(response["body"]) is StreamingBody
    assert response["body"].read().startswith(b'{"id":')
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.usage.output_tokens"] > 0


# A deep copy that fails leaves a half-built http.client.HTTPResponse whose finalizer complains on
# Python 3.13 (an "unraisable" AttributeError), with or without us.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("how", ["deepcopy", "pickle", "copy_then_read"])
def test_copying_a_response_behaves_as_without_instrumentation(
    how: str, instrumentor: Callable[[], None]
) -> None:
    uses: dict[str, Step] = {
        "deepcopy": lambda body: copy.deepcopy({"body": body}),
        "pickle": lambda body: pickle.dumps({"body": body}),
        "copy_then_read": lambda body: copy.copy(body).read(6, body.read(3)),
    }
    plain = run_uses(make_sync(), [uses[how]], None)
    instrumentor()
    measured = run_uses(make_sync(), [uses[how]], None)
    assert measured == plain


# --- botocore.stub.Stubber ---------------------------------------------------------------------------

STUB_BYTES = (
    b'{"id":"msg_1","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":3,"output_tokens":4}}'
)


def _stubbed_call(read_own_reference: bool) -> list[Any]:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    stub_body = StreamingBody(io.BytesIO(STUB_BYTES), len(STUB_BYTES))
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke_model",
            {"body": stub_body, "contentType": "application/json"},
            {"modelId": MODEL, "body": BODY},
        )
        response = client.invoke_model(modelId=MODEL, body=BODY)
    read_from = stub_body if read_own_reference else response["body"]
    return [response["body"] is stub_body, read_from.read(5), read_from.read(), read_from.tell()]


@pytest.mark.parametrize("own_reference", [True, False], ids=["own_reference", "response_body"])
def test_stubbed_body_behaves_as_without_instrumentation(
    own_reference: bool, instrumentor: Callable[[], None], telemetry: TelemetryCapture
) -> None:
    plain = _stubbed_call(own_reference)
    instrumentor()
    measured = _stubbed_call(own_reference)
    assert measured == plain
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.usage.output_tokens"] == 4
