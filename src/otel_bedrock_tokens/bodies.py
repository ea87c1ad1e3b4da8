"""Read an InvokeModel response body inside the call and leave the caller's body exactly as botocore's.

botocore's ``StreamingBody`` reads once from a raw stream (urllib3's ``HTTPResponse``) and counts
what it read, verifying the count against the ``Content-Length`` at the end. We need the bytes
inside the call (the response is not streamed, so this adds no wait), and the caller must then meet
what it would have met without us: the same bytes, the same exceptions at the same reads (a reset
in the middle of the body, a read after ``close()``), through the very body object botocore built.
So the caller's ``StreamingBody`` is never replaced; we act one level below it:

- A raw stream that can be rewound (a stubbed body's ``BytesIO``, a file: ``seekable()``) is read
  and rewound. Nothing else changes: ``botocore.stub.Stubber`` users get their own object back,
  and a reference they kept reads the bytes too.
- A live urllib3 response is read with ``read1`` (each call returns what has arrived, so the bytes
  before a failure are kept, and we learn where the failure was), then the body's raw stream is
  swapped for a :class:`RecordedResponse` that plays back urllib3's behaviour over those bytes: a
  read within them returns them; the read that would have crossed the failure raises the very
  urllib3 exception we met (so botocore wraps it, in the caller's read, as it would have:
  ``ResponseStreamingError``, ``ReadTimeoutError``); after that, and after the bytes or ``close()``,
  every call goes to the real response, which is where urllib3 would be then (at its end, or
  closed). botocore's own ``read`` keeps counting and verifying against the original content
  length, so ``IncompleteReadError`` comes exactly where it would.

The error we record on the span is what botocore would have raised for the caller's ``read()``:
botocore's own wrapping, obtained by running the urllib3 error through a ``StreamingBody``.
"""

from __future__ import annotations

import http.client
import io
import logging
from collections.abc import Iterator
from typing import Any

from botocore.response import StreamingBody
from urllib3.exceptions import ProtocolError

from ._logging import log_internal_error

logger = logging.getLogger(__name__)

#: ``read1`` size: one socket read's worth; a small body (all of it already buffered with the
#: headers) comes back in one call.
_CHUNK = 1 << 16


class _Raise:
    """A raw stream whose read raises ``error``: to learn how botocore's ``read`` wraps it."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def read(self, amt: int | None = None) -> bytes:
        raise self._error


def caller_error(error: Exception) -> Exception:
    """The exception a caller's ``StreamingBody.read()`` raises when the raw read raises ``error``."""
    try:
        StreamingBody(_Raise(error), None).read()
    except Exception as wrapped:
        return wrapped
    return error


def _cut_short(partial: bytes, missing: int) -> Exception:
    """What urllib3's whole ``read()`` raises on a body that ended cleanly ``missing`` bytes short of
    its ``Content-Length``: ``http.client`` raises ``IncompleteRead`` and urllib3 wraps it, with this
    text. (A read of ``n`` bytes instead returns what there is; the next one, at the end, is the real
    response's: ``b""``, or urllib3's own ``IncompleteRead`` where it enforces the length.)"""
    cause = http.client.IncompleteRead(partial, missing)
    return ProtocolError(f"Connection broken: {cause!r}", cause)


class _NoSocket:
    """``set_socket_timeout`` reaches ``raw._fp.fp.raw._sock.settimeout``: the bytes being already
    here, there is no socket left to time out, and setting the timeout does nothing."""

    fp = raw = _sock = property(lambda self: self)

    def settimeout(self, timeout: float | None) -> None:
        pass


_NO_SOCKET = _NoSocket()


