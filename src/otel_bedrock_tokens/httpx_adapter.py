"""The httpx / httpx2 transport: Bedrock calls sent by clients that sign and send on their own.

The anthropic SDK (``AnthropicBedrock``, ``AnthropicBedrockMantle``), the openai SDK pointed at
bedrock-mantle and litellm sign with SigV4 (or a Bedrock API key) and send with ``httpx`` or
``httpx2``: they never reach botocore's ``_make_api_call``, so the botocore patch cannot see them.
This layer sits on ``Client._send_single_request`` / ``AsyncClient._send_single_request`` of both
packages: the one method every request goes through once per HTTP exchange, whatever transport the
client was given (a mounted proxy, a ``MockTransport``), and the last place that holds the raw,
still-encoded response byte stream before the client library reads it.

Per request: :func:`.wire.request.recognize` (method, path, and only for Bedrock-looking paths the
``Authorization`` header) decides; anything else goes straight through. A Bedrock call gets one span
and one set of points from the shared :class:`.lifecycle.Lifecycle`. The response's byte stream is
wrapped in a transparent proxy (a ``wrapt.ObjectProxy``, so ``response.stream.elapsed`` and every
other attribute read through) that hands each piece to a :mod:`.wire.readers` reader *as the
application reads it*: nothing is read ahead, and the bytes the application gets are the very
objects the transport produced. A non-streamed body is parsed once, when it has been read to its end
(``response.read()`` does that inside ``send``); an event stream or SSE body is decoded piece by
piece. The span ends exactly once: at the end of the body, on ``close()``, on an error while reading
(re-raised unchanged, cancellation included), or as ``abandoned`` when the response is dropped
unread (the finalizer only queues the state: see :mod:`.abandoned`).

No double counting: these clients never call botocore, so a call is seen by this layer only; a
botocore call never goes through httpx. The anthropic SDK's own span (scope
``com.anthropic.sdk.python.bedrock``) wraps the whole ``messages.create`` and ours is its child
(the HTTP exchange); it records no metrics.

Prediction (CountTokens before or alongside the call) is off on this path: it needs a botocore
client to send CountTokens with, and building one from the default credential chain behind the
application's back could pick other credentials than the ones the request was signed with.
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import wrapt
from botocore.exceptions import ClientError

from . import abandoned
from ._logging import log_internal_error
from .endpoint import server_of
from .errors import error_type_of
from .facts import RequestParams, ResponseFacts
from .families import Family
from .lifecycle import Lifecycle
from .operations import OPERATIONS, Operation, parse_json_object
from .streams import END_ABANDONED, END_CLOSED, END_COMPLETED, END_ERROR, StreamState
from .telemetry import Call
from .wire import request as ops
from .wire.readers import Reader, reader_for
from .wire.request import plausible, recognize

logger = logging.getLogger(__name__)

_STREAM_TYPES = ("application/vnd.amazon.eventstream", "text/event-stream")


class _MantleOperation(Operation):
    """A bedrock-mantle API (Anthropic Messages, OpenAI Chat Completions / Responses): the model is
    in the request body, which the adapter passes as ``params`` with ``modelId`` set from it."""

    def __init__(self, api_name: str, operation_name: str) -> None:
        self.api_name = api_name
        self.operation_name = operation_name

    def describe(self, params: Mapping[str, Any], family: Family) -> tuple[str, Family | None, RequestParams]:
        return self.operation_name, None, RequestParams()


#: Every operation this layer measures, by :mod:`.wire.request` operation name.
WIRE_OPERATIONS: dict[str, Operation] = {
    **OPERATIONS,
    ops.MESSAGES: _MantleOperation(ops.MESSAGES, "chat"),
    ops.MESSAGES_COUNT_TOKENS: _MantleOperation(ops.MESSAGES_COUNT_TOKENS, "count_tokens"),
    ops.CHAT_COMPLETIONS: _MantleOperation(ops.CHAT_COMPLETIONS, "chat"),
    ops.RESPONSES: _MantleOperation(ops.RESPONSES, "chat"),
}


def _params(operation: str, model_id: str | None, body: bytes | None) -> dict[str, Any]:
    """The botocore-shaped params of a recognized request, for ``Operation.request``."""
    if operation in (ops.INVOKE_MODEL, ops.INVOKE_MODEL_STREAM):
        return {"modelId": model_id or "", "body": body}
    parsed = parse_json_object(body) or {}
    if model_id is None:
        model = parsed.get("model")
        model_id = model if isinstance(model, str) else ""
    parsed["modelId"] = model_id
    return parsed


def _error_type(response: Any) -> str | None:
    """An error response's type, as botocore would name it (``x-amzn-ErrorType``) or its status."""
    status = response.status_code
    if status < 400:
        return None
    kind = response.headers.get("x-amzn-errortype")
    if kind:
        return str(kind).split(":", 1)[0]
    return str(status)


