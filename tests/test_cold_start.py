"""Cold start (issue 14): ``import otel_bedrock_tokens`` + ``instrument()`` with the default settings
imports nothing that only an opt-in feature needs, so AWS Lambda cold starts do not pay for it; and
turning a feature on still imports it and works. Each case runs in a fresh interpreter, so what is in
``sys.modules`` is what that case imported. (How long it takes is measured by
``benchmarks/cold_start.py``, never asserted here.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from otel_bedrock_tokens import _semconv
from otel_bedrock_tokens.emulator import BedrockEmulator

#: Modules of ours that ``count_tokens="off"`` (the default) never needs.
NOT_FOR_THE_DEFAULTS = (
    "otel_bedrock_tokens.prediction",
    "otel_bedrock_tokens.budget",
    "otel_bedrock_tokens.count_tokens_input",
    "otel_bedrock_tokens.count_cache",
    "otel_bedrock_tokens.count_pool",
    "otel_bedrock_tokens.count_tasks",
    "otel_bedrock_tokens.emulator",
    "otel_bedrock_tokens.cli",
    "otel_bedrock_tokens.demo",
    "otel_bedrock_tokens.pricing",
    "otel_bedrock_tokens.cost",
)
#: InvokeModel body families: imported on the first call of a model of theirs, not by instrument().
FAMILY_MODULES = ("otel_bedrock_tokens.families.anthropic", "otel_bedrock_tokens.families.generic")
#: Other modules the defaults do not need (only a misspelt setting's hint uses difflib; the
#: semantic-convention names are our own strings).
FOREIGN_NOT_FOR_THE_DEFAULTS = (
    "difflib",
    "opentelemetry.semconv._incubating.attributes.gen_ai_attributes",
    "opentelemetry.semconv._incubating.attributes.aws_attributes",
    "opentelemetry.semconv._incubating.metrics.gen_ai_metrics",
)


def imported_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules in ``sys.modules`` after ``code`` ran in a fresh interpreter."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert completed.returncode == 0, completed.stderr
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_BEDROCK_TOKENS_")}


#: The defaults: without the ``cost`` extra (genai-prices, installed in the test environment, hidden
#: as if it were not: ``find_spec`` answers ``None`` for a ``None`` in ``sys.modules``).
WITHOUT_GENAI_PRICES = """
    import sys
    sys.modules["genai_prices"] = None
"""

DEFAULT_INSTRUMENT = (
    WITHOUT_GENAI_PRICES
    + """
    import boto3, botocore.client
    import otel_bedrock_tokens
    otel_bedrock_tokens.BedrockTokensInstrumentor().instrument()
"""
)


@pytest.mark.parametrize("module", NOT_FOR_THE_DEFAULTS + FOREIGN_NOT_FOR_THE_DEFAULTS + FAMILY_MODULES)
def test_instrument_with_the_defaults_does_not_import(module: str) -> None:
    modules = imported_after(DEFAULT_INSTRUMENT, _clean_env())
    assert "otel_bedrock_tokens.instrumentor" in modules  # it did run
    assert module not in modules


@pytest.fixture(scope="module")
def emulator() -> Iterator[BedrockEmulator]:
    """Runs here, in the test process: the child talks to it over loopback HTTP, so the child's
    ``sys.modules`` holds no emulator of its own."""
    with BedrockEmulator() as running:
        yield running


def measured_converse(endpoint_url: str, settings: str = "") -> str:
    """A child's script: instrument with ``settings``, one Converse call, and print its span's input
    tokens (so the check of ``sys.modules`` is made after a call that really was measured)."""
    return textwrap.dedent(f"""
        import boto3
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import otel_bedrock_tokens
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        instrumentor = otel_bedrock_tokens.BedrockTokensInstrumentor()
        instrumentor.instrument(tracer_provider=provider{settings})
        client = boto3.client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url={endpoint_url!r},
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )
        client.converse(
            modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
            messages=[{{"role": "user", "content": [{{"text": "cold start"}}]}}],
        )
        instrumentor.wait_for_predictions()
        (span,) = exporter.get_finished_spans()
        print(dict(span.attributes))
    """)


def test_a_measured_call_with_the_defaults_does_not_import_them(emulator: BedrockEmulator) -> None:
    """The first measured call (not only ``instrument()``) stays off the optional modules."""
    script = textwrap.dedent(WITHOUT_GENAI_PRICES) + measured_converse(emulator.endpoint_url)
    modules = imported_after(script, _clean_env())
    assert not modules & set(NOT_FOR_THE_DEFAULTS + FOREIGN_NOT_FOR_THE_DEFAULTS)


def test_count_tokens_on_still_predicts(emulator: BedrockEmulator) -> None:
    """Imported on demand, prediction works as before: the span carries the prediction."""
    script = measured_converse(emulator.endpoint_url, ', count_tokens="before"')
    script += "\n" + 'print("PREDICTION", "otel_bedrock_tokens.prediction" in __import__("sys").modules)'
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
    )
    assert completed.returncode == 0, completed.stderr
    assert "'bedrock_tokens.prediction.delta': 0" in completed.stdout
    assert "PREDICTION True" in completed.stdout


def test_token_budget_exceeded_is_still_exported_by_the_package() -> None:
    """Through the package's ``__getattr__``: the class prediction raises, under its own name."""
    from otel_bedrock_tokens import TokenBudgetExceeded, prediction

    assert TokenBudgetExceeded is prediction.TokenBudgetExceeded
    assert TokenBudgetExceeded.__module__ == "otel_bedrock_tokens.prediction"


