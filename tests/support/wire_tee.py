"""Test-only httpx2 transports that tee a real client's response bytes into the wire readers.

Not the product's adapter (that sits on the call lifecycle): just enough to feed ``wire`` the exact
bytes the anthropic and openai SDKs read, as they read them, and keep what each reader concluded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx2

from otel_bedrock_tokens.wire.readers import Reader, reader_for
from otel_bedrock_tokens.wire.request import BedrockRequest, recognize

_STREAM_TYPES = ("application/vnd.amazon.eventstream", "text/event-stream")


@dataclass
class Seen:
    """One recognized call: what it was, its reader, and whether the client closed the body."""

    request: BedrockRequest
    reader: Reader
    headers: dict[str, str] = field(default_factory=dict)
    streamed: bool = False
    closed: bool = False
    _body: list[bytes] = field(default_factory=list)

    def feed(self, chunk: bytes) -> None:
        if self.streamed:
            self.reader.feed(chunk)
        else:
            self._body.append(chunk)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.streamed:
            self.reader.read_body(self.headers, b"".join(self._body))


def _start(request: httpx2.Request, response: httpx2.Response, seen: list[Seen]) -> Seen | None:
    # The Host header, not the URL: a proxy or VPC endpoint in front of Bedrock keeps the Bedrock name.
    host = request.headers.get("host", request.url.host)
    found = recognize(request.method, request.url.raw_path.decode("ascii"), host, request.headers)
    if found is None:
        return None
    content_type = response.headers.get("content-type", "")
    streamed = content_type.startswith(_STREAM_TYPES)
    reader = reader_for(found.operation, found.model_id, streamed=streamed, request_body=request.content)
    assert reader is not None
    reader.content_encoding(response.headers.get("content-encoding"))
    call = Seen(found, reader, {k.lower(): v for k, v in response.headers.items()}, streamed)
    seen.append(call)
    return call


class _SyncTee(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, call: Seen) -> None:
        self._inner = inner
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._call.feed(chunk)
            yield chunk

    def close(self) -> None:
        self._call.close()
        self._inner.close()


class _AsyncTee(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, call: Seen) -> None:
        self._inner = inner
        self._call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._call.feed(chunk)
            yield chunk

    async def aclose(self) -> None:
        self._call.close()
        await self._inner.aclose()


class TeeTransport(httpx2.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        call = _start(request, response, self.seen)
        if call is not None:
            response.stream = _SyncTee(response.stream, call)  # type: ignore[arg-type]
        return response


class AsyncTeeTransport(httpx2.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        call = _start(request, response, self.seen)
        if call is not None:
            response.stream = _AsyncTee(response.stream, call)  # type: ignore[arg-type]
        return response
