"""Every instrumentation, side by side, under every setup a user runs: one command, one run.

    python benchmarks/report.py                 # full matrix (~10-15 minutes on 2 busy cores)
    python benchmarks/report.py --quick         # fewer rounds and calls (~3-5 minutes)
    python benchmarks/report.py --instrumentations ours botocore --processors simple --rounds 3
    python benchmarks/report.py --repeat 3      # the whole matrix three times: median and spread

Why a matrix: one figure under one setup is not what users see. A ``BatchSpanProcessor`` exports
on its own worker thread (the caller's wall time does not include it; the process's CPU time
does); a ``SimpleSpanProcessor`` exports at ``span.end()`` on the caller's thread (both clocks pay
it). Peers that record prompt and completion content (OpenLLMetry by default) do more work than
with content off. Short streams are dominated by per-stream set-up, long ones by per-event cost.
So each instrumentation is measured under:

* span processor: ``batch`` and ``simple`` (each over an exporter that counts and drops);
* peers' content capture: their ``default`` and ``off`` (ours never records content: one run per
  processor, shown in both);
* clock: process CPU time (``time.process_time``, every thread) and wall time
  (``time.perf_counter``, what the caller waits);
* path: InvokeModel, Converse, InvokeModelWithResponseStream and ConverseStream with 3 and with
  ``--long-events`` (default 100) events.

Each (instrumentation, processor, content) runs in a process of its own via ``peer_worker.py``
(peers in the virtual environments ``run.py`` creates under ``benchmarks/.peers``), A/B interleaved
against a plain client in the same process; the figure is the median over rounds of the added
µs per call. ``--repeat N`` runs the matrix N times (interleaving the processes) and reports the
median over repeats with the min..max in the JSON. Each cell's ratio is ours / the best (lowest)
peer in that cell. Writes ``benchmarks/report.md`` and ``benchmarks/report.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import PEERS, machine, peer_python  # noqa: E402

WORKER = HERE / "peer_worker.py"
OUTPUT = HERE / "report.md"
PROCESSORS = ("batch", "simple")
CONTENTS = ("default", "off")
CLOCKS = {"cpu": "added_us", "wall": "added_wall_us"}
CLOCK_LABELS = {"cpu": "process CPU time", "wall": "wall time"}
STREAMS = ("InvokeModelWithResponseStream", "ConverseStream")
LABELS = {
    "ours": "ours",
    "botocore": "official botocore",
    "openllmetry": "OpenLLMetry",
    "openinference": "OpenInference",
}
NONE = "n/a"


@dataclass
class Plan:
    rounds: int
    calls: int
    stream_calls: int
    long_events: int
    repeat: int


FULL = Plan(rounds=15, calls=20, stream_calls=8, long_events=100, repeat=1)
QUICK = Plan(rounds=3, calls=12, stream_calls=4, long_events=100, repeat=1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def case_keys(long_events: int) -> list[str]:
    """The worker's case keys, in table order."""
    return [
        "InvokeModel",
        "Converse",
        *[f"{stream}/{events}" for stream in STREAMS for events in (3, long_events)],
    ]


