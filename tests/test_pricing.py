"""Prices: costs agree with genai-prices' own ``calc_price``, components add up, unpriced stays
unpriced, the user price file overrides and fails clearly, and genai-prices is imported only when
cost is asked for."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.billing import BillingTerms
from otel_bedrock_tokens.pricing import (
    COMPONENTS,
    PRICES_ENV,
    PriceBook,
    PriceFileError,
    load_price_file,
    price_book_from_env,
    reduce_model_id,
)
from otel_bedrock_tokens.usage import Usage

try:  # the [cost] extra; genai-prices 0.2 needs Python 3.11+
    from genai_prices import Usage as GenaiUsage
    from genai_prices import __version__ as GENAI_VERSION
    from genai_prices import calc_price
except ImportError:
    GENAI_VERSION = ""

#: Tests that compare with genai-prices' data (the user-file and no-genai tests run everywhere).
needs_genai = pytest.mark.skipif(not GENAI_VERSION, reason="genai-prices is not installed")

SONNET46 = "anthropic.claude-sonnet-4-6"
HAIKU35 = "anthropic.claude-3-5-haiku-20241022-v1:0"
#: (Bedrock id as called, the id genai-prices is asked about independently).
MODELS = [
    (f"us.{SONNET46}", f"us.{SONNET46}"),
    (f"global.{SONNET46}", f"global.{SONNET46}"),
    (f"eu.{SONNET46}", f"eu.{SONNET46}"),
    (f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU35}", HAIKU35),
    (f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{HAIKU35}", f"us.{HAIKU35}"),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "global.anthropic.claude-haiku-4-5-20251001-v1:0"),
    ("us.amazon.nova-pro-v1:0", "us.amazon.nova-pro-v1:0"),
    ("meta.llama3-1-8b-instruct-v1:0", "meta.llama3-1-8b-instruct-v1:0"),
    ("global.anthropic.claude-sonnet-4-20250514-v1:0", "global.anthropic.claude-sonnet-4-20250514-v1:0"),
]
#: A model with genai-prices thresholds ("tiered" prices above 272k input tokens).
THRESHOLD_MODEL = "global.openai.gpt-6-luna"
ROUTER = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"
TOKENS = st.integers(min_value=0, max_value=400_000)


def expected_usd(ref: str, usage: Usage, hour: int = 0) -> float:
    """genai-prices' price of the call, computed the way its README says: input includes the cache."""
    read, write = usage.cache_read_tokens or 0, usage.cache_write_tokens or 0
    genai_usage = GenaiUsage(
        input_tokens=(usage.input_tokens or 0) + read + write,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=hour,
        output_tokens=usage.output_tokens or 0,
    )
    return float(calc_price(genai_usage, ref, provider_id="aws").total_price)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


@needs_genai
@pytest.mark.parametrize(("model_id", "reference"), MODELS)
def test_cost_matches_genai_prices(book: PriceBook, model_id: str, reference: str) -> None:
    usage = Usage(input_tokens=1200, output_tokens=350, cache_read_tokens=5000, cache_write_tokens=2048)
    terms = BillingTerms(cache_write_5m=1024, cache_write_1h=1024)
    cost = book.cost(model_id, usage, terms)
    assert cost is not None
    assert math.isclose(cost.total_usd, expected_usd(reference, usage, hour=1024), rel_tol=1e-9)
    assert cost.source == f"genai-prices {GENAI_VERSION}"


@needs_genai
@given(TOKENS, TOKENS, TOKENS, TOKENS, st.integers(min_value=0, max_value=100))
def test_cost_matches_genai_prices_for_any_usage(
    uncached: int, output: int, read: int, write: int, hour_percent: int
) -> None:
    book = PriceBook()
    hour = write * hour_percent // 100
    usage = Usage(uncached, output, read, write)
    for model_id, reference in (MODELS[0], MODELS[1], (THRESHOLD_MODEL, THRESHOLD_MODEL)):
        cost = book.cost(model_id, usage, BillingTerms(cache_write_1h=hour))
        assert cost is not None
        assert math.isclose(cost.total_usd, expected_usd(reference, usage, hour), rel_tol=1e-9, abs_tol=1e-15)


@needs_genai
@given(TOKENS, TOKENS, TOKENS, TOKENS, TOKENS)
def test_components_sum_to_the_total(uncached: int, output: int, read: int, write: int, hour: int) -> None:
    book = PriceBook()
    for model_id, _ in MODELS:
        cost = book.cost(model_id, Usage(uncached, output, read, write), BillingTerms(cache_write_1h=hour))
        assert cost is not None
        assert tuple(cost.components) == COMPONENTS
        assert sum(cost.components.values()) == cost.total_usd
        assert all(value >= 0 for value in cost.components.values())


