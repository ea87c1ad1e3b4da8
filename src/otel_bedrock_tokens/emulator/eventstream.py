"""AWS event-stream frames, the framing of InvokeModelWithResponseStream and ConverseStream.

A frame is ``[u32 total][u32 headers_len][u32 crc(prelude)][headers][payload][u32 crc(all before)]``.
botocore checks both CRCs, so a frame that is wrong by one bit is a fault botocore reports; the
emulator builds every frame here so that the only broken frames are the ones a test asks for.
Headers are always of type string (7), the only type Bedrock sends.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

_U32 = struct.Struct(">I")
_PRELUDE = struct.Struct(">II")
_U16 = struct.Struct(">H")
_STRING = 7
#: botocore refuses larger frames (``_MAX_PAYLOAD_LENGTH`` / ``_MAX_HEADERS_LENGTH``).
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_HEADERS = 128 * 1024
#: Newer Bedrock responses pad every payload with a ``p`` field cut from this alphabet.
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

Headers = Sequence[tuple[str, str]]


def encode_headers(headers: Headers) -> bytes:
    out = bytearray()
    for name, value in headers:
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        if not 0 < len(raw_name) < 256:
            raise ValueError(f"event-stream header name must be 1..255 bytes: {name!r}")
        if len(raw_value) > 0xFFFF:
            raise ValueError(f"event-stream header {name!r} is too long")
        out += bytes((len(raw_name),)) + raw_name + bytes((_STRING,)) + _U16.pack(len(raw_value)) + raw_value
    if len(out) > MAX_HEADERS:
        raise ValueError("event-stream headers are too long")
    return bytes(out)


def encode_frame(headers: Headers, payload: bytes) -> bytes:
    """One complete frame with a correct prelude CRC and message CRC."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("event-stream payload is too long")
    raw_headers = encode_headers(headers)
    total = _PRELUDE.size + _U32.size + len(raw_headers) + len(payload) + _U32.size
    prelude = _PRELUDE.pack(total, len(raw_headers))
    head = prelude + _U32.pack(zlib.crc32(prelude))
    message = head + raw_headers + payload
    return message + _U32.pack(zlib.crc32(message))


def corrupt(frame: bytes) -> bytes:
    """The same frame with its message CRC off by one bit (botocore raises ``ChecksumMismatch``)."""
    return frame[:-1] + bytes((frame[-1] ^ 0x01,))


def compact_json(value: Any) -> bytes:
    """JSON as Bedrock writes it: no spaces, UTF-8 rather than ``\\u`` escapes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def padding(index: int) -> str:
    """The ``p`` padding field: deterministic length (1..62) so recordings of the emulator are stable."""
    return _PAD[: (index * 37 + 11) % len(_PAD) + 1]


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    return encode_frame(
        ((":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")),
        compact_json(payload),
    )


def chunk_frame(model_chunk: dict[str, Any], index: int) -> bytes:
    """An InvokeModelWithResponseStream ``chunk``: the model's JSON, base64 in ``bytes``, padded."""
    encoded = base64.b64encode(compact_json(model_chunk)).decode("ascii")
    return event_frame("chunk", {"bytes": encoded, "p": padding(index)})


def exception_frame(exception_type: str, payload: dict[str, Any]) -> bytes:
    """A modeled exception inside a stream: botocore raises ``EventStreamError`` with this code."""
    return encode_frame(
        (
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ),
        compact_json(payload),
    )


def error_frame(code: str, message: str) -> bytes:
    """An unmodeled ``error`` message (``:error-code`` / ``:error-message`` headers, empty payload)."""
    return encode_frame(
        ((":error-code", code), (":error-message", message), (":message-type", "error")),
        b"",
    )
