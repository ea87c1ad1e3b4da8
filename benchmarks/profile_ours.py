"""Our own Python cost, against the OpenTelemetry API's no-op providers, and where it goes.

    python benchmarks/profile_ours.py                    # µs figures + cProfile ranking
    python benchmarks/profile_ours.py --rounds 15 --calls 200
    python benchmarks/profile_ours.py --callgrind        # + valgrind instruction counts (slow)
    python benchmarks/profile_ours.py --json out.json    # figures as JSON too

Why no-op providers: spans and points then cost nothing, so what remains of the added time is
ours alone (request/response parsing, the body replay, the stream proxy, attribute building): the
part our code can cut. The SDK's charge for our span and points is measured by ``report.py``.

Figures (process CPU time, A/B interleaved against a plain client in the same process, median over
rounds of the per-round difference, with quartiles):

* µs per plain call: InvokeModel, Converse;
* µs of set-up per stream: the added cost of a 3-event stream (the shortest well-formed one);
* µs per stream event: (added at N events - added at 3) / (N - 3).

``--callgrind`` re-runs one block of each path under ``valgrind --tool=callgrind`` with the
instrumentation on and off and reports the instruction counts per call (deterministic: not moved
by machine load, unlike the clocks), so a cut can be judged on a busy machine.

cProfile runs on ``time.thread_time`` (CPU time of the calling thread): with the default wall
clock, on a busy machine, every preemption is charged to whatever function was running. One
ranking lists our package's functions by own time (tottime) and cumulative time over the
instrumented calls of every path; the other, per path, every function called more often with ours
on (ours, and what ours calls elsewhere), by how much its own time grows per call: the candidates
for cuts.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from canned import Canned  # noqa: E402
from peer_worker import (  # noqa: E402
    CLAUDE_HEADERS,
    CLAUDE_RESPONSE,
    CONVERSE_HEADERS,
    CONVERSE_RESPONSE,
    STREAM_HEADERS,
    claude_stream,
    converse,
    converse_stream,
    converse_stream_call,
    invoke_model,
    invoke_stream,
)

PACKAGE = "otel_bedrock_tokens"


def paths(long_events: int) -> dict[str, tuple[bytes, dict[str, str], Callable[[Any], None]]]:
    return {
        "InvokeModel": (CLAUDE_RESPONSE, CLAUDE_HEADERS, invoke_model),
        "Converse": (CONVERSE_RESPONSE, CONVERSE_HEADERS, converse),
        "InvokeModelWithResponseStream/3": (claude_stream(3), STREAM_HEADERS, invoke_stream),
        f"InvokeModelWithResponseStream/{long_events}": (
            claude_stream(long_events),
            STREAM_HEADERS,
            invoke_stream,
        ),
        "ConverseStream/3": (converse_stream(3), STREAM_HEADERS, converse_stream_call),
        f"ConverseStream/{long_events}": (converse_stream(long_events), STREAM_HEADERS, converse_stream_call),
    }


class Ours:
    """Ours on a client, against no-op providers; switched on only for instrumented blocks."""

    def __init__(self) -> None:
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.trace import NoOpTracerProvider

        from otel_bedrock_tokens import BedrockTokensInstrumentor

        self.instrumentor = BedrockTokensInstrumentor()
        self.tracer_provider = NoOpTracerProvider()
        self.meter_provider = NoOpMeterProvider()

    def on(self) -> None:
        self.instrumentor.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def off(self) -> None:
        self.instrumentor.uninstrument()


def block(operation: Callable[[], None], calls: int) -> float:
    clock = time.process_time
    start = clock()
    for _ in range(calls):
        operation()
    return (clock() - start) / calls


def measure(
    ours: Ours, canned: Canned, call: Callable[[Any], None], calls: int, rounds: int
) -> dict[str, float]:
    def run() -> None:
        call(canned.client)

    ours.on()
    for _ in range(3):
        run()
    ours.off()
    for _ in range(3):
        run()
    added = []
    for index in range(rounds):
        arms = [False, True] if index % 2 == 0 else [True, False]
        sample: dict[bool, float] = {}
        for on in arms:
            gc.collect()
            if on:
                ours.on()
            sample[on] = block(run, calls)
            if on:
                ours.off()
        added.append((sample[True] - sample[False]) * 1e6)
    quartiles = statistics.quantiles(added, n=4) if len(added) > 1 else [added[0]] * 3
    return {"added_us": statistics.median(added), "q1_us": quartiles[0], "q3_us": quartiles[2]}


def figures(results: dict[str, dict[str, float]], long_events: int) -> dict[str, float]:
    out = {
        "plain_call_us.InvokeModel": results["InvokeModel"]["added_us"],
        "plain_call_us.Converse": results["Converse"]["added_us"],
    }
    for stream in ("InvokeModelWithResponseStream", "ConverseStream"):
        short, long = results[f"{stream}/3"]["added_us"], results[f"{stream}/{long_events}"]["added_us"]
        out[f"stream_setup_us.{stream}"] = short
        out[f"per_event_us.{stream}"] = (long - short) / (long_events - 3)
    return out


def profile(ours: Ours, canned: Canned, cases: dict[str, Any], calls: int, top: int) -> str:
    """cProfile over the instrumented calls of every path; our package's functions, ranked."""
    profiler = cProfile.Profile(time.thread_time)
    ours.on()
    try:
        for body, headers, call in cases.values():
            canned.answer(body, headers)
            profiler.enable()
            for _ in range(calls):
                call(canned.client)
            profiler.disable()
    finally:
        ours.off()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(PACKAGE, top)
    stats.sort_stats("cumulative").print_stats(PACKAGE, top)
    return re.sub(r"/[^\s]*/(?:site-packages|src)/", "", text.getvalue())


