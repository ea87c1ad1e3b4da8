"""Predicted against actual: Bedrock's free CountTokens API called alongside each request.

Off by default. ``parallel`` sends CountTokens on a small bounded thread pool while the real request
runs, so the caller waits for nothing; ``before`` waits for it (up to a timeout) before sending,
which is what the budget guard needs. Whatever happens to a prediction — unsupported model,
throttling, timeout, a full queue — the caller's own request is never changed by it, except for the
budget guard's one documented refusal (:class:`TokenBudgetExceeded`).

Under asyncio (aiobotocore clients) the same prediction runs as a task on the caller's event loop
instead of on a thread (:meth:`Predictor.begin_async`): the same cache, per-model memory, queue bound
and outcomes; at most ``workers`` CountTokens calls run at once per loop, as on the pool.

Our CountTokens calls run with OpenTelemetry instrumentation suppressed, so they are not measured as
user calls and never recurse into the hook.

A forked child (``os.fork``, multiprocessing's fork start method, gunicorn ``--preload``, Celery
prefork) inherits none of the pool's threads: an at-fork hook gives every live predictor fresh
locks, counts and an empty pool there (:meth:`Predictor._after_fork_in_child`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from time import monotonic
from typing import Any, Union

from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from opentelemetry.instrumentation.utils import suppress_instrumentation

from . import names
from ._logging import log_internal_error
from .errors import error_type_of
from .facts import RequestFacts
from .pricing import PriceBook
from .refusal import RefuseRequest
from .settings import PredictionSettings
from .telemetry import Attributes, Call

logger = logging.getLogger(__name__)

#: Operations whose request CountTokens can count, and the CountTokens input they map to.
PREDICTED_OPERATIONS = ("InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream")
_CONVERSE_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")

#: Error codes that mean "this model cannot be counted here" (remembered per model).
_UNSUPPORTED = frozenset({"ValidationException", "AccessDeniedException", "ResourceNotFoundException"})
#: Error codes that mean "not now" (this one prediction is skipped).
_THROTTLED = frozenset({"ThrottlingException", "ServiceUnavailableException", "TooManyRequestsException"})
#: Outstanding CountTokens calls per worker before new ones are skipped (a slow CountTokens
#: endpoint must not grow an unbounded queue).
_QUEUE_PER_WORKER = 8

#: parallel mode: how long a CountTokens worker lets the caller's just-sent request go first.
_SEND_HEADSTART = 0.005

#: The botocore event parallel mode waits for, and the one id our handler is registered under on a
#: client: constant, so a client never carries more than one handler of ours, however many
#: instrument() cycles it lives through (botocore ignores a second registration under one id).
_SEND_EVENT = "before-send.bedrock-runtime"
_SEND_HANDLER_ID = "otel-bedrock-tokens-count"

# Outcomes (the ``bedrock_tokens.prediction.status`` values).
OK = "ok"
UNSUPPORTED = "unsupported"
THROTTLED = "throttled"
TIMEOUT = "timeout"
ERROR = "error"
SKIPPED = "skipped"
SAMPLED_OUT = "sampled_out"
LATE = "late"


class TokenBudgetExceeded(Exception):
    """Raised before a request is sent when CountTokens predicts more input tokens than the
    configured ``max_input_tokens`` allows (``count_tokens="before"`` only)."""

    def __init__(
        self,
        model_id: str,
        predicted: int,
        limit: int | None,
        *,
        cost_usd: float | None = None,
        limit_usd: float | None = None,
        max_output_tokens: int | None = None,
    ) -> None:
        if limit_usd is not None and cost_usd is not None:
            output = f" + {max_output_tokens} max output tokens" if max_output_tokens else ""
            message = (
                f"request to {model_id} would cost up to {cost_usd:.6f} USD ({predicted} input tokens "
                f"predicted{output}), over the budget of {limit_usd:g} USD "
                "(otel-bedrock-tokens max_request_cost_usd); nothing was sent"
            )
        else:
            message = (
                f"request to {model_id} would use {predicted} input tokens, over the budget of {limit} "
                "(otel-bedrock-tokens max_input_tokens); nothing was sent"
            )
        super().__init__(message)
        self.model_id = model_id
        self.predicted = predicted
        #: The token budget (``None`` when the money budget refused).
        self.limit = limit
        #: Money budget refusals: the predicted cost (input + ``max_tokens`` output) and the limit.
        self.cost_usd = cost_usd
        self.limit_usd = limit_usd
        self.max_output_tokens = max_output_tokens


def count_model_id(request: RequestFacts, model_map: Mapping[str, str]) -> str | None:
    """The foundation model id CountTokens is asked about, or ``None`` for an opaque id.

    Geo prefixes are stripped and profile ARNs reduced to their foundation model: CountTokens takes a
    foundation-model id, and whether it accepts cross-region profiles is not settled.
    """
    mapped = model_map.get(request.model_id)
    if mapped is not None:
        return mapped
    model = request.model
    if model.base_model is None or model.kind == "custom-model":
        return None
    return model.base_model


def count_tokens_input(api_operation: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The CountTokens ``input`` for a request, or ``None`` when its body cannot be counted."""
    if api_operation in ("InvokeModel", "InvokeModelWithResponseStream"):
        body = params.get("body")
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, (bytes, bytearray)):
            return None  # a file-like body is the caller's to read, not ours
        return {"invokeModel": {"body": bytes(body)}}
    converse = {key: params[key] for key in _CONVERSE_FIELDS if key in params}
    return {"converse": converse} if "messages" in converse else None


