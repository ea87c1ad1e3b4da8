"""What the events of each Bedrock event stream tell: one observer per stream shape.

A :class:`StreamReading` is how one operation's stream is read: the observer that takes the facts
out of an event, and what the per-event step of :mod:`.streams` passes over without calling it. The
operation chooses its reading (:meth:`.operations.Operation.stream_reading`), so the stream proxies
never ask which operation they serve. Nothing here touches spans: an observer only fills the
:class:`.streams.StreamState` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from .billing import apply_terms, terms_from_anthropic_body, terms_from_converse
from .converse import STREAM_SKIP_KEY, converse_stream_event
from .families import Family
from .json_object import parse_json_object
from .metering import INVOCATION_METRICS, invocation_metrics_usage

if TYPE_CHECKING:
    from .streams import StreamState

#: ``observe(state, event)`` is ``True`` at the final usage event. May raise: the step logs it.
Observer = Callable[["StreamState", Any], bool]

_INVOCATION_METRICS_MARKER = INVOCATION_METRICS.encode()


class StreamReading(NamedTuple):
    """How one stream's events are read (built once per operation or model family, not per call)."""

    observe: Observer
    #: An event with this key is passed over unread; ``""`` is a key no event has.
    skip_key: str
    #: A chunk whose bytes start with one of these is passed over unread.
    skip_prefixes: tuple[bytes, ...]


def _ignore_event(state: StreamState, event: Any) -> bool:
    return False


def _observe_converse_event(state: StreamState, event: Any) -> bool:
    """ConverseStream: ``messageStop`` has the stop reason, ``metadata`` the usage (last event)."""
    facts = state.facts
    billed = converse_stream_event(event, facts)
    if billed is None:
        return False
    state.billed = billed
    reason = facts.finish_reasons[0] if facts.finish_reasons else None
    apply_terms(facts, terms_from_converse(event["metadata"], reason))  # usage comes with metadata
    return True


def _invoke_observer(family: Family) -> Observer:
    """InvokeModelWithResponseStream: ``{"chunk": {"bytes": model JSON}}``; the final chunk carries
    ``amazon-bedrock-invocationMetrics``. Built once per family (by :func:`invoke_stream_reading`).

    A chunk is parsed only when its bytes contain the invocation-metrics key or one of the family's
    markers (``Family.chunk_markers``): on a long stream that is a few chunks. Every other chunk that
    reaches the observer (the loop passes over those with a ``skip_prefixes`` prefix first) costs one
    or two ``bytes.find`` calls, written out here because this runs once per event."""
    read_chunk = family.read_chunk
    metrics = _INVOCATION_METRICS_MARKER
    markers = family.chunk_markers
    parse_all = markers is None
    first_marker = markers[0] if markers else metrics
    more_markers = markers[1:] if markers else ()

    def observe(state: StreamState, event: Any) -> bool:
        chunk = event.get("chunk")
        data = chunk.get("bytes") if chunk is not None else None
        if type(data) is not bytes:
            return False
        if not (
            parse_all
            or data.find(first_marker) >= 0
            or data.find(metrics) >= 0
            or (more_markers and any(data.find(marker) >= 0 for marker in more_markers))
        ):
            return False
        body = parse_json_object(data)
        if body is None:
            return False
        read_chunk(body, state.facts)
        apply_terms(state.facts, terms_from_anthropic_body(body))
        billed = invocation_metrics_usage(body.get(INVOCATION_METRICS))
        if billed is not None and not billed.is_empty():
            state.billed = billed
            return True
        return False

    return observe


#: An operation without a stream: no event is read.
NO_STREAM_READING = StreamReading(_ignore_event, "", ())

#: ConverseStream: text and tool-input deltas carry no usage and no stop reason.
CONVERSE_STREAM_READING = StreamReading(_observe_converse_event, STREAM_SKIP_KEY, ())


@lru_cache(maxsize=64)
def invoke_stream_reading(family: Family) -> StreamReading:
    """InvokeModelWithResponseStream for a model of ``family``: its observer and its
    ``skip_prefixes``. Built once per family."""
    return StreamReading(_invoke_observer(family), "", family.skip_prefixes)
