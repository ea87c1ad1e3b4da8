"""A stream span ends exactly once, whichever way the caller finishes with the stream (the shared
behaviours on every transport; aiobotocore's own in test_aio_streams.py)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Generator
from typing import Any

import pytest

from otel_bedrock_tokens import abandoned

from .support.replay import RECORDINGS, Interaction, Replayer, call_recorded, load
from .support.streams import frames
from .support.telemetry import TelemetryCapture
from .support.transports import Driver

CLAUDE_STREAM = (
    RECORDINGS / "openllmetry" / "traces__test_anthropic__test_anthropic_3_completion_streaming.yaml"
)
CONVERSE_STREAM = RECORDINGS / "otel-contrib" / "test_converse_stream_no_content_different_events.yaml"


def start(replayer: Replayer, path: Any = CLAUDE_STREAM) -> tuple[Interaction, Any]:
    (interaction,) = load(path)
    replayer.serve(interaction)
    response = call_recorded(replayer.client, interaction)
    key = "body" if interaction.operation == "InvokeModelWithResponseStream" else "stream"
    return interaction, response[key]


def only_span(telemetry: TelemetryCapture) -> Any:
    (span,) = telemetry.spans()
    return span


def with_stream(transport: Driver, replayer: Replayer, use: Any, path: Any = CLAUDE_STREAM) -> Any:
    """Start the recorded stream through ``transport``; run the scenario ``use(stream)`` in one go."""
    (interaction,) = load(path)
    return with_interaction(transport, replayer, use, interaction)


def with_interaction(transport: Driver, replayer: Replayer, use: Any, interaction: Interaction) -> Any:
    """``with_stream`` for an interaction built by the test (a reordered or cut recording)."""
    replayer.serve(interaction)
    key = "body" if interaction.operation == "InvokeModelWithResponseStream" else "stream"

    def scenario(client: Any) -> Generator[Any, Any, Any]:
        response = yield call_recorded(client, interaction)
        return (yield from use(response[key]))

    return transport.scenario(replayer.endpoint_url, scenario)


def test_exhausted_stream_ends_its_span_complete(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    def use(stream: Any) -> Generator[Any, Any, Any]:
        return (yield transport.take(stream))

    events = with_stream(transport, replayer, use)
    span = only_span(instrumented)
    assert span.attributes["bedrock_tokens.stream.end"] == "completed"
    assert span.attributes["bedrock_tokens.stream.events"] == len(events) == 23
    assert span.attributes["gen_ai.usage.input_tokens"] == 16
    assert span.attributes["gen_ai.usage.output_tokens"] == 21
    assert "bedrock_tokens.stream.incomplete" not in span.attributes


def test_converse_stream_tokens_and_finish_reason(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    def use(stream: Any) -> Generator[Any, Any, Any]:
        return (yield transport.take(stream))

    events = with_stream(transport, replayer, use, CONVERSE_STREAM)
    span = only_span(instrumented)
    assert span.attributes["gen_ai.usage.input_tokens"] == 37
    assert span.attributes["gen_ai.usage.output_tokens"] == 8
    assert len(events) == span.attributes["bedrock_tokens.stream.events"]


def test_break_then_close_ends_once_and_marks_incomplete(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    def use(stream: Any) -> Generator[Any, Any, Any]:
        yield transport.take(stream, 3)
        assert instrumented.spans() == ()  # breaking out alone does not end: the caller may resume
        # close() is synchronous on both (AioEventStream.close() too), and so is ours.
        assert stream.close() is None

    with_stream(transport, replayer, use)
    span = only_span(instrumented)
    assert span.attributes["bedrock_tokens.stream.end"] == "closed"
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True
    assert span.attributes["bedrock_tokens.stream.events"] == 3
    # Usage that arrived before the early end is kept: message_start told the input tokens.
    assert span.attributes["gen_ai.usage.input_tokens"] == 16
    assert "gen_ai.usage.output_tokens" not in span.attributes


def test_break_then_resume_counts_every_event(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    def use(stream: Any) -> Generator[Any, Any, Any]:
        first = yield transport.take(stream, 1)
        rest = yield transport.take(stream)
        return len(first) + len(rest)

    assert with_stream(transport, replayer, use) == 23
    span = only_span(instrumented)
    assert span.attributes["gen_ai.usage.output_tokens"] == 21
    assert span.attributes["bedrock_tokens.stream.events"] == 23


def test_close_twice_is_harmless(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    def use(stream: Any) -> Generator[Any, Any, Any]:
        stream.close()
        stream.close()
        yield None

    with_stream(transport, replayer, use)
    assert len(instrumented.spans()) == 1


def test_close_after_exhaustion_does_not_count_twice(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    def use(stream: Any) -> Generator[Any, Any, Any]:
        yield transport.take(stream)
        stream.close()

    with_stream(transport, replayer, use)
    assert only_span(instrumented).attributes["bedrock_tokens.stream.end"] == "completed"
    assert instrumented.histogram_sum("gen_ai.client.token.usage", **{"gen_ai.token.type": "output"}) == 21


def test_iterating_after_exhaustion_yields_nothing_and_ends_nothing(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    def use(stream: Any) -> Generator[Any, Any, Any]:
        yield transport.take(stream)
        return (yield transport.take(stream))

    assert with_stream(transport, replayer, use) == []
    assert len(instrumented.spans()) == 1


def test_abandoned_stream_ends_when_collected(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _, stream = start(replayer)
    next(iter(stream))
    del stream
    gc.collect()
    abandoned.drain()  # the finalizer only queued it: the next call, the reaper or exit ends it
    span = only_span(instrumented)
    assert span.attributes["bedrock_tokens.stream.end"] == "abandoned"
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True


def test_stream_consumed_on_another_thread(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _, stream = start(replayer, CONVERSE_STREAM)
    events: list[Any] = []
    worker = threading.Thread(target=lambda: events.extend(stream))
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
    span = only_span(instrumented)
    assert span.attributes["gen_ai.usage.input_tokens"] == 37
    assert span.attributes["gen_ai.usage.output_tokens"] == 8
    assert len(events) == span.attributes["bedrock_tokens.stream.events"]


def test_span_is_not_current_after_the_call_returns(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    from opentelemetry import trace

    _, stream = start(replayer)
    assert not trace.get_current_span().get_span_context().is_valid
    list(stream)


def test_proxy_is_transparent(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    from botocore.eventstream import EventStream

    _, stream = start(replayer)
    assert isinstance(stream, EventStream)
    assert callable(stream.get_initial_response)
    stream.close()


def test_events_out_of_order_pass_through_unchanged(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    """A delta before its block start (peers raised KeyError into the app here)."""
    (interaction,) = load(CLAUDE_STREAM)
    raw = frames(interaction.body)
    reordered = [raw[0], raw[2], raw[1], *raw[3:]]  # content_block_delta before content_block_start
    twisted = Interaction(**{**interaction.__dict__, "body": b"".join(reordered)})

    def use(stream: Any) -> Generator[Any, Any, Any]:
        return (yield transport.take(stream))

    events = with_interaction(transport, replayer, use, twisted)
    assert len(events) == 23
    span = only_span(instrumented)
    assert span.attributes["gen_ai.usage.output_tokens"] == 21


def test_truncated_stream_ends_without_final_usage(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE_STREAM)
    raw = frames(interaction.body)
    cut = b"".join(raw[:5]) + raw[5][:10]  # five whole frames and a torn sixth
    truncated = Interaction(**{**interaction.__dict__, "body": cut})
    replayer.serve(truncated)
    events = list(call_recorded(replayer.client, truncated)["body"])
    assert len(events) == 5
    span = only_span(instrumented)
    assert span.attributes["bedrock_tokens.stream.incomplete"] is True
    assert span.attributes["gen_ai.usage.input_tokens"] == 16


@pytest.mark.parametrize("timing", ["stream", "chunk"])
def test_chunk_timing_points(
    timing: str, transport: Driver, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    from otel_bedrock_tokens import BedrockTokensInstrumentor

    def use(stream: Any) -> Generator[Any, Any, Any]:
        return (yield transport.take(stream))

    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        chunk_timing=timing,
    )
    try:
        with_stream(transport, replayer, use)
    finally:
        instrumentor.uninstrument()
    (first_chunk,) = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    assert first_chunk.count == 1
    (per_chunk,) = telemetry.points("gen_ai.client.operation.time_per_output_chunk")
    # The final usage event ends the span, so the last chunk is the 23rd: 22 gaps.
    assert per_chunk.count == (1 if timing == "stream" else 22)


def test_metric_totals_equal_span_totals(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    for path in (CLAUDE_STREAM, CONVERSE_STREAM, CLAUDE_STREAM):
        _, stream = start(replayer, path)
        list(stream)
        stream.close()
    _, stream = start(replayer)
    next(iter(stream))
    stream.close()
    spans = instrumented.spans()
    assert len(spans) == 4
    for kind, attribute in (("input", "gen_ai.usage.input_tokens"), ("output", "gen_ai.usage.output_tokens")):
        from_spans = sum(span.attributes.get(attribute, 0) for span in spans)
        from_metrics = instrumented.histogram_sum("gen_ai.client.token.usage", **{"gen_ai.token.type": kind})
        assert from_metrics == from_spans


def _raising_observer(state: Any, event: Any) -> bool:
    raise RuntimeError("observer bug")


@pytest.mark.parametrize("path", [CLAUDE_STREAM, CONVERSE_STREAM], ids=["invoke", "converse"])
def test_observer_raising_leaves_the_events_identical(
    path: Any,
    telemetry: TelemetryCapture,
    replayer: Replayer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception inside the per-event step (here, the observer of every event it does not pass
    over) is logged at debug level; the caller's loop sees the very same events and the span still
    ends once, when the stream is exhausted."""
    from otel_bedrock_tokens import BedrockTokensInstrumentor, operations

    _, plain_stream = start(replayer, path)
    plain = list(plain_stream)
    for stream_operation in (operations.ConverseStream, operations.InvokeModelWithResponseStream):
        real = stream_operation.stream_reading
        monkeypatch.setattr(
            stream_operation,
            "stream_reading",
            lambda self, request, real=real: real(self, request)._replace(observe=_raising_observer),
        )
    caplog.set_level("DEBUG", logger="otel_bedrock_tokens")
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        _, stream = start(replayer, path)
        measured = list(stream)
    finally:
        instrumentor.uninstrument()
    assert measured == plain
    span = only_span(telemetry)
    assert span.attributes["bedrock_tokens.stream.end"] == "completed"
    assert span.attributes["bedrock_tokens.stream.events"] == len(plain)
    assert any("could not read a stream event" in record.getMessage() for record in caplog.records)
