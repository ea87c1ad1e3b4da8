"""instrument()/uninstrument() cycles with CountTokens in parallel mode leave nothing of ours
behind on the clients used, nor any Predictor or CountTokens thread (issue 13, item 4)."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.prediction import Predictor

from .support.telemetry import TelemetryCapture

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
CYCLES = 1000

with contextlib.suppress(ImportError):
    # wrapt keeps a post-import hook (and through it the last instrument()'s state) until the
    # module is imported: import it now so that only what this test is about is counted here.
    import aiobotocore.client  # noqa: F401


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def our_handlers(client: Any) -> list[Any]:
    """Every handler on the client's event system that otel-bedrock-tokens put there."""
    emitter = client.meta.events._emitter
    handlers = list(emitter._handlers.prefix_search("before-send.bedrock-runtime.Converse"))
    return [
        handler
        for handler in handlers
        if getattr(handler, "__module__", "").startswith("otel_bedrock_tokens")
        or isinstance(getattr(handler, "__self__", None), Predictor)
    ]


def live_predictors() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Predictor))


def count_threads_gone(deadline: float) -> bool:
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name.startswith("bedrock-tokens-count")]:
            return True
        time.sleep(0.01)
    return False


def test_cycles_leave_no_handler_predictor_or_thread(
    emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    client = emulator.client()
    messages = [{"role": "user", "content": [{"text": "one call per cycle"}]}]
    for cycle in range(CYCLES):
        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            count_tokens="parallel",
            count_tokens_cache_size=0,
        )
        try:
            client.converse(modelId=MODEL, messages=messages)
            assert instrumentor.wait_for_predictions(10)
        finally:
            instrumentor.uninstrument()
        assert len(our_handlers(client)) == 0, f"cycle {cycle}"
    assert emulator.ledger.totals()[MODEL].count_tokens_calls == CYCLES
    assert count_threads_gone(time.monotonic() + 10)
    assert live_predictors() == 0
