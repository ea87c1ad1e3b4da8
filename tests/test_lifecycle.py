"""instrument / uninstrument and suppression (on every transport: botocore, aiobotocore), settings
errors, and living with the official botocore instrumentation (opentelemetry-instrumentation-botocore).

What a user who enables both gets (documented by the coexistence tests below):

- two CLIENT spans per Bedrock call, one per library, the outer library's span the parent of the
  inner one's (whichever was instrumented last is outer);
- both libraries' ``gen_ai.client.token.usage`` points, in two instrumentation scopes. They differ
  where the official library leaves prompt-cache tokens out of ``input`` (semconv says include them):
  for a prompt-cache write of 18131 tokens with 4 uncached input tokens, ours says 18135, theirs 4;
- the call's result unchanged (the body bytes identical), whichever order;
- uninstrumenting either one leaves the other working, in either order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.endpoint import Endpoint
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.replay import RECORDINGS, Replayer, call_recorded, claude_body, load, synthetic
from .support.telemetry import TelemetryCapture
from .support.transports import Driver, aio_available

OUR_SCOPE = "otel_bedrock_tokens"
THEIR_SCOPE = "opentelemetry.instrumentation.botocore"
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "lifecycle"}]}]
PROMPT_CACHE = load(RECORDINGS / "openllmetry" / "traces__test_anthropic__test_prompt_cache.yaml")[0]


@pytest.fixture
def pristine_botocore() -> Iterator[None]:
    """Whatever a test does to the patched surfaces, the next test starts from botocore's own."""
    make_api_call = BaseClient.__dict__["_make_api_call"]
    prepare_request = Endpoint.__dict__["prepare_request"]
    aio_class: Any = None
    if aio_available():
        from aiobotocore.client import AioBaseClient

        aio_class = AioBaseClient
        aio_make_api_call = AioBaseClient.__dict__["_make_api_call"]
    try:
        yield
    finally:
        for instrumentor in (BedrockTokensInstrumentor(), BotocoreInstrumentor()):
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        BaseClient._make_api_call = make_api_call
        Endpoint.prepare_request = prepare_request
        if aio_class is not None:
            aio_class._make_api_call = aio_make_api_call


def _instrument(instrumentor: Any, telemetry: TelemetryCapture) -> None:
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )


def _call(replayer: Replayer) -> bytes:
    replayer.serve(PROMPT_CACHE)
    return call_recorded(replayer.client, PROMPT_CACHE)["body"].read()  # type: ignore[no-any-return]


def _call_on(transport: Driver, replayer: Replayer, times: int = 1) -> list[bytes]:
    """``times`` recorded calls through ``transport``; the bodies read."""
    replayer.serve(*[PROMPT_CACHE] * times)
    with transport.client(replayer.endpoint_url) as client:
        return [
            transport.resolve(transport.call_recorded(client, PROMPT_CACHE)["body"].read())
            for _ in range(times)
        ]


def _owner(scope_name: str) -> str:
    if scope_name.startswith(OUR_SCOPE):
        return "ours"
    assert scope_name.startswith(THEIR_SCOPE), scope_name
    return "theirs"


def _scopes(telemetry: TelemetryCapture) -> list[str]:
    return sorted(_owner(span.instrumentation_scope.name) for span in telemetry.spans())


# --- our own lifecycle ----------------------------------------------------------------------------------


def test_uninstrument_restores_the_original_function(
    transport: Driver, pristine_botocore: None, telemetry: TelemetryCapture
) -> None:
    patched = transport.patched_class()
    original = patched.__dict__["_make_api_call"]
    instrumentor = BedrockTokensInstrumentor()
    _instrument(instrumentor, telemetry)
    assert patched.__dict__["_make_api_call"] is not original
    assert patched.__dict__["_make_api_call"].__wrapped__ is original
    instrumentor.uninstrument()
    assert patched.__dict__["_make_api_call"] is original


