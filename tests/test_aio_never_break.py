"""Never break an asyncio app: for every path where our code could fail, the aiobotocore caller gets
exactly what an uninstrumented client gives (same bytes, same exception), and the span says what
happened. The InvokeModel body the caller awaits is a body of the same class over the same bytes.
Behaviours shared with botocore (non-JSON and empty bodies, connection refused, read timeout,
validation errors, our parser or telemetry raising, raising user hooks, what hooks receive) are in
test_never_break.py, run on every transport."""

from __future__ import annotations

import logging
import re
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from aiobotocore.response import AioReadTimeoutError
from aiobotocore.response import StreamingBody as AioStreamingBody  # the aiohttp body, 2.x and 3.x
from aiohttp import ClientResponse
from opentelemetry.trace import StatusCode

from otel_bedrock_tokens import (
    BedrockTokensInstrumentor,
    aio_streams,
    aiobotocore_adapter,
    operations,
)
from otel_bedrock_tokens._logging import ERROR_TYPE_ATTRIBUTE
from otel_bedrock_tokens.stream_events import CONVERSE_STREAM_READING

from .support.aio import CLAUDE, aio_client, call_recorded_async, run
from .support.replay import (
    RECORDINGS,
    RawServer,
    Replayer,
    claude_body,
    load,
    read_http_request,
    synthetic,
    token_headers,
)
from .support.telemetry import TelemetryCapture

LOGGER = "otel_bedrock_tokens"
BODY = claude_body(input_tokens=3, output_tokens=4)
NOT_JSON = b"\x00\xff not json {\n\xe2\x82\xac" + bytes(range(256))
LINES = b'{"a": 1}\nsecond line\r\nthird\n\nlast without newline'
CONVERSE_STREAM = RECORDINGS / "otel-contrib" / "test_converse_stream_no_content_different_events.yaml"


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


async def outcome_of(use: Callable[[], Awaitable[Any]]) -> Any:
    """What the caller meets: the value, or the exception's class."""
    try:
        return await use()
    except Exception as error:
        return type(error)


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom inside the instrumentation")


def _debug_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        record.levelno == logging.DEBUG
        and record.name.startswith(LOGGER)
        and hasattr(record, ERROR_TYPE_ATTRIBUTE)
        for record in caplog.records
    )


def invoke(replayer: Replayer, body: bytes, use: Callable[[Any], Awaitable[Any]], **headers: Any) -> Any:
    """One InvokeModel answered with ``body``; ``await use(response_body)`` on the caller's body."""
    interaction = synthetic(body, headers=token_headers(**headers) if headers else None)
    replayer.serve(interaction)

    async def main() -> Any:
        async with aio_client(replayer.endpoint_url) as client:
            response = await call_recorded_async(client, interaction)
            return await use(response["body"])

    return run(main())


async def read_all(body: Any) -> bytes:
    return await body.read()  # type: ignore[no-any-return]


# --- the caller's body keeps every behaviour of aiobotocore's body ------------------------------


async def _with(body: Any) -> list[bytes]:
    async with body as entered:
        return [await entered.read(4), await entered.read()]


async def _readinto(body: Any) -> tuple[int, bytes]:
    buffer = bytearray(10)
    return await body.readinto(buffer), bytes(buffer)


async def _read_amounts(body: Any) -> list[bytes]:
    return [await body.read(5), await body.read(7), await body.read(), await body.read(3)]


async def _tell(body: Any) -> tuple[bytes, int]:
    return await body.read(9), body.tell()


async def _close(body: Any) -> Any:
    return body.close()


async def _aclose(body: Any) -> Any:
    return await body.aclose()


async def _readable(body: Any) -> list[bool]:
    before = body.readable()
    await body.read()
    return [before, body.readable()]


async def _raw(body: Any) -> tuple[bool, str, int, str]:
    """The aiohttp response under the body: the replay's is a transparent proxy of the original."""
    raw = body.raw_stream
    seen = isinstance(raw, ClientResponse), raw.__class__.__name__, raw.status, raw.headers["Content-Type"]
    await body.read()  # an unread body would make aiohttp reset the connection under the replay server
    return seen


