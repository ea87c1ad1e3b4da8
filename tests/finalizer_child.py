"""Child process for tests/test_finalizer_safety.py: one scenario per run, a JSON line on stdout.

A scenario that deadlocks must not take the test suite with it, so each runs in its own process that
the test bounds with a timeout. Run as ``python tests/finalizer_child.py SCENARIO [sync|aio]``.

Scenarios:

- ``deadlock``: the cyclic garbage collector runs inside the OpenTelemetry SDK's locked section (an
  exemplar reservoir's ``collect()``, called by the duration histogram's aggregation while it holds
  its non-reentrant lock) and frees a stream the app abandoned in a reference cycle. Then no further
  call: the span must still end, ``abandoned``, within a few seconds.
- ``next_call``: the reaper is slowed down to never; the abandoned stream's span must not end inside
  the collection, and must end at the start of the app's next instrumented call, on its thread.
- ``fork``: a stream open when the process forks is abandoned in the child, which makes no call:
  the child's own reaper ends it.
- ``exit``: one stream abandoned in a cycle and collected, one still held, then the process exits
  without another call: both spans are exported (batch processor, flushed at the SDK's shutdown)
  and the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import AlignedHistogramBucketExemplarReservoir, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "stream this please"}]}]
DURATION = "gen_ai.client.operation.duration"
#: How long a scenario waits for a span to end before it reports that it did not.
DEADLINE = 10.0

#: Set to make the next reservoir ``collect()`` run the cyclic garbage collector.
collect_garbage = threading.Event()


class CollectingReservoir(AlignedHistogramBucketExemplarReservoir):
    """Runs ``gc.collect()`` from ``collect()``: the SDK calls it with the aggregation's lock held."""

    def collect(self, point_attributes: Any) -> Any:
        if collect_garbage.is_set():
            collect_garbage.clear()
            gc.collect()
        return super().collect(point_attributes)


def reservoir_factory(aggregation_type: type) -> Any:
    return CollectingReservoir


class EndThreads(SimpleSpanProcessor):
    """Remembers on which thread each span ended."""

    def __init__(self, exporter: SpanExporter) -> None:
        super().__init__(exporter)
        self.threads: dict[int, str] = {}

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.threads[span.context.span_id] = threading.current_thread().name
        super().on_end(span)


class Printing(SpanExporter):
    """At export (the batch processor's, at shutdown): one JSON line per span."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            print(
                json.dumps(
                    {"span": span.name, "end": (span.attributes or {}).get("bedrock_tokens.stream.end")}
                )
            )
        sys.stdout.flush()
        return SpanExportResult.SUCCESS


def instrument(tracer_provider: TracerProvider, reader: InMemoryMetricReader) -> None:
    meter_provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name=DURATION, exemplar_reservoir_factory=reservoir_factory)],
    )
    BedrockTokensInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)


def abandon_in_cycle(client: Any) -> None:
    """Read one event, leave the loop with an exception kept in a local: the frame, its traceback
    and the stream form a cycle only the cyclic collector frees."""
    stream = client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]
    try:
        for _event in stream:
            raise ValueError("the app gives up")
    except ValueError as error:
        kept = error
    assert kept is not None


async def abandon_in_cycle_async(client: Any) -> None:
    stream = (await client.converse_stream(modelId=MODEL, messages=MESSAGES))["stream"]
    try:
        async for _event in stream:
            raise ValueError("the app gives up")
    except ValueError as error:
        kept = error
    assert kept is not None


def abandoned_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if (span.attributes or {}).get("bedrock_tokens.stream.end") == "abandoned"
    ]


def wait_for_abandoned(exporter: InMemorySpanExporter) -> float | None:
    """Seconds until an abandoned span ended (polled, bounded), or ``None``."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE:
        if abandoned_spans(exporter):
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def deadlock(kind: str) -> dict[str, Any]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    processor = EndThreads(exporter)
    tracer_provider.add_span_processor(processor)
    reader = InMemoryMetricReader()
    instrument(tracer_provider, reader)
    gc.disable()  # the collection happens where the test says, nowhere else
    with BedrockEmulator() as emulator:
        if kind == "sync":
            client = emulator.client()
            for _ in client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]:
                pass  # a complete stream: the duration histogram has a point for these attributes
            abandon_in_cycle(client)
        else:
            asyncio.run(_prepare_async(emulator.endpoint_url))
        collect_garbage.set()
        reader.get_metrics_data()  # collects with the aggregation's lock held -> gc.collect()
        ended_after = wait_for_abandoned(exporter)
    (span,) = abandoned_spans(exporter) or [None]
    return {
        "collected": not collect_garbage.is_set(),
        "ended_after": ended_after,
        "thread": processor.threads.get(span.context.span_id) if span is not None and span.context else None,
        "spans": len(exporter.get_finished_spans()),
    }


