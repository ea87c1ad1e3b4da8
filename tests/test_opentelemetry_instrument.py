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
    from tests.support.replay import call_recorded, claude_body, replay_server, synthetic, token_headers

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


def _instrument(
    tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> subprocess.CompletedProcess[str]:
    """``opentelemetry-instrument python app.py`` with console exporters and ``settings`` added to a
    clean ``OTEL_*`` environment."""
    pytest.importorskip("opentelemetry.distro", reason="opentelemetry-distro provides the SDK configurator")
    script = tmp_path_factory.mktemp("zero_code") / "app.py"
    script.write_text(SCRIPT)
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="zero-code-test",
        **settings,
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


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    # Only ours: the official botocore instrumentation would add its own span.
    return _instrument(tmp_path_factory, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="botocore,aiobotocore")


@pytest.fixture(scope="module")
def bad_setting_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """A bad value for one of our settings, and the official botocore instrumentation on too."""
    return _instrument(tmp_path_factory, OTEL_BEDROCK_TOKENS_COUNT_TOKENS="bogus")


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


# --- a bad setting under zero-code (issue 13 item 8) --------------------------------------------------


def _official_spans(run: subprocess.CompletedProcess[str]) -> list[Any]:
    return [
        doc
        for doc in _json_documents(run.stdout)
        if isinstance(doc, dict) and doc.get("attributes", {}).get("rpc.system") == "aws-api"
    ]


def test_a_bad_setting_is_one_error_line_naming_it(bad_setting_run: subprocess.CompletedProcess[str]) -> None:
    assert bad_setting_run.returncode == 0, bad_setting_run.stderr[-3000:]
    assert "Failed to auto initialize" not in bad_setting_run.stderr
    (line,) = [line for line in bad_setting_run.stderr.splitlines() if "OTEL_BEDROCK_TOKENS" in line]
    assert "OTEL_BEDROCK_TOKENS_COUNT_TOKENS must be one of off, parallel, before; got 'bogus'" in line
    assert "Traceback" not in bad_setting_run.stderr


def test_a_bad_setting_leaves_ours_on_with_its_default(
    bad_setting_run: subprocess.CompletedProcess[str],
) -> None:
    assert "SCRIPT-BODY-SAME" in bad_setting_run.stdout
    (span,) = _our_spans(bad_setting_run)
    assert span["attributes"]["gen_ai.usage.input_tokens"] == 17
    assert "bedrock_tokens.prediction.status" not in span["attributes"]  # count_tokens: off


def test_a_bad_setting_of_ours_leaves_the_other_instrumentations_on(
    bad_setting_run: subprocess.CompletedProcess[str],
) -> None:
    (span,) = _official_spans(bad_setting_run)
    assert span["attributes"]["rpc.service"] == "Bedrock Runtime"