class RecordedResponse:
    """Stands in for the urllib3 ``HTTPResponse`` under the caller's ``StreamingBody``: replays the
    bytes read inside the call, then the failure that stopped them (if any), as urllib3 would.

    What urllib3 does, and so what this does: ``read(n)`` returns ``n`` bytes when they arrived; a
    read that needs more than arrived before a failure raises the failure (the bytes it had are
    lost, as they are in urllib3: ``tell()`` does not count them); at the end of the bytes without a
    failure it returns the rest, then ``b""`` (or, for a body cut short by an orderly close, what
    urllib3 raises then). After the failure, the end or ``close()``, the real response answers
    (urllib3 closed the connection on the failure: its reads return ``b""``)."""

    __slots__ = ("_data", "_error", "_missing", "_offset", "_real", "_replaying")

    def __init__(self, real: Any, data: bytes, error: Exception | None, missing: int | None) -> None:
        self._real = real
        self._data = data
        self._error = error
        #: Bytes the ``Content-Length`` promised beyond ``data`` when the body ended without a failure.
        self._missing = missing
        self._offset = 0
        self._replaying = True

    def read(self, amt: int | None = None) -> bytes:
        if not self._replaying:
            return self._real.read(amt)  # type: ignore[no-any-return]
        start = self._offset
        data = self._data
        whole = amt is None or amt < 0
        if not whole and amt <= len(data) - start:  # type: ignore[operator]
            self._offset = start + amt  # type: ignore[operator]
            return data[start : self._offset]
        if self._error is not None:  # the read that meets the failure raises it
            self._replaying = False
            raise self._error
        if self._missing is None:  # the body ended at its length: the rest, then the real end
            self._replaying = False
            self._offset = len(data)
            return data[start:] if start else data
        # Cut short by an orderly close: http.client still has the connection open here.
        if whole:
            self._replaying = False
            raise _cut_short(data[start:], self._missing)
        if start < len(data):
            self._offset = len(data)
            return data[start:]
        self._replaying = False
        return self._real.read(amt)  # type: ignore[no-any-return]  # urllib3 raises IncompleteRead

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """urllib3's ``readinto``, over :meth:`read`."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        """urllib3's line iterator (it splits 64 KiB reads on ``\\n``, keeping the newline)."""
        pending: list[bytes] = []
        while chunk := self.read(_CHUNK):
            if b"\n" in chunk:
                lines = chunk.split(b"\n")
                yield b"".join(pending) + lines[0] + b"\n"
                for line in lines[1:-1]:
                    yield line + b"\n"
                pending = [lines[-1]] if lines[-1] else []
            else:
                pending.append(chunk)
        if pending:
            yield b"".join(pending)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        """Bytes taken from the wire as the caller sees it: what it read of the replay, and what the
        real response read after it."""
        return int(self._offset + self._real.tell() - len(self._data))

    def close(self) -> None:
        self._replaying = False
        self._real.close()

    @property
    def closed(self) -> bool:
        """urllib3 reports closed once the body is read to its end or the response is closed."""
        at_end = self._error is None and self._offset == len(self._data)
        return (at_end or not self._replaying) and bool(self._real.closed)

    @property
    def _fp(self) -> Any:
        return _NO_SOCKET if self._replaying else self._real._fp

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Pickling (and deep-copying) an unread urllib3 response fails on its open socket file (a
        # BufferedReader): the caller meets that error, in this Python's words, with us too.
        if self._replaying:
            try:
                io.BufferedReader(io.BytesIO()).__reduce_ex__(protocol)
            except TypeError as error:
                raise TypeError(*error.args) from None
        return self._real.__reduce_ex__(protocol)

    def __getattr__(self, name: str) -> Any:
        # Everything else (status, headers, release_conn...) is the real response's.
        if name == "_real" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._real, name)


class ReadResult:
    """What reading the body gave: the bytes (``None``: not read), the error that stopped it (as the
    caller's ``read()`` would raise it), and the body the caller gets."""

    __slots__ = ("data", "error", "replacement")

    def __init__(self, data: bytes | None, error: BaseException | None, replacement: Any) -> None:
        self.data = data
        self.error = error
        self.replacement = replacement


def read_and_replay(body: StreamingBody) -> ReadResult:
    """Read ``body``'s bytes and leave ``body`` reading as if we had not (see the module doc).

    The result's ``replacement`` is ``body`` itself. A body whose raw stream we do not know is left
    untouched and unread (``data`` is ``None``): the response headers still carry the tokens."""
    raw = getattr(body, "_raw_stream", None)
    if raw is None or type(getattr(body, "_amount_read", None)) is not int or body._amount_read:
        return ReadResult(None, None, body)
    try:
        seekable = raw.seekable()
    except Exception:
        seekable = False
    if seekable:
        return _read_and_rewind(body, raw)
    read1 = getattr(raw, "read1", None)
    chunks: list[bytes] = []
    error: Exception | None = None
    try:
        if read1 is None:  # not urllib3 2: one read, whose failure keeps nothing
            chunks.append(raw.read())
        else:
            while chunk := read1(_CHUNK):
                chunks.append(chunk)
    except Exception as failure:
        error = failure
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    missing = _missing(raw) if error is None else None
    body._raw_stream = RecordedResponse(raw, data, error, missing)
    if missing is not None:  # what the caller's read() raises on this body
        error = _cut_short(data, missing)
    return ReadResult(data, caller_error(error) if error is not None else None, body)


def _missing(raw: Any) -> int | None:
    """Bytes a cleanly ended body fell short of its ``Content-Length`` by (``None``: none)."""
    missing = getattr(raw, "length_remaining", None)
    return missing if type(missing) is int and missing > 0 else None


def _read_and_rewind(body: StreamingBody, raw: Any) -> ReadResult:
    """Read a rewindable raw stream from where it is, then put it back there."""
    try:
        start = raw.tell()
    except Exception:
        return ReadResult(None, None, body)  # not where we could come back to: leave it unread
    failure: Exception | None = None
    try:
        data = bytes(raw.read())
    except Exception as error:
        data, failure = b"", caller_error(error)
    try:
        raw.seek(start)
    except Exception:
        log_internal_error(logger, "bedrock-tokens: could not rewind a response body")
    return ReadResult(data, failure, body)
