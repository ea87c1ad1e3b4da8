"""CountTokens predictions for aiobotocore clients: a task on the caller's loop instead of a thread,
its bounds, cancellation and waiting (the behaviours shared with botocore: the answer on the span,
cache, per-model memory, budget guard, timeout, are in test_prediction.py, run on every transport).
Against the emulator, whose CountTokens predicts exactly what the call then bills."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

from .support.aio import CLAUDE, aio_client, messages, run
from .support.telemetry import TelemetryCapture

OUTCOMES = "bedrock_tokens.client.prediction.outcomes"
ERRORS = "bedrock_tokens.client.prediction.error"
STATUS = "bedrock_tokens.prediction.status"
#: Seconds CountTokens takes when the calls must all return before it answers: a failure guard,
#: far above what one call takes even on a machine with a load average of 20.
SLOW_PARALLEL_COUNT = 3.0


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def outcomes(telemetry: TelemetryCapture) -> dict[str, int]:
    return {point.attributes[STATUS]: point.value for point in telemetry.points(OUTCOMES)}


def spans(telemetry: TelemetryCapture) -> list[dict[str, Any]]:
    return [dict(span.attributes) for span in telemetry.spans()]


def test_parallel_prediction_adds_no_wall_time(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    """CountTokens answers only after every call has returned: each span ends with its prediction
    still outstanding (status ``late``), so no call waited for it, and the predictions are recorded
    later, exact. Proven by the statuses, not by timing the calls (which flaked under load); the
    CountTokens latency is long enough that no call on a loaded machine outlasts it."""
    emulator.set_latency(SLOW_PARALLEL_COUNT, operation="CountTokens")
    calls = 6  # one worker each: the predictions overlap, one latency in all
    instrumentor = make_instrumentor(
        count_tokens="parallel", count_tokens_timeout=60, count_tokens_workers=calls
    )

    async def main() -> bool:
        async with aio_client(emulator.endpoint_url) as client:
            for index in range(calls):
                await client.converse(modelId=CLAUDE, messages=messages(f"parallel {index}"))
            assert emulator.ledger.total().count_tokens_calls == 0  # none answered yet
            return await instrumentor.wait_for_predictions_async(60)

    assert run(main())
    assert [span[STATUS] for span in spans(telemetry)] == ["late"] * calls
    assert outcomes(telemetry) == {"ok": calls}
    (error,) = telemetry.points(ERRORS)
    assert (error.count, error.sum) == (calls, 0)  # the emulator predicts exactly
    assert emulator.ledger.total().count_tokens_calls == calls


def test_outstanding_predictions_are_bounded(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    """One worker: at most 8 CountTokens calls outstanding; the rest are skipped, the calls go on.
    (0.1 s each, one at a time; the 60 s prediction timeout is a failure guard: with the default 2 s
    a loaded machine turned the last queued ones into timeouts.)"""
    emulator.set_latency(0.1, operation="CountTokens")
    instrumentor = make_instrumentor(count_tokens="parallel", count_tokens_workers=1, count_tokens_timeout=60)

    async def main() -> None:
        async with aio_client(emulator.endpoint_url, max_pool_connections=30) as client:
            await asyncio.gather(
                *(client.converse(modelId=CLAUDE, messages=messages(f"bounded {i}")) for i in range(20))
            )
            assert await instrumentor.wait_for_predictions_async(60)

    run(main())
    reasons = [span.get("bedrock_tokens.prediction.skip_reason") for span in spans(telemetry)]
    assert reasons.count("queue_full") == 12
    assert outcomes(telemetry) == {"ok": 8, "skipped": 12}


def test_at_most_workers_count_tokens_calls_run_at_once(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    """Two workers, four predictions of 0.25 s each awaited in ``before`` mode: two rounds."""
    emulator.set_latency(0.25, operation="CountTokens")
    make_instrumentor(count_tokens="before", count_tokens_workers=2)

    async def main() -> float:
        async with aio_client(emulator.endpoint_url) as client:
            started = time.perf_counter()
            await asyncio.gather(
                *(client.converse(modelId=CLAUDE, messages=messages(f"worker {i}")) for i in range(4))
            )
            return time.perf_counter() - started

    assert run(main()) >= 0.5
    assert outcomes(telemetry) == {"ok": 4}


def test_cancelled_while_waiting_for_the_prediction(
    emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    """``before`` mode: the caller's task is cancelled while it awaits CountTokens. The span ends
    once with the cancellation, the call is never sent, and CancelledError reaches the caller."""
    rule = emulator.inject(Fault.slow_first_byte(5), operation="CountTokens")
    make_instrumentor(count_tokens="before", count_tokens_timeout=10)

    async def main() -> bool:
        async with aio_client(emulator.endpoint_url) as client:
            task = asyncio.create_task(client.converse(modelId=CLAUDE, messages=messages("cancel me")))
            assert await asyncio.to_thread(emulator.faults.wait_fired, rule, 1, 10)
            task.cancel()
            await asyncio.wait({task}, timeout=10)
            return task.cancelled()

    assert run(main())
    (span,) = spans(telemetry)
    assert span["error.type"] == "asyncio.exceptions.CancelledError"
    assert "Converse" not in emulator.ledger.total().by_operation


def test_wait_for_predictions_async_without_predictions(make_instrumentor: Any) -> None:
    instrumentor = make_instrumentor()
    assert run(instrumentor.wait_for_predictions_async(0.01))
    other = make_instrumentor(count_tokens="parallel")
    assert run(other.wait_for_predictions_async(0.01))
