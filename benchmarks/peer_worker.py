"""One instrumentation's added client CPU on the canned Bedrock workload; prints one JSON object.

Run by ``benchmarks/run.py`` once per instrumentation, each in its own process (and, for the peers,
in its own virtual environment with the same boto3/botocore and OpenTelemetry SDK versions)::

    python benchmarks/peer_worker.py --instrumentation ours|botocore|openllmetry|openinference
        [--rounds 15] [--calls 50] [--stream-calls 3] [--processor batch|simple] [--long-events 1000]

The workload is identical for every instrumentation: a boto3 ``bedrock-runtime`` client whose
requests are answered by a botocore ``before-send`` handler with fixed bytes (``canned.Canned``:
botocore parses a real HTTP-shaped response; no socket, no server), so only client CPU is measured.

A/B interleaved in one process: every round runs a block of calls on a plain client and a block on
an instrumented client (alternating which goes first), then a block of the OpenTelemetry SDK floor
alone ("hot": a tight loop) and a block of plain calls each followed by the floor operations ("in
situ": the SDK work with botocore's work in between, as an instrumentation pays it).
Instrumentations that patch botocore's classes (ours, the official botocore one) are switched on for
their block and off for the plain one; those that patch each new client (OpenLLMetry, OpenInference)
are switched on once, and the plain client is one created before. The clock is
``time.process_time`` (every thread of the process, so a batch span processor's worker is paid
for); each block is also timed with ``time.perf_counter`` (wall time the caller waits: with a batch
processor the export runs on its worker thread, outside the caller's wall time). The added cost
is the median over rounds of (instrumented block - plain block of the same
round), per call, with its quartiles: a drift in machine load between rounds cancels out.

SDK set-up, the same for everyone and registered as the global providers too: ``TracerProvider`` with
a ``BatchSpanProcessor`` (``--processor simple``: a ``SimpleSpanProcessor``, export on the caller's
thread at ``span.end()``) over an exporter that counts and drops spans; ``MeterProvider`` with an
``InMemoryMetricReader`` collected only between cases. Prompt/response content capture is off for
every peer (the like-for-like setting: ours never records content); ``--content default`` keeps
each peer's own default instead.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Content capture off for every peer (ours has no switch: it never records content).
CONTENT_OFF = {
    "TRACELOOP_TRACE_CONTENT": "false",
    "OPENINFERENCE_HIDE_INPUTS": "true",
    "OPENINFERENCE_HIDE_OUTPUTS": "true",
    "OPENINFERENCE_HIDE_INPUT_MESSAGES": "true",
    "OPENINFERENCE_HIDE_OUTPUT_MESSAGES": "true",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
}

INSTRUMENTATIONS = ("ours", "ours_no_sdk", "botocore", "openllmetry", "openinference")
#: The distribution each instrumentation comes from (for the version in the report).
DISTRIBUTIONS = {
    "ours": "otel-bedrock-tokens",
    "ours_no_sdk": "otel-bedrock-tokens",
    "botocore": "opentelemetry-instrumentation-botocore",
    "openllmetry": "opentelemetry-instrumentation-bedrock",
    "openinference": "openinference-instrumentation-bedrock",
}

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
STREAM_MODEL = "anthropic.claude-3-sonnet-20240229-v1:0"
CLAUDE_REQUEST = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "temperature": 0.5,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
).encode()
CLAUDE_RESPONSE = json.dumps(
    {
        "id": "msg_bdrk_01FmwvNC1ksCq1T8tjvgUdDB",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 12},
    }
).encode()
CLAUDE_HEADERS = {
    "Content-Type": "application/json",
    "x-amzn-RequestId": "5d3e1c2a-0000-4000-8000-000000000001",
    "X-Amzn-Bedrock-Invocation-Latency": "321",
    "X-Amzn-Bedrock-Input-Token-Count": "11",
    "X-Amzn-Bedrock-Output-Token-Count": "12",
}
CONVERSE_MESSAGES = [{"role": "user", "content": [{"text": "Say hello."}]}]
CONVERSE_RESPONSE = json.dumps(
    {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello! How can I help?"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 11, "outputTokens": 9, "totalTokens": 20},
        "metrics": {"latencyMs": 321},
    }
).encode()
CONVERSE_HEADERS = {"Content-Type": "application/json", "x-amzn-RequestId": "5d3e1c2a-0000-4000-8000-02"}
STREAM_HEADERS = {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": "bench"}
TOKEN_METRIC = "gen_ai.client.token.usage"
#: SDK-floor operations per block (the floor does not depend on the case).
FLOOR_CALLS = 50


#: The SDK floor's span attributes at start and at end, and the attributes of its duration point
#: (each token value adds ``gen_ai.token.type``): what the conventions ask of a chat call.
FLOOR_START_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "aws.bedrock",
    "gen_ai.request.model": MODEL,
    "server.address": "bedrock-runtime.us-east-1.amazonaws.com",
    "server.port": 443,
    "gen_ai.request.max_tokens": 100,
}
FLOOR_END_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.usage.input_tokens": 11,
    "gen_ai.usage.output_tokens": 12,
    "gen_ai.response.finish_reasons": ("end_turn",),
    "gen_ai.response.id": "msg_bdrk_01FmwvNC1ksCq1T8tjvgUdDB",
    "gen_ai.response.model": "claude-3-5-haiku-20241022",
    "aws.request_id": "5d3e1c2a-0000-4000-8000-000000000001",
}
FLOOR_METRIC_ATTRIBUTES: dict[str, Any] = {
    key: value for key, value in FLOOR_START_ATTRIBUTES.items() if key != "gen_ai.request.max_tokens"
}


def claude_stream(events: int) -> bytes:
    """An Anthropic InvokeModelWithResponseStream of exactly ``events`` events, from recorded frames.

    3 events: ``message_start``, ``message_delta`` (stop reason, output usage), ``message_stop`` with
    the invocation metrics: the shortest well-formed stream. More: the recorded shape
    (``content_block_start``, text deltas repeated, ``content_block_stop``) around them."""
    from canned import CLAUDE_STREAM, frames, recorded_body

    raw = frames(recorded_body(CLAUDE_STREAM))
    start, block_start, delta, block_stop, message_delta, stop = (
        raw[0],
        raw[1],
        raw[2],
        raw[-3],
        raw[-2],
        raw[-1],
    )
    if events == 3:
        return start + message_delta + stop
    return b"".join([start, block_start, *([delta] * (events - 5)), block_stop, message_delta, stop])


def converse_stream(events: int) -> bytes:
    """A ConverseStream of exactly ``events`` events (recorded frames, padded as Bedrock pads them).

    3 events: ``messageStart``, ``messageStop``, ``metadata`` (usage); more: text deltas and
    ``contentBlockStop`` in between."""
    from canned import CONVERSE_STREAM, frames, recorded_body

    raw = frames(recorded_body(CONVERSE_STREAM))
    start, delta, block_stop, stop, metadata_frame = raw[0], raw[1], raw[-3], raw[-2], raw[-1]
    if events == 3:
        return start + stop + metadata_frame
    return b"".join([start, *([delta] * (events - 4)), block_stop, stop, metadata_frame])


class Counting:
    """A span exporter that counts and drops (export cost without an exporter's own I/O)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans = 0
        self._success = SpanExportResult.SUCCESS

    def export(self, spans: Sequence[Any]) -> Any:
        self.spans += len(spans)
        return self._success

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Sdk:
    """The OpenTelemetry SDK every instrumentation reports to (also the global providers)."""

    def __init__(self, processor: str = "batch") -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        self.exporter = Counting()
        self.tracer_provider = TracerProvider()
        if processor == "simple":
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))  # type: ignore[arg-type]
        else:
            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(self.exporter, max_queue_size=100_000)  # type: ignore[arg-type]
            )
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)

    def spans(self) -> int:
        self.tracer_provider.force_flush()
        return self.exporter.spans

    def token_points(self) -> int:
        """How many values were recorded into ``gen_ai.client.token.usage`` so far (any scope)."""
        data = self.reader.get_metrics_data()
        count = 0
        if data is None:
            return 0
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == TOKEN_METRIC:
                        count += sum(getattr(point, "count", 0) for point in metric.data.data_points)
        return count

    def floor(self) -> Callable[[], None]:
        """One span (CLIENT, 6 start + 6 end attributes) and three histogram records: the least any
        instrumentation that emits the same span and points (duration, input, output) can cost."""
        from opentelemetry.trace import SpanKind

        tracer = self.tracer_provider.get_tracer("bench.floor")
        meter = self.meter_provider.get_meter("bench.floor")
        tokens = meter.create_histogram("floor.token.usage", unit="{token}")
        duration = meter.create_histogram("floor.duration", unit="s")
        name = f"chat {MODEL}"

        def floor() -> None:
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=FLOOR_START_ATTRIBUTES)
            span.set_attributes(FLOOR_END_ATTRIBUTES)
            span.end()
            duration.record(0.321, FLOOR_METRIC_ATTRIBUTES)
            tokens.record(11, {**FLOOR_METRIC_ATTRIBUTES, "gen_ai.token.type": "input"})
            tokens.record(12, {**FLOOR_METRIC_ATTRIBUTES, "gen_ai.token.type": "output"})

        return floor