async def _prepare_async(endpoint_url: str) -> None:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from tests.support.aio import aio_client

    async with aio_client(endpoint_url) as client:
        async for _ in (await client.converse_stream(modelId=MODEL, messages=MESSAGES))["stream"]:
            pass
        await abandon_in_cycle_async(client)


def no_reaper() -> None:
    """Slow the reaper down to never (before any stream starts it), where there is one."""
    try:
        from otel_bedrock_tokens import abandoned
    except ImportError:  # the code before issue 13: finalizers ended spans themselves
        return
    abandoned.REAP_INTERVAL = 3600.0


def next_call(kind: str) -> dict[str, Any]:
    no_reaper()  # only the next call may end it
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    processor = EndThreads(exporter)
    tracer_provider.add_span_processor(processor)
    instrument(tracer_provider, InMemoryMetricReader())
    gc.disable()
    with BedrockEmulator() as emulator:
        client = emulator.client()
        abandon_in_cycle(client)
        gc.collect()
        ended_in_collection = len(abandoned_spans(exporter))
        client.converse(modelId=MODEL, messages=MESSAGES)
        found = abandoned_spans(exporter)
    return {
        "ended_in_collection": ended_in_collection,
        "ended_by_next_call": len(found),
        "thread": processor.threads.get(found[0].context.span_id) if found and found[0].context else None,
    }


def exit_scenario(kind: str) -> dict[str, Any]:
    """Exits with one stream collected (queued) and one still held: both spans are exported."""
    no_reaper()  # only the exit may end them
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Printing(), schedule_delay_millis=3_600_000))
    instrument(tracer_provider, InMemoryMetricReader())
    gc.disable()
    emulator = BedrockEmulator().__enter__()  # left running: the process exits under it
    client = emulator.client()
    abandon_in_cycle(client)
    gc.collect()
    held = client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]
    next(iter(held))
    globals()["held"] = held  # still referenced at exit
    return {"exiting": True}


def fork(kind: str) -> dict[str, Any]:
    """A stream open at fork time, abandoned in the forked child, which makes no further call: the
    child's own reaper (the parent's thread does not survive the fork) ends its span."""
    import os

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(tracer_provider, InMemoryMetricReader())
    with BedrockEmulator() as emulator:
        client = emulator.client()
        held = client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]
        next(iter(held))
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop the stream, wait for its span, report through the pipe
            try:
                held = None  # the child's copy of the stream, dropped unclosed
                gc.collect()
                result = {"ended_after": wait_for_abandoned(exporter)}
            except BaseException as error:  # reported to the parent, whatever it is
                result = {"error": repr(error)}
            os.write(write_end, json.dumps(result).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as reader:
            answer = reader.read()
        _, status = os.waitpid(pid, 0)
        held.close()
    child: dict[str, Any] = json.loads(answer)
    return {"child": child, "child_status": status, "parent_spans": len(exporter.get_finished_spans())}


SCENARIOS = {"deadlock": deadlock, "next_call": next_call, "exit": exit_scenario, "fork": fork}

if __name__ == "__main__":
    name, kind = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "sync"
    print(json.dumps(SCENARIOS[name](kind)), flush=True)
