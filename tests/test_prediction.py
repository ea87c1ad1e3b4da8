"""CountTokens predictions alongside real calls, replayed through real boto3 over loopback."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from otel_bedrock_tokens import BedrockTokensInstrumentor, TokenBudgetExceeded
from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.settings import SettingError

from .support.replay import RECORDINGS, Interaction, Replayer, answer, call_recorded, load
from .support.telemetry import TelemetryCapture
from .support.transports import Driver

CLAUDE = RECORDINGS / "otel-contrib" / "test_invoke_model_with_content[anthropic.claude].yaml"  # 14 in
PROMPT_CACHE = RECORDINGS / "openllmetry" / "traces__test_anthropic__test_prompt_cache.yaml"  # 4+18131
CONVERSE = RECORDINGS / "otel-contrib" / "test_converse_with_content_different_events.yaml"  # 37 in
PROFILE_TOOL = RECORDINGS / "otel-contrib" / "test_invoke_model_with_content_tool_call[anthropic.claude].yaml"
IMPORTED = RECORDINGS / "openllmetry" / "traces__test_imported_model__test_imported_model_completion.yaml"
UNSUPPORTED = "The provided model doesn't support counting tokens."


def count(tokens: int) -> Interaction:
    return answer("CountTokens", 200, {"inputTokens": tokens})


def count_error(status: int, code: str, message: str = "no") -> Interaction:
    return answer("CountTokens", status, {"message": message}, error_code=code)


@pytest.fixture
def predicting(
    telemetry: TelemetryCapture, request: pytest.FixtureRequest
) -> Iterator[BedrockTokensInstrumentor]:
    settings: dict[str, Any] = getattr(request, "param", {"count_tokens": "parallel"})
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **settings
    )
    try:
        yield instrumentor
    finally:
        instrumentor.uninstrument()


def run(replayer: Replayer, interaction: Interaction, instrumentor: BedrockTokensInstrumentor) -> Any:
    """One call, its body read, its prediction settled. The replayed model answers after 0.2 s (a
    model is slower than CountTokens), so a parallel prediction lands on the span."""
    replayer.delay(interaction.operation, 0.2)
    replayer.serve(interaction)
    response = call_recorded(replayer.client, interaction)
    if "body" in response and hasattr(response["body"], "read"):
        response["body"].read()
    assert instrumentor.wait_for_predictions(timeout=10)
    return response


def outcomes(telemetry: TelemetryCapture) -> dict[str, float]:
    found: dict[str, float] = {}
    for point in telemetry.points("bedrock_tokens.client.prediction.outcomes"):
        status = point.attributes["bedrock_tokens.prediction.status"]
        found[status] = found.get(status, 0) + point.value
    return found


def count_requests(replayer: Replayer) -> list[str]:
    return [path for path, _ in replayer.received if path.endswith("/count-tokens")]


def test_exact_prediction_gives_zero_delta(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count(14))
    run(replayer, interaction, predicting)
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.prediction.input_tokens"] == 14
    assert span.attributes["bedrock_tokens.prediction.delta"] == 0
    assert span.attributes["bedrock_tokens.prediction.status"] == "ok"
    assert span.attributes["bedrock_tokens.prediction.source"] == "count_tokens"
    (error,) = telemetry.points("bedrock_tokens.client.prediction.error")
    assert (error.sum, error.attributes["bedrock_tokens.prediction.direction"]) == (0, "exact")
    assert outcomes(telemetry) == {"ok": 1}


def test_delta_compares_with_cache_inclusive_input(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    first, _ = load(PROMPT_CACHE)
    replayer.serve(count(18000))
    run(replayer, first, predicting)
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 18135
    assert span.attributes["bedrock_tokens.prediction.delta"] == 135
    (error,) = telemetry.points("bedrock_tokens.client.prediction.error")
    assert error.sum == pytest.approx(135 / 18000)
    assert error.attributes["bedrock_tokens.prediction.direction"] == "under"
    kinds = {
        point.attributes["bedrock_tokens.prediction.kind"]: point.sum
        for point in telemetry.points("bedrock_tokens.client.prediction.tokens")
    }
    assert kinds == {"predicted": 18000, "actual": 18135}


def test_count_tokens_request_carries_the_exact_body(
    predicting: BedrockTokensInstrumentor, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count(14))
    run(replayer, interaction, predicting)
    ((path, sent),) = [item for item in replayer.received if item[0].endswith("/count-tokens")]
    assert path == "/model/anthropic.claude-v2/count-tokens"
    import base64

    assert base64.b64decode(json.loads(sent)["input"]["invokeModel"]["body"]) == interaction.request_body


def test_converse_maps_to_the_converse_input(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CONVERSE)
    replayer.serve(count(37))
    run(replayer, interaction, predicting)
    ((_, sent),) = [item for item in replayer.received if item[0].endswith("/count-tokens")]
    converse = json.loads(sent)["input"]["converse"]
    assert converse["messages"] == json.loads(interaction.request_body)["messages"]
    assert "inferenceConfig" not in converse
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.prediction.delta"] == 0


def test_geo_prefix_is_stripped_for_count_tokens(
    predicting: BedrockTokensInstrumentor, replayer: Replayer
) -> None:
    first, _ = load(PROFILE_TOOL)
    replayer.serve(count(392))
    run(replayer, first, predicting)
    assert count_requests(replayer) == ["/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/count-tokens"]


def test_opaque_model_is_skipped_without_a_call(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(IMPORTED)
    run(replayer, interaction, predicting)
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.prediction.status"] == "skipped"
    assert span.attributes["bedrock_tokens.prediction.skip_reason"] == "opaque_model_id"
    assert count_requests(replayer) == []


@pytest.mark.parametrize(
    "predicting",
    [
        {
            "count_tokens": "parallel",
            "count_tokens_model_map": {load(IMPORTED)[0].model_id: "meta.llama3-8b-instruct-v1:0"},
        }
    ],
    indirect=True,
)
def test_opaque_model_can_be_mapped(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(IMPORTED)
    replayer.serve(count(6))
    run(replayer, interaction, predicting)
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.prediction.delta"] == 0


def test_unsupported_model_is_remembered(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count_error(400, "ValidationException", UNSUPPORTED))
    run(replayer, interaction, predicting)
    run(replayer, interaction, predicting)
    first, second = telemetry.spans()
    assert first.attributes["bedrock_tokens.prediction.status"] == "unsupported"
    assert second.attributes["bedrock_tokens.prediction.skip_reason"] == "remembered_unsupported"
    assert len(count_requests(replayer)) == 1
    assert "error.type" not in first.attributes  # the user's call succeeded
    assert outcomes(telemetry) == {"unsupported": 2}


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_missing_permission_or_region_is_remembered(
    code: str, predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count_error(403 if code.startswith("Access") else 404, code))
    run(replayer, interaction, predicting)
    run(replayer, interaction, predicting)
    assert len(count_requests(replayer)) == 1


def test_throttling_skips_only_that_prediction(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count_error(429, "ThrottlingException"), count(14))
    run(replayer, interaction, predicting)
    run(replayer, interaction, predicting)
    first, second = telemetry.spans()
    assert first.attributes["bedrock_tokens.prediction.status"] == "throttled"
    assert second.attributes["bedrock_tokens.prediction.status"] == "ok"
    assert len(count_requests(replayer)) == 2


def test_identical_request_is_answered_from_the_cache(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count(14))
    run(replayer, interaction, predicting)
    run(replayer, interaction, predicting)
    _, second = telemetry.spans()
    assert second.attributes["bedrock_tokens.prediction.source"] == "cache"
    assert second.attributes["bedrock_tokens.prediction.delta"] == 0
    assert len(count_requests(replayer)) == 1


@pytest.mark.parametrize(
    "predicting", [{"count_tokens": "parallel", "count_tokens_sample_rate": 0}], indirect=True
)
def test_sampled_out_requests_call_nothing(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    run(replayer, interaction, predicting)
    assert count_requests(replayer) == []
    assert outcomes(telemetry) == {"sampled_out": 1}


def test_our_count_tokens_call_is_not_a_user_span(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count(14))
    run(replayer, interaction, predicting)
    assert [span.name for span in telemetry.spans()] == ["chat anthropic.claude-v2"]
    assert telemetry.points("gen_ai.client.operation.duration")[0].count == 1


def test_users_own_count_tokens_is_an_ordinary_operation(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    replayer.serve(count(99))
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    result = replayer.client.count_tokens(
        modelId="anthropic.claude-v2", input={"invokeModel": {"body": body}}
    )
    assert result["inputTokens"] == 99
    (span,) = telemetry.spans()
    assert span.name == "count_tokens anthropic.claude-v2"
    assert span.attributes["bedrock_tokens.prediction.input_tokens"] == 99
    assert telemetry.points("gen_ai.client.token.usage") == []
    assert len(count_requests(replayer)) == 1  # not predicted itself


def test_late_prediction_reaches_the_metrics(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.delay("CountTokens", 0.6)
    replayer.serve(count(10))
    run(replayer, interaction, predicting)
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.prediction.status"] == "late"
    assert "bedrock_tokens.prediction.input_tokens" not in span.attributes
    (error,) = telemetry.points("bedrock_tokens.client.prediction.error")
    assert error.sum == pytest.approx((14 - 10) / 10)
    assert outcomes(telemetry) == {"ok": 1}


@pytest.mark.parametrize("predicting", [{"count_tokens": "before", "max_input_tokens": 10}], indirect=True)
def test_budget_guard_refuses_before_sending(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count(14))
    with pytest.raises(TokenBudgetExceeded) as refused:
        call_recorded(replayer.client, interaction)
    assert (refused.value.predicted, refused.value.limit) == (14, 10)
    assert [path for path, _ in replayer.received if path.endswith("/invoke")] == []
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == "otel_bedrock_tokens.prediction.TokenBudgetExceeded"


@pytest.mark.parametrize(
    "predicting",
    [{"count_tokens": "before", "max_input_tokens": {"anthropic.claude-v2": 10, "*": 1000}}],
    indirect=True,
)
def test_budget_is_per_model(predicting: BedrockTokensInstrumentor, replayer: Replayer) -> None:
    (interaction,) = load(CLAUDE)
    replayer.serve(count(14))
    with pytest.raises(TokenBudgetExceeded):
        call_recorded(replayer.client, interaction)


def test_budget_callback_decides(telemetry: TelemetryCapture, replayer: Replayer) -> None:
    seen: list[tuple[str, int, int]] = []

    def allow(model_id: str, predicted: int, limit: int) -> bool:
        seen.append((model_id, predicted, limit))
        return True

    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        count_tokens="before",
        max_input_tokens=10,
        on_budget_exceeded=allow,
    )
    try:
        (interaction,) = load(CLAUDE)
        replayer.serve(count(14))
        run(replayer, interaction, instrumentor)
    finally:
        instrumentor.uninstrument()
    assert seen == [("anthropic.claude-v2", 14, 10)]
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.prediction.input_tokens"] == 14
    assert "error.type" not in span.attributes


@pytest.mark.parametrize(
    "predicting", [{"count_tokens": "before", "count_tokens_timeout": 0.05}], indirect=True
)
def test_before_mode_timeout_sends_anyway(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    replayer.delay("CountTokens", 0.5)
    replayer.serve(count(14))
    run(replayer, interaction, predicting)
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.prediction.status"] == "timeout"
    assert span.attributes["gen_ai.usage.input_tokens"] == 14


@pytest.mark.parametrize(
    "predicting", [{"count_tokens": "parallel", "count_tokens_timeout": 60}], indirect=True
)  # a generous timeout: under a loaded machine a late answer must not count as a timeout
def test_concurrent_calls_are_each_predicted(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    calls = 24
    replayer.serve(*([interaction] * calls))
    replayer.serve(count(14))  # the first prediction fills the cache; racing ones may ask again
    replayer.serve(*([count(14)] * calls))
    errors: list[BaseException] = []

    def one() -> None:
        try:
            call_recorded(replayer.client, interaction)["body"].read()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=one) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)  # failure guards only: 24 threads on a loaded machine take a while
    assert not any(thread.is_alive() for thread in threads)
    assert not errors
    assert predicting.wait_for_predictions(timeout=60)
    spans = telemetry.spans()
    assert len(spans) == calls
    assert sum(outcomes(telemetry).values()) == calls
    assert set(outcomes(telemetry)) <= {"ok", "skipped"}  # skipped only if the queue was full
    for span in spans:
        if span.attributes.get("bedrock_tokens.prediction.status") == "ok":
            assert span.attributes["bedrock_tokens.prediction.delta"] == 0


def test_failed_call_still_records_its_prediction(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    (interaction,) = load(CLAUDE)
    throttled = answer("InvokeModel", 429, {"message": "slow down"}, error_code="ThrottlingException")
    replayer.serve(count(14), throttled)
    replayer.delay("InvokeModel", 0.2)
    with pytest.raises(ClientError):
        call_recorded(replayer.client, interaction)
    assert predicting.wait_for_predictions(timeout=10)
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == "ThrottlingException"
    assert telemetry.points("bedrock_tokens.client.prediction.error") == []


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"count_tokens": "sometimes"}, "count_tokens"),
        ({"count_tokens": "parallel", "count_tokens_sample_rate": 2}, "count_tokens_sample_rate"),
        ({"count_tokens": "parallel", "count_tokens_workers": 0}, "count_tokens_workers"),
        ({"count_tokens": "parallel", "max_input_tokens": 10}, "max_input_tokens"),
        ({"count_tokens": "before", "max_input_tokens": -1}, "max_input_tokens"),
        ({"count_tokens": "parallel", "count_tokens_model_map": "no-equals"}, "count_tokens_model_map"),
        ({"on_budget_exceeded": 3}, "on_budget_exceeded"),
    ],
)
def test_bad_settings_name_the_setting(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingError, match=named):
        BedrockTokensInstrumentor().instrument(**settings)
    BedrockTokensInstrumentor().uninstrument()


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BEDROCK_TOKENS_COUNT_TOKENS", "always")
    with pytest.raises(SettingError, match="OTEL_BEDROCK_TOKENS_COUNT_TOKENS"):
        BedrockTokensInstrumentor().instrument()
    BedrockTokensInstrumentor().uninstrument()


def test_environment_enables_prediction(
    monkeypatch: pytest.MonkeyPatch, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    monkeypatch.setenv("OTEL_BEDROCK_TOKENS_COUNT_TOKENS", "parallel")
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        (interaction,) = load(CLAUDE)
        replayer.serve(count(14))
        run(replayer, interaction, instrumentor)
    finally:
        instrumentor.uninstrument()
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.prediction.status"] == "ok"


def test_a_call_that_fails_before_sending_asks_nothing(
    predicting: BedrockTokensInstrumentor, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    """parallel mode starts CountTokens when the request is sent: a request botocore refuses to
    build (wrong parameter type) sends nothing, and the next call on the thread is unaffected."""
    from botocore.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        replayer.client.converse(modelId="anthropic.claude-v2", messages="not a list")
    (interaction,) = load(CLAUDE)
    replayer.serve(count(14))
    run(replayer, interaction, predicting)
    first, second = telemetry.spans()
    assert first.attributes["bedrock_tokens.prediction.skip_reason"] == "request_not_sent"
    assert second.attributes["bedrock_tokens.prediction.delta"] == 0
    assert len(count_requests(replayer)) == 1


# --- on every transport, against the emulator (its CountTokens predicts exactly what it bills) ---------

EMULATED_CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
STATUS = "bedrock_tokens.prediction.status"
#: Seconds CountTokens takes in the timeout test: it never answers within the test (stopping the
#: emulator aborts the wait), so a loaded machine cannot let it beat the 0.05 s prediction timeout.
SLOW_COUNT = 60.0


def messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def span_attributes(telemetry: TelemetryCapture) -> list[dict[str, Any]]:
    return [dict(span.attributes) for span in telemetry.spans()]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def test_identical_requests_are_predicted_from_the_cache_on_every_transport(
    transport: Driver, emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    make_instrumentor(count_tokens="before")
    with transport.client(emulator.endpoint_url) as client:
        for _ in range(3):
            client.converse(modelId=EMULATED_CLAUDE, messages=messages("the same words"))
    sources = [span["bedrock_tokens.prediction.source"] for span in span_attributes(telemetry)]
    assert sources == ["count_tokens", "cache", "cache"]
    assert emulator.ledger.total().count_tokens_calls == 1


def test_prediction_answered_in_time_is_on_the_span_on_every_transport(
    transport: Driver, emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    make_instrumentor(count_tokens="before")  # waits, so the answer is in before the span ends
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 60,
        "messages": [{"role": "user", "content": "and this"}],
    }
    with transport.client(emulator.endpoint_url) as client:
        client.converse(modelId=EMULATED_CLAUDE, messages=messages("how many tokens is this"))
        response = client.invoke_model(modelId=EMULATED_CLAUDE, body=json.dumps(body))
        transport.resolve(response["body"].read())
    converse, invoke = span_attributes(telemetry)  # our own CountTokens calls are not user calls
    for span in (converse, invoke):
        assert span[STATUS] == "ok"
        assert span["bedrock_tokens.prediction.source"] == "count_tokens"
        assert span["bedrock_tokens.prediction.input_tokens"] == span["gen_ai.usage.input_tokens"]
        assert span["bedrock_tokens.prediction.delta"] == 0
    assert outcomes(telemetry) == {"ok": 2}


def test_before_mode_timeout_lets_the_call_go_on_every_transport(
    transport: Driver,
    emulator: BedrockEmulator,
    telemetry: TelemetryCapture,
    make_instrumentor: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.set_latency(SLOW_COUNT, operation="CountTokens")
    make_instrumentor(count_tokens="before", count_tokens_timeout=0.05)
    caplog.set_level(logging.DEBUG)
    with transport.client(emulator.endpoint_url) as client:
        client.converse(modelId=EMULATED_CLAUDE, messages=messages("too slow to count"))
    # The client closes under the still-running CountTokens: that failure stays ours, unlogged.
    # (No wall-time assertion: the "timeout" status below says the call did not wait.)
    (span,) = span_attributes(telemetry)
    assert span[STATUS] == "timeout"
    assert outcomes(telemetry) == {"timeout": 1}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_budget_guard_refuses_before_sending_on_every_transport(
    transport: Driver, emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    make_instrumentor(count_tokens="before", max_input_tokens=3)
    with transport.client(emulator.endpoint_url) as client, pytest.raises(TokenBudgetExceeded) as refused:
        client.converse(modelId=EMULATED_CLAUDE, messages=messages("far more than three tokens here"))
    assert refused.value.limit == 3 and refused.value.predicted > 3
    assert emulator.ledger.total().by_operation == {"CountTokens": 1}  # the call itself was never sent
    (span,) = span_attributes(telemetry)
    assert span["error.type"] == "otel_bedrock_tokens.prediction.TokenBudgetExceeded"


def test_unsupported_model_is_remembered_on_every_transport(
    transport: Driver, emulator: BedrockEmulator, telemetry: TelemetryCapture, make_instrumentor: Any
) -> None:
    emulator.set_count_tokens_support(EMULATED_CLAUDE, False)
    make_instrumentor(count_tokens="before")
    with transport.client(emulator.endpoint_url) as client:
        client.converse(modelId=EMULATED_CLAUDE, messages=messages("first"))
        client.converse(modelId=EMULATED_CLAUDE, messages=messages("second"))
    first, second = span_attributes(telemetry)
    assert first[STATUS] == "unsupported"
    assert second[STATUS] == "unsupported"
    assert second["bedrock_tokens.prediction.skip_reason"] == "remembered_unsupported"
    assert emulator.ledger.total().count_tokens_errors == 1
