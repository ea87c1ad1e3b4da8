"""``otel-bedrock-tokens prices MODEL_ID``: the price used for an id, run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support.cli import _env, run

GENAI_VERSION = pytest.importorskip("genai_prices").__version__

SONNET = "us.anthropic.claude-sonnet-4-6"


def test_prints_the_matched_entry_tier_source_data_and_prices() -> None:
    result = run("prices", SONNET)
    assert result.returncode == 0, result.stderr
    lines = dict(
        line.split(None, 1) for line in result.stdout.splitlines() if line.startswith(("matched", "source"))
    )
    assert lines["matched"].strip() == "regional.anthropic.claude-sonnet-4-6-v1:0"
    assert lines["source"].strip() == f"genai-prices {GENAI_VERSION}"
    assert f"bundled with genai-prices {GENAI_VERSION}" in result.stdout
    assert "input_mtok" in result.stdout and "cache_write_1h_mtok" in result.stdout


def test_json_output_for_an_arn() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-6"
    result = run("prices", arn, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["priced as"], shown["region kind"], shown["service tier"]) == (
        "global.anthropic.claude-sonnet-4-6",
        "global",
        "default",
    )
    assert shown["usd_per_mtok"]["input_mtok"] == "3"


def test_unpriced_exits_1_with_a_clear_message() -> None:
    result = run("prices", SONNET, "--tier", "flex")
    assert result.returncode == 1
    assert "no price at service tier 'flex'" in result.stderr and "unpriced" in result.stderr
    assert result.stdout == ""


def test_a_price_file_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({SONNET: {"flex": {"input_mtok": 1.65, "output_mtok": 8.25}}}))
    result = run("prices", SONNET, "--tier", "flex", "--json", env=_env(OTEL_BEDROCK_TOKENS_PRICES=str(path)))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["source"], shown["matched"]) == ("user", SONNET)
    assert shown["usd_per_mtok"] == {"input_mtok": "1.65", "output_mtok": "8.25"}


def test_a_bad_price_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text("{broken")
    result = run("prices", SONNET, "--prices", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr and "not valid JSON" in result.stderr
