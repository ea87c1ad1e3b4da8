"""A stream dropped unclosed never makes its finalizer call into the OpenTelemetry SDK.

The finalizer of a stream proxy can run wherever the cyclic garbage collector runs, including inside
the SDK's own locked sections, whose locks are not reentrant: ending the span there deadlocked the
thread (issue 13, item 1). Each scenario runs in a child process (tests/finalizer_child.py) bounded
by a timeout, so a regression fails here instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_bedrock_tokens import BedrockTokensInstrumentor, abandoned
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.telemetry import TelemetryCapture

CHILD = Path(__file__).resolve().parent / "finalizer_child.py"
SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak_abandoned.py"
#: A child that has not answered by then is hung (each normally takes 2-4 s).
TIMEOUT = 45.0


def run_child(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, str(CHILD), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the child process hung (killed after {timeout:.0f} s): {expired.stderr!r}")


def scenario(*args: str) -> dict[str, Any]:
    done = run_child(*args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_collection_inside_the_sdk_lock_does_not_deadlock(kind: str) -> None:
    """The cyclic collector frees an abandoned stream while the SDK holds an aggregation's lock;
    with no further call, the span still ends ``abandoned`` within a few seconds, off that thread."""
    if kind == "aio":
        pytest.importorskip("aiobotocore")
    result = scenario("deadlock", kind)
    assert result["collected"] is True
    assert result["ended_after"] is not None and result["ended_after"] < 5.0, result
    assert result["thread"] == "bedrock-tokens-reaper", result


def test_abandoned_stream_is_ended_by_the_next_call() -> None:
    result = scenario("next_call")
    assert result["ended_in_collection"] == 0, result  # the finalizer ended nothing itself
    assert result["ended_by_next_call"] == 1, result
    assert result["thread"] == "MainThread", result


def test_forked_child_ends_streams_it_abandons_with_its_own_reaper() -> None:
    result = scenario("fork")
    assert result["child_status"] == 0, result
    assert result["child"].get("ended_after") is not None, result
    assert result["child"]["ended_after"] < 5.0, result
    assert result["parent_spans"] == 1, result  # the parent's own stream, closed by the parent


def test_abandoned_and_open_streams_are_exported_at_exit() -> None:
    done = run_child("exit")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    ends = sorted(line["end"] for line in lines if "span" in line)
    assert ends == ["abandoned", "abandoned"], done.stdout


@pytest.mark.slow
def test_short_soak_of_abandoned_streams_under_a_fast_reader() -> None:
    """Streams abandoned in cycles under a 50 ms PeriodicExportingMetricReader: no hang, fds flat,
    every span ended. ``python benchmarks/soak_abandoned.py`` runs the 60 s version.

    The soak runs until it made 150 calls and saw 25 exports, not for a fixed time: on a loaded
    machine a fixed 6 s gave however many calls the scheduler allowed (97 once). Its 40 s bound and
    15 s stall watchdog are failure guards only."""
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(SOAK),
                *("--seconds", "40", "--gc-threshold", "10", "--json"),
                *("--until-calls", "150", "--until-exports", "25"),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the soak hung (killed after {TIMEOUT:.0f} s): {expired.stderr!r}")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["hung"] is False, report
    assert report["calls"] >= 150, report
    assert report["fds_after"] <= report["fds_before"] + 10, report
    assert report["exports"] >= 25, report  # the 50 ms reader kept exporting
    assert report["spans_ended"] == report["calls"], report


def test_aio_stream_ended_off_its_loop_settles_its_late_prediction_on_the_loop(
    telemetry: TelemetryCapture,
) -> None:
    """An abandoned aiobotocore stream is ended by the reaper or on another thread, not on its loop:
    the CountTokens task still in flight gets its completion callback through the loop (asyncio tasks
    are not thread-safe), and the late prediction is recorded."""
    pytest.importorskip("aiobotocore")
    from .support.aio import CLAUDE, aio_client, messages, run

    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        count_tokens="parallel",
    )
    try:
        with BedrockEmulator() as emulator:
            emulator.set_latency(0.5, operation="CountTokens")

            async def main() -> bool:
                async with aio_client(emulator.endpoint_url) as client:
                    response = await client.converse_stream(modelId=CLAUDE, messages=messages("hi"))
                    async for _event in response["stream"]:
                        break
                    del response
                    for _ in range(3):
                        await asyncio.sleep(0)  # the loop closes the left async generator
                    gc.collect()
                    await asyncio.to_thread(abandoned.drain)  # off the loop (or the reaper did)
                    return await instrumentor.wait_for_predictions_async(5.0)

            assert run(main()) is True
    finally:
        instrumentor.uninstrument()
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.stream.end"] == "abandoned"
    assert span.attributes["bedrock_tokens.prediction.status"] == "late"
    statuses = {
        point.attributes["bedrock_tokens.prediction.status"]: point.value
        for point in telemetry.points("bedrock_tokens.client.prediction.outcomes")
    }
    assert statuses == {"ok": 1}
