"""aiobotocore gets the same telemetry as botocore: every operation through real aiobotocore, over
loopback, against the emulator and every recorded Bedrock response, compared with the sync client's
spans and metric points for the very same exchange. (A service error's span and metrics are in
test_never_break.py, suppression in test_lifecycle.py: both run on every transport.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from aiobotocore.eventstream import AioEventStream
from aiobotocore.response import StreamingBody as AioStreamingBody  # the aiohttp body, 2.x and 3.x
from botocore.exceptions import ClientError

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.aio import (
    CLAUDE,
    LLAMA,
    NOVA,
    TITAN,
    aio_client,
    call_recorded_async,
    claude_request,
    consume,
    messages,
    run,
)
from .support.replay import all_recordings, call_recorded, load, replay_server
from .support.telemetry import TelemetryCapture, make_telemetry

TOKENS = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"
#: Attributes that differ between two runs of one request (the emulator mints fresh ids).
VOLATILE = {"aws.request_id", "gen_ai.response.id", "server.port"}


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(cache_minimum=0) as running:
        yield running


_TIMINGS = ("invocationLatency", "firstByteLatency", "latencyMs")


def comparable(output: Any) -> Any:
    """What the app read, minus the wall-clock latencies the emulator reports (they differ per run)."""
    if isinstance(output, list):
        return [comparable(item) for item in output]
    if isinstance(output, (bytes, str)) and output[:1] in (b"{", "{"):
        return comparable(json.loads(output))
    if isinstance(output, dict):
        return {key: comparable(value) for key, value in output.items() if key not in _TIMINGS}
    return output


def stable(attributes: Any) -> dict[str, Any]:
    return {key: value for key, value in dict(attributes).items() if key not in VOLATILE}


def token_sums(telemetry: TelemetryCapture) -> dict[tuple[str, str], float]:
    sums: dict[tuple[str, str], float] = {}
    for point in telemetry.points(TOKENS):
        key = (point.attributes["gen_ai.request.model"], point.attributes["gen_ai.token.type"])
        sums[key] = sums.get(key, 0) + point.sum
    return sums


def instrument(telemetry: TelemetryCapture, **settings: Any) -> BedrockTokensInstrumentor:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **settings
    )
    return instrumentor


# One request per operation (and a few body families), as (operation, model, parameters).
CACHED_SYSTEM = [{"text": "You are terse. " * 40}, {"cachePoint": {"type": "default"}}]
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("InvokeModel", CLAUDE, {"body": claude_request("hello there")}),
    (
        "InvokeModel",
        NOVA,
        {"body": json.dumps({"messages": messages("hi nova"), "inferenceConfig": {"maxTokens": 40}})},
    ),
    ("InvokeModel", LLAMA, {"body": json.dumps({"prompt": "hi llama", "max_gen_len": 40})}),
    ("InvokeModel", TITAN, {"body": json.dumps({"inputText": "hi titan"})}),
    ("InvokeModelWithResponseStream", CLAUDE, {"body": claude_request("stream to me")}),
    ("InvokeModelWithResponseStream", LLAMA, {"body": json.dumps({"prompt": "stream llama"})}),
    (
        "Converse",
        CLAUDE,
        {"messages": messages("converse"), "inferenceConfig": {"maxTokens": 50, "temperature": 0.5}},
    ),
    ("Converse", CLAUDE, {"messages": messages("cached"), "system": CACHED_SYSTEM}),
    ("ConverseStream", NOVA, {"messages": messages("converse stream"), "inferenceConfig": {"topP": 0.9}}),
    ("ConverseStream", CLAUDE, {"messages": messages("cached stream"), "system": CACHED_SYSTEM}),
    ("CountTokens", CLAUDE, {"input": {"converse": {"messages": messages("count me")}}}),
]
METHODS = {
    "InvokeModel": "invoke_model",
    "InvokeModelWithResponseStream": "invoke_model_with_response_stream",
    "Converse": "converse",
    "ConverseStream": "converse_stream",
    "CountTokens": "count_tokens",
}


def sync_run(emulator: BedrockEmulator, telemetry: TelemetryCapture) -> list[Any]:
    instrumentor = instrument(telemetry)
    client = emulator.client()
    outputs = []
    try:
        for operation, model, params in REQUESTS:
            response = getattr(client, METHODS[operation])(modelId=model, **params)
            if "stream" in response:
                outputs.append(list(response["stream"]))
            elif operation == "InvokeModelWithResponseStream":
                outputs.append(list(response["body"]))
            elif "body" in response:
                outputs.append(response["body"].read())
            else:
                outputs.append(response.get("output", response.get("inputTokens")))
    finally:
        instrumentor.uninstrument()
    return outputs


def aio_run(emulator: BedrockEmulator, telemetry: TelemetryCapture) -> list[Any]:
    async def main() -> list[Any]:
        outputs: list[Any] = []
        async with aio_client(emulator.endpoint_url) as client:
            for operation, model, params in REQUESTS:
                response = await getattr(client, METHODS[operation])(modelId=model, **params)
                if operation == "InvokeModel":
                    assert type(response["body"]) is AioStreamingBody
                if operation.endswith("Stream"):
                    assert isinstance(response.get("body", response.get("stream")), AioEventStream)
                consumed = await consume(response)
                if operation == "InvokeModel":
                    outputs.append(consumed[0])
                elif consumed:
                    outputs.append(consumed)
                else:
                    outputs.append(response.get("output", response.get("inputTokens")))
        return outputs

    instrumentor = instrument(telemetry)
    try:
        return run(main())
    finally:
        instrumentor.uninstrument()


def test_every_operation_gives_the_sync_clients_spans_and_metrics() -> None:
    sync_telemetry, aio_telemetry = make_telemetry(), make_telemetry()
    with BedrockEmulator(cache_minimum=0) as first:
        sync_outputs = sync_run(first, sync_telemetry)
        sync_ledger = first.ledger.totals()
    with BedrockEmulator(cache_minimum=0) as second:
        aio_outputs = aio_run(second, aio_telemetry)
        aio_ledger = second.ledger.totals()
    # The emulator answers a prompt deterministically: the apps saw the same bytes and events...
    assert comparable(aio_outputs) == comparable(sync_outputs)
    assert aio_ledger == sync_ledger
    # ...and the telemetry is the same, span for span and point for point.
    sync_spans, aio_spans = sync_telemetry.spans(), aio_telemetry.spans()
    assert len(aio_spans) == len(REQUESTS)
    assert [s.name for s in aio_spans] == [s.name for s in sync_spans]
    assert [stable(s.attributes) for s in aio_spans] == [stable(s.attributes) for s in sync_spans]
    assert token_sums(aio_telemetry) == token_sums(sync_telemetry)
    durations = [p.count for p in aio_telemetry.points(DURATION)]
    assert sum(durations) == len(REQUESTS)
    # The cached requests really read and wrote the cache, and it shows.
    cache = [s.attributes.get("gen_ai.usage.cache_read.input_tokens", 0) for s in aio_spans]
    assert any(cache)


def test_metric_totals_equal_the_emulator_ledger(
    emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    aio_run(emulator, telemetry)
    ledger = emulator.ledger.totals()
    sums = token_sums(telemetry)
    for model in {model for _, model, _ in REQUESTS}:
        assert sums[(model, "input")] == ledger[model].total_input_tokens
        assert sums[(model, "output")] == ledger[model].output_tokens


def test_span_attributes_of_each_operation(emulator: BedrockEmulator, telemetry: TelemetryCapture) -> None:
    aio_run(emulator, telemetry)
    spans = {(s.attributes["gen_ai.request.model"], i): s for i, s in enumerate(telemetry.spans())}
    invoke = spans[(CLAUDE, 0)].attributes
    assert invoke["gen_ai.operation.name"] == "chat"
    assert invoke["gen_ai.request.max_tokens"] == 60
    assert invoke["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert invoke["gen_ai.response.id"].startswith("msg_")
    assert invoke["gen_ai.usage.output_tokens"] > 0
    assert invoke["server.address"] == "127.0.0.1"
    stream = spans[(CLAUDE, 4)].attributes
    assert stream["bedrock_tokens.stream.end"] == "completed"
    assert "bedrock_tokens.stream.incomplete" not in stream
    converse = spans[(CLAUDE, 6)].attributes
    assert converse["gen_ai.request.temperature"] == 0.5
    count = spans[(CLAUDE, 10)].attributes
    assert count["gen_ai.operation.name"] == "count_tokens"
    assert count["bedrock_tokens.prediction.input_tokens"] > 0
    assert "gen_ai.usage.input_tokens" not in count


def test_other_operations_pass_through_without_a_span(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    async def main() -> type[BaseException]:
        async with aio_client(emulator.endpoint_url) as client:
            with pytest.raises(Exception) as caught:
                await client.apply_guardrail(
                    guardrailIdentifier="g", guardrailVersion="1", source="INPUT", content=[]
                )
            return caught.type

    run(main())
    assert instrumented.spans() == ()


def test_span_is_current_during_the_call_and_not_after(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    """Nested HTTP spans are children of ours; the caller's context is left as it was."""
    from opentelemetry import trace

    seen: list[Any] = []

    async def main() -> None:
        async with aio_client(emulator.endpoint_url) as client:

            def before_send(**kwargs: Any) -> None:
                seen.append(trace.get_current_span())

            client.meta.events.register("before-send.bedrock-runtime.Converse", before_send)
            await client.converse(modelId=CLAUDE, messages=messages("context"))
            assert not trace.get_current_span().get_span_context().is_valid

    run(main())
    (span,) = instrumented.spans()
    assert [s.get_span_context().span_id for s in seen] == [span.context.span_id]


