"""Read an InvokeModel response body once and give the caller a byte-exact replay.

botocore's ``StreamingBody`` can be read only once. We read it inside the call (the response is not
streamed, so this adds no wait) and put back a ``StreamingBody`` over the same bytes, so the
caller's ``read()``, ``iter_lines()``, ``iter_chunks()`` and ``close()`` behave as before, for JSON
and non-JSON bodies alike. If reading fails, the replay raises the very same exception object on
the caller's first read, where the caller would have met it.
"""

from __future__ import annotations

import io

from botocore.response import StreamingBody


class _Raise(io.RawIOBase):
    """A raw stream whose every read raises ``error``: a failed read, replayed to the caller."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise self._error

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        raise self._error


class ReplayBody(StreamingBody):  # type: ignore[misc]
    """A ``StreamingBody`` over bytes already read: everything behaves as on the original, and
    ``set_socket_timeout`` (which reaches for a socket the bytes no longer need) does nothing."""

    def set_socket_timeout(self, timeout: float) -> None:
        pass


class ReadResult:
    """What reading the body gave: the bytes, and the error that stopped it, if any."""

    __slots__ = ("data", "error", "replacement")

    def __init__(self, data: bytes, error: BaseException | None, replacement: StreamingBody) -> None:
        self.data = data
        self.error = error
        self.replacement = replacement


def read_and_replay(body: StreamingBody) -> ReadResult:
    """Drain ``body`` in one read; return its bytes and a replacement the caller can read instead.

    One ``read()`` is what most callers do themselves, and it is one urllib3 read instead of a
    loop; if it fails, the caller's first read raises the same exception object (a plain ``read()``
    would not have returned the partial bytes either)."""
    try:
        data = body.read()
    except Exception as error:
        return ReadResult(b"", error, ReplayBody(_Raise(error), None))
    return ReadResult(data, None, ReplayBody(io.BytesIO(data), len(data)))
