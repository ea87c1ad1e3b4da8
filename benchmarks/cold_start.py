"""Cold start: what ``import otel_bedrock_tokens`` + ``instrument()`` adds to a fresh process that has
already imported boto3 and set up the OpenTelemetry SDK, side by side with the official
``opentelemetry-instrumentation-botocore``.

Why: users run this in AWS Lambda, where every cold start is billed and delays the first request.
Everything not needed for the default settings (``count_tokens="off"``: no prediction, emulator,
CLI, demo, pricing) must stay unimported, and the total must be no more than the official botocore
instrumentation's.

Each run is a fresh ``python`` subprocess (nothing cached in ``sys.modules``; the ``.pyc`` files are
warm, as in a deployed Lambda package). The subprocess first imports what the application already
has (boto3, botocore's client and session, the OpenTelemetry SDK with global tracer and meter
providers), then measures ``time.process_time()`` (CPU) and ``time.perf_counter()`` (wall) around the
import of the instrumentation and its ``instrument()``. Ours and the official one alternate, so load
drifting during the run hits both alike; the table gives the median and quartiles over the runs.

``--importtime`` adds a ``python -X importtime`` breakdown of the measured part: the modules it
imports (only those the prelude did not), by own time, summed per package and one by one (median
per module over ``--importtime-runs`` runs).

    python benchmarks/cold_start.py [--runs 30] [--importtime] [--importtime-runs 5] [--top 15] [--no-sdk]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence

#: What the application has imported before it instruments (the SDK only without ``--no-sdk``).
PRELUDE_APP = """
import boto3, botocore.client, botocore.session
"""
PRELUDE_SDK = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
trace.set_tracer_provider(TracerProvider())
metrics.set_meter_provider(MeterProvider())
"""

FLOOR = "floor: BaseInstrumentor import"

#: The measured part, per instrumentation.
SUBJECTS = {
    "ours": "import otel_bedrock_tokens\notel_bedrock_tokens.BedrockTokensInstrumentor().instrument()\n",
    "official botocore": (
        "from opentelemetry.instrumentation.botocore import BotocoreInstrumentor\n"
        "BotocoreInstrumentor().instrument()\n"
    ),
    # What both pay before any code of their own: OpenTelemetry's instrumentor base class (it
    # imports wrapt, asyncio and packaging). Subtract it to compare the instrumentations' own parts.
    FLOOR: ("from opentelemetry.instrumentation.instrumentor import BaseInstrumentor\n"),
}

MARKER = "--- cold-start measured part ---"


