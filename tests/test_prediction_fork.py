"""A process forked after CountTokens prediction was used predicts on its own (issue 13, item 3).

The pool's threads do not survive ``os.fork()``: without the at-fork reset the child's queue
filled and never drained (parallel: predictions ``late`` forever, then ``skipped``), every call
waited out the whole timeout (before), and predictions the parent had in flight at the fork
counted against the child forever. The child makes real calls against the emulator, which keeps
serving from the parent (so its ledger sees the child's CountTokens calls too); it reports through
a pipe and leaves with ``os._exit``.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.telemetry import TelemetryCapture, make_telemetry

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET = "anthropic.claude-sonnet-4-20250514-v1:0"
CALLS = 8
#: High, so that a call waiting out the timeout (the bug) is unmistakable.
TIMEOUT = 3.0
#: One pool thread: the parent's pool is then full, and a dead copy of it in the child never
#: starts another thread (with more workers it may start some, and hide the fault by chance).
WORKERS = 1
#: Everything the child does is bounded by this.
CHILD_DEADLINE = 60.0

Report = dict[str, Any]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


@pytest.fixture
def telemetry() -> TelemetryCapture:
    return make_telemetry()


@pytest.fixture
def instrument(telemetry: TelemetryCapture) -> Iterator[Callable[..., BedrockTokensInstrumentor]]:
    made: list[BedrockTokensInstrumentor] = []

    def make(mode: str) -> BedrockTokensInstrumentor:
        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            count_tokens=mode,
            count_tokens_timeout=TIMEOUT,
            count_tokens_workers=WORKERS,
        )
        made.append(instrumentor)
        return instrumentor

    yield make
    for instrumentor in made:
        instrumentor.uninstrument()


def text(tag: str, number: int) -> list[dict[str, Any]]:
    """Distinct texts, so that no call is answered from the cache."""
    return [{"role": "user", "content": [{"text": f"{tag} call number {number}"}]}]


def calls(client: Any, tag: str, model: str = HAIKU) -> float:
    started = time.perf_counter()
    for number in range(CALLS):
        client.converse(modelId=model, messages=text(tag, number))
    return time.perf_counter() - started


def outcomes(telemetry: TelemetryCapture) -> dict[str, int]:
    """Predictions recorded so far, by outcome (the outcomes counter, cumulative), summed over the
    other attributes: an outcome settled after the response also carries its service tier."""
    found: dict[str, int] = {}
    for point in telemetry.points("bedrock_tokens.client.prediction.outcomes"):
        status = str(point.attributes["bedrock_tokens.prediction.status"])
        found[status] = found.get(status, 0) + int(point.value)
    return found


def span_statuses(telemetry: TelemetryCapture) -> list[str]:
    return [str(span.attributes["bedrock_tokens.prediction.status"]) for span in telemetry.spans()]


def in_child(telemetry: TelemetryCapture, work: Callable[[], Report]) -> Report:
    """Run ``work`` in a forked child; return its report, plus what it added to ``telemetry`` (the
    child's copy of the parent's in-memory exporters)."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        report: Report = {}
        try:
            os.close(read)
            signal.alarm(int(CHILD_DEADLINE))  # whatever happens, the child does not outlive the test
            spans_before, outcomes_before = len(telemetry.spans()), outcomes(telemetry)
            report = work()
            report["span_statuses"] = span_statuses(telemetry)[spans_before:]
            report["outcomes"] = {
                outcome: count - outcomes_before.get(outcome, 0)
                for outcome, count in outcomes(telemetry).items()
                if count != outcomes_before.get(outcome, 0)
            }
        except BaseException as error:
            report = {"error": repr(error)}
        finally:
            try:
                os.write(write, json.dumps(report).encode() + b"\n")
            finally:
                os._exit(0)
    os.close(write)
    return _collect(pid, read)


def _collect(pid: int, read: int) -> Report:
    """The child's one JSON line, within the deadline; the child is reaped (killed if late)."""
    deadline = time.monotonic() + CHILD_DEADLINE
    data = b""
    try:
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read, 65536) if ready else b""
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read)
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
    assert data, "the child reported nothing in time"
    report: Report = json.loads(data)
    assert "error" not in report, report["error"]
    return report


