"""An incremental AWS event-stream decoder, fed the response bytes exactly as the application reads them.

The tee point is the application's own reads: :meth:`EventStreamDecoder.feed` takes whatever chunk
the application just received (any size, split anywhere, even inside a prelude) and returns the frames
it completed, so we never read ahead of the application and never hold more than one partial frame.
Frame layout: ``[u32 total][u32 headers_len][u32 crc(prelude)][headers][payload][u32 crc(all before)]``.
CRCs are not checked (the client library checks them and raises; we only observe); a frame whose
lengths are impossible stops the decoder for good (:attr:`EventStreamDecoder.broken`), because nothing
after it can be framed reliably.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import NamedTuple

_PRELUDE = struct.Struct(">II")
_U16 = struct.Struct(">H")
#: prelude (8) + prelude CRC (4) + message CRC (4).
_OVERHEAD = 16
#: botocore's limits: larger frames are refused by the client, so they are not Bedrock's.
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_HEADERS = 128 * 1024
_STRING = 7
#: Sizes of the fixed-width header value types (0/1 bool: no value).
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


class Frame(NamedTuple):
    """One decoded message: its string headers (``:event-type``, ``:message-type``...) and payload."""

    #: Read-only: frames with the same header bytes share one mapping (see :func:`_headers`).
    headers: Mapping[str, str]
    payload: bytes

    @property
    def event_type(self) -> str | None:
        return self.headers.get(":event-type")

    @property
    def message_type(self) -> str | None:
        return self.headers.get(":message-type")


def decode_headers(raw: bytes) -> dict[str, str]:
    """String-typed headers (the only type Bedrock sends); other types are skipped. Stops quietly at
    the first malformed header (what was read before it is kept)."""
    headers: dict[str, str] = {}
    at, end = 0, len(raw)
    while at < end:
        name_len = raw[at]
        at += 1
        name = raw[at : at + name_len]
        at += name_len
        if at >= end:
            break
        kind = raw[at]
        at += 1
        if kind in (6, _STRING):  # byte array / string: u16 length + bytes
            if at + 2 > end:
                break
            (length,) = _U16.unpack_from(raw, at)
            at += 2
            value = raw[at : at + length]
            at += length
            if kind == _STRING:
                headers[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        elif kind in _FIXED:
            at += _FIXED[kind]
        else:
            break
    return headers


class EventStreamDecoder:
    """Turns arbitrarily split bytes into :class:`Frame` s; identical frames for any chunking."""

    __slots__ = ("_buffer", "broken")

    def __init__(self) -> None:
        self._buffer = bytearray()
        #: An impossible frame length was seen: every later byte is ignored.
        self.broken = False

    def feed(self, data: bytes) -> list[Frame]:
        """The frames ``data`` completes (usually zero or one), in order. Never raises."""
        if self.broken or not data:
            return []
        buffer = self._buffer
        if not buffer and len(data) >= 12:
            # Common case: the chunk is exactly one frame; decode it without copying into the buffer.
            total, headers_len = _PRELUDE.unpack_from(data, 0)
            if total == len(data):
                if not self._possible(total, headers_len):
                    return []
                return [_frame(data, headers_len)]
        buffer += data
        frames: list[Frame] = []
        while len(buffer) >= 12:
            total, headers_len = _PRELUDE.unpack_from(buffer, 0)
            if not self._possible(total, headers_len):
                break
            if len(buffer) < total:
                break
            frames.append(_frame(bytes(buffer[:total]), headers_len))
            del buffer[:total]
        return frames

    def _possible(self, total: int, headers_len: int) -> bool:
        payload_len = total - headers_len - _OVERHEAD
        if headers_len > MAX_HEADERS or payload_len < 0 or payload_len > MAX_PAYLOAD:
            self.broken = True
            self._buffer.clear()
            return False
        return True

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (0 at a frame boundary: the stream ended cleanly)."""
        return len(self._buffer)


#: Decoded header blocks by their bytes. A stream repeats the same few blocks (every InvokeModel
#: ``chunk`` event has identical headers), so decoding each distinct block once saves most of the
#: per-event cost. Bounded: once full, further blocks are decoded every time. Frames share the
#: mappings, which nobody mutates.
_HEADER_CACHE: dict[bytes, Mapping[str, str]] = {}
_HEADER_CACHE_SIZE = 256
#: Only small blocks are kept (Bedrock's are under 100 bytes): the cache stays under 64 kB.
_HEADER_CACHE_BLOCK = 256


def _headers(raw: bytes) -> Mapping[str, str]:
    cached = _HEADER_CACHE.get(raw)
    if cached is None:
        cached = decode_headers(raw)
        if len(raw) <= _HEADER_CACHE_BLOCK and len(_HEADER_CACHE) < _HEADER_CACHE_SIZE:
            _HEADER_CACHE[raw] = cached
    return cached


def _frame(raw: bytes, headers_len: int) -> Frame:
    """The frame ``raw`` (exactly one, its lengths already checked)."""
    return Frame(_headers(raw[12 : 12 + headers_len]), raw[12 + headers_len : -4])
