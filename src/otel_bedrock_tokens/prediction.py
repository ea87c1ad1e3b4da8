"""Predicted against actual: Bedrock's free CountTokens API called alongside each request.

Off by default. ``parallel`` sends CountTokens on a small bounded thread pool while the real request
runs, so the caller waits for nothing; ``before`` waits for it (up to a timeout) before sending,
which is what the budget guard needs. Whatever happens to a prediction — unsupported model,
throttling, timeout, a full queue — the caller's own request is never changed by it, except for the
budget guard's one documented refusal (:class:`TokenBudgetExceeded`).

This module owns one request's :class:`Prediction` and the :class:`Predictor` that composes the
parts, each in a module of its own: what to ask (:mod:`.count_tokens_input`), what is remembered
(:mod:`.count_cache`), the sync workers and send-time start (:mod:`.count_pool`), the asyncio tasks
(:mod:`.count_tasks`) and the budget guard (:mod:`.budget`). What both paths share is here once:
sampling, the cache, the queue bound, the count of predictions in flight, outcomes.

Under asyncio (aiobotocore clients) the same prediction runs as a task on the caller's event loop
instead of on a thread (:meth:`Predictor.begin_async`): the same cache, per-model memory, queue bound
and outcomes; at most ``workers`` CountTokens calls run at once per loop, as on the pool.

Our CountTokens calls run with OpenTelemetry instrumentation suppressed, so they are not measured as
user calls and never recurse into the hook.

A forked child (``os.fork``, multiprocessing's fork start method, gunicorn ``--preload``, Celery
prefork) inherits none of the pool's threads: an at-fork hook gives every live predictor fresh
locks, counts and an empty pool there (:meth:`Predictor.after_fork_in_child`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from time import monotonic
from typing import Any, Final, Literal

from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from opentelemetry.instrumentation.utils import suppress_instrumentation

from . import count_pool, names
from ._logging import log_internal_error
from .budget import TokenBudgetExceeded as TokenBudgetExceeded  # the public name (see budget)
from .budget import guard
from .count_cache import CacheKey, CountCache
from .count_pool import CountPool
from .count_tasks import CountTasks, PendingCount, cancelling, when_done
from .count_tokens_input import count_model_id, count_tokens_input, request_size
from .errors import error_type_of
from .facts import RequestFacts
from .pricing import PriceBook
from .settings import PredictionSettings
from .telemetry import Attributes, Call

logger = logging.getLogger(__name__)

#: Operations whose request CountTokens can count, and the CountTokens input they map to.
PREDICTED_OPERATIONS = ("InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream")

#: Error codes that mean "this model cannot be counted here" (remembered per model).
_UNSUPPORTED = frozenset({"ValidationException", "AccessDeniedException", "ResourceNotFoundException"})
#: Error codes that mean "not now" (this one prediction is skipped).
_THROTTLED = frozenset({"ThrottlingException", "ServiceUnavailableException", "TooManyRequestsException"})
#: Outstanding CountTokens calls per worker before new ones are skipped (a slow CountTokens
#: endpoint must not grow an unbounded queue).
_QUEUE_PER_WORKER = 8

#: parallel mode: how long a CountTokens worker lets the caller's just-sent request go first.
_SEND_HEADSTART = 0.005

#: A prediction's outcome: the ``bedrock_tokens.prediction.status`` values.
Outcome = Literal["ok", "unsupported", "throttled", "timeout", "error", "skipped", "sampled_out", "late"]
OK: Final = "ok"
UNSUPPORTED: Final = "unsupported"
THROTTLED: Final = "throttled"
TIMEOUT: Final = "timeout"
ERROR: Final = "error"
SKIPPED: Final = "skipped"
SAMPLED_OUT: Final = "sampled_out"
LATE: Final = "late"

#: Why a prediction was skipped or not asked: the ``bedrock_tokens.prediction.skip_reason`` values.
SkipReason = Literal[
    "request_not_sent",
    "queue_full",
    "body_not_countable",
    "opaque_model_id",
    "too_large",
    "remembered_unsupported",
]


#: A CountTokens call still to make: (count-model id, CountTokens input, cache key).
_Job = tuple[str, dict[str, Any], CacheKey]


def _outcome(future: PendingCount) -> tuple[int | None, BaseException | None]:
    """A finished future's value or error. A cancelled one (the pool shut down, the loop closing) is
    an error here, not a ``CancelledError`` raised into our bookkeeping."""
    if future.cancelled():
        return None, asyncio.CancelledError()
    error = future.exception()
    return (None, error) if error is not None else (future.result(), None)


def _classify(error: BaseException) -> Outcome:
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
    """One request's prediction: settled exactly once when the call ends (``Call.end``). The
    predictor changes it only through its methods."""

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
        #: parallel mode: the start waiting for the request to be sent (see Predictor._defer).
        self._deferred: Callable[[], None] | None = None
        self._submitted = False
        self._generation = 0  # the predictor's generation when submitted (see Predictor.settled)
        self._started = monotonic()
        self.predicted: int | None = None
        self.outcome: Outcome | None = None
        self.cached = False
        self.skip_reason: SkipReason | None = None

    def skip(self, outcome: Outcome, reason: SkipReason | None = None) -> None:
        """Decided without CountTokens' answer (sampled out, skipped, remembered unsupported)."""
        self.outcome, self.skip_reason = outcome, reason

    def from_cache(self, predicted: int) -> None:
        self.predicted, self.outcome, self.cached = predicted, OK, True

    def started(self, future: PendingCount, generation: int) -> None:
        """CountTokens is on its way: ``future`` answers it; counted in flight for ``generation``."""
        self._future, self._submitted, self._generation = future, True, generation

    def defer(self, start: Callable[[], None]) -> None:
        """``parallel`` mode: ``start`` runs at send time (:func:`.count_pool.release_at_send`)."""
        self._deferred = start
        count_pool.release_at_send(start)

    def claim_deferred(self) -> bool:
        """At send time: whether the deferred start is still to run (once: a retry sends again)."""
        deferred, self._deferred = self._deferred, None
        return deferred is not None

    def wait(self, timeout: float) -> None:
        """``before`` mode: block until the prediction is in or ``timeout`` passes."""
        future = self._future
        if not isinstance(future, Future):
            return
        try:
            self._take(future.result(timeout=timeout))
        except FutureTimeout:
            self._timed_out()
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
            self._timed_out()
        except asyncio.CancelledError:
            if not task.cancelled() or cancelling():
                raise  # the caller's own task was cancelled while it waited
            self._fail(asyncio.CancelledError())
        except Exception as error:
            self._fail(error)

    def _take(self, predicted: int) -> None:
        self.predicted = predicted
        self.outcome = OK
        self._future = None

    def _timed_out(self) -> None:
        """Final: a late answer still fills the cache, not this call."""
        self.outcome = TIMEOUT
        self._future = None

    def _fail(self, error: BaseException) -> None:
        self.outcome = _classify(error)
        self._future = None

    def settle(self, call: Call, actual_input: int | None) -> Attributes:
        """Record the outcome and error now, or, if CountTokens is still running, when it answers."""
        deferred = self._deferred
        if deferred is not None:  # the call failed before its request was sent
            self._deferred = None
            count_pool.forget_release(deferred)
            self.skip(SKIPPED, "request_not_sent")
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
            and when_done(future, lambda done: self._settle_late(call, done, actual_input))
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
                self._timed_out()  # answered, but too late to be trusted as "in time"
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
    """CountTokens for one ``instrument()``: composes the cache, the sync pool and the asyncio
    tasks, and keeps the accounting both share (queue bound, predictions in flight, idleness)."""

    def __init__(self, settings: PredictionSettings) -> None:
        self.settings = settings
        #: Prices for ``max_request_cost_usd`` (set by ``instrument()``; ``None``: cost is off).
        self.price_book: PriceBook | None = None
        #: Counts of identical requests and the models CountTokens refused (kept across a fork).
        self.cache = CountCache(settings.cache_size, settings.remember_seconds)
        self.pool = CountPool(settings.workers)
        self.tasks = CountTasks(settings.workers)
        self._max_pending = settings.workers * _QUEUE_PER_WORKER
        self._generation = 0  # bumped in a forked child: the parent's work in flight is not ours
        self._fresh_process_state()
        with _registry_lock:
            _live_predictors.add(self)

    def _fresh_process_state(self) -> None:
        """The state that belongs to one process: the lock, the counts of work in flight, the
        sampling generator and the coroutines awaiting idleness (set up again in a forked child)."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # CountTokens calls queued or running
        self._unsettled = 0  # submitted predictions not yet recorded
        self._random = random.Random()  # seeded anew: a child must not sample as its parent does
        self._idle_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def after_fork_in_child(self) -> None:
        """In a forked child: the pool's threads, the locks' owners and the loops' tasks stayed in
        the parent. Start from fresh process state with nothing in flight; the parent's
        predictions in flight settle (or not) there, never here (see :meth:`settled`). The cache
        is kept (see :mod:`.count_cache`)."""
        self._generation += 1
        self._fresh_process_state()
        self.pool.after_fork_in_child()
        self.tasks.after_fork_in_child()
        self.cache.after_fork_in_child()

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Each bounded structure's size and bound, for the soak benchmark (no lock: a snapshot)."""
        return {
            **self.cache.sizes(),
            "pending": (self._pending, self._max_pending),
            "tasks": (len(self.tasks), self._max_pending),
        }

    def shutdown(self) -> None:
        """uninstrument(): stop the pool, and leave nothing of ours on the clients it served."""
        self.pool.shutdown()
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
        if job is not None:
            if self.settings.mode == "parallel" and self._defer(prediction, client, job):
                pass
            elif self._submit(prediction, client, job) and self.settings.mode == "before":
                prediction.wait(self.settings.timeout)
        return self._judged(request, prediction)

    async def begin_async(
        self, client: Any, request: RequestFacts, params: Mapping[str, Any], call: Call
    ) -> Prediction | None:
        """:meth:`begin` for an aiobotocore client: CountTokens runs as a task on the running loop
        (awaited here in ``before`` mode). Must be called from inside that loop."""
        prepared = self._prepare(request, params, call)
        if prepared is None:
            return None
        prediction, job = prepared
        if job is not None and self._start_task(prediction, client, job) and self.settings.mode == "before":
            await prediction.wait_async(self.settings.timeout)
        return self._judged(request, prediction)

    def _judged(self, request: RequestFacts, prediction: Prediction) -> Prediction:
        """``before`` mode: the budget guard's decision (raises :class:`RefuseRequest`)."""
        if self.settings.mode == "before":
            guard(self.settings, self.price_book, request, prediction.predicted)
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
            prediction.skip(SAMPLED_OUT)
            return prediction, None
        model = count_model_id(request.model, settings.model_map)
        limit = settings.max_body_bytes
        count_input: dict[str, Any] | None = None
        skip_reason: SkipReason = "body_not_countable"
        if model is None:
            skip_reason = "opaque_model_id"
        elif limit and request_size(request.api_operation, params, limit) > limit:
            # Hashing it for the cache, and a CountTokens request of it (base64 in JSON), would
            # cost a large body's caller time and several copies of it: predict none.
            skip_reason = "too_large"
        else:
            count_input = count_tokens_input(request.api_operation, params)
        if model is None or count_input is None:
            prediction.skip(SKIPPED, skip_reason)
            return prediction, None
        if self.cache.is_unsupported(model):
            prediction.skip(UNSUPPORTED, "remembered_unsupported")
            return prediction, None
        key = self.cache.key(model, count_input)
        cached = self.cache.get(key)
        if cached is not None:
            prediction.from_cache(cached)
            return prediction, None
        return prediction, (model, count_input, key)

    def _defer(self, prediction: Prediction, client: Any, job: _Job) -> bool:
        """parallel mode: start CountTokens when the caller's request is sent, not before (why:
        see :mod:`.count_pool`)."""
        try:
            count_pool.attach_send_handler(client)
        except Exception:
            return False
        prediction.defer(functools.partial(self._release, prediction, client, job))
        return True

    def _release(self, prediction: Prediction, client: Any, job: _Job) -> None:
        """At send time (caller's thread): submit the deferred CountTokens once (a retry sends
        again; the prediction is already on its way)."""
        if prediction.claim_deferred():
            self._submit(prediction, client, job, headstart=_SEND_HEADSTART)

    def _submit(self, prediction: Prediction, client: Any, job: _Job, headstart: float = 0.0) -> bool:
        """CountTokens on the pool; ``False`` (the prediction skipped) when the queue is full."""
        generation = self._reserve(prediction)
        if generation is None:
            return False
        future = self.pool.submit(self._count, client, job, generation, headstart)
        return self._started(prediction, future, generation)

    def _start_task(self, prediction: Prediction, client: Any, job: _Job) -> bool:
        """CountTokens as a task on the running loop, within the same bound as the pool's queue."""
        generation = self._reserve(prediction)
        if generation is None:
            return False
        task = self.tasks.start(self._count_async(client, job, generation))
        return self._started(prediction, task, generation)

    def _reserve(self, prediction: Prediction) -> int | None:
        """A place in the queue (the current generation), or ``None``: the prediction is skipped."""
        with self._lock:
            if self._pending < self._max_pending:
                self._pending += 1
                return self._generation
        prediction.skip(SKIPPED, "queue_full")
        return None

    def _started(self, prediction: Prediction, future: PendingCount | None, generation: int) -> bool:
        """Count a started CountTokens in flight; without one (shut down meanwhile) free its place."""
        if future is None:
            self._done_counting(generation)
            prediction.skip(SKIPPED, "queue_full")
            return False
        prediction.started(future, generation)
        with self._lock:
            if generation == self._generation:
                self._unsettled += 1
        return True

    def _done_counting(self, generation: int) -> None:
        """A CountTokens call of ours ended (or never started): free its place in the queue,
        unless it was the parent's, in flight when this process was forked from it."""
        with self._lock:
            if generation == self._generation:
                self._pending -= 1

    def _count(self, client: Any, job: _Job, generation: int, headstart: float = 0.0) -> int:
        """Runs on a worker thread, in a fresh context with instrumentation suppressed."""
        if headstart:
            # Let the caller, whose send just woke us, reach its wait for Bedrock before our ~1 ms
            # of request building takes the GIL: then that work overlaps the wait instead of
            # delaying the caller's send.
            time.sleep(headstart)
        model, count_input, key = job
        with self._counting(model, generation), suppress_instrumentation():
            return self._counted(key, client.count_tokens(modelId=model, input=count_input))

    async def _count_async(self, client: Any, job: _Job, generation: int) -> int:
        """Runs as a task on the caller's loop, in a fresh context with instrumentation suppressed;
        at most ``workers`` at once per loop, like the pool's threads."""
        model, count_input, key = job
        with self._counting(model, generation):
            async with self.tasks.limit():
                with suppress_instrumentation():
                    response = await client.count_tokens(modelId=model, input=count_input)
            return self._counted(key, response)

    @contextlib.contextmanager
    def _counting(self, model: str, generation: int) -> Iterator[None]:
        """Around one CountTokens call, on either path: remember a model it does not support, and
        free the call's place in the queue however it ends."""
        try:
            yield
        except ClientError as error:
            if _classify(error) == UNSUPPORTED:
                self.cache.remember_unsupported(model)
            raise
        finally:
            self._done_counting(generation)

    def _counted(self, key: CacheKey, response: Mapping[str, Any]) -> int:
        predicted = response["inputTokens"]
        if type(predicted) is not int or predicted < 0:
            raise ValueError(f"CountTokens answered {predicted!r}")
        self.cache.put(key, predicted)
        return predicted

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


# --- process-wide state: the live predictors a forked child must set up again ------------------

#: Guards the registry below.
_registry_lock = threading.Lock()
#: Predictors not shut down: a forked child resets each; the last one out removes the send handler.
_live_predictors: weakref.WeakSet[Predictor] = weakref.WeakSet()


def _retire(predictor: Predictor) -> None:
    """A predictor shut down. When it was the last one, take our send handler off every client
    that carries it: an uninstrumented client keeps nothing of ours."""
    with _registry_lock:
        _live_predictors.discard(predictor)
        if not _live_predictors:
            count_pool.detach_send_handlers()


def _after_fork_in_child() -> None:
    """``os.register_at_fork`` hook, registered once per process: the forked child gets a fresh
    lock, and every live predictor fresh process state (its pool's threads did not survive the
    fork; without this its queue fills and never drains)."""
    global _registry_lock
    try:
        _registry_lock = threading.Lock()
        for predictor in list(_live_predictors):
            predictor.after_fork_in_child()
    except Exception:
        log_internal_error(logger, "bedrock-tokens: could not reset prediction state after fork")


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
