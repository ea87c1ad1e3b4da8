"""What the OpenTelemetry SDK charges for, one change at a time against the SDK floor.

The floor (``peer_worker.py``) is one CLIENT span with 6 start and 6 end attributes and three
histogram records (duration, input tokens, output tokens). Each variant below changes one thing
that an instrumentation may do differently, so the table shows what that thing costs on its own:

- ``exemplars``: the three records carry the span's context, so the SDK's default exemplar filter
  (``trace_based``) keeps an exemplar for each (what ours does, to link metrics to traces);
- ``span current``: the span is attached to the context and detached again (ours does that while
  botocore runs, so nested HTTP spans become its children);
- ``+1 span attribute`` / ``+6 span attributes`` / ``+3 attributes per point``.

A hot loop, variants interleaved per round; CPU time per operation, median over rounds.

    python benchmarks/sdk_parts.py [--rounds 15] [--per-round 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind

from peer_worker import (
    FLOOR_END_ATTRIBUTES,
    FLOOR_METRIC_ATTRIBUTES,
    FLOOR_START_ATTRIBUTES,
    MODEL,
    Sdk,
)


def variants(sdk: Sdk) -> dict[str, Callable[[], None]]:
    """The floor and its one-change variants, all against the same providers."""
    tracer = sdk.tracer_provider.get_tracer("bench.sdk_parts")
    meter = sdk.meter_provider.get_meter("bench.sdk_parts")
    tokens = meter.create_histogram("parts.token.usage", unit="{token}")
    duration = meter.create_histogram("parts.duration", unit="s")
    name = f"chat {MODEL}"

    def points(metric: dict[str, object], where: context.Context | None = None) -> None:
        duration.record(0.321, metric, context=where)
        tokens.record(11, {**metric, "gen_ai.token.type": "input"}, context=where)
        tokens.record(12, {**metric, "gen_ai.token.type": "output"}, context=where)

    def run(
        start: dict[str, object] = FLOOR_START_ATTRIBUTES,
        metric: dict[str, object] = FLOOR_METRIC_ATTRIBUTES,
        exemplars: bool = False,
        current: bool = False,
    ) -> Callable[[], None]:
        def operation() -> None:
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=start)
            where = trace.set_span_in_context(span) if exemplars or current else None
            if current:
                context.detach(context.attach(where))  # type: ignore[arg-type]
            span.set_attributes(FLOOR_END_ATTRIBUTES)
            span.end()
            points(metric, where if exemplars else None)

        return operation

    more_start_one = {**FLOOR_START_ATTRIBUTES, "gen_ai.request.temperature": 0.5}
    more_start_six = {**FLOOR_START_ATTRIBUTES, **{f"bench.extra_{i}": i for i in range(6)}}
    more_metric = {**FLOOR_METRIC_ATTRIBUTES, **{f"bench.extra_{i}": "value" for i in range(3)}}
    return {
        "floor": run(),
        "exemplars": run(exemplars=True),
        "span current": run(current=True),
        "+1 span attribute": run(start=more_start_one),
        "+6 span attributes": run(start=more_start_six),
        "+3 attributes per point": run(metric=more_metric),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=300)
    args = parser.parse_args()
    cases = variants(Sdk())
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.rounds):
        for label, operation in cases.items():
            start = time.process_time()
            for _ in range(args.per_round):
                operation()
            samples[label].append((time.process_time() - start) / args.per_round * 1e6)
    floor = statistics.median(samples["floor"])
    print(f"python {sys.version.split()[0]}; rounds {args.rounds} x {args.per_round}; CPU µs per operation")
    print(f"| {'variant':24} | µs | vs floor |")
    print("|---|---|---|")
    for label, values in samples.items():
        value = statistics.median(values)
        print(f"| {label:24} | {value:.1f} | {value - floor:+.1f} |")


if __name__ == "__main__":
    main()
