"""The InvokeModel body we hand back behaves byte for byte like botocore's own ``StreamingBody``.

Side by side: the same sequence of reads on an uninstrumented client and an instrumented one, over
real HTTP from the emulator, with and without a connection reset in the middle of the body. Each
step's outcome is the value returned or the exception's class and message, so a difference in where
an error surfaces (a read that should have returned the first bytes), in its type
(``ResponseStreamingError`` instead of ``IncompleteReadError``) or its text shows up.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

from .support.telemetry import Telemetry

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
BODY = (
    '{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,'
    ' "messages": [{"role": "user", "content": "read me slowly"}]}'
)
RESET_AFTER = 20

Step = Callable[[StreamingBody], Any]


def _readinto(size: int) -> Step:
    def step(body: StreamingBody) -> Any:
        buffer = bytearray(size)
        count = body.readinto(buffer)
        return count, bytes(buffer[:count])

    return step


def _entered_read(body: StreamingBody) -> Any:
    with body as raw:
        return raw.read(7), raw.read()


#: name -> the steps the app takes on its body, one after the other.
USES: dict[str, list[Step]] = {
    "read": [lambda body: body.read(), lambda body: body.read()],
    "read_amounts": [lambda body, n=n: body.read(n) for n in (10, 10, 10, 5, None, None)],
    "read_exact_then_one": [lambda body: body.read(RESET_AFTER), lambda body: body.read(1)],
    "read_across": [lambda body: body.read(RESET_AFTER + 5), lambda body: body.read()],
    "read_bytes": [lambda body: body.read(1) for _ in range(RESET_AFTER + 3)],
    "read_zero": [lambda body: body.read(0), lambda body: body.read(4), lambda body: body.read()],
    "readinto": [_readinto(8), _readinto(8), _readinto(8), _readinto(8)],
    "iter_chunks": [lambda body: list(body.iter_chunks(8)), lambda body: body.read()],
    "iter_lines": [lambda body: list(body.iter_lines()), lambda body: list(body.iter_lines())],
    "iterate": [lambda body: list(body), lambda body: body.readlines()],
    "readlines": [lambda body: body.readlines(), lambda body: body.read()],
    "tell": [lambda body: body.read(9), lambda body: body.tell()],
    "close_then_read": [
        lambda body: body.close(),
        lambda body: body.read(),
        lambda body: body.read(5),
        lambda body: list(body.iter_lines()),
        lambda body: body.readinto(bytearray(4)),
        lambda body: body.tell(),
    ],
    "read_some_close_read": [
        lambda body: body.read(5),
        lambda body: body.close(),
        lambda body: body.read(),
        lambda body: body.tell(),
    ],
    "read_all_close_read": [
        lambda body: body.read(),
        lambda body: body.read(),
        lambda body: body.close(),
        lambda body: body.read(),
        lambda body: body.read(3),
    ],
    "context_manager": [_entered_read, lambda body: body.read()],
    "readable": [lambda body: body.readable(), lambda body: body.read(3)],
}


def outcome(step: Step, body: StreamingBody) -> tuple[str, Any]:
    """What the app meets at one step: the value , or the exception's class and text."""
    try:
        return "returned", step(body)
    except Exception as error:
        return "raised", (f"{type(error).__module__}.{type(error).__qualname__}", str(error))


def run_uses(steps: list[Step], fault: Fault | None) -> list[tuple[str, Any]]:
    """One InvokeModel call on a fresh emulator (its ids are seeded: both sides get the same bytes),
    then ``steps`` on the body."""
    with BedrockEmulator() as emulator:
        if fault is not None:
            emulator.inject(fault, operation="InvokeModel")
        body = emulator.client().invoke_model(modelId=MODEL, body=BODY)["body"]
        return [outcome(step, body) for step in steps]


@pytest.fixture
def instrumentor(telemetry: Telemetry) -> Iterator[Callable[[], None]]:
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
def test_body_after_a_mid_body_reset_behaves_as_without_instrumentation(
    use: str, instrumentor: Callable[[], None]
) -> None:
    reset = Fault.connection_reset(after_bytes=RESET_AFTER)
    plain = run_uses(USES[use], reset)
    instrumentor()
    measured = run_uses(USES[use], reset)
    assert measured == plain


@pytest.mark.parametrize("use", sorted(USES))
def test_body_cut_short_behaves_as_without_instrumentation(
    use: str, instrumentor: Callable[[], None]
) -> None:
    """An orderly close before the promised ``Content-Length``: urllib3 answers differently from a
    reset (the read that crosses the cut returns the bytes; a whole ``read()`` raises)."""
    cut = Fault.short_body(after_bytes=RESET_AFTER)
    plain = run_uses(USES[use], cut)
    instrumentor()
    measured = run_uses(USES[use], cut)
    assert measured == plain


@pytest.mark.parametrize("use", sorted(USES))
def test_whole_body_behaves_as_without_instrumentation(use: str, instrumentor: Callable[[], None]) -> None:
    plain = run_uses(USES[use], None)
    instrumentor()
    measured = run_uses(USES[use], None)
    assert measured == plain


def test_the_app_gets_its_own_body_object_back(
    instrumentor: Callable[[], None], telemetry: Telemetry
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
        "copy_then_read": lambda body: (copy.copy(body).read(6), body.read(3)),
    }
    plain = run_uses([uses[how]], None)
    instrumentor()
    measured = run_uses([uses[how]], None)
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
    own_reference: bool, instrumentor: Callable[[], None], telemetry: Telemetry
) -> None:
    plain = _stubbed_call(own_reference)
    instrumentor()
    measured = _stubbed_call(own_reference)
    assert measured == plain
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.usage.output_tokens"] == 4