class Switch:
    """Turns one instrumentation on and off around the instrumented blocks.

    ``global_patch``: it patches botocore's classes, so it is on only during instrumented blocks.
    Otherwise it patches clients at creation: on once, before the instrumented client is created."""

    global_patch = True

    def __init__(self, sdk: Sdk) -> None:
        self.sdk = sdk
        self.instrumentor: Any = None

    def on(self) -> None:
        raise NotImplementedError

    def off(self) -> None:
        raise NotImplementedError


class Ours(Switch):
    def on(self) -> None:
        from otel_bedrock_tokens import BedrockTokensInstrumentor

        self.instrumentor = self.instrumentor or BedrockTokensInstrumentor()
        self.instrumentor.instrument(
            tracer_provider=self.sdk.tracer_provider, meter_provider=self.sdk.meter_provider
        )

    def off(self) -> None:
        self.instrumentor.uninstrument()


class OursWithoutSdk(Switch):
    """Ours against the API's no-op tracer and meter providers: every step of ours runs (parsing,
    body replay, stream proxy, attribute building) but spans and points cost nothing, so the figure
    is our own Python; ours minus it is what the SDK charges for our span and points."""

    def on(self) -> None:
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.trace import NoOpTracerProvider

        from otel_bedrock_tokens import BedrockTokensInstrumentor

        self.instrumentor = self.instrumentor or BedrockTokensInstrumentor()
        self.instrumentor.instrument(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())

    def off(self) -> None:
        self.instrumentor.uninstrument()


