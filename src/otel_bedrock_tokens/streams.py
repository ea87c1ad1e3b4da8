"""Event-stream proxies: tokens from the stream itself, one end-of-life path run exactly once.

The proxy stands in for botocore's ``EventStream`` in ``response["body"]`` (InvokeModelWithResponseStream)
or ``response["stream"]`` (ConverseStream). The caller iterates the very same event objects in the
same order; ``close()`` and every other attribute pass through. The span ends, once, at whichever
comes first: the final usage event, exhaustion, ``close()``, an exception while iterating (re-raised
unchanged; ``KeyboardInterrupt`` and other ``BaseException`` too), or the proxy being
garbage-collected unclosed. Breaking out of a ``for`` loop does not end it: the caller may resume
iterating, and close or drop the stream later.

A proxy collected unclosed is not ended by its finalizer: that can run inside the OpenTelemetry SDK's
own locked sections (wherever the cyclic garbage collector runs). The finalizer only queues the state
and the span ends promptly from a safe place (the next instrumented call, a reaper thread, exit): see
:mod:`.abandoned`.

An exception raised by the caller's own loop body is not seen here: the generator is merely closed
(``GeneratorExit``, exactly as for ``break``), so such a stream ends when it is closed or dropped.

Per event (one step, :meth:`StreamState.stepper`, shared by the sync and asyncio proxies, whose loops
differ only in ``for`` / ``async for``; built once per iteration with what it reads in locals,
because it runs once per event): count it, take a clock reading on the first event only
(``chunk_timing="chunk"``: on every one), pass over the events that carry neither usage nor a stop
reason without a call (an InvokeModelWithResponseStream chunk that starts with one of its family's
``skip_prefixes``, one ``bytes.startswith``; a ConverseStream ``contentBlockDelta``, one key test),
and hand the rest to the observer the operation chose (:mod:`.stream_events`), which parses a
chunk's JSON only when it can carry usage or a stop reason (``Family.chunk_markers``).
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

import wrapt

from . import abandoned, names
from ._logging import log_internal_error
from .billing import apply_terms, terms_from_headers
from .errors import error_type_of
from .facts import ResponseFacts
from .metering import response_metadata
from .operations import Operation
from .stream_events import NO_STREAM_READING, Observer
from .telemetry import Attributes, Call
from .usage import Usage

if TYPE_CHECKING:
    from .lifecycle import Lifecycle
    from .telemetry import ResponseHook

logger = logging.getLogger(__name__)

#: ``gen_ai.client.operation.time_per_output_chunk`` granularity. ``stream``: one point per stream,
#: the mean gap between its chunks (an SDK histogram record costs ~10 µs, more than a whole event is
#: allowed to). ``chunk``: one point per chunk after the first, as the conventions describe.
CHUNK_TIMING_STREAM = "stream"
CHUNK_TIMING_CHUNK = "chunk"

#: How a stream span ended (``bedrock_tokens.stream.end``).
END_COMPLETED = "completed"
END_CLOSED = "closed"
END_ERROR = "error"
END_ABANDONED = "abandoned"


class StreamState:
    """What one stream has told so far, and the single end of its span.

    Kept apart from the proxy so that the proxy's finalizer can reference it without keeping the
    proxy alive.
    """

    __slots__ = (
        "billed",
        "call",
        "chunk_timing",
        "ended",
        "events",
        "facts",
        "first_event_at",
        "last_event_at",
        "lifecycle",
        "observe",
        "per_chunk",
        "response_hook",
        "skip_key",
        "skip_prefixes",
        "watch",
    )

    def __init__(self, call: Call, facts: ResponseFacts, chunk_timing: str, lifecycle: Lifecycle) -> None:
        self.call = call
        #: Ends the call (settling its prediction) exactly once.
        self.lifecycle = lifecycle
        self.facts = facts
        #: Authoritative usage from the final usage event; ``facts.usage`` is the family fallback.
        self.billed: Usage | None = None
        self.events = 0
        self.first_event_at: float | None = None
        self.last_event_at = 0.0
        self.chunk_timing = chunk_timing
        self.per_chunk = chunk_timing == CHUNK_TIMING_CHUNK
        self.ended = False
        self.observe: Observer = NO_STREAM_READING.observe
        #: InvokeModelWithResponseStream: ``Family.skip_prefixes`` of the model's family.
        self.skip_prefixes: tuple[bytes, ...] = ()
        #: An event with this key is passed over unread (ConverseStream: text deltas); ``""`` is a key
        #: no event has.
        self.skip_key = ""
        #: The weak reference that queues this state when its proxy is collected unclosed; dropped
        #: when the span ends (a dropped weak reference never calls back).
        self.watch: _Watch | None = None

    def stepper(self) -> Callable[[Any], bool]:
        """The per-event step of both proxies (see "Per event" above), built once per iteration
        with everything it reads in locals: ``step(event)`` is ``True`` at the final usage event.
        It never raises: a malformed event is logged and passed over."""
        state = self
        observe = self.observe
        skip = self.skip_prefixes
        skip_key = self.skip_key
        per_chunk = self.per_chunk

        def step(event: Any) -> bool:
            state.events += 1
            if state.first_event_at is None:
                state.first_event_at = state.last_event_at = perf_counter()
            elif per_chunk:
                state.time_chunk()
            try:
                if skip:
                    chunk = event.get("chunk")
                    if chunk is not None and chunk["bytes"].startswith(skip):
                        return False
                elif skip_key in event:
                    return False
                return observe(state, event)
            except Exception:
                log_internal_error(logger, "bedrock-tokens: could not read a stream event")
                return False

        return step

    def arrived(self) -> None:
        """One event of the stream arrived (a transport that tees bytes rather than stepping events
        calls it once per event its reader decoded): count it and time it as :meth:`stepper` does."""
        self.events += 1
        if self.first_event_at is None:
            self.first_event_at = self.last_event_at = perf_counter()
        elif self.per_chunk:
            self.time_chunk()

    def time_chunk(self) -> None:
        """``chunk_timing="chunk"``: one point for the gap since the previous chunk."""
        now = perf_counter()
        self.call.record_chunk_gap(now - self.last_event_at)
        self.last_event_at = now

    def abandon(self) -> None:
        """The proxy was collected unclosed: end the span (called by :mod:`.abandoned`, never by the
        finalizer itself)."""
        self.finish(END_ABANDONED)

    def finish(self, how: str, error: BaseException | None = None) -> None:
        """End the span (once) with whatever usage arrived."""
        if self.ended:
            return
        self.ended = True
        self.watch = None
        abandoned.ended(self)
        try:
            facts = self.facts
            complete = self.billed is not None
            if self.billed is not None:
                self.billed.fill_from(facts.usage)
                facts.usage = self.billed
            extra: Attributes = {names.STREAM_END: how, names.STREAM_EVENTS: self.events}
            if not complete:
                extra[names.STREAM_INCOMPLETE] = True
            call = self.call
            call.use_terms(facts.billing)  # the served tier on the chunk timings too
            if self.first_event_at is not None:
                call.record_first_chunk(self.first_event_at - call.started)
                if self.chunk_timing == CHUNK_TIMING_STREAM and self.events > 1 and complete:
                    # One point per stream: the mean gap between its chunks (see CHUNK_TIMING_STREAM).
                    # Only for a stream read to its final event: now is when that event arrived.
                    gap = (perf_counter() - self.first_event_at) / (self.events - 1)
                    call.record_chunk_gap(gap)
            self.lifecycle.end(call, facts, error_type_of(error) if error is not None else None, extra)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not end a stream span")


class _Watch(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a stream proxy that, when the proxy is collected unclosed, queues its
    state for :mod:`.abandoned` (:func:`_proxy_collected`). Used instead of ``weakref.finalize``,
    which costs ~5 µs more per stream (a registry entry, its bookkeeping, ``detach``): kept alive by
    the state (itself kept by :mod:`.abandoned` while the stream is open) and dropped when the span
    ends, so it never calls back for a stream that ended. At exit, abandoned's own handler ends
    what is still open (a callback during interpreter teardown only queues)."""

    __slots__ = ("state",)
    state: StreamState


