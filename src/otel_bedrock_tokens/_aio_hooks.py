"""The asyncio patched surface: the hook our layer on aiobotocore's ``AioBaseClient._make_api_call``
calls, wrapt-style (``wrapped, instance, args, kwargs``; see ``instrumentor``).

The same steps as :class:`._hooks.BedrockHook`, awaited: request facts and span start, the
CountTokens prediction (a task on the caller's loop instead of a thread), the real call, response
facts, the span's end. It shares the sync hook's state (telemetry, operations, user hooks, predictor,
``active``) and its code for every step that does not await, so both clients emit the same
attributes and metrics from the same parsing.

The hook itself is not a coroutine function (the layer that awaits it is): for a call we do not
measure it returns aiobotocore's own coroutine untouched, and for one we measure it returns our
coroutine, so that every step, including the span start, runs in the task that awaits the call (its
context, its cancellation).

Every step of ours is guarded: an error inside the instrumentation is logged at debug level and the
caller gets exactly what aiobotocore returned or raised. A cancellation of the caller's task is
recorded on the span (``error.type`` ``asyncio.exceptions.CancelledError``) and propagates unchanged;
so does a ``KeyboardInterrupt`` or ``SystemExit`` raised by a user hook (``BedrockHook.run_hook``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ._hooks import BedrockHook
from ._logging import log_internal_error
from .abandoned import ABANDONED, drain
from .aio_streams import read_and_replay_async, wrap_aio_stream
from .errors import error_type_of
from .facts import ResponseFacts
from .operations import InvokeModel, Operation
from .refusal import RefuseRequest
from .telemetry import Call

logger = logging.getLogger(__name__)


class AioBedrockHook:
    """The wrapper for aiobotocore clients of one ``instrument()``, over that call's sync hook."""

    def __init__(self, hook: BedrockHook) -> None:
        self.hook = hook

    def __call__(
        self,
        wrapped: Callable[..., Coroutine[Any, Any, Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        hook = self.hook
        if len(args) != 2 or kwargs or not hook.active or type(args[0]) is not str:
            return wrapped(*args, **kwargs)
        operation = hook.operations.get(args[0])
        if operation is None:
            return wrapped(*args, **kwargs)
        if ABANDONED:  # streams dropped unclosed: their spans end here, not in their finalizers
            drain()
        return self._measure(wrapped, instance, operation, args)

    async def _measure(
        self,
        wrapped: Callable[..., Coroutine[Any, Any, Any]],
        client: Any,
        operation: Operation,
        args: tuple[Any, ...],
    ) -> Any:
        call = await self._start(operation, client, args[1])
        if call is None:
            return await wrapped(*args)
        try:
            result = await wrapped(*args)
        except BaseException as error:
            self.hook.fail(call, error)
            raise
        return await self._finish(call, operation, result)

    async def _start(self, operation: Operation, client: Any, params: Any) -> Call | None:
        hook = self.hook
        try:
            call = hook.open_call(operation, client, params)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not start a span")
            return None
        if call is None:
            return None
        if hook.predictor is not None:
            await self._predict(call, client, params)
        try:
            call.activate()
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not make the span current")
        return call

    async def _predict(self, call: Call, client: Any, params: dict[str, Any]) -> None:
        predictor = self.hook.predictor
        assert predictor is not None
        try:
            await predictor.begin_async(client, call.request, params, call)
        except RefuseRequest as refusal:
            # The budget guard's documented refusal: the one error of ours the caller sees.
            try:
                call.end(None, error_type_of(refusal.error))
            except Exception:
                log_internal_error(logger, "bedrock-tokens: could not record a refused call")
            raise refusal.error from None
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not start a prediction")
        except BaseException as error:
            # The caller's task was cancelled while it waited for the prediction (``before``).
            self.hook.fail(call, error)
            raise

    async def _finish(self, call: Call, operation: Operation, result: Any) -> Any:
        hook = self.hook
        try:
            call.deactivate()
            if operation.stream_key is not None:
                return wrap_aio_stream(call, operation, result, hook)
            if isinstance(operation, InvokeModel):
                response = await self._invoke_response(call, operation, result)
            else:
                response = operation.response(call.request, result)
            hook.record(call, operation, result, response)
        except Exception:
            hook.end_unrecorded(call)
        except BaseException as error:
            # Cancelled while we read the InvokeModel body: the caller's task is going away.
            hook.fail(call, error)
            raise
        return result

    @staticmethod
    async def _invoke_response(call: Call, operation: InvokeModel, result: Any) -> ResponseFacts:
        """InvokeModel: the body read with ``await`` and put back before anything else can go wrong,
        then parsed by the same code as the sync client's."""
        body = result.get("body") if isinstance(result, dict) else None
        read = await read_and_replay_async(body) if body is not None else None
        if read is None:
            return operation.parse_response(call.request, result, None)
        result["body"] = read.replacement
        facts = operation.parse_response(call.request, result, read.data)
        facts.read_error = read.error
        return facts
