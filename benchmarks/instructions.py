"""Instructions added per call by every instrumentation, counted by valgrind: a figure machine
load cannot move.

    python benchmarks/instructions.py                       # ours and every peer, content off
    python benchmarks/instructions.py --content default --calls 10
    python benchmarks/instructions.py --instrumentations ours ours_no_sdk

Why: on a shared machine (2 cores, several busy processes, a KVM guest whose stolen time is
charged to whoever runs) even process CPU time moves by ±100 µs between blocks of the same calls,
more than the differences we want to see. ``valgrind --tool=callgrind`` counts the instructions
executed, the same on every run: it does not weigh cache misses or branch mispredictions (so it
understates code that is slow for those reasons), but it ranks instrumentations and judges cuts
on any machine.

Each instrumentation runs once under valgrind (in its own interpreter: ours in this one, each peer
in its ``benchmarks/.peers`` environment) through ``peer_worker.py``'s workload and switches, with
a ``SimpleSpanProcessor`` (export on the caller's thread, inside the counted segment; a batch
processor's worker would export outside it, at its own time). Per path: a block of ``--calls``
plain calls and a block of instrumented ones, each segment closed by a marker call
(``os.getppid``, with ``--dump-before=os_getppid``) so each dump holds one segment; the figure is
(instrumented - plain) / calls. Writes ``benchmarks/instructions.md`` and ``.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: Four dumps per path: warm-up, plain block, switching on, instrumented block.
DUMPS_PER_PATH = 4
LABELS = {
    "ours": "ours",
    "ours_no_sdk": "ours, no-op providers (our own Python)",
    "botocore": "official botocore",
    "openllmetry": "OpenLLMetry",
    "openinference": "OpenInference",
}


def _marker() -> None:
    os.getppid()


def child(instrumentation: str, processor: str, content: str, calls: int, long_events: int) -> None:
    """Under valgrind, in the instrumentation's interpreter: the segments, in ``cases`` order."""
    from canned import Canned
    from peer_worker import CONTENT_OFF, SWITCHES, Sdk, cases

    if content == "off":
        os.environ.update(CONTENT_OFF)
    sdk = Sdk(processor)
    switch = SWITCHES[instrumentation](sdk)
    plain = Canned()
    if not switch.global_patch:
        switch.on()
    instrumented = Canned()
    for case in cases(calls, calls, long_events):
        for canned in (plain, instrumented):
            canned.answer(case.body, case.headers)
        if switch.global_patch:
            switch.on()
        for _ in range(3):
            case.call(instrumented.client)
        if switch.global_patch:
            switch.off()
        for _ in range(3):
            case.call(plain.client)
        _marker()
        for _ in range(calls):
            case.call(plain.client)
        _marker()
        if switch.global_patch:
            switch.on()
        _marker()
        for _ in range(calls):
            case.call(instrumented.client)
        _marker()
        if switch.global_patch:
            switch.off()


def count(
    python: Path | str, instrumentation: str, processor: str, content: str, calls: int, long_events: int
) -> dict[str, Any]:
    """One valgrind run: instructions added per call, per path (or ``{"error": ...}``)."""
    from peer_worker import cases

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return {"error": "valgrind not found"}
    keys = [
        case.name if case.events is None else f"{case.name}/{case.events}"
        for case in cases(1, 1, long_events)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={output}",
            "--dump-before=os_getppid",
            str(python),
            str(Path(__file__).resolve()),
            "--child",
            instrumentation,
            "--processor",
            processor,
            "--content",
            content,
            "--calls",
            str(calls),
            "--long-events",
            str(long_events),
        ]
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        environment.pop("PYTHONPATH", None)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=environment)
        except subprocess.TimeoutExpired:
            return {"error": "valgrind timed out (3600 s)"}
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda file: int(file.name.rsplit(".", 1)[1]))
        totals = []
        for dump in dumps:
            match = re.search(r"^(?:summary|totals):\s*(\d+)", dump.read_text(), re.M)
            totals.append(int(match.group(1)) if match else 0)
    if len(totals) < DUMPS_PER_PATH * len(keys):
        tail = [line for line in done.stderr.splitlines() if not line.startswith("==")][-1:] or ["?"]
        return {"error": f"{len(totals)} segments, not {DUMPS_PER_PATH * len(keys)}: {tail[0][:300]}"}
    out: dict[str, Any] = {}
    for index, key in enumerate(keys):
        segment = totals[DUMPS_PER_PATH * index : DUMPS_PER_PATH * (index + 1)]
        out[key] = {
            "plain": segment[1] / calls,
            "instrumented": segment[3] / calls,
            "added": (segment[3] - segment[1]) / calls,
        }
    return out


