"""Many concurrent tasks on one event loop: every call gets its own span, ended once, and the metric
totals equal what the emulator billed, model by model (cache reads and writes included)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from botocore.exceptions import ClientError

from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.aio import CLAUDE, LLAMA, NOVA, aio_client, claude_request, consume, messages, run
from .support.telemetry import TelemetryCapture

TASKS = 200
TOKENS = "gen_ai.client.token.usage"
CACHE = "bedrock_tokens.client.cache.token.usage"
DURATION = "gen_ai.client.operation.duration"
SYSTEM = [{"text": "You answer in one word. " * 30}, {"cachePoint": {"type": "default"}}]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(cache_minimum=0, output_tokens=12) as running:
        yield running


async def one_call(client: Any, index: int) -> str:
    """Call ``index`` of the mix: four operations over three models, some with a cached prefix."""
    text = f"request number {index}"
    kind = index % 6
    if kind == 0:
        response = await client.invoke_model(modelId=CLAUDE, body=claude_request(text))
    elif kind == 1:
        response = await client.invoke_model_with_response_stream(modelId=CLAUDE, body=claude_request(text))
    elif kind == 2:
        response = await client.converse(modelId=NOVA, messages=messages(text), system=SYSTEM)
    elif kind == 3:
        response = await client.converse_stream(modelId=CLAUDE, messages=messages(text), system=SYSTEM)
    elif kind == 4:
        body = json.dumps({"prompt": text, "max_gen_len": 20})
        response = await client.invoke_model_with_response_stream(modelId=LLAMA, body=body)
    else:
        response = await client.converse(modelId=LLAMA, messages=messages(text))
    await consume(response)
    return "ok"


async def many(endpoint_url: str, tasks: int) -> tuple[list[str], float]:
    async with aio_client(endpoint_url, max_pool_connections=50) as client:
        started = time.perf_counter()

        async def guarded(index: int) -> str:
            try:
                return await one_call(client, index)
            except ClientError as error:
                return str(error.response["Error"]["Code"])

        results = await asyncio.gather(*(guarded(index) for index in range(tasks)))
        return list(results), time.perf_counter() - started


def test_concurrent_tasks_metric_totals_equal_the_ledger(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.inject("throttle", operation="Converse", times=7, skip=10)
    results, elapsed = run(many(emulator.endpoint_url, TASKS))
    with capsys.disabled():
        print(f"\n{TASKS} concurrent aiobotocore tasks, instrumented: {elapsed:.2f} s")
    assert results.count("ThrottlingException") == 7
    assert results.count("ok") == TASKS - 7

    spans = instrumented.spans()
    assert len(spans) == TASKS
    assert len({span.context.span_id for span in spans}) == TASKS
    assert sum(point.count for point in instrumented.points(DURATION)) == TASKS
    assert sum(1 for span in spans if span.attributes.get("error.type") == "ThrottlingException") == 7
    assert all(span.attributes.get("bedrock_tokens.stream.end", "completed") == "completed" for span in spans)

    ledger = emulator.ledger.totals()
    assert set(ledger) == {CLAUDE, NOVA, LLAMA}
    for model, billed in ledger.items():

        def total(metric: str, model: str = model, **attributes: Any) -> float:
            return instrumented.histogram_sum(metric, **{"gen_ai.request.model": model, **attributes})

        assert total(TOKENS, **{"gen_ai.token.type": "input"}) == billed.total_input_tokens
        assert total(TOKENS, **{"gen_ai.token.type": "output"}) == billed.output_tokens
        assert total(CACHE, **{"bedrock_tokens.cache.type": "read"}) == billed.cache_read_tokens
        assert total(CACHE, **{"bedrock_tokens.cache.type": "write"}) == billed.cache_write_tokens
    assert sum(billed.cache_read_tokens for billed in ledger.values()) > 0  # the cache was exercised
    # Span by span, the same numbers.
    from_spans = sum(span.attributes.get("gen_ai.usage.output_tokens", 0) for span in spans)
    assert from_spans == sum(billed.output_tokens for billed in ledger.values())


def test_spans_of_concurrent_tasks_keep_their_own_parents(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    """Each task's span is a child of that task's own current span, never of a sibling's."""
    tracer = instrumented.tracer_provider.get_tracer("test")

    async def main() -> dict[int, int]:
        parents: dict[int, int] = {}
        async with aio_client(emulator.endpoint_url, max_pool_connections=20) as client:

            async def task(index: int) -> None:
                with tracer.start_as_current_span(f"parent {index}") as parent:
                    parents[index] = parent.get_span_context().span_id
                    await one_call(client, index)

            await asyncio.gather(*(task(index) for index in range(40)))
        return parents

    parents = run(main())
    ours = [span for span in instrumented.spans() if not span.name.startswith("parent ")]
    by_parent_name = {
        span.context.span_id: int(span.name.split()[1])
        for span in instrumented.spans()
        if span.name.startswith("parent ")
    }
    assert len(ours) == 40
    assert sorted(by_parent_name[span.parent.span_id] for span in ours) == sorted(parents)
