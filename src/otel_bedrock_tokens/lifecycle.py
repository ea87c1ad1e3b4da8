"""One measured call from start to end, written once for every transport.

:class:`Lifecycle` is the state of one ``instrument()`` (telemetry, the operations measured, the user
hooks, the predictor) and owns every step of a call that does not depend on how the call is sent:
open the span, make it current, predict (the budget guard's refusal ends the span in its own guard
and re-raises), record the response facts, end exactly once, fail, refuse, hand a stream to its
proxy. The transports (:mod:`.botocore_adapter`, :mod:`.aiobotocore_adapter`) are thin adapters that
only call through and read the body or stream; a rule written here holds for all of them, so the
sync and asyncio paths cannot drift apart again.

Data flows one way: transport -> request facts (``Operation.request``) -> :class:`.telemetry.Call`
-> response facts (``Operation.response``, the stream observers) -> telemetry. The CountTokens
prediction is settled here, when the call ends, and its attributes handed to the call: the call
never calls back into the prediction.

Every step is guarded: an error inside the instrumentation is logged at debug level and the caller
gets exactly what the transport returned or raised. The one error of ours a caller may see is the
budget guard's documented refusal (:class:`.prediction.TokenBudgetExceeded`). A ``BaseException``
(``KeyboardInterrupt``, ``SystemExit``, a cancellation) is the app's: the span ends with it, and it
propagates unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from . import abandoned
from ._logging import log_internal_error
from .abandoned import ABANDONED, drain
from .endpoint import server_of
from .errors import error_facts, error_type_of
from .facts import ResponseFacts
from .operations import Operation
from .refusal import RefuseRequest
from .streams import StreamProxy, StreamState, install_proxy
from .telemetry import Attributes, Call, Instruments, RequestHook, ResponseHook

if TYPE_CHECKING:
    from .prediction import Predictor

logger = logging.getLogger(__name__)

SERVICE_NAME = "bedrock-runtime"


class Lifecycle:
    """State of one ``instrument()`` and the transport-independent steps of each call it measures."""

    def __init__(
        self,
        telemetry: Instruments,
        operations: Mapping[str, Operation],
        request_hook: RequestHook | None = None,
        response_hook: ResponseHook | None = None,
        chunk_timing: str = "stream",
        predictor: Predictor | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.operations = dict(operations)
        self.request_hook = request_hook
        self.response_hook = response_hook
        self.chunk_timing = chunk_timing
        self.predictor = predictor
        #: Cleared by ``uninstrument()`` when an adapter cannot be spliced out of a chain.
        self.active = True

    def operation_of(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Operation | None:
        """The operation a ``_make_api_call(name, params)`` measures, or ``None`` (pass through).
        One dict lookup for calls to other operations; also ends abandoned streams' spans here, in
        a safe place (see :mod:`.abandoned`)."""
        if len(args) != 2 or kwargs or not self.active or type(args[0]) is not str:
            return None
        operation = self.operations.get(args[0])
        if operation is not None and ABANDONED:
            drain()
        return operation

    # --- start ------------------------------------------------------------------------------

    def open(self, operation: Operation, client: Any, params: Any) -> Call | None:
        """Request facts, span start and the request hook (``None``: not a call we measure). Never
        raises an error of ours; a ``BaseException`` from the request hook ends the span and
        propagates."""
        try:
            meta = client.meta
            if meta.service_model.service_name != SERVICE_NAME or not is_instrumentation_enabled():
                return None
            if not isinstance(params, dict):
                return None
            call = self.telemetry.start(operation.request(params, server_of(meta.endpoint_url)))
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not start a span")
            return None
        return self.hooked(call, operation, params)

    def hooked(self, call: Call, operation: Operation, hook_data: Any) -> Call:
        """``call`` after the user's request hook saw ``hook_data`` (every transport's start). A
        ``BaseException`` from the hook (KeyboardInterrupt, SystemExit...) is the app's, never
        swallowed: the span ends with it and it propagates."""
        if self.request_hook is not None:
            try:
                self.run_hook(self.request_hook, call, operation, hook_data)
            except BaseException as interrupt:
                self.fail(call, interrupt)
                raise
        return call

    def start(self, operation: Operation, client: Any, params: Any) -> Call | None:
        """A blocking transport's start: open, predict (waiting in ``before`` mode), activate."""
        call = self.open(operation, client, params)
        if call is None:
            return None
        predictor = self.predictor
        if predictor is not None:
            try:
                predictor.begin(client, call.request, params, call)
            except RefuseRequest as refusal:
                self.refuse(call, refusal)
            except Exception:
                log_internal_error(logger, "bedrock-tokens: could not start a prediction")
            except BaseException as error:  # interrupted while it waited for the prediction
                self.fail(call, error)
                raise
        return self.made_current(call)

    async def start_async(self, operation: Operation, client: Any, params: Any) -> Call | None:
        """:meth:`start` for an asyncio transport: the prediction is a task on the caller's loop."""
        call = self.open(operation, client, params)
        if call is None:
            return None
        predictor = self.predictor
        if predictor is not None:
            try:
                await predictor.begin_async(client, call.request, params, call)
            except RefuseRequest as refusal:
                self.refuse(call, refusal)
            except Exception:
                log_internal_error(logger, "bedrock-tokens: could not start a prediction")
            except BaseException as error:  # the caller's task was cancelled while it waited
                self.fail(call, error)
                raise
        return self.made_current(call)

    @staticmethod
    def made_current(call: Call) -> Call:
        """``call`` with its span made current while the transport runs (the last step of both
        starts); a failure only loses the parenting, so it is logged and the call goes on."""
        try:
            call.activate()
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not make the span current")
        return call

    # --- transports without a botocore client (httpx, httpx2) -------------------------------

    def start_request(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        server: tuple[str | None, int | None],
        hook_data: Any = None,
    ) -> Call | None:
        """:meth:`start` for a transport that has no botocore client, only the request itself
        (``params`` shaped as botocore's for ``operation``; ``server`` from the request URL). No
        prediction: it needs a botocore client to call CountTokens with (see the httpx adapter).
        Drains abandoned streams first, as :meth:`operation_of` does. The request hook gets
        ``hook_data`` (the transport's request object). Never raises an error of ours."""
        try:
            if not self.active or not is_instrumentation_enabled():
                return None
            if ABANDONED:
                drain()
            call = self.telemetry.start(operation.request(params, server))
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not start a span")
            return None
        return self.made_current(self.hooked(call, operation, hook_data))

    def watch_stream(self, call: Call, facts: ResponseFacts, track: bool = True) -> StreamState:
        """The end-of-life state of a stream read by a transport of its own (bytes teed into a
        reader, no botocore ``EventStream``): the same stream attributes, chunk timings, single end
        and abandoned-stream handling as a botocore stream. The transport calls
        :meth:`.streams.StreamState.arrived` per piece read, sets ``facts``/``billed`` from its
        reader, and :meth:`.streams.StreamState.finish` once (or queues it with
        :func:`.abandoned.abandon` from a finalizer). ``track=False``: the transport tracks an
        abandonable object of its own that ends this state (see :mod:`.abandoned`)."""
        state = StreamState(call, facts, self.chunk_timing, self)
        if track:
            abandoned.track(state)
        return state

    def refuse(self, call: Call, refusal: RefuseRequest) -> NoReturn:
        """The budget guard refused: end the span in a guard of its own (a failing span processor
        must not turn the refusal into a sent request), then raise the documented error."""
        try:
            self.end(call, None, error_type_of(refusal.error))
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not record a refused call")
        raise refusal.error from None

    # --- end --------------------------------------------------------------------------------

    @staticmethod
    def end(
        call: Call,
        response: ResponseFacts | None,
        error_type: str | None = None,
        extra: Attributes | None = None,
    ) -> bool:
        """End ``call`` exactly once (``False``: already ended), settling its prediction first. May
        raise (a span processor's error): callers guard."""
        prediction = call.prediction
        if prediction is None:
            return call.end(response, error_type, extra)
        if not call.claim_end():
            return False
        actual = response.usage.total_input if response is not None else None
        attributes = prediction.settle(call, actual)
        if extra:
            attributes.update(extra)
        call.record_end(response, error_type, attributes)
        return True

    def fail(self, call: Call, error: BaseException, response: ResponseFacts | None = None) -> None:
        """The call raised (or was cancelled, or a user hook raised a ``KeyboardInterrupt``...): end
        the span with the error and whatever is known of the response; never raise."""
        try:
            call.deactivate()
            self.end(call, response if response is not None else error_facts(error), error_type_of(error))
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not record a failed call")

    def finish(self, call: Call, operation: Operation, result: Any, response: ResponseFacts) -> None:
        """A plain response's facts are known: the response hook, then the span's end. Never raises
        an error of ours; a ``BaseException`` from the response hook ends the span and propagates."""
        if self.response_hook is not None:
            try:
                self.run_hook(self.response_hook, call, operation, result)
            except BaseException as interrupt:
                self.fail(call, interrupt, response)  # the response is known: its tokens count
                raise
        error = response.read_error
        try:
            self.end(call, response, error_type_of(error) if error is not None else None)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not end a span")

    def stream(self, call: Call, operation: Operation, result: Any, proxy_type: type[StreamProxy]) -> Any:
        """Put a ``proxy_type`` in place of the result's event stream: the span ends with the stream."""
        return install_proxy(proxy_type, call, operation, result, self.response_hook, self.chunk_timing, self)

    def end_unrecorded(self, call: Call) -> None:
        """Recording failed (called from an ``except`` block): end the span bare, never raise."""
        log_internal_error(logger, "bedrock-tokens: could not record a call")
        try:
            self.end(call, None)
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