@pytest.mark.parametrize("mode", ["parallel", "before"])
def test_forked_child_predicts_as_fast_as_its_parent(
    emulator: BedrockEmulator,
    telemetry: TelemetryCapture,
    instrument: Callable[..., BedrockTokensInstrumentor],
    mode: str,
) -> None:
    instrumentor = instrument(mode)
    parent_elapsed = calls(emulator.client(), "parent")  # the pool has its thread: the child won't
    assert instrumentor.wait_for_predictions(10)

    def work() -> Report:
        # A fresh client: a pooled connection is not to be shared with the parent.
        elapsed = calls(emulator.client(), "child")
        return {"elapsed": elapsed, "settled": instrumentor.wait_for_predictions(CHILD_DEADLINE / 4)}

    report = in_child(telemetry, work)
    on_time = {"parallel": {"ok", "late"}, "before": {"ok"}}[mode]  # parallel: late, then ok
    assert outcomes(telemetry) == {"ok": CALLS}  # the parent's own, untouched by the child
    assert report["settled"] is True, report
    assert set(report["span_statuses"]) <= on_time and len(report["span_statuses"]) == CALLS, report
    assert report["outcomes"] == {"ok": CALLS}
    assert emulator.ledger.totals()[HAIKU].count_tokens_calls == 2 * CALLS
    # As fast as the parent: nowhere near one timeout (the bug waited TIMEOUT on every call).
    assert report["elapsed"] < max(1.0, 4 * parent_elapsed), (report["elapsed"], parent_elapsed)


def test_forked_child_predicts_under_asyncio_while_the_parents_are_in_flight(
    emulator: BedrockEmulator,
    telemetry: TelemetryCapture,
    instrument: Callable[..., BedrockTokensInstrumentor],
) -> None:
    """The parent's event loop (on another thread) has a full queue of slow CountTokens tasks in
    flight when the child is forked; the child's own loop predicts all its calls, and those
    tasks, which are not the child's, neither fill its queue nor keep it from being idle."""
    pytest.importorskip("aiobotocore")
    from .support.aio import aio_client

    emulator.set_latency(first_byte=0.5, model=SONNET, operation="CountTokens")  # one at a time: 4 s
    instrumentor = instrument("parallel")
    in_flight, forked = threading.Event(), threading.Event()

    async def parent() -> bool:
        async with aio_client(emulator.endpoint_url) as client:
            for number in range(CALLS):  # CALLS == WORKERS * 8: the queue is full
                await client.converse(modelId=SONNET, messages=text("parent", number))
            in_flight.set()
            for _ in range(3000):  # bounded: until the fork is done
                if forked.is_set():
                    break
                await asyncio.sleep(0.01)
            return await instrumentor.wait_for_predictions_async(30)

    async def child() -> Report:
        async with aio_client(emulator.endpoint_url) as client:
            started = time.perf_counter()
            for number in range(CALLS):
                await client.converse(modelId=HAIKU, messages=text("child", number))
            elapsed = time.perf_counter() - started
            settled = await instrumentor.wait_for_predictions_async(CHILD_DEADLINE / 4)
        return {"elapsed": elapsed, "settled": settled}

    parent_settled: list[bool] = []
    loop_thread = threading.Thread(target=lambda: parent_settled.append(asyncio.run(parent())))
    loop_thread.start()
    try:
        assert in_flight.wait(30)
        report = in_child(telemetry, lambda: asyncio.run(asyncio.wait_for(child(), CHILD_DEADLINE / 2)))
    finally:
        forked.set()
        loop_thread.join(60)
    assert report["settled"] is True, report
    assert report["outcomes"] == {"ok": CALLS}, report
    assert parent_settled == [True]
    # The parent's own, settled in the parent (the last ones too late for the timeout: one worker).
    assert sum(outcomes(telemetry).values()) == CALLS