@pytest.mark.parametrize("mode", ["parallel", "before"])
def test_count_tokens_on_imports_prediction(mode: str) -> None:
    modules = imported_after(
        f"""
        import boto3, botocore.client
        import otel_bedrock_tokens
        otel_bedrock_tokens.BedrockTokensInstrumentor().instrument(count_tokens={mode!r})
        """,
        _clean_env(),
    )
    assert "otel_bedrock_tokens.prediction" in modules


def test_count_tokens_on_from_the_environment_imports_prediction() -> None:
    env = {**_clean_env(), "OTEL_BEDROCK_TOKENS_COUNT_TOKENS": "parallel"}
    assert "otel_bedrock_tokens.prediction" in imported_after(DEFAULT_INSTRUMENT, env)


def test_a_misspelt_keyword_still_gets_its_hint() -> None:
    """difflib, imported only for it, still names the closest setting."""
    from otel_bedrock_tokens import BedrockTokensInstrumentor

    with pytest.raises(TypeError, match="did you mean 'count_tokens'"):
        BedrockTokensInstrumentor().instrument(count_token="parallel")


#: (our name, the module of opentelemetry-semantic-conventions, its name there)
_UPSTREAM = (
    [
        (name, "opentelemetry.semconv._incubating.attributes.gen_ai_attributes", name)
        for name in dir(_semconv)
        if name.startswith("GEN_AI_")
        and not name.startswith("GEN_AI_CLIENT_")
        and name != "GEN_AI_PROVIDER_NAME_AWS_BEDROCK"
    ]
    + [
        (name, "opentelemetry.semconv._incubating.metrics.gen_ai_metrics", name)
        for name in dir(_semconv)
        if name.startswith("GEN_AI_CLIENT_")
    ]
    + [
        ("AWS_REQUEST_ID", "opentelemetry.semconv._incubating.attributes.aws_attributes", "AWS_REQUEST_ID"),
        ("ERROR_TYPE", "opentelemetry.semconv.attributes.error_attributes", "ERROR_TYPE"),
        ("SERVER_ADDRESS", "opentelemetry.semconv.attributes.server_attributes", "SERVER_ADDRESS"),
        ("SERVER_PORT", "opentelemetry.semconv.attributes.server_attributes", "SERVER_PORT"),
    ]
)


@pytest.mark.parametrize(("ours", "module", "theirs"), _UPSTREAM, ids=[row[0] for row in _UPSTREAM])
def test_our_semconv_string_is_the_conventions_name(ours: str, module: str, theirs: str) -> None:
    import importlib

    assert getattr(_semconv, ours) == getattr(importlib.import_module(module), theirs)


def test_our_provider_name_is_the_conventions_value() -> None:
    from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues

    assert GenAiProviderNameValues.AWS_BEDROCK.value == _semconv.GEN_AI_PROVIDER_NAME_AWS_BEDROCK


def test_with_genai_prices_installed_instrument_does_not_import_it(emulator: BedrockEmulator) -> None:
    """With the ``cost`` extra, cost is on: its modules load at ``instrument()``, but genai-prices
    itself (pydantic, 150-250 ms) only with the first priced call."""
    pytest.importorskip("genai_prices")
    modules = imported_after(DEFAULT_INSTRUMENT.replace(WITHOUT_GENAI_PRICES, ""), _clean_env())
    assert "otel_bedrock_tokens.cost" in modules
    assert "genai_prices" not in modules
