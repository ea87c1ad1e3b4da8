"""Shared helpers of the fuzz tests: what the app sees of a call, compared with and without us.

The uninstrumented call runs under ``suppress_instrumentation()`` (our adapter then calls botocore
straight through), the instrumented one normally, each on the same generated response served by the
loopback replay server, so botocore parses the very same bytes both times.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import strategies as st
from opentelemetry.instrumentation.utils import suppress_instrumentation

from otel_bedrock_tokens import BedrockTokensInstrumentor, abandoned
from otel_bedrock_tokens._logging import ERROR_TYPE_ATTRIBUTE

from .replay import Replayer, replay_server
from .telemetry import TelemetryCapture, make_telemetry

SCOPE = "otel_bedrock_tokens.telemetry"

#: Values a usage field should hold (a non-negative int) and everything it must survive instead.
WEIRD = st.one_of(
    st.integers(min_value=0, max_value=100_000),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["12", " 7 ", "-3", "1e3", "0x10", "\u0661\u0662", "12.0", "", "99999999999999999999"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

#: Any JSON value (NaN and Infinity included: Python's json reads them).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

#: A header value HTTP can carry (latin-1, no control characters).
HEADER_VALUE = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=24
    ),
    st.sampled_from(["0", "12", " 7", "1e3", "12.0", "-1", "18446744073709551616"]),
)


def app_view(value: Any) -> Any:
    """What an app can observe of a botocore result: the dict with the body read (or the exception
    it raised), the ``date`` header dropped (two answers may straddle a second)."""
    if not isinstance(value, dict):
        return value
    view = dict(value)
    metadata = view.get("ResponseMetadata")
    if isinstance(metadata, dict):
        metadata = dict(metadata)
        headers = dict(metadata.get("HTTPHeaders") or {})
        headers.pop("date", None)
        metadata["HTTPHeaders"] = headers
        view["ResponseMetadata"] = metadata
    body = view.get("body")
    if body is not None and hasattr(body, "read"):
        view["body"] = read_all(body)
    return view


def read_all(body: Any) -> tuple[str, Any]:
    try:
        return ("bytes", body.read())
    except Exception as error:
        return ("raised", type(error), str(error))


def outcome(call: Callable[[], Any], view: Callable[[Any], Any] = app_view) -> tuple[str, Any]:
    """The app's view of ``call()``: ("ok", view of the result) or ("raised", class, message)."""
    try:
        return ("ok", view(call()))
    except Exception as error:
        return ("raised", type(error), str(error))


def uninstrumented(call: Callable[[], Any], view: Callable[[Any], Any] = app_view) -> tuple[str, Any]:
    with suppress_instrumentation():
        return outcome(call, view)


class InternalErrors(logging.Handler):
    """Collects every log record of ours that reports an exception (an error we swallowed)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, ERROR_TYPE_ATTRIBUTE):
            self.records.append(record)

    def describe(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@contextmanager
def instrumented(telemetry: TelemetryCapture, **settings: Any) -> Iterator[InternalErrors]:
    """Our instrumentation on ``telemetry`` (and our debug log collected) for the block."""
    logger = logging.getLogger("otel_bedrock_tokens")
    errors = InternalErrors()
    previous = logger.level
    logger.addHandler(errors)
    logger.setLevel(logging.DEBUG)
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **settings
    )
    try:
        yield errors
    finally:
        instrumentor.uninstrument()
        logger.removeHandler(errors)
        logger.setLevel(previous)


def our_spans(telemetry: TelemetryCapture) -> list[Any]:
    return [span for span in telemetry.spans() if span.instrumentation_scope.name == SCOPE]


class Session:
    """One replay server and our instrumentation for a whole fuzz module (examples are many: a
    server and an ``instrument()`` per example would cost more than the example)."""

    def __init__(self, replayer: Replayer, telemetry: TelemetryCapture, errors: InternalErrors) -> None:
        self.replayer = replayer
        self.client = replayer.client
        self.telemetry = telemetry
        self.errors = errors
        #: The last example dropped a stream unclosed: collect it before the next one starts.
        self.dropped = False

    @contextmanager
    def configured(self, **settings: Any) -> Iterator[BedrockTokensInstrumentor]:
        """Our instrumentation with other settings for the block (the instrumentor is a singleton:
        the session's own is taken off meanwhile, and put back after)."""
        instrumentor = BedrockTokensInstrumentor()
        providers = {
            "tracer_provider": self.telemetry.tracer_provider,
            "meter_provider": self.telemetry.meter_provider,
        }
        instrumentor.uninstrument()
        instrumentor.instrument(**providers, **settings)
        try:
            yield instrumentor
        finally:
            instrumentor.uninstrument()
            instrumentor.instrument(**providers)

    def reset(self) -> None:
        """Before an example: no answer left queued, no span or swallowed error from the last one."""
        if self.dropped:
            gc.collect()  # a stream dropped by the last example ends its span now, not in this one
            abandoned.drain()
            self.dropped = False
        server = self.replayer._server
        with server.lock:
            server.queues.clear()
        self.telemetry.exporter.clear()
        self.errors.records.clear()


@contextmanager
def session() -> Iterator[Session]:
    telemetry = make_telemetry()
    with replay_server() as replayer, instrumented(telemetry) as errors:
        yield Session(replayer, telemetry, errors)