def markdown(results: dict[str, dict[str, Any]], args: argparse.Namespace, elapsed: float) -> str:
    names = list(results)
    keys: list[str] = []
    for result in results.values():
        keys.extend(key for key in result if key != "error" and key not in keys)
    lines = [
        "# Instructions added per call (valgrind callgrind)",
        "",
        f"`{args.processor}` span processor, peers' content `{args.content}`, {args.calls} calls per "
        f"block, {args.long_events}-event long streams; {elapsed:.0f} s. Thousands of instructions "
        "added per call (instrumented block - plain block) / calls; ratio: ours / the best peer.",
        "",
        "| path | plain call | "
        + " | ".join(LABELS.get(name, name) for name in names)
        + " | ours / best peer |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    peers = [name for name in names if not name.startswith("ours")]
    for key in keys:
        plain = next((r[key]["plain"] for r in results.values() if key in r), None)
        row = [
            key.replace("/", ", ") + (" events" if "/" in key else ""),
            f"{plain / 1e3:.0f}" if plain else "n/a",
        ]
        for name in names:
            result = results[name]
            row.append(
                "error"
                if "error" in result
                else f"{result[key]['added'] / 1e3:.1f}"
                if key in result
                else "n/a"
            )
        ours = results.get("ours", {}).get(key, {}).get("added")
        best = min((results[p][key]["added"] for p in peers if key in results[p]), default=None)
        row.append(f"{ours / best:.2f}x" if ours and best and best > 0 else "n/a")
        lines.append("| " + " | ".join(row) + " |")
    for stream in ("InvokeModelWithResponseStream", "ConverseStream"):
        short, long = f"{stream}/3", f"{stream}/{args.long_events}"
        row = [f"{stream}, per event", ""]
        for name in names:
            result = results[name]
            if short in result and long in result:
                per = (result[long]["added"] - result[short]["added"]) / (args.long_events - 3)
                row.append(f"{per / 1e3:.2f}")
            else:
                row.append("n/a")
        row.append("")
        lines.append("| " + " | ".join(row) + " |")
    errors = {name: result["error"] for name, result in results.items() if "error" in result}
    if errors:
        lines.extend(["", *[f"- {LABELS.get(name, name)}: {error}" for name, error in errors.items()]])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--instrumentations",
        nargs="+",
        default=["ours", "ours_no_sdk", "botocore", "openllmetry", "openinference"],
        choices=list(LABELS),
    )
    parser.add_argument("--processor", choices=("simple", "batch"), default="simple")
    parser.add_argument("--content", choices=("off", "default"), default="off")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--long-events", type=int, default=100)
    parser.add_argument("--output", type=Path, default=HERE / "instructions.md")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.processor, args.content, args.calls, args.long_events)
        return 0
    from run import PEERS, peer_python

    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in args.instrumentations:
        python: Path | str | None = sys.executable
        if name in PEERS:
            python, reason = peer_python(name, PEERS[name][0])
            if python is None:
                results[name] = {"error": reason}
                continue
        begun = time.perf_counter()
        results[name] = count(python, name, args.processor, args.content, args.calls, args.long_events)
        print(f"  {name}: {time.perf_counter() - begun:.0f} s", file=sys.stderr, flush=True)
    text = markdown(results, args, time.perf_counter() - started)
    print(text)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(
        json.dumps({"args": vars(args) | {"output": str(args.output)}, "results": results}, indent=1) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
