"""The aiobotocore transport: the adapter our layer on aiobotocore's ``AioBaseClient._make_api_call``
calls, wrapt-style (``wrapped, instance, args, kwargs``; see ``instrumentor``).

It only knows how to await aiobotocore and how to read its response bodies (with ``await``) and
streams (``async for``); every step of the call's life is the :class:`.lifecycle.Lifecycle`'s,
shared with the botocore adapter, so both clients emit the same attributes and metrics from the same
parsing and follow the same rules (the CountTokens prediction is a task on the caller's loop
instead of a thread).

The adapter itself is not a coroutine function (the layer that awaits it is): for a call we do not
measure it returns aiobotocore's own coroutine untouched, and for one we measure it returns our
coroutine, so that every step, including the span start, runs in the task that awaits the call (its
context, its cancellation). A cancellation of the caller's task is recorded on the span
(``error.type`` ``asyncio.exceptions.CancelledError``) and propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from .aio_streams import AioStreamProxy, read_and_replay_async
from .bodies import ReadResult
from .lifecycle import Lifecycle
from .operations import Operation
from .telemetry import Call


class AioBotocoreAdapter:
    """The wrapper for aiobotocore clients of one ``instrument()``."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def __call__(
        self,
        wrapped: Callable[..., Coroutine[Any, Any, Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        operation = self.lifecycle.operation_of(args, kwargs)
        if operation is None:
            return wrapped(*args, **kwargs)
        return self._measure(wrapped, instance, operation, args)

    async def _measure(
        self,
        wrapped: Callable[..., Coroutine[Any, Any, Any]],
        client: Any,
        operation: Operation,
        args: tuple[Any, ...],
    ) -> Any:
        lifecycle = self.lifecycle
        call = await lifecycle.start_async(operation, client, args[1])
        if call is None:
            return await wrapped(*args)
        try:
            result = await wrapped(*args)
        except BaseException as error:
            lifecycle.fail(call, error)
            raise
        return await self._finish(call, operation, result)

    async def _finish(self, call: Call, operation: Operation, result: Any) -> Any:
        lifecycle = self.lifecycle
        try:
            call.deactivate()
            if operation.stream_key is not None:
                return lifecycle.stream(call, operation, result, AioStreamProxy)
            key = operation.body_key
            body = result.get(key) if key is not None and isinstance(result, dict) else None
            # The body read with ``await`` and put back (by the operation) before anything else.
            read = None
            if body is not None:  # a body class we cannot rebuild is left unread: headers still tell
                read = await read_and_replay_async(body) or ReadResult(None, None, body)
            response = operation.response(call.request, result, read)
        except Exception:
            lifecycle.end_unrecorded(call)
            return result
        except BaseException as error:
            # Cancelled while we read the body: the caller's task is going away.
            lifecycle.fail(call, error)
            raise
        lifecycle.finish(call, operation, result, response)
        return result
