"""Event-stream frames: botocore's own parser must read every frame we write, byte-exact frames for
recorded payloads, and reject a frame whose CRC we break on purpose."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, EventStreamMessage
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.emulator import eventstream
from tests.support.replay import raw_recording

RECORDINGS = Path(__file__).parent.parent / "recordings"

header_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda name: 0 < len(name.encode()) < 256
)
header_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


def parse(data: bytes) -> list[EventStreamMessage]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


@given(
    st.lists(st.tuples(header_names, header_values), max_size=6, unique_by=lambda h: h[0]),
    st.binary(max_size=2048),
)
def test_botocore_reads_every_frame_we_write(headers: list[tuple[str, str]], payload: bytes) -> None:
    (message,) = parse(eventstream.encode_frame(headers, payload))
    assert message.payload == payload
    assert message.headers == dict(headers)


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_frames_concatenate_into_a_stream(payloads: list[bytes]) -> None:
    data = b"".join(eventstream.encode_frame([(":event-type", "chunk")], p) for p in payloads)
    assert [message.payload for message in parse(data)] == payloads


@given(st.binary(min_size=1, max_size=300))
def test_a_corrupted_frame_fails_its_checksum(payload: bytes) -> None:
    frame = eventstream.corrupt(eventstream.encode_frame([(":event-type", "chunk")], payload))
    with pytest.raises(ChecksumMismatch):
        parse(frame)


def test_oversized_parts_are_refused() -> None:
    with pytest.raises(ValueError):
        eventstream.encode_frame([("x" * 256, "v")], b"")
    with pytest.raises(ValueError):
        eventstream.encode_frame([("x", "v" * 70_000)], b"")


def _recorded_frames() -> list[bytes]:
    frames: list[bytes] = []
    for path in sorted(RECORDINGS.glob("*/*.yaml")):
        for interaction in raw_recording(path)["interactions"]:
            body = interaction["response"]["body"]["string"]
            headers = {k.lower(): v for k, v in interaction["response"]["headers"].items()}
            if "eventstream" not in str(headers.get("content-type")) or not isinstance(body, bytes):
                continue
            offset = 0
            while offset < len(body):
                total = int.from_bytes(body[offset : offset + 4], "big")
                frames.append(body[offset : offset + total])
                offset += total
    return frames


def test_recorded_frames_are_reproduced_byte_for_byte() -> None:
    """Same headers (in recorded order) and payload: the encoder writes exactly Bedrock's bytes."""
    frames = _recorded_frames()
    assert len(frames) > 500
    for frame in frames:
        (message,) = parse(frame)
        assert eventstream.encode_frame(list(message.headers.items()), message.payload) == frame


def test_chunk_frames_carry_base64_model_json_and_padding() -> None:
    (message,) = parse(eventstream.chunk_frame({"type": "message_stop"}, 3))
    payload = json.loads(message.payload)
    assert set(payload) == {"bytes", "p"}
    assert json.loads(base64.b64decode(payload["bytes"])) == {"type": "message_stop"}
    assert message.headers == {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }


def test_exception_and_error_frames() -> None:
    (exception,) = parse(eventstream.exception_frame("throttlingException", {"message": "slow down"}))
    assert exception.headers[":message-type"] == "exception"
    assert exception.headers[":exception-type"] == "throttlingException"
    (error,) = parse(eventstream.error_frame("InternalFailure", "boom"))
    assert error.headers == {
        ":error-code": "InternalFailure",
        ":error-message": "boom",
        ":message-type": "error",
    }
