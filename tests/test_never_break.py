"""Never break the app: for every path where our code could fail, the caller gets exactly what an
uninstrumented client gives (same bytes, same exception class), and the span says what happened.
Tests taking the ``transport`` fixture run on botocore and aiobotocore; the rest are botocore's own
(test_aio_never_break.py holds aiobotocore's own)."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.model import OperationNotFoundError
from botocore.stub import Stubber
from opentelemetry.trace import StatusCode

from otel_bedrock_tokens import BedrockTokensInstrumentor, operations
from otel_bedrock_tokens._logging import ERROR_TYPE_ATTRIBUTE
from otel_bedrock_tokens.telemetry import Instruments

from .support.replay import (
    Interaction,
    RawServer,
    Replayer,
    call_recorded,
    claude_body,
    closed_port,
    make_client,
    read_http_request,
    synthetic,
    token_headers,
)
from .support.telemetry import TelemetryCapture
from .support.transports import Driver

LOGGER = "otel_bedrock_tokens"
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"


@contextmanager
def instrumentation(telemetry: TelemetryCapture, **kwargs: Any) -> Iterator[None]:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **kwargs
    )
    try:
        yield
    finally:
        instrumentor.uninstrument()


def outcome_of(call: Callable[[], Any]) -> Any:
    """What the caller meets: the value, or the exception's class."""
    try:
        return call()
    except Exception as error:
        return type(error)


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --- bodies that are not JSON -------------------------------------------------------------------------

NOT_JSON = b"\x00\xff not json {\n\xe2\x82\xac" + bytes(range(256))


def invoke_on(transport: Driver, endpoint_url: str, interaction: Interaction) -> bytes:
    """The recorded call through ``transport``; the body as the caller reads it."""
    with transport.client(endpoint_url) as client:
        body = transport.call_recorded(client, interaction)["body"]
        return bytes(transport.resolve(body.read()))