@needs_genai
def test_thresholds_apply_to_all_input_cache_included(book: PriceBook) -> None:
    below = Usage(input_tokens=200_000, output_tokens=10, cache_read_tokens=72_000)
    above = Usage(input_tokens=200_000, output_tokens=10, cache_read_tokens=72_001)
    for usage in (below, above):
        cost = book.cost(THRESHOLD_MODEL, usage)
        assert cost is not None
        assert math.isclose(cost.total_usd, expected_usd(THRESHOLD_MODEL, usage), rel_tol=1e-9)


@needs_genai
def test_global_and_regional_profiles_are_priced_apart(book: PriceBook) -> None:
    regional, global_ = book.prices_for(f"us.{SONNET46}"), book.prices_for(f"global.{SONNET46}")
    assert regional is not None and global_ is not None
    assert (regional.region_kind, global_.region_kind) == ("regional", "global")
    assert regional.input.base > global_.input.base
    assert global_.matched.startswith("global.")


@needs_genai
def test_prices_are_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    book = PriceBook()
    calls: list[tuple[str, str]] = []
    resolve = book._resolve

    def counting(model_id: str, tier: str) -> Any:
        calls.append((model_id, tier))
        return resolve(model_id, tier)

    monkeypatch.setattr(book, "_resolve", counting)
    for _ in range(5):
        book.cost(f"us.{SONNET46}", Usage(10, 10))
    assert calls == [(f"us.{SONNET46}", "default")]


@needs_genai
def test_a_prompt_router_call_is_priced_at_the_routed_model(book: PriceBook) -> None:
    usage = Usage(input_tokens=1000, output_tokens=100)
    routed = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{HAIKU35}"
    cost = book.cost(ROUTER, usage, BillingTerms(routed_model=routed))
    assert cost is not None
    assert math.isclose(cost.total_usd, expected_usd(f"us.{HAIKU35}", usage), rel_tol=1e-9)
    assert book.cost(ROUTER, usage) is None  # the router itself has no price


# --- unpriced ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_id",
    [
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/anthropic.claude-3-haiku-20240307-v1:0/x1",
        "example.no-such-model-v1:0",
        "not a model id",
    ],
)
def test_unknown_and_opaque_models_are_unpriced(book: PriceBook, model_id: str) -> None:
    assert book.cost(model_id, Usage(10, 10)) is None
    assert book.source(model_id) == "unpriced"


@needs_genai
def test_a_tier_genai_prices_does_not_know_is_unpriced(book: PriceBook) -> None:
    for tier in ("priority", "flex", "reserved"):
        assert book.cost(f"us.{SONNET46}", Usage(10, 10), BillingTerms(service_tier=tier)) is None
    assert book.cost(f"us.{SONNET46}", Usage(10, 10), BillingTerms(service_tier="default")) is not None


@needs_genai
def test_unknown_input_or_unpriced_output_is_unpriced(book: PriceBook) -> None:
    assert book.cost(f"us.{SONNET46}", Usage(None, 10)) is None
    embed = book.cost("amazon.titan-embed-text-v2:0", Usage(input_tokens=100))
    assert embed is not None and embed.components["output"] == 0
    assert book.cost("amazon.titan-embed-text-v2:0", Usage(input_tokens=100, output_tokens=5)) is None


def test_one_debug_log_per_unpriced_model(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook()
    with caplog.at_level(logging.DEBUG, logger="otel_bedrock_tokens.pricing"):
        for _ in range(3):
            book.cost("example.unknown-v1:0", Usage(1, 1))
            book.cost("example.unknown-v1:0", Usage(1, 1), BillingTerms(service_tier="flex"))
    assert len([r for r in caplog.records if "example.unknown-v1:0" in r.getMessage()]) == 1


def test_reduce_model_id_forms() -> None:
    assert reduce_model_id(f"us.{SONNET46}") == (f"us.{SONNET46}", "regional")
    assert reduce_model_id(f"arn:aws:bedrock:eu-west-1:1:inference-profile/global.{SONNET46}") == (
        f"global.{SONNET46}",
        "global",
    )
    assert reduce_model_id(f"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{HAIKU35}") == (
        HAIKU35,
        "regional",
    )
    assert reduce_model_id(ROUTER) is None


# --- the user price file -----------------------------------------------------------------------


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


@needs_genai
def test_user_file_overrides_and_adds_tiers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            f"us.{SONNET46}": {
                "default": {"input_mtok": 1, "output_mtok": 2},
                "priority": {"input_mtok": 10, "output_mtok": 20, "cache_write_1h_mtok": 30},
            }
        },
    )
    book = PriceBook(load_price_file(path))
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    default = book.cost(f"us.{SONNET46}", usage)
    priority = book.cost(f"us.{SONNET46}", usage, BillingTerms(service_tier="priority"))
    assert default is not None and priority is not None
    assert (default.total_usd, default.source) == (3.0, "user")
    assert priority.total_usd == 30.0
    # Another geo's id of the model is still priced by genai-prices.
    global_cost = book.cost(f"global.{SONNET46}", usage)
    assert global_cost is not None and global_cost.source.startswith("genai-prices")


