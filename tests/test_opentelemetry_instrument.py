"""Zero-code: ``opentelemetry-instrument`` finds our ``bedrock_tokens`` entry point and the console
exporters print our span, with tokens, for a script that knows nothing about us.

Needs ``opentelemetry-distro`` (it provides the configurator that reads ``OTEL_TRACES_EXPORTER``);
without a distro ``opentelemetry-instrument`` instruments but exports nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"

SCRIPT = textwrap.dedent(
    f"""
    import sys
    sys.path.insert(0, {str(REPO)!r})
    from tests.replay import call_recorded, claude_body, replay_server, synthetic, token_headers

    body = claude_body(input_tokens=1, output_tokens=1)
    interaction = synthetic(body, headers=token_headers(12, 34, cache_read=5, cache_write=0))
    with replay_server() as replayer:
        replayer.serve(interaction)
        got = call_recorded(replayer.client, interaction)["body"].read()
    print("SCRIPT-BODY-" + ("SAME" if got == body else "DIFFERENT"), flush=True)
    """
)


def _json_documents(text: str) -> list[Any]:
    """Every top-level JSON object printed by the console exporters (one after another)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    index = text.find("{")
    while index != -1:
        try:
            document, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        found.append(document)
        index = text.find("{", end)
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("opentelemetry.distro", reason="opentelemetry-distro provides the SDK configurator")
    script = tmp_path_factory.mktemp("zero_code") / "app.py"
    script.write_text(SCRIPT)
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="zero-code-test",
        # Only ours: the official botocore instrumentation would add its own span.
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="botocore,aiobotocore",
    )
    return subprocess.run(
        [str(INSTRUMENT), sys.executable, str(script)],
        env=env,
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _our_spans(run: subprocess.CompletedProcess[str]) -> list[Any]:
    return [
        doc
        for doc in _json_documents(run.stdout)
        if isinstance(doc, dict) and doc.get("attributes", {}).get("gen_ai.provider.name") == "aws.bedrock"
    ]


def test_script_runs_and_gets_the_body(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SCRIPT-BODY-SAME" in run.stdout


def test_console_shows_our_span_with_tokens(run: subprocess.CompletedProcess[str]) -> None:
    (span,) = _our_spans(run)
    assert span["name"] == "chat anthropic.claude-3-5-haiku-20241022-v1:0"
    assert span["kind"] == "SpanKind.CLIENT"
    assert (
        span["attributes"]["gen_ai.usage.input_tokens"],
        span["attributes"]["gen_ai.usage.output_tokens"],
        span["attributes"]["gen_ai.usage.cache_read.input_tokens"],
    ) == (17, 34, 5)


def test_console_shows_our_token_metric(run: subprocess.CompletedProcess[str]) -> None:
    sums = {}
    for doc in _json_documents(run.stdout):
        for resource_metrics in doc.get("resource_metrics", []) if isinstance(doc, dict) else []:
            for scope_metrics in resource_metrics["scope_metrics"]:
                for metric in scope_metrics["metrics"]:
                    if metric["name"] == "gen_ai.client.token.usage":
                        for point in metric["data"]["data_points"]:
                            sums[point["attributes"]["gen_ai.token.type"]] = point["sum"]
    assert sums == {"input": 17, "output": 34}


def test_nothing_written_to_stderr_by_the_instrumentation(run: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in run.stderr
    assert "bedrock_tokens" not in run.stderr