BODY_USES: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "read": read_all,
    "read_amt": _read_amounts,
    "iter_lines": lambda body: _collect(body.iter_lines()),
    "iter_lines_keepends": lambda body: _collect(body.iter_lines(chunk_size=4, keepends=True)),
    "iter_chunks": lambda body: _collect(body.iter_chunks(chunk_size=6)),
    "iterate": lambda body: _collect(body),
    "readlines": lambda body: body.readlines(),
    "readinto": _readinto,
    "tell_after_read": _tell,
    "close": _close,
    "aclose": _aclose,
    "context_manager": _with,
    "readable": _readable,
    "raw_stream": _raw,
    "class": lambda body: _value(type(body)),
}


async def _collect(iterable: Any) -> list[Any]:
    return [item async for item in iterable]


async def _value(value: Any) -> Any:
    return value


@pytest.mark.parametrize("use", sorted(BODY_USES))
def test_body_behaves_as_without_instrumentation(
    use: str, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    plain = invoke(replayer, LINES, lambda body: outcome_of(lambda: BODY_USES[use](body)))
    with instrumentation(telemetry):
        measured = invoke(replayer, LINES, lambda body: outcome_of(lambda: BODY_USES[use](body)))
    assert measured == plain
    assert len(telemetry.spans()) == 1


def test_body_is_an_aio_streaming_body(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    assert invoke(replayer, BODY, lambda body: _value(type(body))) is AioStreamingBody


def test_body_tokens_fill_what_the_headers_lack(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    body = claude_body(input_tokens=5, output_tokens=6, cache_read=7)
    invoke(replayer, body, read_all, input_tokens=5, output_tokens=None)
    (span,) = instrumented.spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 12
    assert span.attributes["gen_ai.usage.output_tokens"] == 6
    assert span.attributes["gen_ai.response.id"] == "msg_bdrk_test"


def test_unknown_body_class_is_left_untouched(
    monkeypatch: pytest.MonkeyPatch, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    """A body class we cannot rebuild is never read by us: the caller reads the original; the
    token headers still give the usage."""
    monkeypatch.setattr(aio_streams, "_BODY_KINDS", {})
    originals: list[Any] = []
    real = aio_streams.read_and_replay_async

    async def spy(body: Any) -> Any:
        originals.append(body)
        return await real(body)

    monkeypatch.setattr(aiobotocore_adapter, "read_and_replay_async", spy)

    async def use(body: Any) -> bool:
        return body is originals[0] and await body.read() == BODY

    assert invoke(replayer, BODY, use)
    (span,) = instrumented.spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 11
    assert "gen_ai.response.id" not in span.attributes  # the body was not read by us


# --- the body's read fails part-way -------------------------------------------------------------------


def _head(length: int) -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"x-amzn-RequestId: req-cut"]
    lines += [b"X-Amzn-Bedrock-Input-Token-Count: 3", b"Content-Length: %d" % length]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _truncated(conn: Any, server: RawServer) -> None:
    """Declares the whole body, sends half of it, then closes cleanly (content-length mismatch)."""
    read_http_request(conn)
    conn.sendall(_head(len(BODY)) + BODY[: len(BODY) // 2])


def _withheld(conn: Any, server: RawServer) -> None:
    """Sends the head and half the body, then nothing until the server stops (a read timeout)."""
    read_http_request(conn)
    conn.sendall(_head(len(BODY)) + BODY[: len(BODY) // 2])
    server.release.wait(timeout=30)


class _Resetting:
    """Sends the head and half the body, waits until the client has the head, then resets."""

    def __init__(self) -> None:
        self.head_received = threading.Event()

    def __call__(self, conn: Any, server: RawServer) -> None:
        read_http_request(conn)
        conn.sendall(_head(len(BODY)) + BODY[: len(BODY) // 2])
        self.head_received.wait(timeout=5)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close -> RST


def _first_read(respond: Any, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[Any, Any]:
    """The exception the caller's first ``await body.read()`` raises, and (with ``monkeypatch``)
    the one our own read met."""
    seen: list[Any] = []
    if monkeypatch is not None:
        real = aio_streams.read_and_replay_async

        async def spy(body: Any) -> Any:
            result = await real(body)
            seen.append(result)
            return result

        monkeypatch.setattr(aiobotocore_adapter, "read_and_replay_async", spy)

    async def main(endpoint_url: str) -> Any:
        async with aio_client(endpoint_url, read_timeout=0.3) as client:
            if isinstance(respond, _Resetting):
                client.meta.events.register(
                    "before-parse.bedrock-runtime.InvokeModel", lambda **_: respond.head_received.set()
                )
            response = await client.invoke_model(modelId=CLAUDE, body=b"{}")
            try:
                await response["body"].read()
            except Exception as error:
                return error
            return None

    with RawServer(respond) as server:
        met = run(main(server.endpoint_url))
    return met, (seen[0].error if seen else None)


def _ports(plain: Any, measured: Any) -> tuple[str, str]:
    """Each side ran its own server: the endpoint URL in a timeout's message differs by its port."""
    found = [re.search(r"127\.0\.0\.1:\d+", str(error)) for error in (plain, measured)]
    if found[0] is None or found[1] is None:
        return "", ""
    return found[0].group(), found[1].group()


FAILING_SERVERS: dict[str, Callable[[], Any]] = {
    "truncated": lambda: _truncated,
    "reset": _Resetting,
    "timeout": lambda: _withheld,
}


@pytest.mark.parametrize("server", sorted(FAILING_SERVERS))
def test_failed_read_is_replayed_as_the_same_exception(
    server: str, telemetry: TelemetryCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's read raises what aiobotocore raises without us (its own wrapping of the reader's
    failure, made in the caller's read as it would be), and the span names the same."""
    plain, _ = _first_read(FAILING_SERVERS[server]())
    with instrumentation(telemetry):
        measured, ours = _first_read(FAILING_SERVERS[server](), monkeypatch)
    assert isinstance(plain, Exception)
    assert (type(measured), str(measured)) == (type(plain), str(plain).replace(*_ports(plain, measured)))
    assert (type(ours), str(ours)) == (type(measured), str(measured))
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == qualified(type(plain))
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["gen_ai.usage.input_tokens"] == 3  # the headers arrived before the failure
    (point,) = telemetry.points("gen_ai.client.operation.duration")
    assert point.attributes["error.type"] == qualified(type(plain))


def test_read_timeout_keeps_its_class(telemetry: TelemetryCapture) -> None:
    with instrumentation(telemetry):
        measured, _ = _first_read(_withheld)
    assert isinstance(measured, AioReadTimeoutError)


def test_failed_body_keeps_its_class_and_closes(telemetry: TelemetryCapture) -> None:
    async def main(endpoint_url: str) -> tuple[bool, Any, Any]:
        async with aio_client(endpoint_url) as client:
            body = (await client.invoke_model(modelId=CLAUDE, body=b"{}"))["body"]
            with pytest.raises(Exception) as first:
                await body.read()
            with pytest.raises(Exception) as second:
                await body.read(10)
            body.close()
            return isinstance(body, AioStreamingBody), first.value, second.value

    with instrumentation(telemetry), RawServer(_truncated) as server:
        is_body, first, second = run(main(server.endpoint_url))
    assert is_body
    assert first is second


# --- our own code raising -----------------------------------------------------------------------------


def test_response_parsing_raising_returns_the_result_unchanged(
    monkeypatch: pytest.MonkeyPatch,
    telemetry: TelemetryCapture,
    replayer: Replayer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    (interaction,) = load(RECORDINGS / "otel-contrib" / "test_converse_with_content.yaml")
    replayer.serve(interaction, interaction)

    async def converse() -> Any:
        async with aio_client(replayer.endpoint_url) as client:
            return await call_recorded_async(client, interaction)

    plain = run(converse())
    monkeypatch.setattr(operations.Converse, "response", _boom)
    with instrumentation(telemetry):
        measured = run(converse())
    for result in (measured, plain):
        result["ResponseMetadata"].pop("HTTPHeaders")  # the replay server's Date header differs
    assert measured == plain
    (span,) = telemetry.spans()
    assert span.end_time is not None
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert _debug_logged(caplog)


def test_stream_observer_raising_leaves_the_events_identical(
    monkeypatch: pytest.MonkeyPatch,
    telemetry: TelemetryCapture,
    replayer: Replayer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(
        operations.ConverseStream,
        "stream_reading",
        lambda self, request: CONVERSE_STREAM_READING._replace(observe=_boom),
    )
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    (interaction,) = load(CONVERSE_STREAM)
    replayer.serve(interaction, interaction)

    async def events() -> list[Any]:
        async with aio_client(replayer.endpoint_url) as client:
            response = await call_recorded_async(client, interaction)
            return [event async for event in response["stream"]]

    plain = run(events())
    with instrumentation(telemetry):
        measured = run(events())
    assert measured == plain
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.stream.end"] == "completed"
    assert span.attributes["bedrock_tokens.stream.events"] == len(plain)
    assert _debug_logged(caplog)


def test_response_hook_sees_the_callers_aio_body(telemetry: TelemetryCapture, replayer: Replayer) -> None:
    """The hook gets the body the caller will read (the replayed aiobotocore body), not ours.
    (What every transport's hooks receive is in test_never_break.py.)"""
    seen: list[Any] = []
    with instrumentation(telemetry, response_hook=lambda *args: seen.append(args[3])):
        invoke(replayer, BODY, read_all)
    (result,) = seen
    assert type(result["body"]) is AioStreamingBody


# --- aiobotocore's httpx backend body (no network: a stand-in for httpx.Response) -----------------


class _FakeHttpxResponse:
    """What ``AioHttpxStreamingBody`` uses of an ``httpx.Response``: ``aiter_raw()``, ``aclose()``,
    ``url``. After its chunks it raises ``error``, if given."""

    url = "http://127.0.0.1/model/x/invoke"

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error
        self.closed = False

    async def _chunks(self) -> Any:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error

    def aiter_raw(self, chunk_size: int | None = None) -> Any:
        return self._chunks()

    async def aclose(self) -> None:
        self.closed = True


def _httpx_body_class() -> Any:
    """aiobotocore 3.8+'s httpx body (2.x has a different, proxy-based one we leave untouched)."""
    from aiobotocore import response

    if not hasattr(response, "AioHttpxStreamingBody"):
        pytest.skip("this aiobotocore has no AioHttpxStreamingBody")
    return response.AioHttpxStreamingBody


def test_httpx_body_is_replayed_byte_exact() -> None:
    AioHttpxStreamingBody = _httpx_body_class()

    async def main() -> None:
        raw = _FakeHttpxResponse([LINES[:10], LINES[10:]])
        read = await aio_streams.read_and_replay_async(AioHttpxStreamingBody(raw, str(len(LINES))))
        assert read is not None and read.data == LINES and read.error is None
        body = read.replacement
        assert type(body) is AioHttpxStreamingBody
        assert [await body.read(5), await body.read()] == [LINES[:5], LINES[5:]]
        assert body.tell() == len(LINES)
        await body.aclose()
        assert raw.closed  # closing the replay closes the original response

    run(main())


def test_httpx_body_failing_part_way_is_replayed_as_the_same_exception() -> None:
    AioHttpxStreamingBody = _httpx_body_class()

    async def main() -> None:
        error = ConnectionResetError("reset mid-body")
        read = await aio_streams.read_and_replay_async(
            AioHttpxStreamingBody(_FakeHttpxResponse([LINES[:10]], error), str(len(LINES)))
        )
        assert read is not None and read.error is error
        assert isinstance(read.replacement, AioHttpxStreamingBody)
        with pytest.raises(ConnectionResetError) as caught:
            await read.replacement.read()
        assert caught.value is error

    run(main())
