"""Soak: streams abandoned in reference cycles under a 50 ms metric reader. Must not hang.

    python benchmarks/soak_abandoned.py [--seconds 60] [--interval-ms 50] [--gc-threshold N] [--json]
                                        [--until-calls N --until-exports M]

The app of issue 13, item 1: each call opens a ConverseStream, reads one event, leaves the loop with
an exception it keeps in a local (frame -> traceback -> frame: a cycle that only the cyclic garbage
collector frees, in whatever thread it runs), while a ``PeriodicExportingMetricReader`` collects
every 50 ms on its own thread. Before the fix a collection running inside the reader's locked
aggregation ended such a stream's span right there and deadlocked the export thread; cycles then
stopped being freed and the app ran out of file descriptors. That needs a collection to start inside
a window of microseconds: with Python's default thresholds it took the issue's reporter 14,000-23,000
calls; ``--gc-threshold 10`` (first-generation threshold) makes collections, and so the hang on the
code before the fix, far more frequent.

A watchdog declares a hang when no call or no metric export completes for ``--stall`` seconds
(then dumps every thread's stack and exits 3). Reported: calls, seconds, exports, spans ended,
file descriptors after the warm-up and at the end (after one collection), and errors met by the app.
Exit status 0 when nothing hung, the descriptors stayed flat and every call's span ended.
The emulator runs in a child process (see ``soak.py``), so only the client is measured.
``--until-calls``/``--until-exports`` stop the run as soon as both counts are reached (``--seconds``
is then only a bound): the test suite's short soak proves the same thing on a loaded machine, where a
fixed duration yields however many calls the scheduler allowed.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from soak import HAIKU, POOL, emulator_process, make_client, messages, open_fds

WARMUP = 100


class Counters:
    def __init__(self) -> None:
        self.calls = 0
        self.exports = 0
        self.spans = 0
        self.errors: dict[str, int] = {}
        self.progress = time.monotonic()
        self.exported_at = time.monotonic()


def pipeline(counters: Counters, interval_ms: float) -> tuple[Any, Any]:
    """A real SDK pipeline: batch span processor and periodic metric reader over counting exporters."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Spans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            counters.spans += len(spans)
            return SpanExportResult.SUCCESS

    class Metrics(MetricExporter):
        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            counters.exports += 1
            counters.exported_at = time.monotonic()
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Spans()))
    reader = PeriodicExportingMetricReader(Metrics(), export_interval_millis=interval_ms)
    return tracer_provider, MeterProvider(metric_readers=[reader])


def abandon_in_cycle(client: Any) -> None:
    """One event read, then the loop left with an exception kept in a local: a reference cycle."""
    stream = client.converse_stream(modelId=HAIKU, messages=messages("stream this please"))["stream"]
    try:
        for _event in stream:
            raise ValueError("the app gives up")
    except ValueError as error:
        kept = error
    assert kept is not None


def watchdog(counters: Counters, stall: float, report: dict[str, Any], emit: Any) -> None:
    """Declares a hang (dumps the stacks, prints the report, exits 3) when calls or exports stall."""
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        stalled = [
            what
            for what, since in (("calls", counters.progress), ("metric exports", counters.exported_at))
            if now - since > stall
        ]
        if stalled and not report.get("done"):
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            report.update(hung=True, stalled=stalled, calls=counters.calls, exports=counters.exports)
            emit(report)
            os._exit(3)


def run(
    seconds: float,
    interval_ms: float,
    stall: float,
    emit: Any,
    until_calls: int = 0,
    until_exports: int = 0,
) -> dict[str, Any]:
    from otel_bedrock_tokens import BedrockTokensInstrumentor

    counters = Counters()
    report: dict[str, Any] = {
        "hung": False,
        "seconds": seconds,
        "interval_ms": interval_ms,
        "gc_threshold": gc.get_threshold()[0],
    }
    tracer_provider, meter_provider = pipeline(counters, interval_ms)
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    threading.Thread(target=watchdog, args=(counters, stall, report, emit), daemon=True).start()
    with emulator_process() as url:
        client = make_client(url)
        fds_before = -1
        started = time.monotonic()
        until = until_calls > 0 or until_exports > 0
        while time.monotonic() - started < seconds:
            if until and counters.calls >= until_calls and counters.exports >= until_exports:
                break
            try:
                abandon_in_cycle(client)
            except Exception as error:  # what the app met (EndpointConnectionError: too many open files)
                name = type(error).__name__
                counters.errors[name] = counters.errors.get(name, 0) + 1
            counters.calls += 1
            counters.progress = time.monotonic()
            if counters.calls == WARMUP:
                gc.collect()
                fds_before = open_fds()
        elapsed = time.monotonic() - started
        gc.collect()
        deadline = time.monotonic() + 10.0
        while counters.spans < counters.calls and time.monotonic() < deadline:
            tracer_provider.force_flush()  # abandoned spans end within a reaper poll, then export
            time.sleep(0.1)
        fds_after = open_fds()
        report["done"] = True
    instrumentor.uninstrument()
    meter_provider.shutdown()
    tracer_provider.shutdown()
    report.update(
        calls=counters.calls,
        seconds=round(elapsed, 1),
        calls_per_second=round(counters.calls / elapsed, 1),
        exports=counters.exports,
        spans_ended=counters.spans,
        fds_before=fds_before,
        fds_after=fds_after,
        errors=counters.errors,
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval-ms", type=float, default=50.0, help="metric reader export interval")
    parser.add_argument("--stall", type=float, default=15.0, help="seconds without progress = hang")
    parser.add_argument("--gc-threshold", type=int, default=0, help="first-generation gc threshold")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    parser.add_argument("--until-calls", type=int, default=0, help="stop once this many calls ran")
    parser.add_argument("--until-exports", type=int, default=0, help="and this many metric exports completed")
    args = parser.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])

    def emit(report: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            for key, value in report.items():
                print(f"{key:>16}: {value}", flush=True)

    report = run(args.seconds, args.interval_ms, args.stall, emit, args.until_calls, args.until_exports)
    emit(report)
    flat = report["fds_after"] <= report["fds_before"] + POOL
    return 0 if not report["hung"] and flat and report["spans_ended"] == report["calls"] else 1


if __name__ == "__main__":
    sys.exit(main())