class Botocore(Switch):
    def on(self) -> None:
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

        self.instrumentor = self.instrumentor or BotocoreInstrumentor()
        self.instrumentor.instrument(
            tracer_provider=self.sdk.tracer_provider, meter_provider=self.sdk.meter_provider
        )

    def off(self) -> None:
        self.instrumentor.uninstrument()


class OpenLLMetry(Switch):
    global_patch = False

    def on(self) -> None:
        from opentelemetry.instrumentation.bedrock import BedrockInstrumentor

        self.instrumentor = BedrockInstrumentor()
        self.instrumentor.instrument(
            tracer_provider=self.sdk.tracer_provider, meter_provider=self.sdk.meter_provider
        )

    def off(self) -> None:
        pass  # the instrumented client keeps its wrappers; the plain one never had them


class OpenInference(Switch):
    global_patch = False

    def on(self) -> None:
        from openinference.instrumentation.bedrock import BedrockInstrumentor

        self.instrumentor = BedrockInstrumentor()
        self.instrumentor.instrument(tracer_provider=self.sdk.tracer_provider)

    def off(self) -> None:
        pass


SWITCHES: dict[str, type[Switch]] = {
    "ours": Ours,
    "ours_no_sdk": OursWithoutSdk,
    "botocore": Botocore,
    "openllmetry": OpenLLMetry,
    "openinference": OpenInference,
}