def test_non_json_body_reaches_the_caller_byte_exact(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    interaction = synthetic(NOT_JSON, headers=token_headers(5, 6))
    replayer.serve(interaction)
    assert invoke_on(transport, replayer.endpoint_url, interaction) == NOT_JSON


def test_non_json_body_still_gets_the_header_tokens(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    interaction = synthetic(NOT_JSON, headers=token_headers(5, 6))
    replayer.serve(interaction)
    invoke_on(transport, replayer.endpoint_url, interaction)
    (span,) = instrumented.spans()
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (
        5,
        6,
    )
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes


def test_empty_body_reaches_the_caller_empty(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    interaction = synthetic(b"", headers=token_headers(5, 6))
    replayer.serve(interaction)
    assert invoke_on(transport, replayer.endpoint_url, interaction) == b""
    assert len(instrumented.spans()) == 1


# --- the body's read fails part-way -------------------------------------------------------------------

BODY = claude_body(input_tokens=3, output_tokens=4)


def _head(length: int) -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"x-amzn-RequestId: req-cut"]
    lines += [b"X-Amzn-Bedrock-Input-Token-Count: 3", b"Content-Length: %d" % length]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _truncated(conn: Any, server: RawServer) -> None:
    """Declares the whole body, sends half of it, then closes cleanly (content-length mismatch)."""
    read_http_request(conn)
    conn.sendall(_head(len(BODY)) + BODY[: len(BODY) // 2])


class _Resetting:
    """Sends the head and half the body, waits until the client has the head, then resets."""

    def __init__(self) -> None:
        self.head_received = threading.Event()

    def __call__(self, conn: Any, server: RawServer) -> None:
        read_http_request(conn)
        conn.sendall(_head(len(BODY)) + BODY[: len(BODY) // 2])
        self.head_received.wait(timeout=5)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close -> RST

    def client(self, endpoint_url: str) -> Any:
        client = make_client(endpoint_url)
        client.meta.events.register(
            "before-parse.bedrock-runtime.InvokeModel", lambda **_: self.head_received.set()
        )
        return client


def _invoke(client: Any) -> Any:
    return client.invoke_model(modelId="anthropic.claude-3-5-haiku-20241022-v1:0", body=b"{}")


def _first_read_outcome(respond: Any, make: Callable[[str], Any]) -> Any:
    with RawServer(respond) as server:
        body = _invoke(make(server.endpoint_url))["body"]
        return outcome_of(body.read)


def test_truncated_body_caller_meets_the_same_exception_class(telemetry: TelemetryCapture) -> None:
    plain = _first_read_outcome(_truncated, make_client)
    with instrumentation(telemetry):
        measured = _first_read_outcome(_truncated, make_client)
    assert plain is not None and isinstance(plain, type)
    assert measured is plain


def test_truncated_body_span_records_an_error(telemetry: TelemetryCapture) -> None:
    with instrumentation(telemetry):
        _first_read_outcome(_truncated, make_client)
    (span,) = telemetry.spans()
    assert span.attributes["error.type"].startswith("botocore.exceptions.")
    assert span.status.status_code is StatusCode.ERROR


def test_truncated_body_error_type_names_what_the_caller_meets(telemetry: TelemetryCapture) -> None:
    plain = _first_read_outcome(_truncated, make_client)
    with instrumentation(telemetry):
        _first_read_outcome(_truncated, make_client)
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == qualified(plain)


def test_reset_body_caller_meets_the_same_exception_class(telemetry: TelemetryCapture) -> None:
    plain_server = _Resetting()
    plain = _first_read_outcome(plain_server, plain_server.client)
    with instrumentation(telemetry):
        measured_server = _Resetting()
        measured = _first_read_outcome(measured_server, measured_server.client)
    assert isinstance(plain, type) and issubclass(plain, Exception)
    assert measured is plain


def test_reset_body_error_type_names_what_the_caller_meets(telemetry: TelemetryCapture) -> None:
    with instrumentation(telemetry):
        server = _Resetting()
        met = _first_read_outcome(server, server.client)
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == qualified(met)


def test_truncated_body_duration_has_the_error_type(telemetry: TelemetryCapture) -> None:
    with instrumentation(telemetry):
        _first_read_outcome(_truncated, make_client)
    (point,) = telemetry.points("gen_ai.client.operation.duration")
    assert point.attributes["error.type"].startswith("botocore.exceptions.")


# --- our own code raising -----------------------------------------------------------------------------


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom inside the instrumentation")


def _debug_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        record.levelno == logging.DEBUG
        and record.name.startswith(LOGGER)
        and hasattr(record, ERROR_TYPE_ATTRIBUTE)
        for record in caplog.records
    )


@pytest.fixture
def raising_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every family's response parser raises."""
    real = operations.family_for

    def family_for(model: Any) -> Any:
        return real(model)._replace(read_response=_boom)

    monkeypatch.setattr(operations, "family_for", family_for)


def _claude_call_on(transport: Driver, replayer: Replayer, body: bytes = BODY) -> bytes:
    """One InvokeModel answered with ``body`` (default token headers) through ``transport``."""
    return invoke_on(transport, replayer.endpoint_url, _serve(replayer, body))


def _serve(replayer: Replayer, body: bytes) -> Interaction:
    interaction = synthetic(body)
    replayer.serve(interaction)
    return interaction


def test_parser_raising_leaves_the_caller_bytes_identical(
    transport: Driver, raising_parser: None, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    assert _claude_call_on(transport, replayer) == BODY


def test_parser_raising_writes_a_debug_log(
    transport: Driver,
    raising_parser: None,
    instrumented: TelemetryCapture,
    replayer: Replayer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    _claude_call_on(transport, replayer)
    assert _debug_logged(caplog)


def test_parser_raising_still_ends_the_span(
    transport: Driver, raising_parser: None, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _claude_call_on(transport, replayer)
    (span,) = instrumented.spans()
    assert span.end_time is not None


def test_telemetry_start_raising_leaves_the_caller_bytes_identical(
    transport: Driver, monkeypatch: pytest.MonkeyPatch, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    monkeypatch.setattr(Instruments, "start", _boom)
    assert _claude_call_on(transport, replayer) == BODY
    assert instrumented.spans() == ()


def test_telemetry_start_raising_writes_a_debug_log(
    transport: Driver,
    monkeypatch: pytest.MonkeyPatch,
    instrumented: TelemetryCapture,
    replayer: Replayer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(Instruments, "start", _boom)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    _claude_call_on(transport, replayer)
    assert _debug_logged(caplog)


@pytest.mark.parametrize("hook", ["request_hook", "response_hook"])
def test_raising_user_hook_leaves_the_caller_bytes_identical(
    hook: str, transport: Driver, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    with instrumentation(telemetry, **{hook: _boom}):
        assert _claude_call_on(transport, replayer) == BODY


@pytest.mark.parametrize("hook", ["request_hook", "response_hook"])
def test_raising_user_hook_keeps_the_tokens(
    hook: str, transport: Driver, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    with instrumentation(telemetry, **{hook: _boom}):
        _claude_call_on(transport, replayer)
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 11  # the default token headers


@pytest.mark.parametrize("hook", ["request_hook", "response_hook"])
def test_raising_user_hook_writes_a_debug_log(
    hook: str,
    transport: Driver,
    telemetry: TelemetryCapture,
    replayer: Replayer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with instrumentation(telemetry, **{hook: _boom}):
        _claude_call_on(transport, replayer)
    assert _debug_logged(caplog)


def test_hooks_receive_span_service_operation_and_data(
    transport: Driver, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    seen: list[tuple[Any, ...]] = []
    with instrumentation(
        telemetry,
        request_hook=lambda *args: seen.append(("request", *args)),
        response_hook=lambda *args: seen.append(("response", *args)),
    ):
        _claude_call_on(transport, replayer)
    (span,) = telemetry.spans()
    (_, request_span, service, operation, params), (_, response_span, *rest) = seen
    assert (service, operation, params["modelId"]) == ("bedrock-runtime", "InvokeModel", CLAUDE)
    assert request_span.get_span_context() == response_span.get_span_context() == span.get_span_context()
    assert rest[:2] == ["bedrock-runtime", "InvokeModel"] and "ResponseMetadata" in rest[2]


# --- service errors (ClientError) ---------------------------------------------------------------------

THROTTLED = synthetic(
    b'{"message": "Too many requests, please wait before trying again."}',
    status=429,
    headers=(
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        ("x-amzn-RequestId", "req-throttled"),
    ),
)


def _throttled(transport: Driver, replayer: Replayer) -> ClientError:
    replayer.serve(THROTTLED)
    with transport.client(replayer.endpoint_url) as client, pytest.raises(ClientError) as raised:
        transport.call_recorded(client, THROTTLED)
    return raised.value


def test_throttling_reaches_the_caller_unchanged(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    error = _throttled(transport, replayer)
    assert error.response["Error"]["Code"] == "ThrottlingException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_throttling_span_has_the_error_code(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _throttled(transport, replayer)
    (span,) = instrumented.spans()
    assert span.attributes["error.type"] == "ThrottlingException"
    assert span.attributes["aws.request_id"] == "req-throttled"
    assert span.status.status_code is StatusCode.ERROR


def test_throttling_records_the_duration_with_the_error_type(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _throttled(transport, replayer)
    (point,) = instrumented.points("gen_ai.client.operation.duration")
    assert point.attributes["error.type"] == "ThrottlingException"
    assert point.count == 1 and point.sum > 0


def test_throttling_records_no_tokens(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _throttled(transport, replayer)
    (span,) = instrumented.spans()
    assert instrumented.points("gen_ai.client.token.usage") == []
    assert "gen_ai.usage.input_tokens" not in span.attributes


# --- transport errors ---------------------------------------------------------------------------------


def test_connection_refused_reaches_the_caller(transport: Driver, instrumented: TelemetryCapture) -> None:
    with (
        transport.client(f"http://127.0.0.1:{closed_port()}") as client,
        pytest.raises(EndpointConnectionError),
    ):
        client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "nobody home"}]}])


def test_connection_refused_error_type_is_the_qualified_class_name(
    transport: Driver, instrumented: TelemetryCapture
) -> None:
    with (
        transport.client(f"http://127.0.0.1:{closed_port()}") as client,
        pytest.raises(EndpointConnectionError),
    ):
        client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "nobody home"}]}])
    (span,) = instrumented.spans()
    (point,) = instrumented.points("gen_ai.client.operation.duration")
    assert span.attributes["error.type"] == "botocore.exceptions.EndpointConnectionError"
    assert point.attributes["error.type"] == "botocore.exceptions.EndpointConnectionError"


def _silent(conn: Any, server: RawServer) -> None:
    """Reads the request and never answers (until the server stops)."""
    read_http_request(conn)
    server.release.wait(timeout=30)


def test_read_timeout_reaches_the_caller(transport: Driver, instrumented: TelemetryCapture) -> None:
    with (
        RawServer(_silent) as server,
        transport.client(server.endpoint_url, read_timeout=0.2) as client,
        pytest.raises(ReadTimeoutError),
    ):
        _invoke(client)


def test_read_timeout_error_type_is_the_qualified_class_name(
    transport: Driver, instrumented: TelemetryCapture
) -> None:
    with (
        RawServer(_silent) as server,
        transport.client(server.endpoint_url, read_timeout=0.2) as client,
        pytest.raises(ReadTimeoutError),
    ):
        _invoke(client)
    (span,) = instrumented.spans()
    assert span.attributes["error.type"] == "botocore.exceptions.ReadTimeoutError"


# --- other services and operations go straight through ------------------------------------------------


def _boto_client(service: str, endpoint_url: str | None = None) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_s3_call_goes_straight_through(instrumented: TelemetryCapture) -> None:
    s3 = _boto_client("s3")
    expected = {"Buckets": [{"Name": "b1"}], "Owner": {"ID": "me"}}
    with Stubber(s3) as stubber:
        stubber.add_response("list_buckets", expected)
        result = s3.list_buckets()
    assert result == expected
    assert instrumented.spans() == ()
    assert instrumented.points("gen_ai.client.operation.duration") == []


def test_same_operation_name_on_another_service_is_not_measured(instrumented: TelemetryCapture) -> None:
    sts = _boto_client("sts", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(OperationNotFoundError):
        sts._make_api_call("Converse", {"modelId": "anthropic.claude-v2", "messages": []})
    assert instrumented.spans() == ()


def test_bedrock_call_failing_in_botocore_validation_reaches_the_caller(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    from botocore.exceptions import ParamValidationError

    with transport.client(replayer.endpoint_url) as client, pytest.raises(ParamValidationError):
        client.converse(modelId="anthropic.claude-v2", messages="not a list")


def test_bedrock_call_failing_in_botocore_validation_is_recorded(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    from botocore.exceptions import ParamValidationError

    with transport.client(replayer.endpoint_url) as client, pytest.raises(ParamValidationError):
        client.converse(modelId=CLAUDE, messages="not a list")
    (span,) = instrumented.spans()
    assert span.attributes["error.type"] == "botocore.exceptions.ParamValidationError"


# --- the caller's body keeps every StreamingBody behaviour --------------------------------------------

LINES = b'{"a": 1}\nsecond line\r\nthird\n\nlast without newline'


def _body_from(telemetry: TelemetryCapture, replayer: Replayer, measured: bool) -> Any:
    interaction = synthetic(LINES)
    replayer.serve(interaction)
    if not measured:
        return call_recorded(replayer.client, interaction)["body"]
    with instrumentation(telemetry):
        return call_recorded(replayer.client, interaction)["body"]


def _with(body: Any) -> list[bytes]:
    with body as entered:
        return [entered.read(4), entered.read()]


BODY_USES: dict[str, Callable[[Any], Any]] = {
    "read": lambda body: body.read(),
    "read_amt": lambda body: [body.read(5), body.read(7), body.read(), body.read(3)],
    "read_zero": lambda body: [body.read(0), body.read()],
    "iter_lines": lambda body: list(body.iter_lines()),
    "iter_lines_keepends": lambda body: list(body.iter_lines(chunk_size=4, keepends=True)),
    "iter_chunks": lambda body: list(body.iter_chunks(chunk_size=6)),
    "iterate": lambda body: list(body),
    "readlines": lambda body: body.readlines(),
    "readinto": lambda body: (lambda buffer: (body.readinto(buffer), bytes(buffer)))(bytearray(10)),
    "tell_after_read": lambda body: (body.read(9), body.tell()),
    "close": lambda body: body.close(),
    "context_manager": lambda body: _with(body),
    "readable": lambda body: body.readable(),
}


@pytest.mark.parametrize("use", sorted(BODY_USES))
def test_body_behaves_as_without_instrumentation(
    use: str, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    plain = outcome_of(lambda: BODY_USES[use](_body_from(telemetry, replayer, measured=False)))
    measured = outcome_of(lambda: BODY_USES[use](_body_from(telemetry, replayer, measured=True)))
    assert measured == plain


def test_body_set_socket_timeout_behaves_as_without_instrumentation(
    telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    plain = outcome_of(lambda: _body_from(telemetry, replayer, measured=False).set_socket_timeout(5))
    measured = outcome_of(lambda: _body_from(telemetry, replayer, measured=True).set_socket_timeout(5))
    assert measured == plain
