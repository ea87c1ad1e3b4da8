"""Soak: many instrumented calls of every kind; memory, threads, sockets, file descriptors and our
caches must stay flat. Exits non-zero when something grows.

    python benchmarks/soak.py [--calls 100000] [--warmup 20000] [--every 10000] [--frames 1]

The workload (also used by ``tests/test_soak.py`` in a bounded version) cycles through InvokeModel
(Claude, Nova, Llama, Mistral), Converse, both streams (read to the end, closed early, dropped
unclosed, broken out of and resumed), the caller's own CountTokens, a share of calls on opaque and
ever-new model ids (more than every cache holds), throttled, failing and truncated calls, with
CountTokens prediction on for a share of the calls (``count_tokens="parallel"``, sample rate
0.25). The emulator runs in a child process on loopback, so what is measured is the client alone.

Measured after a warm-up and then every ``--every`` calls: Python heap (``tracemalloc``, current
traced size and the part allocated under our package), RSS, threads, open file descriptors and
sockets, and the size of each of our caches against its bound. Growth limits: traced heap +2 MB
over the run after warm-up, of which +256 KB under our package; threads, fds, sockets: no growth
beyond the HTTP connection pool; every cache within its bound.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-micro-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
THROTTLED = "mistral.mistral-large-2402-v1:0"
TRUNCATED = "amazon.nova-lite-v1:0"
OPAQUE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/soak{:06d}"
#: Distinct opaque ids cycled through: more than the model-id cache (1024) holds.
OPAQUE_POOL = 1500
PACKAGE = os.sep + "otel_bedrock_tokens" + os.sep
EMULATOR_PACKAGE = PACKAGE + "emulator" + os.sep

#: Limits (see the module docstring).
HEAP_GROWTH = 2 * 1024 * 1024
OURS_GROWTH = 256 * 1024
POOL = 10  # botocore's max_pool_connections
WORKERS = 4  # CountTokens threads
OUR_REAPER = 1  # otel_bedrock_tokens.abandoned's thread, alive while a stream is open


def invoke_body(model: str, text: str) -> str:
    if model.startswith("anthropic.") or model.startswith("us.anthropic."):
        return json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 32,
                "messages": [{"role": "user", "content": text}],
            }
        )
    if model.startswith("amazon.nova"):
        return json.dumps({"messages": [{"role": "user", "content": [{"text": text}]}]})
    if model.startswith("meta."):
        return json.dumps({"prompt": text, "max_gen_len": 32})
    return json.dumps({"prompt": f"<s>[INST] {text} [/INST]", "max_tokens": 32})


def messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


@dataclass
class Workload:
    """Call number ``i`` of the soak: a fixed, deterministic mix (see the module docstring)."""

    client: Any
    opaque_pool: int = OPAQUE_POOL
    errors: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    def text(self, index: int) -> str:
        # Repeated prompts (prediction cache hits) and fresh ones (misses), 1 in 3.
        return f"Soak question {index if index % 3 == 0 else index % 50}: what is the weather?"

    def run(self, index: int) -> None:
        self.calls += 1
        try:
            self._call(index)
        except Exception as error:  # the app's errors (throttling, truncation...): expected, counted
            name = type(error).__name__
            self.errors[name] = self.errors.get(name, 0) + 1

    def _call(self, index: int) -> None:
        client, text, kind = self.client, self.text(index), index % 20
        model = (HAIKU, NOVA, LLAMA, MISTRAL, PROFILE)[(index // 20) % 5]
        if kind in (0, 1, 2):
            client.invoke_model(modelId=model, body=invoke_body(model, text))["body"].read()
        elif kind in (3, 4, 5):
            client.converse(modelId=model, messages=messages(text))
        elif kind == 6:
            stream = client.invoke_model_with_response_stream(modelId=model, body=invoke_body(model, text))
            for _ in stream["body"]:
                pass
        elif kind == 7:
            for _ in client.converse_stream(modelId=model, messages=messages(text))["stream"]:
                pass
        elif kind == 8:  # closed after the first event
            stream = client.converse_stream(modelId=model, messages=messages(text))["stream"]
            for _ in stream:
                break
            stream.close()
        elif kind == 9:  # dropped unclosed after two events
            stream = client.invoke_model_with_response_stream(modelId=model, body=invoke_body(model, text))
            for seen, _ in enumerate(stream["body"]):
                if seen == 1:
                    break
            del stream
        elif kind == 10:  # broken out of, then resumed to the end
            stream = client.converse_stream(modelId=model, messages=messages(text))["stream"]
            for _ in stream:
                break
            for _ in stream:
                pass
        elif kind == 11:
            client.count_tokens(modelId=HAIKU, input={"converse": {"messages": messages(text)}})
        elif kind in (12, 14):  # opaque ids, ever new until the pool wraps
            opaque = OPAQUE.format(((index // 20) * 2 + (kind == 14)) % self.opaque_pool)
            client.converse(modelId=opaque, messages=messages(text))
        elif kind == 13:  # always cut short after two events (no usage event)
            for _ in client.converse_stream(modelId=TRUNCATED, messages=messages(text))["stream"]:
                pass
        elif kind == 15:  # always throttled: an error every time
            client.converse(modelId=THROTTLED, messages=messages(text))
        else:
            client.converse(modelId=model, messages=messages(text), inferenceConfig={"maxTokens": 16})


# --- what is measured -------------------------------------------------------------------------


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def open_sockets() -> int:
    count = 0
    try:
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                    count += 1
            except OSError:
                pass
    except OSError:
        return -1
    return count


def rss_kb() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def cache_sizes() -> dict[str, tuple[int, int | None]]:
    """Each of our caches: (current size, bound)."""
    from otel_bedrock_tokens import (
        BedrockTokensInstrumentor,
        endpoint,
        families,
        model_id,
        stream_events,
        telemetry,
    )

    sizes: dict[str, tuple[int, int | None]] = {}
    for name, cached in (
        ("model_id.parse_model_id", getattr(model_id, "parse_model_id", None)),
        ("endpoint.server_of", getattr(endpoint, "server_of", None)),
        ("families._family_for_base", getattr(families, "_family_for_base", None)),
        ("stream_events.invoke_stream_reading", getattr(stream_events, "invoke_stream_reading", None)),
    ):
        info = getattr(cached, "cache_info", None)
        if info is not None:
            stats = info()
            sizes[name] = (stats.currsize, stats.maxsize)
    lifecycle = getattr(getattr(BedrockTokensInstrumentor, "_adapter", None), "lifecycle", None)
    common = getattr(getattr(lifecycle, "telemetry", None), "_common", None)
    if common is not None:
        sizes["telemetry._common"] = (len(common), getattr(telemetry, "_COMMON_CACHE_SIZE", None))
    predictor = getattr(lifecycle, "predictor", None)
    if predictor is not None:
        for name, size in predictor.sizes().items():
            sizes[f"predictor.{name}"] = size
    return sizes


@dataclass
class Sample:
    calls: int
    seconds: float
    heap: int
    ours: int
    rss_kb: int
    threads: int
    fds: int
    sockets: int
    caches: dict[str, tuple[int, int | None]]

    def line(self) -> str:
        caches = " ".join(
            f"{name.split('.')[-1]}={size}/{bound}" for name, (size, bound) in self.caches.items()
        )
        return (
            f"{self.calls:>7} calls {self.seconds:>7.1f} s  heap {self.heap / 1024:>8.0f} KB  ours "
            f"{self.ours / 1024:>6.0f} KB  rss {self.rss_kb / 1024:>6.1f} MB  threads {self.threads:>3}  "
            f"fds {self.fds:>3}  sockets {self.sockets:>3}  {caches}"
        )


def ours_filter() -> list[tracemalloc.Filter]:
    return [
        tracemalloc.Filter(True, f"*{PACKAGE}*", all_frames=True),
        tracemalloc.Filter(False, f"*{EMULATOR_PACKAGE}*", all_frames=True),
    ]


def client_filter() -> list[tracemalloc.Filter]:
    """Everything but the emulator (when it runs in this process) and tracemalloc itself."""
    return [
        tracemalloc.Filter(False, f"*{EMULATOR_PACKAGE}*", all_frames=True),
        tracemalloc.Filter(False, tracemalloc.__file__),
    ]


def sample(calls: int, started: float) -> Sample:
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    heap = sum(stat.size for stat in snapshot.filter_traces(client_filter()).statistics("filename"))
    ours = sum(stat.size for stat in snapshot.filter_traces(ours_filter()).statistics("filename"))
    return Sample(
        calls=calls,
        seconds=time.perf_counter() - started,
        heap=heap,
        ours=ours,
        rss_kb=rss_kb(),
        threads=threading.active_count(),
        fds=open_fds(),
        sockets=open_sockets(),
        caches=cache_sizes(),
    )


def problems(
    first: Sample,
    last: Sample,
    thread_limit: int,
    heap_limit: int = HEAP_GROWTH,
    ours_limit: int = OURS_GROWTH,
) -> list[str]:
    """What grew beyond its limit between two samples (empty: flat). ``thread_limit``: the threads
    the process may have at most (those before instrumenting, the batch span processor's one, the
    CountTokens pool's workers, which start lazily, and :data:`OUR_REAPER`)."""
    found = []
    if last.heap - first.heap > heap_limit:
        found.append(
            f"heap grew by {(last.heap - first.heap) / 1024:.0f} KB (limit {heap_limit / 1024:.0f} KB)"
        )
    if last.ours - first.ours > ours_limit:
        found.append(
            f"memory under otel_bedrock_tokens grew by {(last.ours - first.ours) / 1024:.0f} KB "
            f"(limit {ours_limit / 1024:.0f} KB)"
        )
    if last.threads > thread_limit:
        found.append(f"threads grew from {first.threads} to {last.threads} (limit {thread_limit})")
    if last.fds > first.fds + POOL:
        found.append(f"file descriptors grew from {first.fds} to {last.fds}")
    if last.sockets > first.sockets + POOL:
        found.append(f"sockets grew from {first.sockets} to {last.sockets}")
    for name, (size, bound) in last.caches.items():
        if bound is not None and size > bound:
            found.append(f"{name} holds {size}, over its bound {bound}")
    return found


# --- the run -----------------------------------------------------------------------------------

_EMULATOR_PROCESS = """
import sys
from otel_bedrock_tokens.emulator import BedrockEmulator
sys.path.insert(0, sys.argv[1])
from soak import configure
with BedrockEmulator(output_tokens=12) as emulator:
    configure(emulator)
    print(emulator.endpoint_url, flush=True)
    sys.stdin.read()
"""


def configure(emulator: Any) -> None:
    """The emulator's faults for the soak: one model always throttled, one whose streams are always
    cut short, one CountTokens refuses (remembered as unsupported)."""
    from otel_bedrock_tokens.emulator import Fault

    emulator.inject(Fault.throttle(), model=THROTTLED, times=None)
    emulator.inject(Fault.truncated_stream(after_events=2), model=TRUNCATED, times=None)
    emulator.set_count_tokens_support(LLAMA, False)


@contextmanager
def emulator_process() -> Iterator[str]:
    """The emulator in a child process (its memory, threads and sockets are not ours); yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", _EMULATOR_PROCESS, str(Path(__file__).resolve().parent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the emulator did not start: {url!r}")
        yield url
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def make_client(endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="soak",
        aws_secret_access_key="soak",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=10),
    )


@contextmanager
def instrumentation(cache_size: int = 256) -> Iterator[Callable[[], int]]:
    """Our instrumentation with a real SDK pipeline (batch span processor over a dropping exporter,
    a metric reader collected now and then); yields a function returning spans exported so far."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from otel_bedrock_tokens import BedrockTokensInstrumentor

    exported = [0]

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            exported[0] += len(spans)
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropping()))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        count_tokens="parallel",
        count_tokens_sample_rate=0.25,
        count_tokens_cache_size=cache_size,
        count_tokens_workers=WORKERS,
    )

    def spans() -> int:
        instrumentor.wait_for_predictions(10.0)
        tracer_provider.force_flush()
        reader.get_metrics_data()  # a collection, as a periodic exporter would do
        return exported[0]

    try:
        yield spans
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=20_000, help="covers every opaque id once")
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument(
        "--frames", type=int, default=1, help="tracemalloc frames (1: ~2.5x slower calls; 25: ~20x)"
    )
    args = parser.parse_args()
    if args.warmup < 20 * 5 or args.calls <= args.warmup:
        parser.error("--warmup must cover the mix (>= 100 calls) and --calls must exceed it")

    started = time.perf_counter()
    thread_limit = threading.active_count() + 1 + WORKERS + OUR_REAPER
    with emulator_process() as url, instrumentation() as spans:
        workload = Workload(make_client(url))
        samples: list[Sample] = []
        for index in range(args.calls):
            if index == args.warmup // 2:
                tracemalloc.start(args.frames)  # traced from mid-warm-up: the rest runs traced
            workload.run(index)
            done = index + 1
            if done == args.warmup or (done > args.warmup and (done - args.warmup) % args.every == 0):
                exported = spans()
                samples.append(sample(done, started))
                print(samples[-1].line() + f"  spans {exported}", flush=True)
        exported = spans()
        if samples[-1].calls != args.calls:
            samples.append(sample(args.calls, started))
            print(samples[-1].line() + f"  spans {exported}", flush=True)
    print(f"app errors met (expected: throttling, refused model...): {workload.errors}")
    print(f"spans exported: {exported} for {args.calls} calls")
    found = problems(samples[0], samples[-1], thread_limit)
    if exported != args.calls:
        found.append(f"{exported} spans for {args.calls} calls")
    if found:
        print("GROWTH: " + "; ".join(found))
        return 1
    print(f"flat: after {args.warmup} warm-up calls, nothing grew beyond its limit over {args.calls} calls")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
