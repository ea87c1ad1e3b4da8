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
``StreamingBody``: one ``await body.read()`` inside the call, then a body of the same class over the
same bytes for the caller. A read that fails is replayed as the very same exception object on the
caller's first read.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

import wrapt
from aiobotocore import response as aio_response

from ._logging import log_internal_error
from .bodies import ReadResult
from .operations import Operation
from .streams import END_COMPLETED, END_ERROR, StreamProxy, install_proxy
from .telemetry import Call

if TYPE_CHECKING:
    from ._hooks import BedrockHook

logger = logging.getLogger(__name__)


class AioStreamProxy(StreamProxy):
    """Transparent stand-in for an aiobotocore ``AioEventStream`` (``async for`` instead of ``for``)."""

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._self_events()

    def __iter__(self) -> Iterator[Any]:
        # AioEventStream refuses sync iteration; so does the proxy, with the same error and without
        # taking that refusal for the end of the stream.
        return iter(self.__wrapped__)

    async def _self_events(self) -> AsyncIterator[Any]:
        state = self._self_state
        observe = state.observe
        skip = state.skip_prefixes
        skip_key = state.skip_key
        per_chunk = state.per_chunk
        timed = state.first_event_at is not None
        try:
            async for event in self.__wrapped__:
                # The per-event step of StreamProxy.__iter__, line for line (see streams).
                if not state.ended:
                    state.events += 1
                    if not timed:
                        timed = True
                        state.first_event_at = state.last_event_at = perf_counter()
                    elif per_chunk:
                        state.time_chunk()
                    try:
                        if skip:
                            chunk = event.get("chunk")
                            passed_over = chunk is not None and chunk["bytes"].startswith(skip)
                        else:
                            passed_over = skip_key in event
                        last = not passed_over and observe(state, event)
                    except Exception:
                        log_internal_error(logger, "bedrock-tokens: could not read a stream event")
                        last = False
                    if last:
                        self._self_end(END_COMPLETED)
                yield event
        except GeneratorExit:
            raise  # the caller left the loop and the iterator was closed: it may resume or close
        except BaseException as error:  # includes CancelledError: the consuming task was cancelled
            self._self_end(END_ERROR, error)
            raise
        self._self_end(END_COMPLETED)


def wrap_aio_stream(call: Call, operation: Operation, result: Any, hook: BedrockHook) -> Any:
    """Put an :class:`AioStreamProxy` in place of the result's event stream; return the result."""
    return install_proxy(AioStreamProxy, call, operation, result, hook)


# --- InvokeModel bodies ------------------------------------------------------------------------


class _ReplayContent:
    """What aiobotocore's aiohttp ``AioStreamingBody`` reads from ``raw_stream.content`` (an aiohttp
    ``StreamReader``): ``read(n)`` (``-1``: the rest) and ``at_eof()``, over bytes already read."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    async def read(self, n: int = -1) -> bytes:
        start = self._offset
        end = len(self._data) if n is None or n < 0 else min(len(self._data), start + n)
        self._offset = end
        return self._data[start:end]

    def at_eof(self) -> bool:
        return self._offset >= len(self._data)


class _ReplayedAiohttpResponse(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """The original aiohttp ``ClientResponse`` (status, headers, ``close()``, ``url``...) whose
    ``content`` serves the bytes already read."""

    def __init__(self, response: Any, data: bytes) -> None:
        super().__init__(response)
        self._self_content = _ReplayContent(data)

    @property
    def content(self) -> _ReplayContent:
        return self._self_content


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
    #: A stand-in for the raw response that serves the bytes.
    replay: Callable[[Any, bytes], Any]


def _body_kinds() -> dict[type, _BodyKind]:
    """Body classes we know how to rebuild, looked up by name: aiobotocore 3.8+ has
    ``AioStreamingBody`` (aiohttp) and ``AioHttpxStreamingBody``, subclasses of botocore's
    ``StreamingBody``; 2.x (what aioboto3 pins) has ``StreamingBody``, a ``wrapt.ObjectProxy`` of
    the aiohttp response."""
    kinds: dict[type, _BodyKind] = {}
    modern = _BodyKind(
        raw=lambda body: body._raw_stream,
        length=lambda body: body._content_length,
        replay=_ReplayedAiohttpResponse,
    )
    aiohttp_body = getattr(aio_response, "AioStreamingBody", None)
    httpx_body = getattr(aio_response, "AioHttpxStreamingBody", None)
    legacy_body = getattr(aio_response, "StreamingBody", None)
    if isinstance(aiohttp_body, type):
        kinds[aiohttp_body] = modern
    if isinstance(httpx_body, type):
        kinds[httpx_body] = modern._replace(replay=_ReplayedHttpxResponse)
    if (
        isinstance(legacy_body, type)
        and legacy_body not in kinds
        and issubclass(legacy_body, wrapt.ObjectProxy)
    ):
        kinds[legacy_body] = _BodyKind(
            raw=lambda body: body.__wrapped__,
            length=lambda body: body._self_content_length,
            replay=_ReplayedAiohttpResponse,
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
    """Read ``body`` in one ``await body.read()``; return its bytes and a body of the same class over
    them for the caller. ``None`` (body untouched) for a body class we cannot rebuild: the response
    headers still carry the tokens. A ``CancelledError`` propagates: the call is being cancelled."""
    cls = type(body)
    kind = _BODY_KINDS.get(cls)
    if kind is None:
        return None
    raw, length = kind.raw(body), kind.length(body)
    try:
        data = await body.read()
    except Exception as error:
        failing = _failing_class(cls)(raw, length)
        failing._self_bedrock_tokens_error = error
        return ReadResult(b"", error, failing)
    if type(data) is not bytes:
        data = bytes(data)
    return ReadResult(data, None, cls(kind.replay(raw, data), len(data)))