def profile_diff(ours: Ours, canned: Canned, cases: dict[str, Any], calls: int, top: int) -> str:
    """Per path: every function called more often when ours is on (ours, and botocore's, the SDK's
    or the stdlib's that ours calls) ranked by how much its own time grows per call (cProfile,
    instrumented block minus plain block).

    This is what ours costs, wherever it lands: our functions, and the work we cause elsewhere
    (a second body parse, a proxy's extra frames, a lock, a weakref finalizer)."""
    lines = []
    for path, (body, headers, call) in cases.items():
        canned.answer(body, headers)
        own: dict[bool, dict[tuple[str, int, str], tuple[int, float]]] = {}
        for on in (False, True):
            if on:
                ours.on()
            try:
                for _ in range(3):
                    call(canned.client)
                profiler = cProfile.Profile(time.thread_time)
                profiler.enable()
                for _ in range(calls):
                    call(canned.client)
                profiler.disable()
            finally:
                if on:
                    ours.off()
            stats: Any = pstats.Stats(profiler).stats
            own[on] = {key: (value[1], value[2]) for key, value in stats.items()}
        keys = set(own[False]) | set(own[True])
        deltas = []
        for key in keys:
            calls_on, time_on = own[True].get(key, (0, 0.0))
            calls_off, time_off = own[False].get(key, (0, 0.0))
            # Only functions called more often with ours on (ours, or work we cause): a function
            # called as often either way differs only by the machine's noise.
            if calls_on > calls_off:
                deltas.append(((time_on - time_off) / calls * 1e6, (calls_on - calls_off) / calls, key))
        deltas.sort(reverse=True)
        total = sum(delta for delta, _, _ in deltas)
        lines.append(
            f"{path}: own time added per call {total:.1f} µs by functions called more "
            "often with ours on (cProfile: inflated, use for ranking)"
        )
        for delta, extra_calls, (filename, line, function) in deltas[:top]:
            where = re.sub(r"^.*/(?:site-packages|src|lib/python3\.\d+)/", "", filename)
            lines.append(f"  {delta:7.2f} µs  {extra_calls:+6.1f} calls  {where}:{line}({function})")
        lines.append("")
    return "\n".join(lines)


_CALLGRIND_CHILD = """
import sys
sys.path.insert(0, {here!r})
import profile_ours
profile_ours.callgrind_child(int(sys.argv[1]), int(sys.argv[2]))
"""


def _marker() -> None:
    """Ends a callgrind segment: the child runs under ``--dump-before=os_getppid``."""
    os.getppid()


