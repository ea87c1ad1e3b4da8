"""The benchmarks, in one command: our added client CPU against the peers' and the SDK floor, and
the wall time the parallel CountTokens prediction adds. Prints a markdown table and writes it to
``benchmarks/results.md``.

    python benchmarks/run.py            # full run (~3.5 minutes on 2 cores)
    python benchmarks/run.py --quick    # fewer rounds (~35 s)
    python benchmarks/run.py --no-peers # ours, the floor and the prediction figure only

1. ``peer_worker.py`` runs the same canned workload (no network) once per instrumentation, each in a
   process of its own: ours with this interpreter; each peer with the interpreter of a virtual
   environment created under ``benchmarks/.peers/<name>`` holding the same boto3/botocore and
   OpenTelemetry SDK versions as this one, plus the peer (created once, reused while the versions
   match). A peer that cannot be installed or instrumented is reported with the reason.
2. The prediction figure: a Converse call against the emulator on loopback (in this process; in a
   child process; in a child process with a 50 ms Converse first byte) whose CountTokens answers
   take 200 ms, with ``count_tokens="parallel"`` against prediction off, A/B interleaved; wall time
   per call (``time.perf_counter``), median.

See ``BENCHMARKS.md`` for what is measured and how, and the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / ".peers"
RESULTS = HERE / "results.md"
WORKER = HERE / "peer_worker.py"

#: name -> (PyPI distribution, label in the table).
PEERS: dict[str, tuple[str, str]] = {
    "botocore": ("opentelemetry-instrumentation-botocore", "official botocore"),
    "openllmetry": ("opentelemetry-instrumentation-bedrock", "OpenLLMetry"),
    "openinference": ("openinference-instrumentation-bedrock", "OpenInference"),
}
#: Targets (from the issue): added per call <= half the best peer's and <= 1.3x the SDK floor;
#: added per stream event <= 1 µs; parallel prediction adds < 1 ms of wall time.
PEER_RATIO = 0.5
FLOOR_RATIO = 1.3
PER_EVENT_US = 1.0
PREDICTION_MS = 1.0
CALL_CASES = ("InvokeModel", "Converse", "InvokeModelWithResponseStream/3", "ConverseStream/3")
STREAMS = ("InvokeModelWithResponseStream", "ConverseStream")
CONVERSE_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
#: What a table cell shows when there is no figure.
NONE = "n/a"


@dataclass
class Plan:
    rounds: int
    calls: int
    stream_calls: int
    prediction_rounds: int
    prediction_calls: int


FULL = Plan(rounds=21, calls=50, stream_calls=3, prediction_rounds=12, prediction_calls=8)
QUICK = Plan(rounds=5, calls=25, stream_calls=1, prediction_rounds=5, prediction_calls=6)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def version(distribution: str) -> str:
    return metadata.version(distribution)


# --- environments ------------------------------------------------------------------------------


def peer_requirements(distribution: str) -> list[str]:
    """The peer plus exactly our boto3/botocore/SDK versions (and PyYAML for the recorded frames)."""
    return [
        f"boto3=={version('boto3')}",
        f"botocore=={version('botocore')}",
        f"opentelemetry-sdk=={version('opentelemetry-sdk')}",
        f"pyyaml=={version('pyyaml')}",
        distribution,
    ]


def peer_python(name: str, distribution: str) -> tuple[Path | None, str | None]:
    """The interpreter of the peer's environment (created if missing or stale), or the reason why not."""
    home = PEERS_DIR / name
    python = home / "bin" / "python"
    marker = home / "requirements.json"
    wanted = peer_requirements(distribution)
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        return python, None
    log(f"creating {home.relative_to(HERE.parent)} ({', '.join(wanted)})")
    PEERS_DIR.mkdir(exist_ok=True)
    try:
        venv.EnvBuilder(clear=True, with_pip=True).create(home)
    except Exception as error:
        return None, f"cannot create a virtual environment: {error}"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0:
        lines = [line for line in install.stderr.splitlines() if line.startswith("ERROR")]
        return None, "pip install failed: " + (" ".join(lines) or install.stderr.strip()[-300:])
    marker.write_text(json.dumps(wanted))
    return python, None