class Case:
    def __init__(
        self,
        name: str,
        body: bytes,
        headers: dict[str, str],
        call: Callable[[Any], None],
        calls: int,
        events: int | None = None,
    ) -> None:
        self.name, self.body, self.headers, self.call, self.calls, self.events = (
            name,
            body,
            headers,
            call,
            calls,
            events,
        )


def invoke_model(client: Any) -> None:
    client.invoke_model(modelId=MODEL, body=CLAUDE_REQUEST)["body"].read()


def converse(client: Any) -> None:
    client.converse(modelId=MODEL, messages=CONVERSE_MESSAGES, inferenceConfig={"maxTokens": 100})


def invoke_stream(client: Any) -> None:
    for _ in client.invoke_model_with_response_stream(modelId=STREAM_MODEL, body=CLAUDE_REQUEST)["body"]:
        pass


def converse_stream_call(client: Any) -> None:
    response = client.converse_stream(
        modelId=MODEL, messages=CONVERSE_MESSAGES, inferenceConfig={"maxTokens": 100}
    )
    for _ in response["stream"]:
        pass


def cases(calls: int, stream_calls: int, long_events: int = 1000) -> list[Case]:
    return [
        Case("InvokeModel", CLAUDE_RESPONSE, CLAUDE_HEADERS, invoke_model, calls),
        Case("Converse", CONVERSE_RESPONSE, CONVERSE_HEADERS, converse, calls),
        Case("InvokeModelWithResponseStream", claude_stream(3), STREAM_HEADERS, invoke_stream, calls, 3),
        Case(
            "InvokeModelWithResponseStream",
            claude_stream(long_events),
            STREAM_HEADERS,
            invoke_stream,
            stream_calls,
            long_events,
        ),
        Case("ConverseStream", converse_stream(3), STREAM_HEADERS, converse_stream_call, calls, 3),
        Case(
            "ConverseStream",
            converse_stream(long_events),
            STREAM_HEADERS,
            converse_stream_call,
            stream_calls,
            long_events,
        ),
    ]


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def block(operation: Callable[[], None], calls: int, walls: list[float] | None = None) -> float:
    """Per-call CPU seconds of ``calls`` back-to-back operations (per-call wall seconds appended to
    ``walls`` when given)."""
    clock, wall = time.process_time, time.perf_counter
    start, wall_start = clock(), wall()
    for _ in range(calls):
        operation()
    cpu = (clock() - start) / calls
    if walls is not None:
        walls.append((wall() - wall_start) / calls)
    return cpu