def callgrind_child(calls: int, long_events: int) -> None:
    """Under valgrind: per path, ``calls`` calls uninstrumented then ``calls`` instrumented, each
    segment closed by a marker, so each dump holds exactly one segment. Four dumps per path:
    warm-up, off, switching on, on."""
    ours = Ours()
    canned = Canned()
    for body, headers, call in paths(long_events).values():
        canned.answer(body, headers)
        ours.on()
        for _ in range(3):
            call(canned.client)
        ours.off()
        for _ in range(3):
            call(canned.client)
        _marker()
        for _ in range(calls):
            call(canned.client)
        _marker()
        ours.on()
        _marker()
        for _ in range(calls):
            call(canned.client)
        _marker()
        ours.off()


def callgrind(cases: dict[str, Any], calls: int, long_events: int) -> dict[str, float]:
    """Instructions per call added by ours: one valgrind callgrind run, (on - off) / calls per path.

    Instruction counts are deterministic (the machine's load does not move them, unlike the
    clocks), so a cut can be judged on a busy machine; they do not weigh cache misses."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind not found: no instruction counts", file=sys.stderr)
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(_CALLGRIND_CHILD.format(here=str(HERE)))
        output = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={output}",
                "--dump-before=os_getppid",
                sys.executable,
                str(script),
                str(calls),
                str(long_events),
            ],
            capture_output=True,
            text=True,
            timeout=3600,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda file: int(file.name.rsplit(".", 1)[1]))
        totals = []
        for dump in dumps:
            match = re.search(r"^(?:summary|totals):\s*(\d+)", dump.read_text(), re.M)
            totals.append(int(match.group(1)) if match else 0)
    out: dict[str, float] = {}
    for index, path in enumerate(cases):
        segment = totals[4 * index : 4 * index + 4]
        if len(segment) == 4:
            out[path] = (segment[3] - segment[1]) / calls
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--calls", type=int, default=100, help="calls per block")
    parser.add_argument("--long-events", type=int, default=100)
    parser.add_argument("--profile-calls", type=int, default=300, help="calls per path under cProfile")
    parser.add_argument("--top", type=int, default=25, help="functions listed per ranking")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--callgrind", action="store_true", help="valgrind instruction counts (slow)")
    parser.add_argument("--callgrind-calls", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    ours = Ours()
    canned = Canned()
    cases = paths(args.long_events)
    results: dict[str, dict[str, float]] = {}
    for name, (body, headers, call) in cases.items():
        canned.answer(body, headers)
        long = not name.endswith("/3") and "/" in name
        calls = max(1, args.calls // 5) if long else args.calls
        results[name] = measure(ours, canned, call, calls, args.rounds)
        print(
            f"{name:40s} added {results[name]['added_us']:8.1f} µs "
            f"({results[name]['q1_us']:.1f}..{results[name]['q3_us']:.1f})",
            file=sys.stderr,
        )
    summary = figures(results, args.long_events)
    print("# Our own Python (no-op providers), process CPU µs")
    print()
    print("| figure | µs |")
    print("|---|---|")
    for key, value in summary.items():
        print(f"| {key} | {value:.2f} |")
    print()
    report: dict[str, Any] = {
        "cases": results,
        "figures": summary,
        "rounds": args.rounds,
        "calls": args.calls,
    }
    if not args.no_profile:
        text = profile(ours, canned, cases, args.profile_calls, args.top)
        print("# cProfile: our functions over all paths")
        print()
        print("```")
        print(text.strip())
        print("```")
        report["profile"] = text
        diff = profile_diff(ours, canned, cases, args.profile_calls, args.top)
        print()
        print("# cProfile: own time added per call by ours, every function, per path")
        print()
        print("```")
        print(diff.strip())
        print("```")
        report["profile_diff"] = diff
    if args.callgrind:
        counts = callgrind(cases, args.callgrind_calls, args.long_events)
        print()
        print("# callgrind: instructions added per call")
        print()
        for key, value in counts.items():
            print(f"- {key}: {value:.0f}")
        report["callgrind_instructions_per_call"] = counts
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