def request_size(api_operation: str, params: Mapping[str, Any], stop_above: int) -> int:
    """The size in bytes (characters for text) of what CountTokens would be sent for a request,
    without copying or serialising it; the count stops once it is past ``stop_above``.

    For InvokeModel that is the body's length; for Converse, the lengths of every string and byte
    string among the counted fields' values (images and documents included), walked iteratively:
    a cheap lower bound of the JSON, enough to tell a 50 MB request from a 1 MB one."""
    if api_operation in ("InvokeModel", "InvokeModelWithResponseStream"):
        body = params.get("body")
        return len(body) if isinstance(body, (bytes, bytearray, str)) else 0
    size = 0
    stack: list[Any] = [params[key] for key in _CONVERSE_FIELDS if key in params]
    while stack and size <= stop_above:
        item = stack.pop()
        kind = type(item)  # exact types first: this runs on every predicted Converse call
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is str or kind is bytes or isinstance(item, (str, bytes, bytearray)):
            size += len(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return size


#: A cache key: the whole count-model id, the kind of CountTokens input, and a digest of the input.
#: The model id is a tuple member, never hashed into 16 bytes of ``person=`` (which truncated it, and
#: so gave every ``anthropic.claude...`` id one shared cache).
CacheKey = tuple[str, str, bytes]
_NO_KEY: CacheKey = ("", "", b"")


def cache_key(model: str, count_input: Mapping[str, Any]) -> CacheKey:
    """The cache key of one CountTokens question: two different models never share one."""
    invoke = count_input.get("invokeModel")
    if invoke is not None:
        payload: bytes = invoke["body"]
        kind = "invokeModel"
    else:
        payload = json.dumps(count_input, sort_keys=True, default=repr).encode()
        kind = "converse"
    return model, kind, hashlib.blake2b(payload, digest_size=16).digest()


#: A CountTokens call still to make: (count-model id, CountTokens input, cache key).
_Job = tuple[str, dict[str, Any], CacheKey]

#: A prediction in flight: a thread pool future (botocore) or a task on the caller's loop (aiobotocore).
#: Both have done() / cancelled() / exception() / result() / add_done_callback(fn(future)).
PendingCount = Union["Future[int]", "asyncio.Task[int]"]


def _outcome(future: PendingCount) -> tuple[int | None, BaseException | None]:
    """A finished future's value or error. A cancelled one (the pool shut down, the loop closing) is
    an error here, not a ``CancelledError`` raised into our bookkeeping."""
    if future.cancelled():
        return None, asyncio.CancelledError()
    error = future.exception()
    return (None, error) if error is not None else (future.result(), None)


def _when_done(future: PendingCount, callback: Callable[[PendingCount], None]) -> bool:
    """``future.add_done_callback(callback)``, safe from any thread: a call may end on another thread
    than its prediction's (an abandoned aiobotocore stream is ended by the reaper thread or the next
    call, see ``abandoned``), and an asyncio task is not thread-safe. Its callback then runs on its
    loop; a pool future's on the worker that finished it (no lock held) or inline if already done.
    ``False`` when it can never run (the task's loop is closed)."""
    if isinstance(future, asyncio.Future):
        loop = future.get_loop()
        if asyncio._get_running_loop() is not loop:
            try:
                loop.call_soon_threadsafe(future.add_done_callback, callback)
            except RuntimeError:  # the loop is closed: the task will never finish
                return False
            return True
    future.add_done_callback(callback)
    return True


def _cancelling() -> bool:
    """Whether the current task has a cancellation pending (``Task.cancelling``, Python 3.11+)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


def _classify(error: BaseException) -> str:
    if isinstance(error, (FutureTimeout, ReadTimeoutError, ConnectTimeoutError, TimeoutError)):
        return TIMEOUT
    if isinstance(error, ClientError):
        code = error_type_of(error)
        if code in _UNSUPPORTED:
            return UNSUPPORTED
        if code in _THROTTLED:
            return THROTTLED
    return ERROR


class Prediction:
    """One request's prediction: settled exactly once when the call ends (``Call.end``)."""

    __slots__ = (
        "_deferred",
        "_future",
        "_generation",
        "_predictor",
        "_started",
        "_submitted",
        "cached",
        "outcome",
        "predicted",
        "skip_reason",
    )

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor
        self._future: PendingCount | None = None
        #: parallel mode: (client, job) waiting for the request to be sent (see Predictor._defer).
        self._deferred: tuple[Any, _Job] | None = None
        self._submitted = False
        self._generation = 0  # the predictor's generation when submitted (see Predictor.settled)
        self._started = monotonic()
        self.predicted: int | None = None
        self.outcome: str | None = None
        self.cached = False
        self.skip_reason: str | None = None

    def wait(self, timeout: float) -> None:
        """``before`` mode: block until the prediction is in or ``timeout`` passes."""
        future = self._future
        if not isinstance(future, Future):
            return
        try:
            self._take(future.result(timeout=timeout))
        except FutureTimeout:
            self.outcome = TIMEOUT  # final: a late answer still fills the cache, not this call
            self._future = None
        except Exception as error:
            self._fail(error)

    async def wait_async(self, timeout: float) -> None:
        """``before`` mode under asyncio: await the prediction task for at most ``timeout``.

        The task is shielded: a timeout leaves it running (a late answer still fills the cache, as
        on the thread path), and a cancellation of the caller's task propagates unchanged."""
        task = self._future
        if not isinstance(task, asyncio.Future):
            return
        try:
            self._take(await asyncio.wait_for(asyncio.shield(task), timeout))
        except asyncio.TimeoutError:
            self.outcome = TIMEOUT
            self._future = None
        except asyncio.CancelledError:
            if not task.cancelled() or _cancelling():
                raise  # the caller's own task was cancelled while it waited
            self._fail(asyncio.CancelledError())
        except Exception as error:
            self._fail(error)

    def _take(self, predicted: int) -> None:
        self.predicted = predicted
        self.outcome = OK
        self._future = None

    def _fail(self, error: BaseException) -> None:
        self.outcome = _classify(error)
        self._future = None

    def settle(self, call: Call, actual_input: int | None) -> Attributes:
        """Record the outcome and error now, or, if CountTokens is still running, when it answers."""
        if self._deferred is not None:  # the call failed before its request was sent
            self._deferred = None
            _forget_pending(self)
            self.outcome, self.skip_reason = SKIPPED, "request_not_sent"
        future = self._future
        if future is not None and future.done():
            predicted, error = _outcome(future)
            if error is None:
                self._take(predicted)  # type: ignore[arg-type]
            else:
                self._fail(error)
        attributes: Attributes = {}
        if (
            future is not None
            and self.outcome is None
            and _when_done(future, lambda done: self._settle_late(call, done, actual_input))
        ):
            attributes[names.PREDICTION_STATUS] = LATE
            return attributes
        self._record(call, actual_input)
        attributes[names.PREDICTION_STATUS] = self.outcome or ERROR
        if self.skip_reason is not None:
            attributes[names.PREDICTION_SKIP_REASON] = self.skip_reason
        if self.predicted is not None:
            attributes[names.PREDICTED_INPUT_TOKENS] = self.predicted
            attributes[names.PREDICTION_SOURCE] = "cache" if self.cached else "count_tokens"
            if actual_input is not None:
                attributes[names.PREDICTION_DELTA] = actual_input - self.predicted
        return attributes

    def _settle_late(self, call: Call, future: PendingCount, actual_input: int | None) -> None:
        try:
            predicted, error = _outcome(future)
            if error is not None:
                self._fail(error)
            elif monotonic() - self._started > self._predictor.settings.timeout:
                self.outcome = TIMEOUT  # answered, but too late to be trusted as "in time"
                self._future = None
            else:
                self._take(predicted)  # type: ignore[arg-type]
            self._record(call, actual_input)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not record a late prediction")

    def _record(self, call: Call, actual_input: int | None) -> None:
        """Record, then count the prediction as settled: the other way round, a caller of
        ``wait_for_predictions`` woken by the last settlement could read the metrics before this
        outcome was in them (seen under load: 1 of 8 outcomes after a successful wait)."""
        try:
            outcome = self.outcome or ERROR
            call.record_prediction(outcome, self.predicted if outcome == OK else None, actual_input)
        finally:
            if self._submitted:
                self._submitted = False
                self._predictor.settled(self._generation)


class Predictor:
    """CountTokens for one ``instrument()``: pool, cache of identical requests, per-model memory."""

    def __init__(self, settings: PredictionSettings) -> None:
        self.settings = settings
        #: Prices for ``max_request_cost_usd`` (set by ``instrument()``; ``None``: cost is off).
        self.price_book: PriceBook | None = None
        self._max_pending = settings.workers * _QUEUE_PER_WORKER
        self._cache: OrderedDict[CacheKey, int] = OrderedDict()
        self._unsupported: dict[str, float] = {}  # count model id -> remembered until (monotonic)
        self._closed = False  # shut down: no pool is ever started again
        self._generation = 0  # bumped in a forked child: the parent's work in flight is not ours
        self._fresh_process_state()
        with _registry_lock:
            _live_predictors.add(self)

    def _fresh_process_state(self) -> None:
        """The state that belongs to one process: locks, the pool, the counts of work in flight,
        the sampling generator and the asyncio bookkeeping (set up again in a forked child)."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # CountTokens calls queued or running
        self._unsettled = 0  # submitted predictions not yet recorded
        self._executor: ThreadPoolExecutor | None = None
        self._random = random.Random()  # seeded anew: a child must not sample as its parent does
        # asyncio: tasks in flight (the loop keeps only weak references), the per-loop bound on
        # running CountTokens calls, and the coroutines awaiting idleness.
        self._tasks: set[asyncio.Task[int]] = set()
        self._limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._idle_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def _after_fork_in_child(self) -> None:
        """In a forked child: the pool's threads, the locks' owners and the loops' tasks stayed in
        the parent. Start from fresh process state with nothing in flight; the parent's
        predictions in flight settle (or not) there, never here (see :meth:`settled`).

        The cache and the remembered unsupported models are kept: they are plain data about
        Bedrock, as true in the child as in the parent (a ``--preload`` parent's warm cache serves
        every worker), and consistent, since each change to them is one operation under the GIL
        (a parent thread can be between two of them, never inside one); the cache is trimmed to
        its bound again in case the fork fell between an insertion and its eviction."""
        self._generation += 1
        self._fresh_process_state()
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)

    def shutdown(self) -> None:
        """uninstrument(): stop the pool, and leave nothing of ours on the clients it served."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        _retire(self)

    def begin(
        self, client: Any, request: RequestFacts, params: Mapping[str, Any], call: Call
    ) -> Prediction | None:
        """Start the prediction for one request (``None`` when this operation is never predicted).

        Raises :class:`RefuseRequest` in ``before`` mode when the budget guard refuses.
        """
        prepared = self._prepare(request, params, call)
        if prepared is None:
            return None
        prediction, job = prepared
        settings = self.settings
        if job is not None:
            if settings.mode == "parallel" and self._defer(prediction, client, job):
                pass
            elif not self._submit(prediction, client, *job):
                prediction.outcome = SKIPPED
                prediction.skip_reason = "queue_full"
            elif settings.mode == "before":
                prediction.wait(settings.timeout)
        if settings.mode == "before":
            self._guard(request, prediction)
        return prediction

    def _defer(self, prediction: Prediction, client: Any, job: _Job) -> bool:
        """parallel mode: start CountTokens when the caller's request is sent, not before.

        Preparing and signing a CountTokens request costs the worker about a millisecond of CPU.
        Started at call start, that competes for the GIL with the caller's own serialising and
        signing and shows in the caller's wall time; started from ``before-send``, it overlaps the
        caller's wait for Bedrock instead. The handler is one module-level function, registered
        first (so a handler that answers the request itself, a stub, cannot skip ours) under one
        constant id: at most one per client, taken off again by the last :meth:`shutdown`."""
        try:
            _attach_send_handler(client)
        except Exception:
            return False
        prediction._deferred = (client, job)
        _pending.prediction = prediction
        return True

    def _release(self, prediction: Prediction) -> None:
        """At send time (caller's thread): submit the deferred CountTokens once (a retry sends
        again; the prediction is already on its way)."""
        deferred, prediction._deferred = prediction._deferred, None
        if deferred is None:
            return
        client, (model, count_input, key) = deferred
        if not self._submit(prediction, client, model, count_input, key, headstart=_SEND_HEADSTART):
            prediction.outcome, prediction.skip_reason = SKIPPED, "queue_full"

    async def begin_async(
        self, client: Any, request: RequestFacts, params: Mapping[str, Any], call: Call
    ) -> Prediction | None:
        """:meth:`begin` for an aiobotocore client: CountTokens runs as a task on the running loop
        (awaited here in ``before`` mode). Must be called from inside that loop."""
        prepared = self._prepare(request, params, call)
        if prepared is None:
            return None
        prediction, job = prepared
        settings = self.settings
        if job is not None:
            if not self._submit_async(prediction, client, *job):
                prediction.outcome = SKIPPED
                prediction.skip_reason = "queue_full"
            elif settings.mode == "before":
                await prediction.wait_async(settings.timeout)
        if settings.mode == "before":
            self._guard(request, prediction)
        return prediction

    def _prepare(
        self, request: RequestFacts, params: Mapping[str, Any], call: Call
    ) -> tuple[Prediction, _Job | None] | None:
        """Everything before CountTokens is sent, for both paths: sampling, what to count, remembered
        unsupported models, the cache. Returns the prediction (already on ``call``) and the CountTokens
        job still to run (model, input, cache key), or ``None`` for an operation never predicted."""
        if request.api_operation not in PREDICTED_OPERATIONS:
            return None
        prediction = Prediction(self)
        call.prediction = prediction
        settings = self.settings
        if settings.sample_rate < 1.0 and self._random.random() >= settings.sample_rate:
            prediction.outcome = SAMPLED_OUT
            return prediction, None
        model = count_model_id(request, settings.model_map)
        limit = settings.max_body_bytes
        count_input: dict[str, Any] | None = None
        skip_reason = "body_not_countable"
        if model is None:
            skip_reason = "opaque_model_id"
        elif limit and request_size(request.api_operation, params, limit) > limit:
            # Hashing it for the cache, and a CountTokens request of it (base64 in JSON), would
            # cost a large body's caller time and several copies of it: predict none.
            skip_reason = "too_large"
        else:
            count_input = count_tokens_input(request.api_operation, params)
        if model is None or count_input is None:
            prediction.outcome, prediction.skip_reason = SKIPPED, skip_reason
            return prediction, None
        if self._is_unsupported(model):
            prediction.outcome = UNSUPPORTED
            prediction.skip_reason = "remembered_unsupported"
            return prediction, None
        key = cache_key(model, count_input) if settings.cache_size else _NO_KEY
        cached = self._cached(key) if settings.cache_size else None
        if cached is not None:
            prediction.predicted, prediction.outcome, prediction.cached = cached, OK, True
            return prediction, None
        return prediction, (model, count_input, key)

    def _guard(self, request: RequestFacts, prediction: Prediction) -> None:
        budget = self.settings.budget
        predicted = prediction.predicted
        if predicted is None:
            return
        if self.settings.max_request_cost_usd is not None:
            self._guard_cost(request, predicted, self.settings.max_request_cost_usd)
        if not budget:
            return
        limit = budget.get(request.model_id)
        if limit is None and request.model.base_model is not None:
            limit = budget.get(request.model.base_model)
        if limit is None:
            limit = budget.get("*")
        if limit is None or predicted <= limit:
            return
        decide = self.settings.on_budget_exceeded
        if decide is not None:
            try:
                if decide(request.model_id, predicted, limit):
                    return
            except Exception as error:  # the user's callback refused in its own words
                raise RefuseRequest(error) from None
        raise RefuseRequest(TokenBudgetExceeded(request.model_id, predicted, limit))

    def _guard_cost(self, request: RequestFacts, predicted: int, limit_usd: float) -> None:
        """``max_request_cost_usd``: predicted input at the input price plus ``max_tokens`` at the
        output price (the most the answer can cost), at the default tier (the served tier is known
        only from the response). A model with no price cannot be judged: it passes."""
        book = self.price_book
        if book is None:
            return
        try:
            prices = book.prices_for(request.model_id)
            if prices is None:
                return
            max_output = request.params.max_tokens or 0
            cost = predicted * prices.input.at(predicted)
            if max_output and prices.output is not None:
                cost += max_output * prices.output.at(predicted)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not price a request for its budget")
            return
        if cost <= limit_usd:
            return
        decide = self.settings.on_budget_exceeded
        if decide is not None:
            try:
                if decide(request.model_id, cost, limit_usd):
                    return
            except Exception as error:  # the user's callback refused in its own words
                raise RefuseRequest(error) from None
        raise RefuseRequest(
            TokenBudgetExceeded(
                request.model_id,
                predicted,
                None,
                cost_usd=cost,
                limit_usd=limit_usd,
                max_output_tokens=max_output or None,
            )
        )

    def _cached(self, key: CacheKey) -> int | None:
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self._cache.move_to_end(key)
            return value

    def _remember(self, key: CacheKey, predicted: int) -> None:
        if not self.settings.cache_size:
            return
        with self._lock:
            self._cache[key] = predicted
            self._cache.move_to_end(key)
            while len(self._cache) > self.settings.cache_size:
                self._cache.popitem(last=False)

    def _is_unsupported(self, model: str) -> bool:
        until = self._unsupported.get(model)
        if until is None:
            return False
        if monotonic() < until:
            return True
        with self._lock:
            self._unsupported.pop(model, None)
        return False

    def _submit(
        self,
        prediction: Prediction,
        client: Any,
        model: str,
        count_input: dict[str, Any],
        key: CacheKey,
        headstart: float = 0.0,
    ) -> bool:
        with self._lock:
            if self._closed or self._pending >= self._max_pending:
                return False
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.settings.workers, thread_name_prefix="bedrock-tokens-count"
                )
            self._pending += 1
            executor, generation = self._executor, self._generation
        try:
            prediction._future = executor.submit(
                self._count, client, model, count_input, key, generation, headstart
            )
        except RuntimeError:  # shut down by uninstrument() meanwhile
            self._done_counting(generation)
            return False
        self._track_submitted(prediction, generation)
        return True

    def _track_submitted(self, prediction: Prediction, generation: int) -> None:
        prediction._submitted, prediction._generation = True, generation
        with self._lock:
            if generation == self._generation:
                self._unsettled += 1

    def _done_counting(self, generation: int) -> None:
        """A CountTokens call of ours ended (or never started): free its place in the queue,
        unless it was the parent's, in flight when this process was forked from it."""
        with self._lock:
            if generation == self._generation:
                self._pending -= 1

    def _submit_async(
        self, prediction: Prediction, client: Any, model: str, count_input: dict[str, Any], key: CacheKey
    ) -> bool:
        """Start CountTokens as a task on the running loop, within the same bound as the pool's queue."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._pending >= self._max_pending:
                return False
            self._pending += 1
            generation = self._generation
        coroutine = self._count_async(client, model, count_input, key, generation)
        try:
            # A fresh context, like a pool thread's: the caller's span is not the prediction's parent.
            task: asyncio.Task[int] = contextvars.Context().run(loop.create_task, coroutine)
        except RuntimeError:  # the loop is shutting down
            coroutine.close()
            self._done_counting(generation)
            return False
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        prediction._future = task
        self._track_submitted(prediction, generation)
        return True

    def _task_done(self, task: asyncio.Task[int]) -> None:
        """Forget a finished task, and mark its error as seen: a prediction that failed after its
        call was settled (a ``before`` timeout, say) must not log "exception was never retrieved"."""
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()

    def _count(
        self,
        client: Any,
        model: str,
        count_input: dict[str, Any],
        key: CacheKey,
        generation: int,
        headstart: float = 0.0,
    ) -> int:
        """Runs on a worker thread, in a fresh context with instrumentation suppressed."""
        if headstart:
            # Let the caller, whose send just woke us, reach its wait for Bedrock before our ~1 ms
            # of request building takes the GIL: then that work overlaps the wait instead of
            # delaying the caller's send.
            time.sleep(headstart)
        try:
            with suppress_instrumentation():
                response = client.count_tokens(modelId=model, input=count_input)
            return self._counted(key, response)
        except ClientError as error:
            self._count_failed(model, error)
            raise
        finally:
            self._done_counting(generation)

    async def _count_async(
        self, client: Any, model: str, count_input: dict[str, Any], key: CacheKey, generation: int
    ) -> int:
        """Runs as a task on the caller's loop, in a fresh context with instrumentation suppressed;
        at most ``workers`` at once per loop, like the pool's threads."""
        try:
            async with self._loop_limit():
                with suppress_instrumentation():
                    response = await client.count_tokens(modelId=model, input=count_input)
            return self._counted(key, response)
        except ClientError as error:
            self._count_failed(model, error)
            raise
        finally:
            self._done_counting(generation)

    def _loop_limit(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            limit = self._limits.get(loop)
            if limit is None:
                limit = self._limits[loop] = asyncio.Semaphore(self.settings.workers)
            return limit

    def _counted(self, key: CacheKey, response: Mapping[str, Any]) -> int:
        predicted = response["inputTokens"]
        if type(predicted) is not int or predicted < 0:
            raise ValueError(f"CountTokens answered {predicted!r}")
        self._remember(key, predicted)
        return predicted

    def _count_failed(self, model: str, error: ClientError) -> None:
        if _classify(error) == UNSUPPORTED:
            with self._lock:
                self._unsupported[model] = monotonic() + self.settings.remember_seconds
                if len(self._unsupported) > 4096:  # bounded, whatever ids an app invents
                    self._unsupported.pop(next(iter(self._unsupported)))

    def settled(self, generation: int) -> None:
        """A submitted prediction has been recorded (on its span or late, in the metrics). One
        submitted before this process was forked is not counted here: the child's count of
        predictions in flight started from zero."""
        with self._lock:
            if generation != self._generation:
                return
            self._unsettled -= 1
            if self._unsettled != 0:
                return
            self._idle.notify_all()
            waiters, self._idle_waiters = self._idle_waiters, []
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_wake, waiter)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted prediction has been recorded, or ``timeout`` passes."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unsettled == 0, timeout=timeout)

    async def wait_idle_async(self, timeout: float) -> bool:
        """:meth:`wait_idle` for a coroutine: the loop keeps running (and settling predictions)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._unsettled == 0:
                return True
            self._idle_waiters.append((loop, waiter))
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                if (loop, waiter) in self._idle_waiters:
                    self._idle_waiters.remove((loop, waiter))


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


# --- process-wide state: the send handler, and what a forked child must set up again ------------

#: parallel mode: ``.prediction`` is this thread's deferred prediction, released at send time.
_pending = threading.local()
#: Guards the two registries below.
_registry_lock = threading.Lock()
#: Clients whose event system carries our send handler, so that shutdown can take it off again.
_clients_with_handler: weakref.WeakSet[Any] = weakref.WeakSet()
#: Predictors not shut down: a forked child resets each; the last one out removes the handler.
_live_predictors: weakref.WeakSet[Predictor] = weakref.WeakSet()


def _release_on_send(**_: Any) -> None:
    """The botocore ``before-send`` handler (caller's thread): start this thread's deferred
    prediction, whichever predictor it belongs to. Without one (no call of ours in flight on this
    thread, or nothing instrumented any more) it returns at once."""
    try:  # inside botocore's send path: nothing may escape into the caller's request
        prediction: Prediction | None = getattr(_pending, "prediction", None)
        if prediction is None:
            return
        _pending.prediction = None
        prediction._predictor._release(prediction)
    except Exception:
        log_internal_error(logger, "bedrock-tokens: could not start a prediction at send time")


def _forget_pending(prediction: Prediction) -> None:
    if getattr(_pending, "prediction", None) is prediction:
        _pending.prediction = None


def _attach_send_handler(client: Any) -> None:
    """Put our send handler on ``client`` once (the check is lock-free on the hot path)."""
    if client in _clients_with_handler:
        return
    with _registry_lock:
        client.meta.events.register_first(_SEND_EVENT, _release_on_send, unique_id=_SEND_HANDLER_ID)
        _clients_with_handler.add(client)


def _retire(predictor: Predictor) -> None:
    """A predictor shut down. When it was the last one, take our send handler off every client
    that carries it: an uninstrumented client keeps nothing of ours."""
    with _registry_lock:
        _live_predictors.discard(predictor)
        if _live_predictors:
            return
        for client in list(_clients_with_handler):
            with contextlib.suppress(Exception):
                client.meta.events.unregister(_SEND_EVENT, _release_on_send, unique_id=_SEND_HANDLER_ID)
        _clients_with_handler.clear()


def _after_fork_in_child() -> None:
    """``os.register_at_fork`` hook, registered once per process: the forked child gets fresh
    locks and thread-local state, and every live predictor fresh process state (its pool's
    threads did not survive the fork; without this its queue fills and never drains)."""
    global _pending, _registry_lock
    try:
        _pending = threading.local()
        _registry_lock = threading.Lock()
        for predictor in list(_live_predictors):
            predictor._after_fork_in_child()
    except Exception:
        log_internal_error(logger, "bedrock-tokens: could not reset prediction state after fork")


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
