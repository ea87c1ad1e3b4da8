"""Cost on the call path, through real boto3 against the emulator: span cost checked against
genai-prices computed independently, the cost counter summing to the span costs, the unpriced path,
the user price file, the money budget, and the zero-cost path when genai-prices is not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_bedrock_tokens import BedrockTokensInstrumentor, TokenBudgetExceeded, names
from otel_bedrock_tokens.billing import BillingTerms
from otel_bedrock_tokens.emulator import BedrockEmulator
from otel_bedrock_tokens.facts import RequestFacts, RequestParams, ResponseFacts
from otel_bedrock_tokens.model_id import parse_model_id
from otel_bedrock_tokens.pricing import PriceBook, parse_price_document
from otel_bedrock_tokens.settings import SettingError
from otel_bedrock_tokens.telemetry import Instruments
from otel_bedrock_tokens.usage import Usage

from .support.telemetry import TelemetryCapture, make_telemetry

try:  # the [cost] extra; genai-prices 0.2 needs Python 3.11+
    from genai_prices import Usage as GenaiUsage
    from genai_prices import __version__ as GENAI_VERSION
    from genai_prices import calc_price
except ImportError:  # pragma: no cover - Python 3.10
    GENAI_VERSION = ""

needs_genai = pytest.mark.skipif(not GENAI_VERSION, reason="genai-prices is not installed")

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
ROUTER = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"
ROUTED_REF = "us.anthropic.claude-3-haiku-20240307-v1:0"
PROFILE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
MESSAGES = [{"role": "user", "content": [{"text": "Hi"}]}]
SYSTEM_1H = [{"text": "Be brief. " * 50}, {"cachePoint": {"type": "default", "ttl": "1h"}}]
SYSTEM_5M = [{"text": "Be brief. " * 50}, {"cachePoint": {"type": "default"}}]


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator(cache_minimum=0) as running:
        yield running


def genai_usd(ref: str, usage: dict[str, Any]) -> float:
    """genai-prices' own price of a Converse ``usage`` (input includes the cache, as its README says)."""
    read = usage.get("cacheReadInputTokens", 0)
    write = usage.get("cacheWriteInputTokens", 0)
    hour = sum(detail["inputTokens"] for detail in usage.get("cacheDetails", []) if detail["ttl"] == "1h")
    genai_usage = GenaiUsage(
        input_tokens=usage["inputTokens"] + read + write,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=hour,
        output_tokens=usage["outputTokens"],
    )
    return float(calc_price(genai_usage, ref, provider_id="aws").total_price)


def cost_total(telemetry: TelemetryCapture, **attributes: Any) -> float:
    return sum(
        point.value
        for point in telemetry.points(names.COST)
        if all(point.attributes.get(key) == value for key, value in attributes.items())
    )


@needs_genai
@pytest.mark.parametrize("system", [None, SYSTEM_5M, SYSTEM_1H], ids=["plain", "cache-5m", "cache-1h"])
def test_span_cost_matches_genai_prices(
    instrumented: TelemetryCapture, emulator: BedrockEmulator, system: Any
) -> None:
    client = emulator.client()
    extra = {"system": system} if system else {}
    usages = [client.converse(modelId=HAIKU, messages=MESSAGES, **extra)["usage"] for _ in range(2)]
    for span, usage in zip(instrumented.spans(), usages, strict=True):
        assert span.attributes[names.COST_USD] == pytest.approx(genai_usd(HAIKU, usage), rel=1e-9)
        assert span.attributes[names.COST_SOURCE] == f"genai-prices {GENAI_VERSION}"


@needs_genai
def test_cost_counter_sums_to_span_costs_over_real_calls(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    client = emulator.client()
    client.converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM_1H)
    client.converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM_1H)
    client.converse(modelId=HAIKU, messages=MESSAGES, serviceTier={"type": "default"})
    client.invoke_model(
        modelId=HAIKU,
        body=json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 9,
                "messages": [{"role": "user", "content": "Hi"}],
            }
        ),
    )
    spans_total = sum(span.attributes[names.COST_USD] for span in instrumented.spans())
    assert spans_total > 0
    assert cost_total(instrumented) == pytest.approx(spans_total, rel=1e-12)


