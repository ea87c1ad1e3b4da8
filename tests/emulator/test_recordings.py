"""Faithfulness: for every recorded Bedrock request, the emulator answers with the same status, the
same headers, the same body keys and the same stream events and chunk keys as the real service.

Each recorded request is sent as recorded (method, path, headers, body) over raw HTTP, so nothing
between the recording and the emulator normalizes anything. The emulator's reply length is set to
the recorded output length, since where a field appears in a stream (first or last chunk) depends on
how many chunks there are. Values are not compared: tokens, ids and text are the emulator's own.
"""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.eventstream import EventStreamBuffer

from otel_bedrock_tokens.emulator import BedrockEmulator
from tests.support.replay import raw_recording

RECORDINGS = Path(__file__).parent.parent / "recordings"
#: Framing and hop-by-hop headers (compared separately), and the recorders' ``Set-Cookie`` stand-in.
_NOT_COMPARED = {"date", "set-cookie", "connection", "content-length", "transfer-encoding"}
_CACHE_HEADERS = {
    "x-amzn-bedrock-cache-read-input-token-count",
    "x-amzn-bedrock-cache-write-input-token-count",
}

#: Recorded before Bedrock started sending the cache headers for Nova (they appear from 2025-02-11).
BEFORE_NOVA_CACHE_HEADERS = {"test_invoke_model_with_content[amazon.nova].yaml"}
#: Model choices, not protocol: after an unexpected tool result Claude called the tool again; the
#: emulator's model answers a tool result in text. Compared without the tool-call events.
MODEL_CHOICES = {("test_converse_stream_tool_call_parsing_errors.yaml", 1)}

CASSETTES = sorted(RECORDINGS.glob("*/*.yaml"))


@dataclass(frozen=True)
class Shape:
    status: int
    headers: frozenset[str]
    framing: str
    body: Any

    def without_tool_calls(self) -> Shape:
        kind, events, outer, *rest = self.body
        return Shape(
            self.status,
            self.headers,
            self.framing,
            (kind, events - {"contentBlockStart"}, outer - {"start"}, *rest),
        )


def _headers(raw: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): str(value[0] if isinstance(value, list) else value) for name, value in raw.items()}


def _events(body: bytes) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    events = []
    for message in buffer:
        payload = json.loads(message.payload) if message.payload else {}
        inner = json.loads(base64.b64decode(payload["bytes"])) if "bytes" in payload else None
        events.append((str(message.headers.get(":event-type")), payload, inner))
    return events


def shape(status: int, raw_headers: dict[str, Any], body: bytes) -> Shape:
    headers = _headers(raw_headers)
    names = frozenset(headers) - _NOT_COMPARED
    framing = "chunked" if "chunked" in headers.get("transfer-encoding", "") else "length"
    if "eventstream" not in headers.get("content-type", ""):
        data = json.loads(body) if body else None
        return Shape(status, names, framing, ("json", frozenset(data) if isinstance(data, dict) else None))
    events = _events(body)
    inner = [chunk for _, _, chunk in events if chunk is not None]
    last = inner[-1] if inner else {k: v for k, v in events[-1][1].items() if k != "p"}
    return Shape(
        status,
        names,
        framing,
        (
            "stream",
            frozenset(kind for kind, _, _ in events),
            frozenset().union(*(set(payload) - {"p", "bytes"} for _, payload, _ in events)),
            frozenset().union(*(set(chunk) for chunk in inner)),
            frozenset(chunk["type"] for chunk in inner if "type" in chunk),
            frozenset(last),
        ),
    )


def recorded_output_tokens(response: dict[str, Any]) -> int | None:
    headers = _headers(response["headers"])
    if "x-amzn-bedrock-output-token-count" in headers:
        return int(headers["x-amzn-bedrock-output-token-count"])
    body = response["body"]["string"]
    body = body.encode() if isinstance(body, str) else body
    if "eventstream" in headers.get("content-type", ""):
        for _, payload, inner in _events(body):
            metrics = (inner or {}).get("amazon-bedrock-invocationMetrics") or {}
            if "outputTokenCount" in metrics:
                return int(metrics["outputTokenCount"])
            if "usage" in payload:
                return int(payload["usage"]["outputTokens"])
        return None
    data = json.loads(body) if body else None
    usage = data.get("usage") if isinstance(data, dict) else None
    return int(usage["outputTokens"]) if isinstance(usage, dict) and "outputTokens" in usage else None


def replay(emulator: BedrockEmulator, request: dict[str, Any]) -> tuple[int, dict[str, Any], bytes]:
    body = request["body"]
    body = body.encode() if isinstance(body, str) else (body or b"")
    headers = {
        name: (value[0].decode() if isinstance(value[0], bytes) else value[0])
        for name, value in request["headers"].items()
        if name.lower() not in ("authorization", "content-length", "host")
    }
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    try:
        connection.request(request["method"], urlsplit(request["uri"]).path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k: [v] for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_the_recordings_are_all_here() -> None:
    assert len(CASSETTES) > 100
    assert sum(len(raw_recording(path)["interactions"]) for path in CASSETTES) == 157


@pytest.mark.parametrize("path", CASSETTES, ids=[f"{p.parent.name}/{p.name}" for p in CASSETTES])
def test_the_emulator_answers_like_bedrock(path: Path) -> None:
    interactions = raw_recording(path)["interactions"]
    # Recorded before Bedrock reported the served tier and cache writes by TTL (late 2025).
    with BedrockEmulator(billing_fields=False) as emulator:
        # The recorded guardrail denies "tennis"; the recorded imported model is a SageMaker-hosted
        # model with an OpenAI-compatible completion runtime.
        emulator.deny_topic("5zwrmdlsra2e", "tennis", "Input blocked")
        emulator.alias(
            "arn:aws:sagemaker:us-east-1:767398002385:endpoint/endpoint-quick-start-idr7y",
            "openai-completion",
        )
        for index, interaction in enumerate(interactions):
            recorded = interaction["response"]
            output = recorded_output_tokens(recorded)
            if output:
                emulator.output_tokens = output
            body = recorded["body"]["string"]
            want = shape(
                recorded["status"]["code"],
                recorded["headers"],
                body.encode() if isinstance(body, str) else body,
            )
            got = shape(*replay(emulator, interaction["request"]))
            if path.name in BEFORE_NOVA_CACHE_HEADERS:
                got = Shape(got.status, got.headers - _CACHE_HEADERS, got.framing, got.body)
            if (path.name, index) in MODEL_CHOICES:
                want, got = want.without_tool_calls(), got.without_tool_calls()
            assert got == want, f"interaction {index}"
