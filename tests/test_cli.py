"""The ``otel-bedrock-tokens`` command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_bedrock_tokens.cli import UsageError, count_input, count_model_id
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.cli import COMMAND, _env, run

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"


class Lines:
    """A process's stdout lines, read on a thread, so a test waits for a line with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        self.thread = threading.Thread(target=lambda: [self._queue.put(line) for line in stdout], daemon=True)
        self.thread.start()

    def next(self, timeout: float = 15.0) -> str:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output from the emulator in time") from None


@pytest.fixture
def emulator_process(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], str]]:
    extra: list[str] = getattr(request, "param", [])
    process = subprocess.Popen(
        [*COMMAND, "emulator", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    lines = Lines(process)
    try:
        first = lines.next()
        assert first.startswith("Bedrock emulator listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        assert lines.next().strip() == f"export AWS_ENDPOINT_URL_BEDROCK_RUNTIME={url}"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        lines.thread.join(10)  # the reader ends at EOF
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _client(url: str) -> Any:
    import boto3

    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=__import__("botocore.config", fromlist=["Config"]).Config(retries={"total_max_attempts": 1}),
    )


@pytest.mark.parametrize(
    "emulator_process", [["--fault", "throttle,operation=Converse", "--drift", f"{HAIKU}=+3"]], indirect=True
)
def test_emulator_serves_until_interrupted(
    emulator_process: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, url = emulator_process
    client = _client(url)
    from botocore.exceptions import ClientError

    messages = [{"role": "user", "content": [{"text": "hello there"}]}]
    with pytest.raises(ClientError, match="ThrottlingException"):
        client.converse(modelId=HAIKU, messages=messages)
    usage = client.converse(modelId=HAIKU, messages=messages)["usage"]
    counted = client.count_tokens(modelId=HAIKU, input={"converse": {"messages": messages}})["inputTokens"]
    assert counted == usage["inputTokens"] + 3  # the drift from the command line
    process.send_signal(signal.SIGINT)
    process.wait(15)
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert process.returncode == 0
    assert f"429 Converse {HAIKU} ThrottlingException [fault: error]" in stderr
    assert f"{HAIKU}: 1 / {usage['inputTokens']} / {usage['outputTokens']}" in stderr


def test_emulator_ledger_file_and_sigterm(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.json"
    process = subprocess.Popen(
        [*COMMAND, "emulator", "--quiet", "--ledger-json", str(ledger), "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    lines = Lines(process)
    try:
        url = lines.next().rsplit(" ", 1)[1].strip()
        _client(url).converse(
            modelId="amazon.nova-micro-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}]
        )
        process.terminate()
        process.wait(15)
        assert process.stderr is not None
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
        lines.thread.join(10)
    assert process.returncode == 0
    assert "200 Converse" not in stderr  # --quiet
    assert json.loads(ledger.read_text())["models"]["amazon.nova-micro-v1:0"]["calls"] == 1


def test_python_dash_m_emulator_and_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_bedrock_tokens.emulator", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert result.returncode == 2 and "loopback" in result.stderr
    assert run("emulator", "--fault", "explode").returncode == 2
    assert run("emulator", "--drift", "nonsense").returncode == 2
    assert run("demo", "--calls", "0").returncode == 2
    assert run().returncode == 2
    assert "otel-bedrock-tokens" in run("--version").stdout


# --- count ----------------------------------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def test_count_text_against_the_emulator(emulator: BedrockEmulator) -> None:
    result = run(
        "count",
        "--model",
        HAIKU,
        "--text",
        "How many tokens is this?",
        "--endpoint-url",
        emulator.endpoint_url,
    )
    assert result.returncode == 0, result.stderr
    messages = [{"role": "user", "content": [{"text": "How many tokens is this?"}]}]
    billed = emulator.client().converse(modelId=HAIKU, messages=messages)["usage"]["inputTokens"]
    assert int(result.stdout) == billed


def test_count_request_files(emulator: BedrockEmulator, tmp_path: Path) -> None:
    invoke_body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Count me, please."}],
    }
    converse_request = {
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Count me."}]}],
    }
    client = emulator.client()
    for document, billed in (
        (
            invoke_body,
            int(
                client.invoke_model(modelId=HAIKU, body=json.dumps(invoke_body))["ResponseMetadata"][
                    "HTTPHeaders"
                ]["x-amzn-bedrock-input-token-count"]
            ),
        ),
        (converse_request, client.converse(modelId=HAIKU, **converse_request)["usage"]["inputTokens"]),
    ):
        path = tmp_path / "request.json"
        path.write_text(json.dumps(document))
        result = run(
            "count",
            "--model",
            f"us.{HAIKU}",
            "--file",
            str(path),
            "--endpoint-url",
            emulator.endpoint_url,
            "--json",
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"modelId": HAIKU, "inputTokens": billed}
        assert f"counting with {HAIKU}" in result.stderr
    from_stdin = run(
        "count",
        "--model",
        HAIKU,
        "--file",
        "-",
        "--endpoint-url",
        emulator.endpoint_url,
        stdin=json.dumps(invoke_body),
    )
    assert from_stdin.returncode == 0 and int(from_stdin.stdout) > 0


def test_count_unsupported_model(emulator: BedrockEmulator) -> None:
    result = run(
        "count", "--model", "amazon.nova-micro-v1:0", "--text", "hi", "--endpoint-url", emulator.endpoint_url
    )
    assert result.returncode == 1
    assert "amazon.nova-micro-v1:0 does not support CountTokens" in result.stderr
    assert "doesn't support counting tokens" in result.stderr


def test_count_without_credentials_never_calls_aws(tmp_path: Path) -> None:
    env = _env(
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(tmp_path),
    )
    result = run("count", "--model", HAIKU, "--text", "hi", env=env)
    assert result.returncode == 1
    assert "no AWS credentials found" in result.stderr and "--endpoint-url" in result.stderr


def test_count_usage_errors(tmp_path: Path) -> None:
    opaque = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"
    result = run("count", "--model", opaque, "--text", "hi", "--endpoint-url", "http://127.0.0.1:9")
    assert result.returncode == 2 and "needs a foundation model id" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run("count", "--model", HAIKU, "--file", str(bad)).returncode == 2
    assert run("count", "--model", HAIKU, "--file", str(tmp_path / "missing.json")).returncode == 2
    assert run("count", "--model", HAIKU).returncode == 2  # --text or --file is required


def test_count_input_detection() -> None:
    assert count_input("hi", None, None, "auto") == {
        "converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    }
    claude = {"anthropic_version": "x", "messages": [{"role": "user", "content": "hi"}]}
    assert count_input(None, claude, "RAW", "auto") == {"invokeModel": {"body": "RAW"}}
    typed = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert "invokeModel" in count_input(None, typed, None, "auto")
    converse = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {},
        "toolConfig": {"tools": []},
    }
    assert count_input(None, converse, None, "converse") == {
        "converse": {"messages": converse["messages"], "toolConfig": {"tools": []}}
    }
    ready = {"input": {"converse": {"messages": []}}}
    assert count_input(None, ready, None, "auto") == {"converse": {"messages": []}}
    with pytest.raises(UsageError):
        count_input(None, [], None, "auto")
    assert count_model_id(f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}")[1] is None
    assert count_model_id(f"global.{HAIKU}") == (
        HAIKU,
        f"counting with {HAIKU}, the foundation model behind global.{HAIKU}",
    )