@needs_genai
def test_cost_points_carry_component_and_tier(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    emulator.client().converse(
        modelId=HAIKU, messages=MESSAGES, system=SYSTEM_1H, serviceTier={"type": "default"}
    )
    points = instrumented.points(names.COST)
    assert {point.attributes[names.COST_COMPONENT] for point in points} == {"input", "output", "cache_write"}
    assert all(point.attributes[names.SERVICE_TIER] == "default" for point in points)
    assert all(point.attributes["gen_ai.request.model"] == HAIKU for point in points)


@needs_genai
def test_cache_savings_counter(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    client = emulator.client()
    client.converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM_5M)
    read = client.converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM_5M)["usage"][
        "cacheReadInputTokens"
    ]
    assert read > 0
    (point,) = instrumented.points(names.CACHE_SAVINGS)
    as_uncached = genai_usd(HAIKU, {"inputTokens": read, "outputTokens": 0})
    as_read = genai_usd(HAIKU, {"inputTokens": 0, "cacheReadInputTokens": read, "outputTokens": 0})
    assert point.value == pytest.approx(as_uncached - as_read, rel=1e-9)


@needs_genai
def test_prompt_router_call_priced_at_the_routed_model(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    usage = emulator.client().converse(modelId=ROUTER, messages=MESSAGES)["usage"]
    (span,) = instrumented.spans()
    assert span.attributes[names.COST_USD] == pytest.approx(genai_usd(ROUTED_REF, usage), rel=1e-9)


@needs_genai
def test_a_tier_without_a_price_is_unpriced(
    instrumented: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    emulator.reserve(HAIKU)
    emulator.client().converse(modelId=HAIKU, messages=MESSAGES, serviceTier={"type": "reserved"})
    (span,) = instrumented.spans()
    assert span.attributes[names.COST_SOURCE] == names.COST_SOURCE_UNPRICED
    assert names.COST_USD not in span.attributes
    assert instrumented.points(names.COST) == []


def test_an_opaque_model_is_unpriced(instrumented: TelemetryCapture, emulator: BedrockEmulator) -> None:
    emulator.alias(PROFILE, HAIKU)
    emulator.client().converse(modelId=PROFILE, messages=MESSAGES)
    (span,) = instrumented.spans()
    assert span.attributes[names.COST_SOURCE] == names.COST_SOURCE_UNPRICED
    assert names.COST_USD not in span.attributes
    assert instrumented.points(names.COST) == []


def test_user_price_file_prices_an_opaque_profile(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    telemetry: TelemetryCapture,
    make_instrumentor: Any,
    emulator: BedrockEmulator,
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({PROFILE: {"input_mtok": 2, "output_mtok": 10}}))
    monkeypatch.setenv("OTEL_BEDROCK_TOKENS_PRICES", str(path))
    make_instrumentor()
    emulator.alias(PROFILE, HAIKU)
    usage = emulator.client().converse(modelId=PROFILE, messages=MESSAGES)["usage"]
    (span,) = telemetry.spans()
    expected = (usage["inputTokens"] * 2 + usage["outputTokens"] * 10) / 1_000_000
    assert span.attributes[names.COST_USD] == pytest.approx(expected, rel=1e-12)
    assert span.attributes[names.COST_SOURCE] == names.COST_SOURCE_USER


def test_user_prices_for_the_priority_tier(
    telemetry: TelemetryCapture, make_instrumentor: Any, emulator: BedrockEmulator
) -> None:
    make_instrumentor(prices={HAIKU: {"priority": {"input_mtok": 1.4, "output_mtok": 7}}})
    usage = emulator.client().converse(modelId=HAIKU, messages=MESSAGES, serviceTier={"type": "priority"})[
        "usage"
    ]
    (span,) = telemetry.spans()
    expected = (usage["inputTokens"] * 1.4 + usage["outputTokens"] * 7) / 1_000_000
    assert span.attributes[names.COST_USD] == pytest.approx(expected, rel=1e-12)
    assert {point.attributes[names.SERVICE_TIER] for point in telemetry.points(names.COST)} == {"priority"}


def test_a_bad_price_file_fails_at_instrument(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"m": {"input_mtok": "cheap"}}')
    instrumentor = BedrockTokensInstrumentor()
    with pytest.raises(SettingError, match=r"prices.*input_mtok must be a number"):
        instrumentor.instrument(prices=str(path))
    instrumentor.uninstrument()


def test_no_genai_prices_and_no_file_means_no_cost(
    monkeypatch: pytest.MonkeyPatch,
    telemetry: TelemetryCapture,
    make_instrumentor: Any,
    emulator: BedrockEmulator,
) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # as if not installed: find_spec says None
    instrumentor = make_instrumentor()
    assert type(instrumentor)._adapter.lifecycle.telemetry.cost is None
    emulator.client().converse(modelId=HAIKU, messages=MESSAGES)
    (span,) = telemetry.spans()
    assert not any(key.startswith("bedrock_tokens.cost") for key in span.attributes)
    assert telemetry.points(names.COST) == []


def test_instrument_does_not_import_genai_prices() -> None:
    code = (
        "import sys\n"
        "from otel_bedrock_tokens import BedrockTokensInstrumentor\n"
        "BedrockTokensInstrumentor().instrument()\n"
        "assert 'genai_prices' not in sys.modules, 'imported'\n"
        "assert 'pydantic' not in sys.modules, 'pydantic imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@needs_genai
def test_money_budget_refuses_with_the_figures(
    telemetry: TelemetryCapture, make_instrumentor: Any, emulator: BedrockEmulator
) -> None:
    make_instrumentor(count_tokens="before", max_request_cost_usd=1e-7)
    with pytest.raises(TokenBudgetExceeded) as refused:
        emulator.client().converse(modelId=HAIKU, messages=MESSAGES, inferenceConfig={"maxTokens": 500})
    error = refused.value
    assert error.limit_usd == 1e-7 and error.cost_usd is not None and error.cost_usd > 1e-7
    assert error.max_output_tokens == 500
    assert "max_request_cost_usd" in str(error) and "USD" in str(error)
    assert [entry.operation for entry in emulator.ledger.entries()] == ["CountTokens"]  # nothing sent


@needs_genai
def test_money_budget_lets_a_cheap_request_through(
    telemetry: TelemetryCapture, make_instrumentor: Any, emulator: BedrockEmulator
) -> None:
    make_instrumentor(count_tokens="before", max_request_cost_usd=1.0)
    emulator.client().converse(modelId=HAIKU, messages=MESSAGES, inferenceConfig={"maxTokens": 500})
    (span,) = telemetry.spans()
    assert span.attributes[names.COST_USD] > 0


# --- property: the counter sums to the span costs ------------------------------------------------

_USER_PRICES = parse_price_document(
    {
        HAIKU: {
            "default": {
                "input_mtok": 0.8,
                "output_mtok": 4,
                "cache_read_mtok": 0.08,
                "cache_write_mtok": 1,
                "cache_write_1h_mtok": 1.6,
            },
            "priority": {"input_mtok": 1.4, "output_mtok": 7},
        }
    }
)
_TOKENS = st.integers(min_value=0, max_value=300_000)
_CALL = st.tuples(
    _TOKENS,
    _TOKENS,
    _TOKENS,
    _TOKENS,
    _TOKENS,
    st.sampled_from([None, "default", "priority", "flex"]),
    st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_CALL, min_size=1, max_size=8))
def test_cost_counter_sum_equals_span_costs(calls: list[tuple[Any, ...]]) -> None:
    exported = make_telemetry()
    ours = Instruments(
        exported.tracer_provider,
        exported.meter_provider,
        PriceBook(_USER_PRICES, use_genai_prices=False),
    )
    for uncached, output, read, five, hour, tier, failed in calls:
        request = RequestFacts("Converse", "chat", HAIKU, parse_model_id(HAIKU), RequestParams(), None, None)
        call = ours.start(request)
        usage = Usage(uncached, output, read, five + hour)
        terms = BillingTerms(service_tier=tier, cache_write_5m=five, cache_write_1h=hour)
        call.end(ResponseFacts(usage=usage, billing=terms), "ThrottlingException" if failed else None)
    span_costs = [span.attributes.get(names.COST_USD, 0.0) for span in exported.spans()]
    assert cost_total(exported) == pytest.approx(sum(span_costs), rel=1e-9, abs=1e-12)


def test_a_pricing_fault_never_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch,
    telemetry: TelemetryCapture,
    make_instrumentor: Any,
    emulator: BedrockEmulator,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("price data broken")

    make_instrumentor(prices={HAIKU: {"input_mtok": 1, "output_mtok": 2}})
    monkeypatch.setattr(PriceBook, "prices_for", broken)
    response = emulator.client().converse(modelId=HAIKU, messages=MESSAGES)
    assert response["usage"]["outputTokens"] > 0
    (span,) = telemetry.spans()
    assert names.COST_USD not in span.attributes
    assert span.attributes["gen_ai.usage.output_tokens"] == response["usage"]["outputTokens"]