# --- every recording, sync against async ------------------------------------------------------

RECORDINGS = all_recordings()


def _sync_exchange(path: Path, telemetry: TelemetryCapture) -> tuple[list[Any], list[str]]:
    outcomes: list[Any] = []
    errors: list[str] = []
    instrumentor = instrument(telemetry)
    try:
        with replay_server() as replayer:
            interactions = load(path)
            replayer.serve(*interactions)
            for interaction in interactions:
                try:
                    response = call_recorded(replayer.client, interaction)
                except ClientError as error:
                    errors.append(error.response["Error"]["Code"])
                    continue
                if "stream" in response:
                    outcomes.append(list(response["stream"]))
                elif interaction.operation == "InvokeModelWithResponseStream":
                    outcomes.append(list(response["body"]))
                elif interaction.operation == "InvokeModel":
                    outcomes.append(response["body"].read())
                else:
                    outcomes.append(response["output"])
    finally:
        instrumentor.uninstrument()
    return outcomes, errors


def _aio_exchange(path: Path, telemetry: TelemetryCapture) -> tuple[list[Any], list[str]]:
    async def main(endpoint_url: str, interactions: list[Any]) -> tuple[list[Any], list[str]]:
        outcomes: list[Any] = []
        errors: list[str] = []
        async with aio_client(endpoint_url) as client:
            for interaction in interactions:
                try:
                    response = await call_recorded_async(client, interaction)
                except ClientError as error:
                    errors.append(error.response["Error"]["Code"])
                    continue
                consumed = await consume(response)
                if interaction.operation == "InvokeModel":
                    outcomes.append(consumed[0])
                elif consumed:
                    outcomes.append(consumed)
                else:
                    outcomes.append(response["output"])
        return outcomes, errors

    instrumentor = instrument(telemetry)
    try:
        with replay_server() as replayer:
            interactions = load(path)
            replayer.serve(*interactions)
            return run(main(replayer.endpoint_url, interactions))
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize("path", RECORDINGS, ids=[f"{p.parent.name}/{p.stem}" for p in RECORDINGS])
def test_recording_gives_the_same_telemetry_as_sync(path: Path) -> None:
    sync_telemetry, aio_telemetry = make_telemetry(), make_telemetry()
    sync_outcomes, sync_errors = _sync_exchange(path, sync_telemetry)
    aio_outcomes, aio_errors = _aio_exchange(path, aio_telemetry)
    assert aio_outcomes == sync_outcomes  # the app reads the same bytes and events
    assert aio_errors == sync_errors
    sync_spans, aio_spans = sync_telemetry.spans(), aio_telemetry.spans()
    assert len(aio_spans) == len(sync_spans) == len(load(path))
    assert [stable(s.attributes) for s in aio_spans] == [stable(s.attributes) for s in sync_spans]
    assert [s.status.status_code for s in aio_spans] == [s.status.status_code for s in sync_spans]
    assert token_sums(aio_telemetry) == token_sums(sync_telemetry)