class _Watch:
    """One measured call's response: its reader and the single end of its span.

    Also what :mod:`.abandoned` queues when the response is dropped unread (the tee's finalizer
    only appends it to a deque): :meth:`abandon` then ends the span from a safe place."""

    __slots__ = (
        "__weakref__",
        "body",
        "call",
        "ended",
        "error_type",
        "headers",
        "lifecycle",
        "operation",
        "reader",
        "state",
    )

    def __init__(
        self,
        lifecycle: Lifecycle,
        call: Call,
        operation: Operation,
        reader: Reader,
        headers: dict[str, str],
        streamed: bool,
        error_type: str | None,
    ) -> None:
        self.lifecycle = lifecycle
        self.call = call
        self.operation = operation
        self.reader = reader
        self.headers = headers
        self.error_type = error_type
        self.ended = False
        #: A plain body, kept until it has been read to its end (parsed once, then).
        self.body: list[bytes] = []
        #: A streamed body's end-of-life state (stream attributes, chunk timings); ``None``: plain.
        self.state: StreamState | None = (
            lifecycle.watch_stream(call, reader.facts, track=False) if streamed else None
        )
        abandoned.track(self)

    def feed(self, chunk: bytes) -> bool:
        """One piece as the application read it; ``True`` when a stream's final usage event has
        just been read (the span can end now, as a botocore stream's does)."""
        if self.ended:
            return False
        try:
            state = self.state
            if state is None:
                self.body.append(chunk)
                return False
            reader = self.reader
            before = reader.events
            reader.feed(chunk)
            if reader.failed:
                state.arrived()  # the bytes cannot be decoded: count reads rather than nothing
            else:
                for _ in range(reader.events - before):  # bounded: the events this read completed
                    state.arrived()
            return reader.done
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not read a response")
            return False

    def abandon(self) -> None:
        """The response was dropped unread (see :mod:`.abandoned`)."""
        self.end(END_ABANDONED)

    def end(self, how: str, error: BaseException | None = None) -> None:
        """End the span once (later calls do nothing); never raises an ``Exception``."""
        if self.ended:
            return
        self.ended = True
        abandoned.ended(self)
        reader = self.reader
        state = self.state
        try:
            if state is None:
                # A plain body: whatever was read (the token headers count even if it was not).
                reader.read_body(self.headers, b"".join(self.body))
                self.body = []
            if error is None:
                kind = self.error_type or reader.error_code
                if kind is not None:
                    # The service's error code, named as botocore's ClientError names it (never raised).
                    error = ClientError({"Error": {"Code": kind}}, self.operation.api_name)
            facts: ResponseFacts = reader.facts
            usage = reader.usage
            if usage.reasoning_output_tokens is None and reader.reasoning_tokens is not None:
                usage.reasoning_output_tokens = reader.reasoning_tokens  # mantle shapes state them
            if state is None:
                facts.usage = usage
                self.lifecycle.end(self.call, facts, error_type_of(error) if error is not None else None)
                return
            state.facts = facts
            if reader.done:
                state.billed = usage
        except Exception:
            if state is None:
                self.lifecycle.end_unrecorded(self.call)  # logs, ends the span bare
                return
            log_internal_error(logger, "bedrock-tokens: could not read a response")
        if state is not None:
            state.finish(how, error)


