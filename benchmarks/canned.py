"""Canned Bedrock responses for benchmarks: botocore parses a real HTTP-shaped response that a
``before-send`` handler returns, so no socket or server is involved and only client CPU is measured."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from urllib3 import HTTPResponse

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "recordings"
CLAUDE_STREAM = (
    RECORDINGS / "openllmetry" / "traces__test_anthropic__test_anthropic_3_completion_streaming.yaml"
)
CONVERSE_STREAM = RECORDINGS / "otel-contrib" / "test_converse_stream_no_content_different_events.yaml"


def recorded_body(path: Path) -> bytes:
    body = yaml.safe_load(path.read_text())["interactions"][0]["response"]["body"]["string"]
    return body if isinstance(body, bytes) else body.encode()


def frames(body: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(body):
        (length,) = struct.unpack_from(">I", body, offset)
        out.append(body[offset : offset + length])
        offset += length
    return out


def stretched_stream(path: Path, events: int, delta_index: int) -> bytes:
    """A recorded stream with its delta frame repeated so the stream has ``events`` events.

    Whole recorded frames are copied, so both CRCs stay valid and botocore parses them as real."""
    raw = frames(recorded_body(path))
    head, delta, tail = raw[:delta_index], raw[delta_index], raw[delta_index + 1 :]
    middle = max(events - len(head) - len(tail), 1)
    return b"".join([*head, *([delta] * middle), *tail])


class Canned:
    """A boto3 bedrock-runtime client whose every request is answered with fixed bytes."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body = b""
        self.client: Any = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(retries={"max_attempts": 1}),
        )
        self.client.meta.events.register("before-send.bedrock-runtime", self._answer)

    def answer(self, body: bytes, headers: dict[str, str], status: int = 200) -> None:
        self.body, self.headers, self.status = body, headers, status

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        raw = HTTPResponse(
            body=io.BytesIO(self.body),
            headers=self.headers,
            status=self.status,
            preload_content=False,
            decode_content=False,
        )
        return AWSResponse(request.url, self.status, self.headers, raw)


def interleaved(
    plain: Callable[[], None],
    measured: Callable[[], None],
    instrument: Callable[[bool], None],
    rounds: int,
    per_round: int,
    clock: Callable[[], float],
) -> tuple[list[float], list[float]]:
    """A/B blocks in one process: per round, ``per_round`` calls uninstrumented then instrumented.
    Returns per-call seconds for each block, so the medians compare like with like."""
    base, instrumented = [], []
    for _ in range(rounds):
        instrument(False)
        start = clock()
        for _ in range(per_round):
            plain()
        base.append((clock() - start) / per_round)
        instrument(True)
        start = clock()
        for _ in range(per_round):
            measured()
        instrumented.append((clock() - start) / per_round)
    instrument(False)
    return base, instrumented
