"""Event-stream helpers shared by the stream tests."""

from __future__ import annotations

import struct


def frames(body: bytes) -> list[bytes]:
    """Split an event-stream body into its raw frames (each starts with its total length)."""
    out = []
    offset = 0
    while offset < len(body):
        (length,) = struct.unpack_from(">I", body, offset)
        out.append(body[offset : offset + length])
        offset += length
    return out