def run_worker(python: Path | str, instrumentation: str, plan: Plan, content: str) -> dict[str, Any]:
    command = [
        str(python),
        str(WORKER),
        "--instrumentation",
        instrumentation,
        "--rounds",
        str(plan.rounds),
        "--calls",
        str(plan.calls),
        "--stream-calls",
        str(plan.stream_calls),
        "--content",
        content,
    ]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    environment.pop("PYTHONPATH", None)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
    except subprocess.TimeoutExpired:
        return {"instrumentation": instrumentation, "error": "the worker timed out (900 s)"}
    log(f"  {instrumentation}: {time.perf_counter() - started:.0f} s")
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"instrumentation": instrumentation, "error": f"the worker failed: {tail[0][:300]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the prediction figure -----------------------------------------------------------------------


_EMULATOR_PROCESS = """
import sys
from otel_bedrock_tokens.emulator import BedrockEmulator
with BedrockEmulator() as emulator:
    emulator.set_latency(0.2, operation="CountTokens")
    if float(sys.argv[1]):
        emulator.set_latency(float(sys.argv[1]), operation="Converse")
    print(emulator.endpoint_url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
"""


class _RemoteEmulator:
    """The emulator in a child process (Bedrock is remote: its CPU is not the client's)."""

    def __init__(self, converse_latency: float = 0.0) -> None:
        self.converse_latency = converse_latency

    def __enter__(self) -> _RemoteEmulator:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _EMULATOR_PROCESS, str(self.converse_latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.endpoint_url = self.process.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )


def prediction_wall_time(plan: Plan, where: str, converse_latency: float = 0.0) -> dict[str, Any]:
    """Wall time of a Converse call with ``count_tokens="parallel"`` against prediction off (and
    uninstrumented), against the emulator with CountTokens answering after 200 ms; every request
    distinct (no prediction cache hits). ``where``: the emulator runs ``in-process`` (on loopback, as
    the tests do) or in a ``subprocess`` (its CPU is not the client's, as with real Bedrock);
    ``converse_latency``: seconds before the Converse answer's first byte (subprocess only)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_bedrock_tokens import BedrockTokensInstrumentor
    from otel_bedrock_tokens.emulator import BedrockEmulator

    tracer_provider = TracerProvider()
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = BedrockTokensInstrumentor()
    counter = iter(range(10**9))

    def call(client: Any) -> None:
        text = f"Question {next(counter)}: what is the weather in Seattle today?"
        client.converse(modelId=CONVERSE_MODEL, messages=[{"role": "user", "content": [{"text": text}]}])

    def block(client: Any) -> list[float]:
        samples = []
        for _ in range(plan.prediction_calls):
            start = time.perf_counter()
            call(client)
            samples.append(time.perf_counter() - start)
        return samples

    samples: dict[str, list[float]] = {"plain": [], "off": [], "parallel": []}
    statuses: dict[str, int] = {}
    workers = max(4, plan.prediction_calls)
    local = BedrockEmulator() if where == "in-process" else None
    if local is not None:
        local.start()
        local.set_latency(0.2, operation="CountTokens")
    remote = _RemoteEmulator(converse_latency).__enter__() if local is None else None
    try:
        client = local.client() if local is not None else remote.client()  # type: ignore[union-attr]
        for _ in range(5):  # warm-up: connections, first-call paths
            call(client)
        for index in range(plan.prediction_rounds):
            modes = ["plain", "off", "parallel"]
            if index % 2:
                modes.reverse()
            for mode in modes:
                if mode != "plain":
                    options: dict[str, Any] = (
                        {"count_tokens": "parallel", "count_tokens_workers": workers}
                        if mode == "parallel"
                        else {}
                    )
                    instrumentor.instrument(
                        tracer_provider=tracer_provider, meter_provider=meter_provider, **options
                    )
                samples[mode].extend(block(client))
                if mode == "parallel":
                    instrumentor.wait_for_predictions(5.0)  # untimed: every prediction lands
                if mode != "plain":
                    instrumentor.uninstrument()
    finally:
        if local is not None:
            local.stop()
        if remote is not None:
            remote.__exit__()
    tracer_provider.force_flush()
    for span in exporter.get_finished_spans():
        status = (span.attributes or {}).get("bedrock_tokens.prediction.status")
        if status is not None:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
    tracer_provider.shutdown()
    meter_provider.shutdown()
    median = {mode: statistics.median(values) * 1e3 for mode, values in samples.items()}
    return {
        "where": where
        if not converse_latency
        else f"{where}, Converse answering after {converse_latency * 1e3:.0f} ms",
        "realistic": bool(converse_latency),
        "plain_ms": median["plain"],
        "off_ms": median["off"],
        "parallel_ms": median["parallel"],
        "added_ms": median["parallel"] - median["off"],
        "count_tokens_latency_ms": 200,
        "calls": len(samples["parallel"]),
        "span_statuses": statuses,
    }


# --- the report --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    info = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "botocore": version("botocore"),
        "opentelemetry-sdk": version("opentelemetry-sdk"),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "CPU max MHz"):
                info[f"lscpu {key.strip()}"] = value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        load = os.getloadavg()
        info["load average at start"] = " ".join(f"{value:.2f}" for value in load)
    except OSError:
        pass
    return info


def fmt(value: float | None, digits: int = 0) -> str:
    return NONE if value is None else f"{value:.{digits}f}"


def per_event(case_results: dict[str, Any], stream: str) -> float | None:
    short, long = case_results.get(f"{stream}/3"), case_results.get(f"{stream}/1000")
    if not short or not long or "added_us" not in short or "added_us" not in long:
        return None
    return float((long["added_us"] - short["added_us"]) / 997)


def report(
    results: dict[str, dict[str, Any]],
    predictions: list[dict[str, Any]],
    info: dict[str, str],
    plan: Plan,
    elapsed: float,
) -> str:
    names = ["ours", *[name for name in PEERS if name in results]]  # ours_no_sdk has its own table
    labels = {"ours": "**ours**", **{name: label for name, (_, label) in PEERS.items()}}
    ours = results.get("ours", {}).get("cases", {})
    lines: list[str] = []
    out = lines.append
    out("# Benchmark results")
    out("")
    out(f"Generated by `python benchmarks/run.py{' --quick' if plan is QUICK else ''}` in {elapsed:.0f} s.")
    out("")
    out("Machine: " + "; ".join(f"{key}: {value}" for key, value in info.items()) + ".")
    out("")
    out(
        f"Rounds: {plan.rounds} (A/B interleaved); {plan.calls} calls per block, {plan.stream_calls} "
        "per block for 1000-event streams. CPU: `time.process_time`; added = median over rounds of "
        "(instrumented block - plain block of the same round), per call."
    )
    out("")
    out("## Instrumentations")
    out("")
    out("| instrumentation | version | status | spans per call | token values per call |")
    out("|---|---|---|---|---|")
    for name in names:
        result = results[name]
        cases = result.get("cases", {})
        errors = {case: data["error"] for case, data in cases.items() if "error" in data}
        status = result.get("error") or (
            "; ".join(f"{case}: {error}" for case, error in errors.items()) if errors else "ok"
        )
        spans = sorted({data.get("spans_per_call") for data in cases.values() if "spans_per_call" in data})
        tokens = sorted(
            {data.get("token_values_per_call") for data in cases.values() if "token_values_per_call" in data}
        )
        out(
            f"| {labels[name]} | {result.get('version') or NONE} | {status} | "
            f"{', '.join(fmt(s, 0) for s in spans) or NONE} | "
            f"{', '.join(fmt(t, 0) for t in tokens) or NONE} |"
        )
    out("")
    out("## Added client CPU per call (µs), instrumented minus uninstrumented")
    out("")
    out(
        "Median over rounds of the per-round difference; for ours, the quartiles of that difference in "
        "parentheses (the spread shows how noisy the machine was)."
    )
    out("")
    header = [
        "case",
        "baseline µs",
        *[labels[name] for name in names],
        "SDK floor µs (hot / in situ)",
        "ours / best peer",
    ]
    out("| " + " | ".join(header) + " |")
    out("|" + "---|" * len(header))
    case_names = [*CALL_CASES, "InvokeModelWithResponseStream/1000", "ConverseStream/1000"]
    for case in case_names:
        row = [
            case.replace("/", ", ") + (" events" if "/" in case else ""),
            fmt(ours.get(case, {}).get("baseline_us")),
        ]
        peer_added = []
        for name in names:
            data = results[name].get("cases", {}).get(case, {})
            if "error" in data or results[name].get("error"):
                row.append("error")
                continue
            added = data.get("added_us")
            row.append(fmt(added))
            if name != "ours" and added is not None:
                peer_added.append(added)
        in_situ = ours.get(case, {}).get("floor_in_situ_us")
        row.append(
            fmt(ours.get(case, {}).get("floor_us")) + (f" / {in_situ:.0f}" if in_situ is not None else "")
        )
        our_added = ours.get(case, {}).get("added_us")
        spread = ours.get(case, {})
        if "added_q1_us" in spread and names and row[2] not in ("error",):
            row[2] = f"{row[2]} ({spread['added_q1_us']:.0f}..{spread['added_q3_us']:.0f})"
        best = min(peer_added) if peer_added else None
        row.append(fmt(our_added / best, 2) + "x" if our_added is not None and best else NONE)
        out("| " + " | ".join(row) + " |")
    out("")
    out("## Added client CPU per stream event (µs): (added at 1000 events - added at 3) / 997")
    out("")
    out("| stream | " + " | ".join(labels[name] for name in names) + " |")
    out("|---|" + "---|" * len(names))
    for stream in STREAMS:
        row = [stream]
        for name in names:
            value = per_event(results[name].get("cases", {}), stream)
            row.append(fmt(value, 2) if value is not None else "error")
        out("| " + " | ".join(row) + " |")
    out("")
    if predictions:
        own = results.get("ours_no_sdk", {}).get("cases", {})
    if own:
        out("## Where our added CPU goes: our own Python, and the SDK's work for our span and points")
        out("")
        out(
            "The same workload with ours instrumented against the OpenTelemetry API's no-op tracer and "
            "meter providers: every step of ours runs (parsing, body replay, stream proxy, attributes) "
            "but spans and points cost nothing, so that figure is our own Python, and ours minus it is "
            "what the SDK charges for our one span and our points. Compare that with the SDK floor."
        )
        out("")
        out(
            "| case | **ours** | our own Python (no-op providers) | SDK work for our span and points "
            "| SDK floor µs (hot / in situ) |"
        )
        out("|---|---|---|---|---|")
        for case in CALL_CASES:
            total, python = ours.get(case, {}).get("added_us"), own.get(case, {}).get("added_us")
            sdk = total - python if total is not None and python is not None else None
            in_situ = ours.get(case, {}).get("floor_in_situ_us")
            out(
                f"| {case.replace('/', ', ')}{' events' if '/' in case else ''} | {fmt(total)} | "
                f"{fmt(python)} | {fmt(sdk)} | {fmt(ours.get(case, {}).get('floor_us'))}"
                f"{f' / {in_situ:.0f}' if in_situ is not None else ''} |"
            )
        for stream in STREAMS:
            total, python = per_event(ours, stream), per_event(own, stream)
            out(
                f"| {stream}, per event | {fmt(total, 2)} | {fmt(python, 2)} | "
                f"{fmt(total - python, 2) if total is not None and python is not None else NONE} | {NONE} |"
            )
        out("")
    if predictions:
        out("## Parallel CountTokens prediction: wall time per Converse call (ms)")
        out("")
        out(
            "Emulator on loopback with CountTokens answering after 200 ms. The first two rows are the "
            "worst case: the Converse call itself takes ~1-2 ms, so the prediction's own botocore work "
            "(on a worker thread) competes for the GIL with the caller's; the third row gives Converse a "
            "50 ms first byte (a short real call), where that work overlaps the wait. Every request "
            "distinct (no prediction cache hits); `time.perf_counter`; median per call."
        )
        out("")
        out(
            "| emulator | calls per arm | uninstrumented | instrumented, prediction off | "
            "`count_tokens=parallel` | added by parallel | prediction status on spans |"
        )
        out("|---|---|---|---|---|---|---|")
        for prediction in predictions:
            statuses = ", ".join(
                f"{key}: {value}" for key, value in sorted(prediction["span_statuses"].items())
            )
            out(
                f"| {prediction['where']} | {prediction['calls']} | {prediction['plain_ms']:.2f} | "
                f"{prediction['off_ms']:.2f} | {prediction['parallel_ms']:.2f} | "
                f"{prediction['added_ms']:+.2f} | "
                f"{statuses or NONE} |"
            )
        out("")
    out("## Targets")
    out("")
    out("| target | figure | met |")
    out("|---|---|---|")
    for case in CALL_CASES:
        data = ours.get(case, {})
        added = data.get("added_us")
        peers = [
            results[name]["cases"][case]["added_us"]
            for name in names
            if name != "ours" and "added_us" in results[name].get("cases", {}).get(case, {})
        ]
        if added is not None and peers:
            best = min(peers)
            out(
                f"| {case}: added ≤ {PEER_RATIO}x best peer | {added:.0f} µs vs {best:.0f} µs "
                f"({added / best:.2f}x) | {'yes' if added <= PEER_RATIO * best else 'no'} |"
            )
        if added is not None and data.get("floor_us"):
            floor = data["floor_us"]
            out(
                f"| {case}: added ≤ {FLOOR_RATIO}x SDK floor (hot) | {added:.0f} µs vs {floor:.0f} µs "
                f"({added / floor:.2f}x) | {'yes' if added <= FLOOR_RATIO * floor else 'no'} |"
            )
        if added is not None and data.get("floor_in_situ_us"):
            floor = data["floor_in_situ_us"]
            out(
                f"| {case}: added ≤ {FLOOR_RATIO}x SDK floor (in situ) | {added:.0f} µs vs {floor:.0f} µs "
                f"({added / floor:.2f}x) | {'yes' if added <= FLOOR_RATIO * floor else 'no'} |"
            )
    for stream in STREAMS:
        value = per_event(ours, stream)
        if value is not None:
            out(
                f"| {stream}: added per event ≤ {PER_EVENT_US:.0f} µs | {value:.2f} µs | "
                f"{'yes' if value <= PER_EVENT_US else 'no'} |"
            )
    for prediction in predictions:
        added_ms = prediction["added_ms"]
        out(
            f"| parallel prediction adds < {PREDICTION_MS:.0f} ms wall (emulator {prediction['where']}) | "
            f"{added_ms:+.2f} ms | {'yes' if added_ms < PREDICTION_MS else 'no'} |"
        )
    out("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (~35 s)")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers")
    parser.add_argument("--content", choices=("off", "default"), default="off", help="peers' content capture")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    info = machine()

    results: dict[str, dict[str, Any]] = {}
    log("ours")
    results["ours"] = run_worker(sys.executable, "ours", plan, args.content)
    log("ours against no-op providers (our own Python)")
    results["ours_no_sdk"] = run_worker(sys.executable, "ours_no_sdk", plan, args.content)
    if not args.no_peers:
        for name, (distribution, _) in PEERS.items():
            log(name)
            python, reason = peer_python(name, distribution)
            if python is None:
                results[name] = {"instrumentation": name, "error": reason}
                continue
            results[name] = run_worker(python, name, plan, args.content)
    predictions = []
    for where, latency in (("in-process", 0.0), ("subprocess", 0.0), ("subprocess", 0.05)):
        log(f"prediction (parallel) wall time, emulator {where}, Converse latency {latency * 1e3:.0f} ms")
        predictions.append(prediction_wall_time(plan, where, latency))
    text = report(results, predictions, info, plan, time.perf_counter() - started)
    print(text)
    args.output.write_text(text + "\n")
    (args.output.with_suffix(".json")).write_text(
        json.dumps({"machine": info, "results": results, "predictions": predictions}, indent=1) + "\n"
    )
    log(f"written to {args.output} (and {args.output.with_suffix('.json').name})")


if __name__ == "__main__":
    main()