def _script(subject: str, sdk: bool, importtime: bool) -> str:
    prelude = PRELUDE_APP + (PRELUDE_SDK if sdk else "")
    body = SUBJECTS[subject]
    if importtime:
        # The marker on stderr splits the prelude's imports from the measured part's.
        return f"{prelude}\nimport sys\nprint({MARKER!r}, file=sys.stderr, flush=True)\n{body}"
    indented = "".join(f"    {line}\n" for line in body.splitlines())
    return (
        f"{prelude}\nimport json, time\n"
        "cpu0, wall0 = time.process_time(), time.perf_counter()\n"
        f"if True:\n{indented}"
        "cpu1, wall1 = time.process_time(), time.perf_counter()\n"
        "print(json.dumps({'cpu_ms': (cpu1 - cpu0) * 1e3, 'wall_ms': (wall1 - wall0) * 1e3}))\n"
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Nothing from the environment may switch features on (or the official one's extensions off).
    for name in list(env):
        if name.startswith(("OTEL_BEDROCK_TOKENS_", "OTEL_INSTRUMENTATION_", "OTEL_SEMCONV")):
            del env[name]
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # warm .pyc files, as in a deployed package
    return env


def _run(subject: str, sdk: bool) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _script(subject, sdk, importtime=False)],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def measure(runs: int, sdk: bool) -> dict[str, dict[str, list[float]]]:
    """``runs`` fresh processes per subject, alternating subjects (and which goes first)."""
    subjects = list(SUBJECTS)
    for subject in subjects:  # one warm-up each: .pyc files written, page cache warm
        _run(subject, sdk)
    samples: dict[str, dict[str, list[float]]] = {s: {"cpu_ms": [], "wall_ms": []} for s in subjects}
    for i in range(runs):
        order = subjects if i % 2 == 0 else subjects[::-1]
        for subject in order:
            result = _run(subject, sdk)
            for key in ("cpu_ms", "wall_ms"):
                samples[subject][key].append(result[key])
    return samples


def importtime(subject: str, sdk: bool) -> dict[str, int]:
    """Own import time (us) of every module the measured part imported, from one ``-X importtime``
    run (the prelude's imports are before the marker, and modules imported once are not listed again)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _script(subject, sdk, importtime=True)],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    lines = out.stderr.splitlines()
    own: dict[str, int] = {}
    if MARKER not in lines:
        return own
    for line in lines[lines.index(MARKER) + 1 :]:
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        own[parts[2].strip()] = int(parts[0])
    return own


def _group(module: str) -> str:
    """What a module's time is charged to: our modules one by one, OpenTelemetry by its second
    level (``opentelemetry.semconv``), anything else by its top-level package."""
    parts = module.split(".")
    if parts[0] == "otel_bedrock_tokens":
        return ".".join(parts[:2])
    if parts[0] == "opentelemetry" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0].lstrip("_")


def importtime_medians(subject: str, sdk: bool, runs: int) -> dict[str, float]:
    """The median over ``runs`` runs of each module's own import time (us); a module missing from a
    run (it cannot be) counts 0 there."""
    samples = [importtime(subject, sdk) for _ in range(runs)]
    modules = {m for sample in samples for m in sample}
    return {m: statistics.median(sample.get(m, 0) for sample in samples) for m in modules}


def _importtime_table(subject: str, own: dict[str, float], top: int, runs: int) -> list[str]:
    groups: dict[str, float] = {}
    for module, us in own.items():
        groups[_group(module)] = groups.get(_group(module), 0.0) + us
    lines = [
        f"`{subject}`: {len(own)} modules imported, {sum(own.values()) / 1e3:.1f} ms of own import time "
        f"(median per module over {runs} `-X importtime` runs, whose overhead inflates every figure)",
        "",
        "| charged to | own ms | | module | own ms |",
        "|---|---:|---|---|---:|",
    ]
    by_group = sorted(groups.items(), key=lambda kv: -kv[1])[:top]
    by_module = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    for i in range(max(len(by_group), len(by_module))):
        left = f"`{by_group[i][0]}` | {by_group[i][1] / 1e3:.1f}" if i < len(by_group) else " | "
        right = f"`{by_module[i][0]}` | {by_module[i][1] / 1e3:.1f}" if i < len(by_module) else " | "
        lines.append(f"| {left} | | {right} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="fresh processes per instrumentation")
    parser.add_argument("--importtime", action="store_true", help="add a -X importtime breakdown")
    parser.add_argument("--top", type=int, default=15, help="modules listed per breakdown")
    parser.add_argument("--importtime-runs", type=int, default=5, help="-X importtime runs per subject")
    parser.add_argument("--no-sdk", action="store_true", help="no OpenTelemetry SDK in the prelude")
    args = parser.parse_args(argv)
    sdk = not args.no_sdk
    samples = measure(max(1, args.runs), sdk)
    print(f"Cold start, {args.runs} fresh processes each, Python {sys.version.split()[0]}, SDK set up: {sdk}")
    print()
    floor = samples[FLOOR]["cpu_ms"]
    print(
        "| instrumentation | CPU ms median | CPU ms q1-q3 | CPU ms over the floor | wall ms median "
        "| wall ms q1-q3 |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for subject, s in samples.items():
        c1, c2, c3 = _quartiles(s["cpu_ms"])
        w1, w2, w3 = _quartiles(s["wall_ms"])
        # Per round (the runs of one round are adjacent in time), then the median over rounds.
        over = statistics.median(a - b for a, b in zip(s["cpu_ms"], floor, strict=True))
        print(f"| {subject} | {c2:.1f} | {c1:.1f}-{c3:.1f} | {over:.1f} | {w2:.1f} | {w1:.1f}-{w3:.1f} |")
    if args.importtime:
        for subject in list(SUBJECTS)[:2]:
            print()
            runs = max(1, args.importtime_runs)
            own = importtime_medians(subject, sdk, runs)
            print("\n".join(_importtime_table(subject, own, args.top, runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
