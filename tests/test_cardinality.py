"""More distinct model ids than the SDK keeps attribute sets for: what the sums by token type show,
and the README's View that fixes them (the test runs the README's own snippet).

The OpenTelemetry SDK keeps 2,000 attribute sets per metric by default and folds the rest into one
``otel.metric.overflow=true`` point, without ``gen_ai.token.type``. 1,100 model ids are 2,200 token
sets (input and output): enough to overflow, few enough for a quick test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

README = Path(__file__).resolve().parent.parent / "README.md"
MODELS = 1_100
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]
TOKENS = "gen_ai.client.token.usage"


def readme_view_snippet() -> str:
    """The README's Python block that sets ``aggregation_cardinality_limit``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (snippet,) = [block for block in blocks if "aggregation_cardinality_limit" in block]
    return snippet


def run_calls(meter_provider: MeterProvider) -> dict[str, int]:
    """One Converse call per distinct model id, instrumented; return the ledger's billed totals."""
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(meter_provider=meter_provider)
    try:
        with BedrockEmulator() as emulator:
            client = emulator.client(retries=0)
            for number in range(MODELS):
                model = f"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/tenant{number}"
                client.converse(modelId=model, messages=MESSAGES)
            totals = emulator.ledger.totals().values()
    finally:
        instrumentor.uninstrument()
    return {
        "input": sum(entry.total_input_tokens for entry in totals),
        "output": sum(entry.output_tokens for entry in totals),
    }


def token_sums(reader: InMemoryMetricReader) -> dict[str, float]:
    """``gen_ai.client.token.usage`` summed by ``gen_ai.token.type`` (``overflow``: the SDK's
    ``otel.metric.overflow`` point)."""
    sums: dict[str, float] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != TOKENS:
                    continue
                for point in metric.data.data_points:
                    attributes: Any = point.attributes
                    key = (
                        "overflow"
                        if attributes.get("otel.metric.overflow")
                        else attributes["gen_ai.token.type"]
                    )
                    sums[key] = sums.get(key, 0) + point.sum
    return sums


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    yield reader
    reader.shutdown()


def test_past_the_default_limit_sums_by_token_type_are_short(reader: InMemoryMetricReader) -> None:
    billed = run_calls(MeterProvider(metric_readers=[reader]))
    sums = token_sums(reader)
    assert sums["input"] < billed["input"] and sums["output"] < billed["output"]
    # Nothing is lost from the total: the rest is in the overflow point, with no type.
    assert sums["input"] + sums["output"] + sums["overflow"] == billed["input"] + billed["output"]


def test_the_readme_view_keeps_the_sums_by_token_type(reader: InMemoryMetricReader) -> None:
    namespace: dict[str, Any] = {"reader": reader}
    exec(readme_view_snippet(), namespace)  # the documented fix, as written
    billed = run_calls(namespace["meter_provider"])
    assert token_sums(reader) == {"input": billed["input"], "output": billed["output"]}
