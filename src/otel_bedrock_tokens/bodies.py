"""Read an InvokeModel response body once and give the caller a byte-exact replay.

botocore's ``StreamingBody`` can be read only once. We read it inside the call (the response is not
streamed, so this adds no wait) and put back a ``StreamingBody`` over the same bytes, so the
caller's ``read()``, ``iter_lines()``, ``iter_chunks()`` and ``close()`` behave as before, for JSON
and non-JSON bodies alike. If reading fails part-way, the replay returns the bytes that did arrive
and then raises the very same exception object, exactly where the caller would have met it.
"""

from __future__ import annotations

import io

from botocore.response import StreamingBody

_CHUNK = 1 << 20


class _PrefixThenRaise(io.RawIOBase):
    """A raw stream that returns ``prefix`` and then raises ``error`` (a failed read, replayed)."""

    def __init__(self, prefix: bytes, error: BaseException) -> None:
        super().__init__()
        self._buffer = io.BytesIO(prefix)
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._buffer.read(size)
        if data:
            return data
        raise self._error

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class ReadResult:
    """What reading the body gave: the bytes, and the error that stopped it, if any."""

    __slots__ = ("data", "error", "replacement")

    def __init__(self, data: bytes, error: BaseException | None, replacement: StreamingBody) -> None:
        self.data = data
        self.error = error
        self.replacement = replacement


def read_and_replay(body: StreamingBody) -> ReadResult:
    """Drain ``body``; return its bytes and a replacement body the caller can read instead."""
    chunks: list[bytes] = []
    try:
        while True:
            chunk = body.read(_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
    except Exception as error:
        prefix = b"".join(chunks)
        return ReadResult(prefix, error, StreamingBody(_PrefixThenRaise(prefix, error), None))
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return ReadResult(data, None, StreamingBody(io.BytesIO(data), len(data)))