class _SyncTee(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """The response's byte stream, unchanged, each piece handed to the call's reader as read."""

    def __init__(self, wrapped: Any, watch: _Watch) -> None:
        super().__init__(wrapped)
        self._self_watch = watch
        finalizer = self._self_finalizer = weakref.finalize(self, abandoned.abandon, watch)
        finalizer.atexit = False

    def __iter__(self) -> Iterator[bytes]:
        watch = self._self_watch
        try:
            for chunk in self.__wrapped__:
                if watch.feed(chunk):
                    self._self_end(END_COMPLETED)  # the final usage event: ends as a botocore stream does
                yield chunk
        except GeneratorExit:
            raise  # the reader stopped: it may close the response or drop it
        except BaseException as error:
            self._self_end(END_ERROR, error)
            raise
        self._self_end(END_COMPLETED)

    def _self_end(self, how: str, error: BaseException | None = None) -> None:
        self._self_finalizer.detach()
        self._self_watch.end(how, error)

    def close(self) -> Any:
        self._self_end(END_CLOSED)
        return self.__wrapped__.close()


class _AsyncTee(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """:class:`_SyncTee` for an async byte stream."""

    def __init__(self, wrapped: Any, watch: _Watch) -> None:
        super().__init__(wrapped)
        self._self_watch = watch
        finalizer = self._self_finalizer = weakref.finalize(self, abandoned.abandon, watch)
        finalizer.atexit = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        watch = self._self_watch
        try:
            async for chunk in self.__wrapped__:
                if watch.feed(chunk):
                    self._self_end(END_COMPLETED)  # the final usage event: ends as a botocore stream does
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as error:  # CancelledError included: the span ends with it
            self._self_end(END_ERROR, error)
            raise
        self._self_end(END_COMPLETED)

    def _self_end(self, how: str, error: BaseException | None = None) -> None:
        self._self_finalizer.detach()
        self._self_watch.end(how, error)

    async def aclose(self) -> Any:
        self._self_end(END_CLOSED)
        return await self.__wrapped__.aclose()


#: What :meth:`HttpxAdapter.begin` hands to ``send``: the call, its operation, the wire operation
#: name and the model id.
Begun = tuple[Call, Operation, str, "str | None"]


class HttpxAdapter:
    """What our ``_send_single_request`` layers call for one ``instrument()``, sync and async: the
    layer itself only tests the method (a plain function, see :class:`HttpxPatch`)."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        #: Cleared by ``uninstrument()``: a layer that could not be removed passes straight through.
        self.active = True

    def begin(self, request: Any) -> Begun | None:
        """The span of a Bedrock request (``None``: not one, or not measured). Never raises an
        error of ours."""
        try:
            url = request.url
            path = url.raw_path.decode("ascii")
            if not plausible(path):
                return None
            headers = request.headers
            # The Host header, not the URL: a proxy or VPC endpoint in front of Bedrock keeps its name.
            found = recognize("POST", path, headers.get("host") or url.host, headers)
            if found is None:
                return None
            operation = WIRE_OPERATIONS.get(found.operation)
            if operation is None:
                return None
            body = request.content
            params = _params(found.operation, found.model_id, body)
            server = server_of(f"{url.scheme}://{url.netloc.decode('ascii')}")
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not read a request")
            return None
        call = self.lifecycle.start_request(operation, params, server, request)
        if call is None:
            return None
        return call, operation, found.operation, found.model_id if found.model_id else params.get("modelId")

    def _watch(self, begun: Begun, request: Any, response: Any) -> _Watch | None:
        call, operation, name, model_id = begun
        lifecycle = self.lifecycle
        try:
            call.deactivate()
            headers = {key.lower(): value for key, value in response.headers.items()}
            streamed = headers.get("content-type", "").startswith(_STREAM_TYPES)
            reader = reader_for(name, model_id, streamed=streamed, request_body=request.content)
            if reader is None:
                lifecycle.end(call, ResponseFacts(), _error_type(response))
                return None
            reader.content_encoding(headers.get("content-encoding"))
            watch = _Watch(lifecycle, call, operation, reader, headers, streamed, _error_type(response))
        except Exception:
            lifecycle.end_unrecorded(call)
            return None
        if lifecycle.response_hook is not None:
            try:
                lifecycle.run_hook(lifecycle.response_hook, call, operation, response)
            except BaseException as interrupt:
                watch.end(END_ERROR, interrupt)
                raise
        return watch

    def send(
        self,
        below: Callable[..., Any],
        client: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        begun: Begun,
    ) -> Any:
        """Send a Bedrock request whose span :meth:`begin` opened, and watch its response."""
        request = args[0]
        try:
            response = below(client, *args, **kwargs)
        except BaseException as error:
            self.lifecycle.fail(begun[0], error)
            raise
        return self._teed(begun, request, response, _SyncTee)

    async def send_async(
        self,
        below: Callable[..., Any],
        client: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        begun: Begun,
    ) -> Any:
        """:meth:`send` for ``AsyncClient``."""
        request = args[0]
        try:
            response = await below(client, *args, **kwargs)
        except BaseException as error:  # CancelledError included
            self.lifecycle.fail(begun[0], error)
            raise
        return self._teed(begun, request, response, _AsyncTee)

    def _teed(self, begun: Begun, request: Any, response: Any, tee: Callable[[Any, _Watch], Any]) -> Any:
        """``response`` with its byte stream teed into a watch (``tee``: the sync or async stream
        wrapper; the only difference between the two sends), or as it came when it is not watched."""
        watch = self._watch(begun, request, response)
        if watch is not None:
            try:
                if response.is_closed:  # read already (a Response built with content=): nothing to tee
                    watch.feed(response.content)
                    watch.end(END_COMPLETED)
                    return response
                response.stream = tee(response.stream, watch)
            except Exception:
                log_internal_error(logger, "bedrock-tokens: could not watch a response")
                watch.end(END_CLOSED)
        return response


#: The packages patched, each with the module holding ``Client`` and ``AsyncClient``.
PACKAGES = ("httpx", "httpx2")
_METHOD = "_send_single_request"


class HttpxPatch:
    """The httpx/httpx2 half of one ``instrument()``: applied to each package when it is imported
    (by a post-import hook registered once per process), or at once when it already is."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.adapter = HttpxAdapter(lifecycle)
        self.applied: list[tuple[Any, Any]] = []  # (class, our wrapper)

    def apply(self, module: Any) -> None:
        try:
            adapter = self.adapter
            sync_cls = module.Client
            async_cls = module.AsyncClient
            if any(cls is sync_cls for cls, _ in self.applied):
                return

            below_sync = sync_cls.__dict__[_METHOD]
            below_async = async_cls.__dict__[_METHOD]

            # Plain functions, not wrapt wrappers: a wrapt layer costs some 3 us per request (a bound
            # wrapper built per call), which every request of the app would pay. The method test is
            # inline: a GET never leaves this function.
            def _send_single_request(self: Any, *args: Any, **kwargs: Any) -> Any:
                if args and adapter.active and getattr(args[0], "method", None) == "POST":
                    begun = adapter.begin(args[0])
                    if begun is not None:
                        return adapter.send(below_sync, self, args, kwargs, begun)
                return below_sync(self, *args, **kwargs)

            async def _send_single_request_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                if args and adapter.active and getattr(args[0], "method", None) == "POST":
                    begun = adapter.begin(args[0])
                    if begun is not None:
                        return await adapter.send_async(below_async, self, args, kwargs, begun)
                return await below_async(self, *args, **kwargs)

            for cls, below, patched in (
                (sync_cls, below_sync, _send_single_request),
                (async_cls, below_async, _send_single_request_async),
            ):
                functools.update_wrapper(patched, below)
                setattr(cls, _METHOD, patched)
                self.applied.append((cls, patched))
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not instrument httpx", logging.WARNING)

    def remove(self) -> None:
        """Put the original methods back; a layer someone wrapped over ours stays, inactive (it
        passes straight through)."""
        self.adapter.active = False
        for cls, patched in self.applied:
            if cls.__dict__.get(_METHOD) is patched:
                setattr(cls, _METHOD, patched.__wrapped__)
        self.applied = []
