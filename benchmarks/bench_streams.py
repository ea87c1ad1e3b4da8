"""Added client CPU per stream event: instrumented versus not, A/B interleaved in one process.

Streams of 3 and 1000 events (recorded frames, repeated) for InvokeModelWithResponseStream and
ConverseStream, answered by a canned ``before-send`` handler (no network). The added cost is the
median over rounds of (instrumented block - plain block); the per-event figure is
(added cost at 1000 events - added cost at 3 events) / 997: the per-call part cancels out.

    python benchmarks/bench_streams.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from canned import CLAUDE_STREAM, CONVERSE_STREAM, Canned, interleaved, stretched_stream
from otel_bedrock_tokens import BedrockTokensInstrumentor

STREAM_HEADERS = {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": "bench"}
BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}],
    }
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=100_000))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = BedrockTokensInstrumentor()

    def instrument(on: bool) -> None:
        if on == instrumentor.is_instrumented_by_opentelemetry:
            return  # already so: the instrumentor would log a warning
        if on:
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        else:
            instrumentor.uninstrument()

    canned = Canned()
    client = canned.client
    cases = {
        "InvokeModelWithResponseStream": (
            CLAUDE_STREAM,
            3,
            lambda: client.invoke_model_with_response_stream(
                modelId="anthropic.claude-3-sonnet-20240229-v1:0", body=BODY
            )["body"],
        ),
        "ConverseStream": (
            CONVERSE_STREAM,
            1,
            lambda: client.converse_stream(
                modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "hi"}]}]
            )["stream"],
        ),
    }
    print(f"python {sys.version.split()[0]}, rounds {args.rounds}; CPU time (process_time) per call")
    print(f"{'operation':32} {'events':>6} {'plain µs':>10} {'instr. µs':>10} {'added µs':>9}")
    for name, (path, delta_index, start) in cases.items():
        added: dict[int, float] = {}
        for events in (3, 1000):
            canned.answer(stretched_stream(path, events, delta_index), STREAM_HEADERS)

            def consume(start: Callable[[], Any] = start) -> None:
                for _ in start():
                    pass

            per_round = 200 if events == 3 else 4
            base, measured = interleaved(
                consume, consume, instrument, args.rounds, per_round, time.process_time
            )
            b, m = statistics.median(base) * 1e6, statistics.median(measured) * 1e6
            # The median of the per-round differences: drift between rounds cancels out of each.
            added[events] = statistics.median(x - y for x, y in zip(measured, base, strict=True)) * 1e6
            print(f"{name:32} {events:>6} {b:>10.1f} {m:>10.1f} {added[events]:>9.1f}")
        per_event = (added[1000] - added[3]) / 997
        print(f"{name:32} added per event: {per_event:.3f} µs")


if __name__ == "__main__":
    main()