def measure(
    case: Case, switch: Switch, plain: Any, instrumented: Any, floor: Callable[[], None], rounds: int
) -> dict[str, Any]:
    def run_plain() -> None:
        case.call(plain.client)

    def run_instrumented() -> None:
        case.call(instrumented.client)

    for canned in (plain, instrumented):
        canned.answer(case.body, case.headers)
    # Warm-up (first-call paths, caches) and a correctness check: what the peer raises, if anything.
    if switch.global_patch:
        switch.on()
    spans_before, points_before = switch.sdk.spans(), switch.sdk.token_points()
    try:
        for _ in range(3):
            run_instrumented()
    except Exception as error:
        if switch.global_patch:
            switch.off()
        return {
            "error": f"{type(error).__name__}: {str(error)[:200]}",
            "trace": traceback.format_exc()[-2000:],
        }
    spans = (switch.sdk.spans() - spans_before) / 3
    token_points = (switch.sdk.token_points() - points_before) / 3
    if switch.global_patch:
        switch.off()
    for _ in range(3):
        run_plain()

    def run_plain_then_floor() -> None:
        case.call(plain.client)
        floor()

    base: list[float] = []
    measured: list[float] = []
    base_wall: list[float] = []
    measured_wall: list[float] = []
    floors: list[float] = []
    with_floor: list[float] = []
    for index in range(rounds):
        arms = [(False, run_plain, base, base_wall), (True, run_instrumented, measured, measured_wall)]
        if index % 2:
            arms.reverse()
        for on, operation, samples, walls in arms:
            gc.collect()
            if on and switch.global_patch:
                switch.on()
            samples.append(block(operation, case.calls, walls))
            if on and switch.global_patch:
                switch.off()
        floors.append(block(floor, FLOOR_CALLS))
        if case.events is None or case.events <= 3:
            with_floor.append(block(run_plain_then_floor, case.calls))
    # Paired per round (the two blocks of a round ran back to back): a drift in machine load between
    # rounds cancels out of each difference; the median of the differences is the figure.
    added = [m - b for b, m in zip(base, measured, strict=True)]
    quartiles = statistics.quantiles(added, n=4) if len(added) > 1 else [added[0]] * 3
    added_wall = [m - b for b, m in zip(base_wall, measured_wall, strict=True)]
    wall_quartiles = statistics.quantiles(added_wall, n=4) if len(added_wall) > 1 else [added_wall[0]] * 3
    return {
        "baseline_wall_us": median_us(base_wall),
        "instrumented_wall_us": median_us(measured_wall),
        "added_wall_us": median_us(added_wall),
        "added_wall_q1_us": wall_quartiles[0] * 1e6,
        "added_wall_q3_us": wall_quartiles[2] * 1e6,
        "baseline_us": median_us(base),
        "instrumented_us": median_us(measured),
        "added_us": median_us(added),
        "added_q1_us": quartiles[0] * 1e6,
        "added_q3_us": quartiles[2] * 1e6,
        "floor_us": median_us(floors),
        # The same SDK work after each plain call (caches cooled by botocore's work, as an
        # instrumentation pays it), minus the plain call of the same round.
        "floor_in_situ_us": median_us([w - b for b, w in zip(base, with_floor, strict=True)])
        if with_floor
        else None,
        "spans_per_call": spans,
        "token_values_per_call": token_points,
    }


def version_of(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instrumentation", choices=INSTRUMENTATIONS, required=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=50, help="calls per block (short calls)")
    parser.add_argument("--stream-calls", type=int, default=3, help="calls per block (1000-event streams)")
    parser.add_argument("--content", choices=("off", "default"), default="off")
    parser.add_argument("--processor", choices=("batch", "simple"), default="batch")
    parser.add_argument("--long-events", type=int, default=1000, help="events in the long streams (>= 6)")
    args = parser.parse_args()
    if args.content == "off":
        os.environ.update(CONTENT_OFF)

    from canned import Canned

    sdk = Sdk(args.processor)
    switch = SWITCHES[args.instrumentation](sdk)
    plain = Canned()  # created before any instrumentation: never instrumented by per-client peers
    if not switch.global_patch:
        try:
            switch.on()
        except Exception as error:
            print(json.dumps({"instrumentation": args.instrumentation, "error": f"instrument(): {error!r}"}))
            return
    instrumented = Canned()
    floor = sdk.floor()
    results: dict[str, Any] = {}
    for case in cases(args.calls, args.stream_calls, args.long_events):
        key = case.name if case.events is None else f"{case.name}/{case.events}"
        results[key] = measure(case, switch, plain, instrumented, floor, args.rounds)
    print(
        json.dumps(
            {
                "instrumentation": args.instrumentation,
                "version": version_of(DISTRIBUTIONS[args.instrumentation]),
                "botocore": version_of("botocore"),
                "opentelemetry_sdk": version_of("opentelemetry-sdk"),
                "python": platform.python_version(),
                "content": args.content,
                "processor": args.processor,
                "long_events": args.long_events,
                "rounds": args.rounds,
                "calls": args.calls,
                "stream_calls": args.stream_calls,
                "cases": results,
            }
        )
    )


if __name__ == "__main__":
    main()