def run_worker(
    python: Path | str, instrumentation: str, processor: str, content: str, plan: Plan
) -> dict[str, Any]:
    """One ``peer_worker.py`` process; its JSON, or ``{"error": ...}`` (never raises)."""
    command = [
        str(python),
        str(WORKER),
        "--instrumentation",
        instrumentation,
        "--processor",
        processor,
        "--content",
        content,
        "--rounds",
        str(plan.rounds),
        "--calls",
        str(plan.calls),
        "--stream-calls",
        str(plan.stream_calls),
        "--long-events",
        str(plan.long_events),
    ]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    environment.pop("PYTHONPATH", None)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=environment)
    except subprocess.TimeoutExpired:
        return {"instrumentation": instrumentation, "error": "the worker timed out (1800 s)"}
    shown = "n/a" if instrumentation == "ours" else content
    log(f"  {instrumentation} / {processor} / content {shown}: {time.perf_counter() - started:.0f} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"instrumentation": instrumentation, "error": f"the worker failed: {tail[0][:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass(frozen=True)
class Setting:
    """One worker process of the matrix. ``content`` is "n/a" for ours (it never records content)."""

    instrumentation: str
    processor: str
    content: str


def settings(
    instrumentations: Sequence[str], processors: Sequence[str], contents: Sequence[str]
) -> list[Setting]:
    out = []
    for processor in processors:
        for name in instrumentations:
            if name == "ours":
                out.append(Setting(name, processor, "n/a"))
            else:
                out.extend(Setting(name, processor, content) for content in contents)
    return out


def combine(runs: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """Per case: the median over repeats of ``key`` (and min, max, every value); errors kept."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        if "error" in run:
            return {"*": {"error": run["error"]}}
    cases = runs[0].get("cases", {}) if runs else {}
    for case in cases:
        values = [run["cases"][case].get(key) for run in runs if case in run.get("cases", {})]
        errors = [
            run["cases"][case]["error"] for run in runs if "error" in run.get("cases", {}).get(case, {})
        ]
        if errors:
            out[case] = {"error": errors[0]}
            continue
        numbers = [float(value) for value in values if value is not None]
        if numbers:
            out[case] = {
                "median": statistics.median(numbers),
                "min": min(numbers),
                "max": max(numbers),
                "values": numbers,
            }
    return out


def per_event(figures: dict[str, dict[str, Any]], stream: str, long_events: int) -> float | None:
    short, long = figures.get(f"{stream}/3", {}), figures.get(f"{stream}/{long_events}", {})
    if "median" not in short or "median" not in long:
        return None
    return float((long["median"] - short["median"]) / (long_events - 3))


def cells(raw: dict[Setting, list[dict[str, Any]]], long_events: int) -> list[dict[str, Any]]:
    """One cell per (processor, content, clock, path): every instrumentation's figure and the
    ratio ours / best peer. Ours (content "n/a") appears under every content setting."""
    out = []
    processors = sorted({setting.processor for setting in raw}, key=lambda p: PROCESSORS.index(p))
    contents = [c for c in CONTENTS if any(setting.content == c for setting in raw)] or ["off"]
    paths = [*case_keys(long_events), *[f"{stream}/per-event" for stream in STREAMS]]
    for processor in processors:
        for content in contents:
            members = {
                setting.instrumentation: runs
                for setting, runs in raw.items()
                if setting.processor == processor and setting.content in (content, "n/a")
            }
            for clock, key in CLOCKS.items():
                combined = {name: combine(runs, key) for name, runs in members.items()}
                for path in paths:
                    figures: dict[str, float | None] = {}
                    errors: dict[str, str] = {}
                    for name, figure_set in combined.items():
                        if "*" in figure_set:
                            errors[name] = figure_set["*"]["error"]
                            continue
                        if path.endswith("/per-event"):
                            figures[name] = per_event(figure_set, path.split("/")[0], long_events)
                            continue
                        data = figure_set.get(path, {})
                        if "error" in data:
                            errors[name] = data["error"]
                        figures[name] = data.get("median")
                    peers = [value for name, value in figures.items() if name != "ours" and value is not None]
                    ours = figures.get("ours")
                    best = min(peers) if peers else None
                    best_peer = next(
                        (name for name, value in figures.items() if name != "ours" and value == best), None
                    )
                    out.append(
                        {
                            "processor": processor,
                            "content": content,
                            "clock": clock,
                            "path": path,
                            "figures": figures,
                            "errors": errors,
                            "best_peer": best_peer,
                            # Only when both figures are above zero: a figure at or below zero
                            # is within the noise, and a ratio of it would mean nothing.
                            "ratio": ours / best
                            if ours is not None and best is not None and ours > 0 and best > 0
                            else None,
                        }
                    )
    return out


def fmt(value: float | None, digits: int = 0) -> str:
    return NONE if value is None else f"{value:.{digits}f}"


def path_label(path: str) -> str:
    stream, _, events = path.partition("/")
    if not events:
        return stream
    return f"{stream}, per event" if events == "per-event" else f"{stream}, {events} events"


def describe(cell: dict[str, Any]) -> str:
    return (
        f"{path_label(cell['path'])}, {cell['processor']}, {CLOCK_LABELS[cell['clock']]}, "
        f"peers' content {cell['content']}"
    )


def markdown(
    result_cells: list[dict[str, Any]],
    raw: dict[Setting, list[dict[str, Any]]],
    info: dict[str, str],
    plan: Plan,
    elapsed: float,
    command: str,
) -> str:
    lines: list[str] = []
    out = lines.append
    out("# Benchmark report: every instrumentation, every setup")
    out("")
    out(f"Generated by `{command}` in {elapsed:.0f} s.")
    out("")
    out("Machine: " + "; ".join(f"{key}: {value}" for key, value in info.items()) + ".")
    out("")
    out(
        f"Plan: {plan.rounds} A/B rounds per process, {plan.calls} calls per block ({plan.stream_calls} for "
        f"{plan.long_events}-event streams), matrix repeated {plan.repeat}x (median over repeats). Figures: "
        "added µs per call (instrumented block - plain block of the same round, median over rounds); "
        f"per event = (added at {plan.long_events} events - added at 3) / {plan.long_events - 3}. "
        "Ratio: ours / the best peer in that row (lower is better; < 1 means ours is cheaper)."
    )
    out("")
    out("## Runs")
    out("")
    columns = ["instrumentation", "processor", "content", "version", "status", "spans per call"]
    columns.append("token values per call")
    out("| " + " | ".join(columns) + " |")
    out("|" + "---|" * len(columns))
    for setting, runs in raw.items():
        first = runs[0]
        errors = [run["error"] for run in runs if "error" in run]
        case_errors = {
            case: data["error"]
            for run in runs
            for case, data in run.get("cases", {}).items()
            if "error" in data
        }
        status = errors[0] if errors else "; ".join(f"{c}: {e}" for c, e in case_errors.items()) or "ok"
        spans = sorted(
            {d["spans_per_call"] for d in first.get("cases", {}).values() if "spans_per_call" in d}
        )
        tokens = sorted(
            {
                d["token_values_per_call"]
                for d in first.get("cases", {}).values()
                if "token_values_per_call" in d
            }
        )
        out(
            f"| {LABELS.get(setting.instrumentation, setting.instrumentation)} | {setting.processor} | "
            f"{setting.content} | {first.get('version') or NONE} | {status} | "
            f"{', '.join(fmt(s) for s in spans) or NONE} | {', '.join(fmt(t) for t in tokens) or NONE} |"
        )
    out("")
    names = [
        "ours",
        *[name for name in LABELS if name != "ours" and any(s.instrumentation == name for s in raw)],
    ]
    for processor in PROCESSORS:
        for clock in CLOCKS:
            block = [c for c in result_cells if c["processor"] == processor and c["clock"] == clock]
            if not block:
                continue
            contents = [c for c in CONTENTS if any(cell["content"] == c for cell in block)]
            out(f"## {processor.capitalize()}SpanProcessor, {CLOCK_LABELS[clock]}: added µs")
            out("")
            header = ["path", "ours"]
            for name in names[1:]:
                header.extend(f"{LABELS[name]} ({content})" for content in contents)
            header.extend(f"ours / best peer ({content})" for content in contents)
            out("| " + " | ".join(header) + " |")
            out("|" + "---|" * len(header))
            paths = list(dict.fromkeys(cell["path"] for cell in block))
            for path in paths:
                by_content = {cell["content"]: cell for cell in block if cell["path"] == path}
                any_cell = next(iter(by_content.values()))
                digits = 2 if path.endswith("per-event") else 0
                row = [path_label(path), fmt(any_cell["figures"].get("ours"), digits)]
                for name in names[1:]:
                    for content in contents:
                        cell = by_content.get(content)
                        if cell is None:
                            row.append(NONE)
                        elif name in cell["errors"]:
                            row.append("error")
                        else:
                            row.append(fmt(cell["figures"].get(name), digits))
                for content in contents:
                    cell = by_content.get(content)
                    ratio = cell["ratio"] if cell else None
                    row.append(f"{ratio:.2f}x" if ratio is not None else NONE)
                out("| " + " | ".join(row) + " |")
            out("")
    ratios = [cell for cell in result_cells if cell["ratio"] is not None]
    if ratios:
        worst = max(ratios, key=lambda cell: cell["ratio"])
        best = min(ratios, key=lambda cell: cell["ratio"])
        out("## Summary")
        out("")
        out(
            f"{len(ratios)} cells with a ratio; ours cheaper than the best peer in "
            f"{sum(1 for cell in ratios if cell['ratio'] < 1)}, at most 0.8x in "
            f"{sum(1 for cell in ratios if cell['ratio'] <= 0.8)}. Worst: {worst['ratio']:.2f}x "
            f"({describe(worst)}, best peer {LABELS.get(worst['best_peer'] or '', worst['best_peer'])}). "
            f"Best: {best['ratio']:.2f}x ({describe(best)})."
        )
        out("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    parser.add_argument(
        "--instrumentations", nargs="+", default=["ours", *PEERS], choices=["ours", *PEERS], metavar="NAME"
    )
    parser.add_argument("--processors", nargs="+", default=list(PROCESSORS), choices=PROCESSORS)
    parser.add_argument(
        "--contents", nargs="+", default=list(CONTENTS), choices=CONTENTS, help="peers' content"
    )
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--calls", type=int)
    parser.add_argument("--stream-calls", type=int)
    parser.add_argument("--long-events", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="markdown path (JSON next to it)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    plan = Plan(
        rounds=args.rounds or base.rounds,
        calls=args.calls or base.calls,
        stream_calls=args.stream_calls or base.stream_calls,
        long_events=max(6, args.long_events or base.long_events),
        repeat=max(1, args.repeat or base.repeat),
    )
    started = time.perf_counter()
    info = machine()
    pythons: dict[str, tuple[Path | str | None, str | None]] = {"ours": (sys.executable, None)}
    for name in args.instrumentations:
        if name != "ours":
            pythons[name] = peer_python(name, PEERS[name][0])
    matrix = settings(args.instrumentations, args.processors, args.contents)
    raw: dict[Setting, list[dict[str, Any]]] = {setting: [] for setting in matrix}
    for repeat in range(plan.repeat):
        log(f"repeat {repeat + 1}/{plan.repeat}")
        # Alternate the order between repeats so a load drift does not always favour the same runs.
        for setting in matrix if repeat % 2 == 0 else list(reversed(matrix)):
            python, reason = pythons[setting.instrumentation]
            if python is None:
                raw[setting].append({"instrumentation": setting.instrumentation, "error": reason})
                continue
            # Ours never records content: its worker runs with the peers' switch at "off" (no effect).
            content = "off" if setting.content == "n/a" else setting.content
            raw[setting].append(run_worker(python, setting.instrumentation, setting.processor, content, plan))
    result_cells = cells(raw, plan.long_events)
    command = "python benchmarks/report.py" + ("" if argv is None else " " + " ".join(argv)).rstrip()
    if argv is None and len(sys.argv) > 1:
        command = "python benchmarks/report.py " + " ".join(sys.argv[1:])
    text = markdown(result_cells, raw, info, plan, time.perf_counter() - started, command)
    print(text)
    args.output.write_text(text + "\n")
    args.output.with_suffix(".json").write_text(
        json.dumps(
            {
                "machine": info,
                "plan": asdict(plan),
                "runs": [{**asdict(setting), "results": runs} for setting, runs in raw.items()],
                "cells": result_cells,
            },
            indent=1,
        )
        + "\n"
    )
    log(f"written to {args.output} (and {args.output.with_suffix('.json').name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