def _proxy_collected(watch: _Watch, _queue: Callable[[StreamState], None] = abandoned.abandon) -> None:
    """The weak reference's callback, run wherever the proxy is collected (possibly inside the SDK's
    locked sections): only queues the state (see :mod:`.abandoned`); bound at definition so it still
    works while the interpreter tears modules down."""
    _queue(watch.state)


class StreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """Transparent stand-in for a botocore ``EventStream``."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        # The callback only queues the state (see _Watch and abandoned): never the SDK, no lock.
        watch = _Watch(self, _proxy_collected)
        watch.state = state
        state.watch = watch
        abandoned.track(state)

    def __iter__(self) -> Iterator[Any]:
        # The iteration is all that differs from the asyncio proxy: the per-event step is shared.
        state = self._self_state
        see = state.stepper()
        try:
            for event in self.__wrapped__:
                if not state.ended and see(event):
                    self._self_end(END_COMPLETED)
                yield event
        except GeneratorExit:
            raise  # the caller stopped iterating: it may resume, close, or drop the stream
        except BaseException as error:
            self._self_end(END_ERROR, error)
            raise
        self._self_end(END_COMPLETED)

    def _self_end(self, how: str, error: BaseException | None = None) -> None:
        self._self_state.finish(how, error)  # drops the weak reference: no callback after this

    def close(self) -> Any:
        self._self_end(END_CLOSED)
        return self.__wrapped__.close()

    # Copies, as without us. botocore's EventStream is a plain object: ``copy.copy`` gives a second
    # EventStream over the same HTTP response, and deep-copying or pickling fails on the socket
    # inside with a TypeError. The proxy's copy is that plain copy of the wrapped stream, unmeasured:
    # a second proxy would end the call's one span twice (or record its usage twice), and the
    # copy's events belong to the call this proxy measures. Deep copies and pickles go through the
    # wrapped stream too, so they fail (or succeed) exactly as they would without us.
    def __copy__(self) -> Any:
        return copy.copy(self.__wrapped__)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.__wrapped__, memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__wrapped__.__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.__wrapped__.__reduce__()


def install_proxy(
    proxy_type: type[StreamProxy],
    call: Call,
    operation: Operation,
    result: Any,
    response_hook: ResponseHook | None,
    chunk_timing: str,
    lifecycle: Lifecycle,
) -> Any:
    """Put a ``proxy_type`` (sync or asyncio proxy) in place of the result's event stream, with the
    observer of its operation and model family; return the result. ``lifecycle`` ends the call."""
    key = operation.stream_key
    stream = result.get(key) if isinstance(result, dict) and key is not None else None
    facts = ResponseFacts()
    headers = response_metadata(result if isinstance(result, dict) else {}, facts)
    apply_terms(facts, terms_from_headers(headers))
    if stream is None:
        lifecycle.end(call, facts, None, {names.STREAM_INCOMPLETE: True})
        return result
    state = StreamState(call, facts, chunk_timing, lifecycle)
    state.observe, state.skip_key, state.skip_prefixes = operation.stream_reading(call.request)
    proxy = result[key] = proxy_type(stream, state)
    if response_hook is not None:
        try:
            lifecycle.run_hook(response_hook, call, operation, result)
        except BaseException as interrupt:  # KeyboardInterrupt...: end the span, then propagate
            proxy._self_end(END_ERROR, interrupt)
            raise
    return result