@needs_genai
def test_user_prices_alone_are_the_default_tier_and_bare_ids_cover_regional_profiles(tmp_path: Path) -> None:
    book = PriceBook(load_price_file(write(tmp_path, {SONNET46: {"input_mtok": 1, "output_mtok": 1}})))
    assert book.source(f"us.{SONNET46}") == "user"
    assert book.source(f"arn:aws:bedrock:us-east-1::foundation-model/{SONNET46}") == "user"
    assert book.source(f"global.{SONNET46}").startswith("genai-prices")  # global is priced apart


def test_user_file_prices_an_opaque_id_by_its_exact_id(tmp_path: Path) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    book = PriceBook(load_price_file(write(tmp_path, {arn: {"input_mtok": 2, "output_mtok": 4}})))
    cost = book.cost(arn, Usage(input_tokens=500_000, output_tokens=250_000))
    assert cost is not None and cost.total_usd == 2.0


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ({"m.x": {"input_mtok": 1, "ouput_mtok": 2}}, "unknown price key 'ouput_mtok'"),
        ({"m.x": {"default": {"input_mtok": -1}}}, "finite number >= 0"),
        ({"m.x": {"default": {"input_mtok": True}}}, "must be a number"),
        ({"m.x": {"default": {"input_mtok": "3"}}}, "must be a number"),
        ('{"m.x": {"input_mtok": NaN}}', "finite number >= 0"),
        ({"m.x": {"premium": {"input_mtok": 1}}}, "unknown service tier or price key 'premium'"),
        ({"m.x": {"default": {"output_mtok": 1}}}, "input_mtok is required"),
        ({"m.x": {}}, "non-empty object"),
        ({"m.x": {"default": [1]}}, "expected an object of prices"),
    ],
)
def test_a_bad_price_file_is_a_clear_error(tmp_path: Path, document: Any, complaint: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(PriceFileError) as raised:
        load_price_file(path)
    assert isinstance(raised.value, ValueError)
    assert str(path) in str(raised.value) and complaint in str(raised.value)


def test_a_missing_price_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read the price file"):
        load_price_file(tmp_path / "absent.json")


def test_price_book_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, {SONNET46: {"input_mtok": 1, "output_mtok": 1}})
    assert price_book_from_env({PRICES_ENV: str(path)}).source(SONNET46) == "user"
    assert price_book_from_env({}).user_prices is None
    with pytest.raises(PriceFileError):
        price_book_from_env({PRICES_ENV: str(tmp_path / "absent.json")})


# --- lazy import -------------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_genai
def test_genai_prices_is_not_imported_until_a_price_is_asked_for() -> None:
    result = run_python(
        """
        import sys
        import otel_bedrock_tokens, otel_bedrock_tokens.pricing, otel_bedrock_tokens.billing
        from otel_bedrock_tokens import BedrockTokensInstrumentor
        from otel_bedrock_tokens.pricing import PriceBook
        book = PriceBook()
        assert "genai_prices" not in sys.modules and "pydantic" not in sys.modules, "imported early"
        assert book.prices_for("us.anthropic.claude-sonnet-4-6") is not None
        assert "genai_prices" in sys.modules
        print("ok")
        """
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_without_genai_prices_calls_are_unpriced_and_nothing_fails(tmp_path: Path) -> None:
    path = write(tmp_path, {SONNET46: {"input_mtok": 1, "output_mtok": 1}})
    result = run_python(
        f"""
        import sys
        sys.modules["genai_prices"] = None  # what an environment without the extra looks like
        from otel_bedrock_tokens.pricing import PriceBook, load_price_file
        from otel_bedrock_tokens.usage import Usage
        book = PriceBook()
        assert book.cost("us.anthropic.claude-sonnet-4-6", Usage(10, 10)) is None
        assert book.source("us.anthropic.claude-sonnet-4-6") == "unpriced"
        assert book.genai_prices_version is None
        user = PriceBook(load_price_file({str(path)!r}))
        assert user.cost("us.anthropic.claude-sonnet-4-6", Usage(10, 10)) is not None
        print("ok")
        """
    )
    assert result.stdout.strip() == "ok", result.stderr
