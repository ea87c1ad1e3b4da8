"""The ledger: thread-safe under concurrent clients, and equal to what the instrumentation records
(that is its purpose: the truth telemetry is compared to)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from otel_bedrock_tokens.emulator import BedrockEmulator, Fault
from otel_bedrock_tokens.emulator.ledger import Ledger

from ..support.emulator import HAIKU, MESSAGES, SONNET4, claude_body
from ..support.telemetry import TelemetryCapture

LONG = " ".join(f"Clause {n}: the customer is always informed." for n in range(300))


def test_concurrent_clients_are_all_accounted_for(bedrock_emulator: BedrockEmulator) -> None:
    threads, calls = 8, 25
    client = bedrock_emulator.client(max_pool_connections=threads)
    outputs: list[int] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(calls):
            if i % 2:
                usage = client.converse(
                    modelId=SONNET4, messages=[{"role": "user", "content": [{"text": f"w{worker} q{i}"}]}]
                )["usage"]
                produced = usage["outputTokens"]
            else:
                events = list(client.converse_stream(modelId=SONNET4, messages=MESSAGES)["stream"])
                produced = events[-1]["metadata"]["usage"]["outputTokens"]
            with lock:
                outputs.append(produced)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    totals = bedrock_emulator.ledger.totals()[SONNET4]
    assert totals.calls == threads * calls == len(outputs)
    assert totals.output_tokens == sum(outputs)
    assert [entry.sequence for entry in bedrock_emulator.ledger.entries()] == list(
        range(1, threads * calls + 1)
    )
    assert len({entry.request_id for entry in bedrock_emulator.ledger.entries()}) == threads * calls


def test_ledger_totals_by_model_and_by_backing_model(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    for model in (HAIKU, f"us.{HAIKU}", f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"):
        client.invoke_model(modelId=model, body=claude_body())
    assert len(bedrock_emulator.ledger.totals()) == 3
    assert bedrock_emulator.ledger.totals(by="base_model")[HAIKU].calls == 3
    assert bedrock_emulator.ledger.total().calls == 3
    as_json = json.loads(json.dumps(bedrock_emulator.ledger.to_dict()))
    assert as_json["total"]["calls"] == 3 and len(as_json["entries"]) == 3
    with pytest.raises(ValueError):
        bedrock_emulator.ledger.totals(by="colour")


def test_listeners_see_every_entry() -> None:
    ledger = Ledger()
    seen: list[str] = []
    ledger.subscribe(lambda entry: seen.append(entry.operation))
    ledger.record(request_id="r", operation="Converse", model_id="m", base_model="m", status=200)
    assert seen == ["Converse"] and len(ledger) == 1
    ledger.reset()
    assert ledger.entries() == []


def _workload(client: Any) -> None:
    """Every operation, caching, tools, an error, and a stream cut short by a fault."""
    cached_system = [{"text": LONG}, {"cachePoint": {"type": "default"}}]
    for question in ("first", "second"):
        client.converse(
            modelId=SONNET4,
            system=cached_system,
            messages=[{"role": "user", "content": [{"text": question}]}],
        )
    list(client.converse_stream(modelId="us.amazon.nova-lite-v1:0", messages=MESSAGES)["stream"])
    client.invoke_model(modelId=HAIKU, body=claude_body())["body"].read()
    for _ in client.invoke_model_with_response_stream(modelId=f"us.{HAIKU}", body=claude_body())["body"]:
        pass
    client.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=json.dumps({"prompt": "hi"}))[
        "body"
    ].read()
    client.invoke_model(modelId="cohere.embed-english-v3", body=json.dumps({"texts": ["a", "b"]}))[
        "body"
    ].read()
    with pytest.raises(ClientError):
        client.converse(modelId="amazon.nova-micro-v1:0", messages=MESSAGES)  # throttled
    client.count_tokens(modelId=HAIKU, input={"converse": {"messages": MESSAGES}})


def _telemetry_totals(telemetry: TelemetryCapture) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for point in telemetry.points("gen_ai.client.token.usage"):
        model = point.attributes["gen_ai.request.model"]
        key = point.attributes["gen_ai.token.type"]
        totals.setdefault(model, {}).setdefault(key, 0)
        totals[model][key] += int(point.sum)
    for point in telemetry.points("bedrock_tokens.client.cache.token.usage"):
        model = point.attributes["gen_ai.request.model"]
        key = "cache_" + point.attributes["bedrock_tokens.cache.type"]
        totals.setdefault(model, {}).setdefault(key, 0)
        totals[model][key] += int(point.sum)
    for point in telemetry.points("gen_ai.client.operation.duration"):
        model = point.attributes["gen_ai.request.model"]
        key = "errors" if "error.type" in point.attributes else "calls"
        if point.attributes["gen_ai.operation.name"] == "count_tokens":
            key = "count_" + key
        totals.setdefault(model, {}).setdefault(key, 0)
        totals[model][key] += point.count
    return totals


def test_telemetry_equals_the_ledger(
    bedrock_emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    bedrock_emulator.inject(Fault.throttle(), model="amazon.nova-micro-v1:0")
    _workload(bedrock_emulator.client())
    seen = _telemetry_totals(instrumented)
    billed = bedrock_emulator.ledger.totals()
    for model, totals in billed.items():
        expected = {
            "count_calls": totals.count_tokens_calls,
            "count_errors": totals.count_tokens_errors,
            "calls": totals.calls,
            "errors": totals.errors,
            "input": totals.total_input_tokens,
            "output": totals.output_tokens,
            "cache_read": totals.cache_read_tokens,
            "cache_write": totals.cache_write_tokens,
        }
        got = {key: seen.get(model, {}).get(key, 0) for key in expected}
        if not totals.output_tokens:
            got["output"] = seen.get(model, {}).get("output", 0)
        assert got == expected, model
    assert billed[SONNET4].cache_read_tokens == billed[SONNET4].cache_write_tokens > 0


def test_entries_are_bounded_but_totals_stay_exact() -> None:
    ledger = Ledger(max_entries=3)
    for number in range(10):
        ledger.record(
            request_id=str(number),
            operation="Converse",
            model_id="m",
            base_model="m",
            status=200,
            billed=True,
            output_tokens=2,
        )
    assert [entry.sequence for entry in ledger.entries()] == [8, 9, 10]
    assert len(ledger) == 10
    assert ledger.totals()["m"].output_tokens == 20 and ledger.total().calls == 10
    ledger.totals()["m"].calls = 999  # a copy
    assert ledger.totals()["m"].calls == 10
