"""The one patched surface: the hook our layer on ``BaseClient._make_api_call`` calls, wrapt-style
(``wrapped, instance, args, kwargs``; the layer itself is in ``instrumentor``).

Data flows one way: request facts -> the real call -> response facts -> telemetry. Every step of
ours is guarded: an error inside the instrumentation is logged at debug level and the caller gets
exactly what botocore returned or raised. Calls to other services and operations pass straight
through after one dict lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from ._logging import log_internal_error
from .abandoned import ABANDONED, drain
from .endpoint import server_of
from .errors import error_facts, error_type_of
from .facts import RequestFacts, ResponseFacts
from .operations import Operation
from .refusal import RefuseRequest
from .telemetry import Call, RequestHook, ResponseHook, Telemetry

if TYPE_CHECKING:
    from .prediction import Predictor

logger = logging.getLogger(__name__)

SERVICE_NAME = "bedrock-runtime"

#: Wraps a stream-bearing result so the span ends with the stream (set by the streams module).
StreamWrapper = Callable[[Call, Operation, Any, Any], Any]


class BedrockHook:
    """State of one ``instrument()``: the operations measured and where telemetry goes."""

    def __init__(
        self,
        telemetry: Telemetry,
        operations: Mapping[str, Operation],
        request_hook: RequestHook | None = None,
        response_hook: ResponseHook | None = None,
        wrap_stream: StreamWrapper | None = None,
        chunk_timing: str = "stream",
        predictor: Predictor | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.operations = dict(operations)
        self.request_hook = request_hook
        self.response_hook = response_hook
        self.wrap_stream = wrap_stream
        self.chunk_timing = chunk_timing
        self.predictor = predictor
        #: Cleared by ``uninstrument()`` when the wrapper cannot be spliced out of a chain.
        self.active = True

    def __call__(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if len(args) != 2 or kwargs or not self.active or type(args[0]) is not str:
            return wrapped(*args, **kwargs)
        operation = self.operations.get(args[0])
        if operation is None:
            return wrapped(*args, **kwargs)
        if ABANDONED:  # streams dropped unclosed: their spans end here, not in their finalizers
            drain()
        call = self._start(operation, instance, args[1])
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args)
        except BaseException as error:
            self.fail(call, error)
            raise
        return self._finish(call, operation, result)

    def _start(self, operation: Operation, client: Any, params: Any) -> Call | None:
        try:
            call = self.open_call(operation, client, params)
            if call is None:
                return None
            if self.predictor is not None:
                self._predict(call, client, call.request, params)
            call.activate()
            return call
        except RefuseRequest as refusal:
            # The budget guard's documented refusal: the one error of ours the caller sees.
            raise refusal.error from None
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not start a span")
            return None

    def open_call(self, operation: Operation, client: Any, params: Any) -> Call | None:
        """Request facts, span start and the request hook: the part of starting a call that the
        sync and the asyncio hook share (``None``: not a call we measure). May raise."""
        meta = client.meta
        if meta.service_model.service_name != SERVICE_NAME or not is_instrumentation_enabled():
            return None
        if not isinstance(params, dict):
            return None
        call = self.telemetry.start(operation.request(params, server_of(meta.endpoint_url)))
        if self.request_hook is not None:
            try:
                self.run_hook(self.request_hook, call, operation, params)
            except BaseException as interrupt:
                # KeyboardInterrupt, SystemExit...: the app's, never swallowed; the span still ends.
                self.fail(call, interrupt)
                raise
        return call

    def _predict(self, call: Call, client: Any, request: RequestFacts, params: dict[str, Any]) -> None:
        assert self.predictor is not None
        try:
            self.predictor.begin(client, request, params, call)
        except RefuseRequest as refusal:
            call.end(None, error_type_of(refusal.error))
            raise
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not start a prediction")

    def fail(self, call: Call, error: BaseException, response: ResponseFacts | None = None) -> None:
        """The call raised (or was cancelled, or a user hook raised a ``KeyboardInterrupt``...): end
        the span with the error and whatever is known of the response; never raise."""
        try:
            call.deactivate()
            call.end(response if response is not None else error_facts(error), error_type_of(error))
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not record a failed call")

    def _finish(self, call: Call, operation: Operation, result: Any) -> Any:
        try:
            call.deactivate()
            if operation.stream_key is not None and self.wrap_stream is not None:
                return self.wrap_stream(call, operation, result, self)
            self.record(call, operation, result, operation.response(call.request, result))
        except Exception:
            self.end_unrecorded(call)
        return result

    def record(self, call: Call, operation: Operation, result: Any, response: ResponseFacts) -> None:
        """The response hook, then the span's end: shared with the asyncio hook. May raise."""
        if self.response_hook is not None:
            try:
                self.run_hook(self.response_hook, call, operation, result)
            except BaseException as interrupt:
                self.fail(call, interrupt, response)  # the response is known: its tokens count
                raise
        error = response.read_error
        call.end(response, error_type_of(error) if error is not None else None)

    @staticmethod
    def end_unrecorded(call: Call) -> None:
        """Recording failed (called from an ``except`` block): end the span bare, never raise."""
        log_internal_error(logger, "bedrock-tokens: could not record a call")
        try:
            call.end(None)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not end a span")

    @staticmethod
    def run_hook(hook: Callable[..., None], call: Call, operation: Operation, data: Any) -> None:
        """Run a user hook; an ``Exception`` from it is logged and ignored. Any other
        ``BaseException`` (``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``) is the app's
        and propagates unchanged: the caller ends the span first."""
        try:
            hook(call.span, SERVICE_NAME, operation.api_name, data)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: a user hook raised")
