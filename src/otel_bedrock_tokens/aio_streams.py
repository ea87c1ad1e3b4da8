"""The asyncio side of :mod:`.streams` and :mod:`.bodies`, for aiobotocore.

Imported only once aiobotocore itself has been imported by the application (see the instrumentor),
so nothing here is loaded in a sync-only process.

:class:`AioStreamProxy` stands in for aiobotocore's ``AioEventStream``: ``async for`` yields the very
same events, and the span ends once, through the sync proxy's single end-of-life path
(:meth:`StreamProxy._self_end` / :meth:`StreamState.finish`), at whichever comes first: the final
usage event, exhaustion, ``close()``, an exception while awaiting the next event (re-raised
unchanged), the consuming task being cancelled while it awaits (``CancelledError`` is recorded as
``error.type`` ``asyncio.exceptions.CancelledError``, its qualified class name like any other
exception's, and re-raised unchanged), or the proxy being garbage-collected unclosed (queued by its
finalizer, ended from a safe place: see :mod:`.abandoned`, which also applies here). Leaving an
``async for`` early (``break``, or the loop closing the suspended iterator) does not end it: the
caller may resume iterating, and close or drop the stream later. Tokens come from the same observers
as the sync stream's, so the extraction logic exists once.

``AioEventStream.close()`` is synchronous (it is botocore's, closing the aiohttp response), so the
proxy's ``close()`` is too; it returns whatever the wrapped ``close()`` returns, so an awaitable close
would still be awaitable.

:func:`read_and_replay_async` is :func:`.bodies.read_and_replay` for aiobotocore's async
``StreamingBody``: the body read inside the call, then a body of the same class for the caller that
reads as the original would have (the bytes, then the failure that stopped them, then the real
response: see :class:`_ReplayContent`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple

import wrapt
from aiobotocore import response as aio_response

from .bodies import ReadResult
from .streams import END_COMPLETED, END_ERROR, StreamProxy


class AioStreamProxy(StreamProxy):
    """Transparent stand-in for an aiobotocore ``AioEventStream`` (``async for`` instead of ``for``)."""

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._self_events()

    def __iter__(self) -> Iterator[Any]:
        # AioEventStream refuses sync iteration; so does the proxy, with the same error and without
        # taking that refusal for the end of the stream.
        return iter(self.__wrapped__)

    async def _self_events(self) -> AsyncIterator[Any]:
        # StreamProxy.__iter__ with ``async for``: the per-event step is the shared StreamState.stepper.
        state = self._self_state
        see = state.stepper()
        try:
            async for event in self.__wrapped__:
                if not state.ended and see(event):
                    self._self_end(END_COMPLETED)
                yield event
        except GeneratorExit:
            raise  # the caller left the loop and the iterator was closed: it may resume or close
        except BaseException as error:  # includes CancelledError: the consuming task was cancelled
            self._self_end(END_ERROR, error)
            raise
        self._self_end(END_COMPLETED)


# --- InvokeModel bodies ------------------------------------------------------------------------


#: Bytes per ``content.read`` while recording an aiohttp body: what one socket read brings.
_CHUNK = 1 << 16


class _ReplayContent:
    """What aiobotocore's aiohttp bodies read from ``raw_stream.content`` (an aiohttp
    ``StreamReader``): the bytes read inside the call first, then the real reader, as aiohttp would
    answer. aiohttp serves what it has buffered without waiting and raises the connection's failure
    (the same exception object, every time) at the first read that has to wait; so does this, by
    handing that read to the real reader, which holds the failure. A whole ``read()`` that meets the
    failure loses what it had collected (aiohttp's ``read(-1)`` raises); after the response is closed
    every read is the real reader's (``Connection closed``)."""

    def __init__(self, real: Any, data: bytes) -> None:
        self._real = real
        self._data = data
        self._offset = 0
        self.replaying = bool(data)
        #: A read has gone to the real reader (and met its failure, if it holds one).
        self._met = False
        self._closed_error: BaseException | None = None

    def close(self) -> None:
        """The response is being closed. Had the caller not met the failure yet, aiohttp would not
        have seen it either: closing would set its "Connection closed" error, which later reads raise."""
        self.replaying = False
        if not self._met and self._real.exception() is not None:
            self._closed_error = _connection_closed()

    async def read(self, n: int = -1) -> bytes:
        if self._closed_error is not None:
            raise self._closed_error
        if self.replaying:
            start = self._offset
            data = self._data
            if n == 0:
                return b""
            if n is not None and n > 0:
                end = min(len(data), start + n)
                self._offset = end
                self.replaying = end < len(data)
                return data[start:end]
            self.replaying = False
            self._offset = len(data)
            if self._real.exception() is None:
                rest = data[start:] if start else data
                self._met = True
                return rest + bytes(await self._real.read(n))
        self._met = True
        return await self._real.read(n)  # type: ignore[no-any-return]

    def at_eof(self) -> bool:
        return not self.replaying and bool(self._real.at_eof())

    def exception(self) -> BaseException | None:
        return self._real.exception()  # type: ignore[no-any-return]


def _connection_closed() -> BaseException:
    """The error aiohttp's reader raises once its response is closed (the very object, where aiohttp
    keeps one)."""
    from aiohttp import ClientConnectionError, client_reqrep

    closed = getattr(client_reqrep, "_CONNECTION_CLOSED_EXCEPTION", None)
    return closed if isinstance(closed, ClientConnectionError) else ClientConnectionError("Connection closed")


class _RaisingContent:
    """A reader whose read raises ``error``: to learn how the body class wraps it."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    async def read(self, n: int = -1) -> bytes:
        raise self._error


class _ReplayedAiohttpResponse(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """The original aiohttp ``ClientResponse`` (status, headers, ``url``...) whose ``content`` is
    ``content``; ``close()`` closes the original and hands every later read to its reader."""

    def __init__(self, response: Any, content: Any) -> None:
        super().__init__(response)
        self._self_content = content

    @property
    def content(self) -> Any:
        return self._self_content

    def close(self) -> Any:
        self._self_content.close()
        return self.__wrapped__.close()


class _ReplayedHttpxResponse(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """The original httpx ``Response`` (``aclose()``, ``url``...) whose ``aiter_raw()`` serves the
    bytes already read."""

    def __init__(self, response: Any, data: bytes) -> None:
        super().__init__(response)
        self._self_data = data

    def aiter_raw(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        return self._self_chunks()

    async def _self_chunks(self) -> AsyncIterator[bytes]:
        if self._self_data:
            yield self._self_data


class _BodyKind(NamedTuple):
    """How to rebuild one aiobotocore body class over bytes already read."""

    #: The body's raw HTTP response.
    raw: Callable[[Any], Any]
    #: The content length the body was built with (it verifies reads against it).
    length: Callable[[Any], Any]
    #: A stand-in for the raw response that serves the bytes (httpx: all of them, read at once).
    replay: Callable[[Any, bytes], Any]
    #: aiohttp bodies: recorded chunk by chunk from ``raw.content`` and replayed as aiohttp would.
    aiohttp: bool = True


def _body_kinds() -> dict[type, _BodyKind]:
    """Body classes we know how to rebuild, looked up by name: aiobotocore 3.8+ has
    ``AioStreamingBody`` (aiohttp) and ``AioHttpxStreamingBody``, subclasses of botocore's
    ``StreamingBody``; 2.x (what aioboto3 pins) has ``StreamingBody``, a ``wrapt.ObjectProxy`` of
    the aiohttp response."""
    kinds: dict[type, _BodyKind] = {}
    modern = _BodyKind(
        raw=lambda body: body._raw_stream,
        length=lambda body: body._content_length,
        replay=_ReplayedHttpxResponse,
    )
    aiohttp_body = getattr(aio_response, "AioStreamingBody", None)
    httpx_body = getattr(aio_response, "AioHttpxStreamingBody", None)
    legacy_body = getattr(aio_response, "StreamingBody", None)
    if isinstance(aiohttp_body, type):
        kinds[aiohttp_body] = modern
    if isinstance(httpx_body, type):
        kinds[httpx_body] = modern._replace(aiohttp=False)
    if (
        isinstance(legacy_body, type)
        and legacy_body not in kinds
        and issubclass(legacy_body, wrapt.ObjectProxy)
    ):
        kinds[legacy_body] = modern._replace(
            raw=lambda body: body.__wrapped__, length=lambda body: body._self_content_length
        )
    return kinds


_BODY_KINDS = _body_kinds()
_FAILING: dict[type, type] = {}


def _failing_class(cls: type) -> type:
    """``cls`` whose reads raise the stored error: aiobotocore's own ``read()`` would re-wrap a
    timeout in a new exception, and the caller must meet the very one we met. Built once per class."""
    failing = _FAILING.get(cls)
    if failing is None:
        failing = _FAILING[cls] = _make_failing_class(cls)
    return failing


def _make_failing_class(cls: type) -> type:
    # ``_self_`` attributes stay on a wrapt proxy (aiobotocore 2.x bodies) instead of reaching
    # the response it wraps; on other classes they are plain attributes.
    async def read(self: Any, amt: int | None = None) -> bytes:
        raise self._self_bedrock_tokens_error

    async def readinto(self: Any, buffer: Any) -> int:
        raise self._self_bedrock_tokens_error

    def readable(self: Any) -> bool:
        return True

    namespace = {
        "read": read,
        "readinto": readinto,
        "readable": readable,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
    }
    return type(cls.__name__, (cls,), namespace)


async def read_and_replay_async(body: Any) -> ReadResult | None:
    """Read ``body``'s bytes; return them and a body of the same class for the caller that reads as
    ``body`` would have. ``None`` (body untouched) for a body class we cannot rebuild: the response
    headers still carry the tokens. A ``CancelledError`` propagates: the call is being cancelled.

    aiohttp bodies (what aiobotocore uses by default) are read chunk by chunk from the response's
    reader, so the bytes before a failure are kept, and replayed by :class:`_ReplayContent` over the
    original response, with the original content length: the caller's reads, failures and reads
    after ``close()`` are aiohttp's and aiobotocore's own. httpx bodies are read in one ``read()``
    and replayed whole (or as the very exception it raised, on every read)."""
    cls = type(body)
    kind = _BODY_KINDS.get(cls)
    if kind is None:
        return None
    raw, length = kind.raw(body), kind.length(body)
    if kind.aiohttp:
        return await _record_aiohttp(cls, raw, length)
    try:
        data = await body.read()
    except Exception as error:
        failing = _failing_class(cls)(raw, length)
        failing._self_bedrock_tokens_error = error
        return ReadResult(b"", error, failing)
    if type(data) is not bytes:
        data = bytes(data)
    return ReadResult(data, None, cls(kind.replay(raw, data), len(data)))


async def _record_aiohttp(cls: type, raw: Any, length: Any) -> ReadResult:
    content = raw.content
    chunks: list[bytes] = []
    error: Exception | None = None
    try:
        while chunk := await content.read(_CHUNK):
            chunks.append(chunk)
    except Exception as failure:
        error = failure
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    replacement = cls(_ReplayedAiohttpResponse(raw, _ReplayContent(content, data)), length)
    if error is not None:
        error = await _caller_error(cls, raw, error)
    return ReadResult(data, error, replacement)


async def _caller_error(cls: type, raw: Any, error: Exception) -> Exception:
    """The exception the caller's ``read()`` meets when the reader raises ``error``: the body class's
    own wrapping (``ResponseStreamingError``, ``AioReadTimeoutError``, or ``error`` itself)."""
    try:
        await cls(_ReplayedAiohttpResponse(raw, _RaisingContent(error)), None).read()
    except Exception as wrapped:
        return wrapped
    return error