def test_instrument_twice_measures_each_call_once(
    transport: Driver, pristine_botocore: None, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    instrumentor = BedrockTokensInstrumentor()
    _instrument(instrumentor, telemetry)
    _instrument(instrumentor, telemetry)
    _call_on(transport, replayer)
    assert len(telemetry.spans()) == 1
    assert sum(p.count for p in telemetry.points("gen_ai.client.operation.duration")) == 1


def test_instrument_twice_then_uninstrument_once_restores_the_original(
    transport: Driver, pristine_botocore: None, telemetry: TelemetryCapture
) -> None:
    patched = transport.patched_class()
    original = patched.__dict__["_make_api_call"]
    instrumentor = BedrockTokensInstrumentor()
    _instrument(instrumentor, telemetry)
    _instrument(instrumentor, telemetry)
    instrumentor.uninstrument()
    assert patched.__dict__["_make_api_call"] is original


def test_nothing_is_measured_after_uninstrument(
    transport: Driver, pristine_botocore: None, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    instrumentor = BedrockTokensInstrumentor()
    _instrument(instrumentor, telemetry)
    instrumentor.uninstrument()
    assert _call_on(transport, replayer) == [PROMPT_CACHE.body]
    assert telemetry.spans() == ()


def test_instrument_again_after_uninstrument_measures_each_call_once(
    transport: Driver, pristine_botocore: None, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    instrumentor = BedrockTokensInstrumentor()
    _instrument(instrumentor, telemetry)
    instrumentor.uninstrument()
    _instrument(instrumentor, telemetry)
    _call_on(transport, replayer, times=2)
    assert len(telemetry.spans()) == 2


def test_uninstrument_without_instrument_is_harmless(transport: Driver, pristine_botocore: None) -> None:
    patched = transport.patched_class()
    original = patched.__dict__["_make_api_call"]
    BedrockTokensInstrumentor().uninstrument()
    assert patched.__dict__["_make_api_call"] is original


def test_suppress_instrumentation_records_nothing(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    with suppress_instrumentation():
        bodies = _call_on(transport, replayer)
    assert bodies == [PROMPT_CACHE.body]
    assert instrumented.spans() == ()
    assert instrumented.points("gen_ai.client.token.usage") == []


def test_measuring_resumes_after_suppression(
    transport: Driver, instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    with suppress_instrumentation():
        _call_on(transport, replayer)
    _call_on(transport, replayer)
    assert len(instrumented.spans()) == 1


def test_a_stream_in_flight_at_uninstrument_still_ends_its_span(
    transport: Driver, pristine_botocore: None, telemetry: TelemetryCapture
) -> None:
    instrumentor = BedrockTokensInstrumentor()
    _instrument(instrumentor, telemetry)
    with BedrockEmulator() as emulator, transport.client(emulator.endpoint_url) as client:
        response = client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
        instrumentor.uninstrument()
        assert transport.events(response["stream"])
    (span,) = telemetry.spans()
    assert span.attributes["bedrock_tokens.stream.end"] == "completed"


def test_sync_and_async_clients_share_settings(pristine_botocore: None, telemetry: TelemetryCapture) -> None:
    pytest.importorskip("aiobotocore")
    from .support.transports import AioDriver

    seen: list[str] = []
    BedrockTokensInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        request_hook=lambda span, service, operation, params: seen.append(operation),
    )
    aio = AioDriver()
    try:
        with BedrockEmulator() as emulator:
            emulator.client().converse(modelId=CLAUDE, messages=MESSAGES)
            with aio.client(emulator.endpoint_url) as client:
                client.converse(modelId=CLAUDE, messages=MESSAGES)
    finally:
        aio.close()
    assert seen == ["Converse", "Converse"]
    sync_span, aio_span = telemetry.spans()
    assert sync_span.instrumentation_scope == aio_span.instrumentation_scope


def test_the_patched_aio_method_is_still_a_coroutine_function(
    pristine_botocore: None, telemetry: TelemetryCapture
) -> None:
    """Code that checks ``inspect.iscoroutinefunction`` on the method sees what aiobotocore has."""
    pytest.importorskip("aiobotocore")
    import inspect

    from aiobotocore.client import AioBaseClient

    original_name = AioBaseClient.__dict__["_make_api_call"].__name__
    _instrument(BedrockTokensInstrumentor(), telemetry)
    assert inspect.iscoroutinefunction(AioBaseClient._make_api_call)
    assert AioBaseClient.__dict__["_make_api_call"].__name__ == original_name


# --- settings errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["request_hook", "response_hook"])
def test_non_callable_hook_is_a_clear_error_naming_the_setting(
    keyword: str, pristine_botocore: None, telemetry: TelemetryCapture
) -> None:
    with pytest.raises(ValueError, match=rf"{keyword}.*callable"):
        BedrockTokensInstrumentor().instrument(tracer_provider=telemetry.tracer_provider, **{keyword: 42})


def test_settings_error_leaves_botocore_unpatched(
    pristine_botocore: None, telemetry: TelemetryCapture
) -> None:
    original = BaseClient.__dict__["_make_api_call"]
    with pytest.raises(ValueError):
        BedrockTokensInstrumentor().instrument(request_hook="not callable")
    assert BaseClient.__dict__["_make_api_call"] is original
    assert not BedrockTokensInstrumentor().is_instrumented_by_opentelemetry


# --- coexistence with opentelemetry-instrumentation-botocore ---------------------------------------------

ORDERS = pytest.mark.parametrize("order", ["theirs_first", "ours_first"])


@pytest.fixture
def both(order: str, pristine_botocore: None, telemetry: TelemetryCapture) -> TelemetryCapture:
    ours, theirs = BedrockTokensInstrumentor(), BotocoreInstrumentor()
    for instrumentor in (theirs, ours) if order == "theirs_first" else (ours, theirs):
        _instrument(instrumentor, telemetry)
    return telemetry


@ORDERS
def test_both_leave_the_result_unchanged(both: TelemetryCapture, replayer: Replayer) -> None:
    assert _call(replayer) == PROMPT_CACHE.body


@ORDERS
def test_both_give_two_spans_one_the_parent_of_the_other(both: TelemetryCapture, replayer: Replayer) -> None:
    _call(replayer)
    assert _scopes(both) == ["ours", "theirs"]
    inner, outer = both.spans()  # the inner span ends first
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


@ORDERS
def test_ours_is_always_the_inner_span(order: str, both: TelemetryCapture, replayer: Replayer) -> None:
    """We wrap below any existing wrapper (so their uninstrument() cannot strip us): their AWS SDK
    span is the parent of our GenAI span, whichever was instrumented first."""
    _call(replayer)
    inner, outer = both.spans()
    assert (_owner(inner.instrumentation_scope.name), _owner(outer.instrumentation_scope.name)) == (
        "ours",
        "theirs",
    )
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


@ORDERS
def test_both_record_token_metrics_ours_including_the_cache(
    both: TelemetryCapture, replayer: Replayer
) -> None:
    _call(replayer)
    by_scope: dict[str, float] = {}
    data = both.reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != "gen_ai.client.token.usage":
                    continue
                for point in metric.data.data_points:
                    if point.attributes["gen_ai.token.type"] == "input":
                        by_scope[_owner(scope_metrics.scope.name)] = point.sum
    assert by_scope == {"ours": 4 + 18131, "theirs": 4}


@ORDERS
def test_uninstrumenting_ours_leaves_theirs_working(both: TelemetryCapture, replayer: Replayer) -> None:
    BedrockTokensInstrumentor().uninstrument()
    assert _call(replayer) == PROMPT_CACHE.body
    assert _scopes(both) == ["theirs"]


@pytest.mark.parametrize(
    "order",
    [
        "theirs_first",
        "ours_first",
    ],
)
def test_uninstrumenting_theirs_leaves_ours_working(both: TelemetryCapture, replayer: Replayer) -> None:
    BotocoreInstrumentor().uninstrument()
    assert _call(replayer) == PROMPT_CACHE.body
    assert _scopes(both) == ["ours"]


@pytest.mark.parametrize("order", ["theirs_first", "ours_first"])
def test_uninstrumenting_theirs_then_ours_measures_nothing(
    order: str, both: TelemetryCapture, replayer: Replayer
) -> None:
    BotocoreInstrumentor().uninstrument()
    BedrockTokensInstrumentor().uninstrument()
    _call(replayer)
    assert both.spans() == ()


@ORDERS
def test_uninstrumenting_ours_then_theirs_measures_nothing(
    order: str, both: TelemetryCapture, replayer: Replayer
) -> None:
    BedrockTokensInstrumentor().uninstrument()
    BotocoreInstrumentor().uninstrument()
    _call(replayer)
    assert both.spans() == ()


def test_uninstrumenting_ours_under_theirs_removes_our_wrapper(
    pristine_botocore: None, telemetry: TelemetryCapture
) -> None:
    import wrapt

    _instrument(BedrockTokensInstrumentor(), telemetry)
    _instrument(BotocoreInstrumentor(), telemetry)
    BedrockTokensInstrumentor().uninstrument()
    proxy = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
    chain, current = [], BaseClient.__dict__["_make_api_call"]
    while isinstance(current, proxy) and len(chain) < 10:
        chain.append(type(current._self_wrapper).__name__)
        current = current.__wrapped__
    assert "BotocoreAdapter" not in chain


def test_a_call_under_both_with_a_claude_body_keeps_bytes(
    pristine_botocore: None, telemetry: TelemetryCapture, replayer: Replayer
) -> None:
    """The official library also reads and replaces the InvokeModel body: two replacements in a row."""
    _instrument(BotocoreInstrumentor(), telemetry)
    _instrument(BedrockTokensInstrumentor(), telemetry)
    interaction = synthetic(claude_body())
    replayer.serve(interaction)
    assert call_recorded(replayer.client, interaction)["body"].read() == claude_body()
