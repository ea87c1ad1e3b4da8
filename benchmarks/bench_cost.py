"""What pricing adds per call: instrumented calls with cost on (genai-prices' bundled prices) against
the same calls with cost off (as without genai-prices and without a price file), interleaved A/B in
one process over canned HTTP answers (see ``bench_core``: no network, client CPU only).

    python benchmarks/bench_cost.py [--rounds 30] [--calls 200]

Priced: one cached dict lookup of the (model, tier) prices, a few multiplications, two span
attributes and one counter point per non-zero cost component. genai-prices itself is imported and
each price resolved once, in the warm-up, as in an application's first priced call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import Setup
from canned import Canned
from otel_bedrock_tokens import BedrockTokensInstrumentor
from peer_worker import (
    CLAUDE_HEADERS,
    CLAUDE_REQUEST,
    CLAUDE_RESPONSE,
    CONVERSE_HEADERS,
    CONVERSE_MESSAGES,
    CONVERSE_RESPONSE,
    MODEL,
)


def instrument(setup: Setup, priced: bool) -> BedrockTokensInstrumentor:
    """An instrumentor with cost on or off (off: genai-prices hidden from ``find_spec`` while
    ``instrument()`` decides, exactly what happens when it is not installed)."""
    instrumentor = BedrockTokensInstrumentor()
    missing = object()
    saved = sys.modules.get("genai_prices", missing)
    if not priced:
        sys.modules["genai_prices"] = None  # type: ignore[assignment]
    try:
        instrumentor.instrument(tracer_provider=setup.tracer_provider, meter_provider=setup.meter_provider)
    finally:
        if not priced:
            if saved is missing:
                del sys.modules["genai_prices"]
            else:
                sys.modules["genai_prices"] = saved  # type: ignore[assignment]
    return instrumentor


def measure(
    setup: Setup, call: Callable[[], None], rounds: int, calls: int
) -> tuple[list[float], list[float]]:
    clock = time.process_time
    unpriced: list[float] = []
    priced: list[float] = []
    for round_index in range(rounds):
        arms = [(False, unpriced), (True, priced)]
        if round_index % 2:
            arms.reverse()
        for on, samples in arms:
            instrumentor = instrument(setup, on)
            try:
                for _ in range(3):  # warm-up: first lookups, caches
                    call()
                start = clock()
                for _ in range(calls):
                    call()
                samples.append((clock() - start) / calls)
            finally:
                instrumentor.uninstrument()
    return unpriced, priced


def end_path(rounds: int, calls: int) -> tuple[float, float]:
    """Median µs of ``Instruments.start`` + ``Call.end`` alone (no botocore), unpriced and priced:
    the same call facts (Converse, cache read and write, default tier), A/B interleaved."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from otel_bedrock_tokens.billing import BillingTerms
    from otel_bedrock_tokens.facts import RequestFacts, RequestParams, ResponseFacts
    from otel_bedrock_tokens.model_id import parse_model_id
    from otel_bedrock_tokens.pricing import PriceBook
    from otel_bedrock_tokens.telemetry import Instruments
    from otel_bedrock_tokens.usage import Usage

    tracer_provider = TracerProvider()
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    unpriced = Instruments(tracer_provider, meter_provider)
    priced = Instruments(tracer_provider, meter_provider, PriceBook())
    request = RequestFacts("Converse", "chat", MODEL, parse_model_id(MODEL), RequestParams(), "h", 443)
    terms = BillingTerms(service_tier="default", cache_write_5m=100, cache_write_1h=0)

    def once(telemetry: Instruments) -> None:
        call = telemetry.start(request)
        call.end(ResponseFacts(usage=Usage(11, 22, 300, 100), billing=terms))

    once(priced)  # imports genai-prices and resolves the price once, as a first call does
    samples: dict[bool, list[float]] = {False: [], True: []}
    clock = time.process_time
    for round_index in range(rounds):
        for on in (round_index % 2 == 0, round_index % 2 != 0):
            telemetry = priced if on else unpriced
            start = clock()
            for _ in range(calls):
                once(telemetry)
            samples[on].append((clock() - start) / calls)
    return statistics.median(samples[False]) * 1e6, statistics.median(samples[True]) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200, help="calls per block")
    args = parser.parse_args()

    setup = Setup("batch")
    canned = Canned()
    client: Any = canned.client

    def invoke_model() -> None:
        client.invoke_model(modelId=MODEL, body=CLAUDE_REQUEST)["body"].read()

    def converse() -> None:
        client.converse(modelId=MODEL, messages=CONVERSE_MESSAGES, inferenceConfig={"maxTokens": 100})

    cases = {
        "InvokeModel (Claude, headers)": (invoke_model, CLAUDE_RESPONSE, CLAUDE_HEADERS),
        "Converse": (converse, CONVERSE_RESPONSE, CONVERSE_HEADERS),
    }
    print(f"python {sys.version.split()[0]}; {args.rounds} rounds x {args.calls} calls per arm; process_time")
    print(f"{'operation':30} {'unpriced µs':>12} {'priced µs':>10} {'pricing adds µs':>16}")
    for name, (call, body, headers) in cases.items():
        canned.answer(body, headers)
        unpriced, priced = measure(setup, call, args.rounds, args.calls)
        off = statistics.median(unpriced) * 1e6
        on = statistics.median(priced) * 1e6
        print(f"{name:30} {off:>12.1f} {on:>10.1f} {on - off:>16.1f}")
    off, on = end_path(args.rounds, args.calls * 5)
    print(f"{'Call.end alone (no botocore)':30} {off:>12.1f} {on:>10.1f} {on - off:>16.1f}")


if __name__ == "__main__":
    main()
