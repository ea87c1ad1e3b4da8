"""How our span relates to the anthropic SDK's own span (scope ``com.anthropic.sdk.python.bedrock``,
on by default since anthropic 2.14), and the two ways the README gives to keep only ours.

The SDK opens its span around the whole API call and makes it current while it sends; our span
covers the HTTP exchange below it, so ours is its child, in the same trace. Only ours carries
metrics, so nothing is counted twice in a token sum either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")
httpx2 = pytest.importorskip("httpx2")

from otel_bedrock_tokens.emulator import BedrockEmulator  # noqa: E402

from .support.telemetry import TelemetryCapture  # noqa: E402

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
HELLO = [{"role": "user", "content": "Name three rivers of Europe, briefly."}]
AWS = {"aws_access_key": "emulator", "aws_secret_key": "emulator", "aws_region": "us-east-1"}
THEIRS = "com.anthropic.sdk.python.bedrock"
OURS = "otel_bedrock_tokens.telemetry"


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def _call(emulator: BedrockEmulator, open_telemetry: Any, *, stream: bool = False) -> None:
    client = anthropic.AnthropicBedrock(
        **AWS,
        base_url=emulator.endpoint_url,
        http_client=httpx2.Client(),
        open_telemetry=open_telemetry,
    )
    response = client.messages.create(model=MODEL, max_tokens=32, messages=HELLO, stream=stream)
    if stream:
        for _ in response:
            pass


def _by_scope(telemetry: TelemetryCapture) -> dict[str, Any]:
    spans = telemetry.spans()
    by_scope = {span.instrumentation_scope.name: span for span in spans}
    assert len(by_scope) == len(spans)
    return by_scope


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_ours_is_a_child_of_the_sdk_span(
    emulator: BedrockEmulator, instrumented: TelemetryCapture, stream: bool
) -> None:
    _call(emulator, {"tracer_provider": instrumented.tracer_provider}, stream=stream)
    spans = _by_scope(instrumented)
    assert set(spans) == {THEIRS, OURS}
    assert spans[OURS].parent is not None
    assert spans[OURS].parent.span_id == spans[THEIRS].context.span_id
    assert spans[OURS].context.trace_id == spans[THEIRS].context.trace_id


def test_open_telemetry_false_keeps_only_ours(
    emulator: BedrockEmulator, instrumented: TelemetryCapture
) -> None:
    _call(emulator, False)
    assert set(_by_scope(instrumented)) == {OURS}


def test_the_environment_variable_turns_the_sdk_span_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client given no option reads ``ANTHROPIC_OPEN_TELEMETRY`` (and then uses the global tracer
    provider, which a test cannot swap): checked on the option the client resolved."""
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    client = anthropic.AnthropicBedrock(**AWS, base_url="http://127.0.0.1:9", http_client=httpx2.Client())
    assert client.open_telemetry["traces"]["enabled"] is False
