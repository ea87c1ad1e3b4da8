"""Response readers on raw bytes: one per wire shape, the same parsing code as the botocore path.

A transport adapter creates one reader per recognized call (:func:`reader_for`), then either hands it
the whole body (:meth:`Reader.read_body`) or every piece of a streamed body as the application reads
it (:meth:`Reader.feed`), and takes :attr:`Reader.facts` at the end. Readers never raise (a fault in
our parsing must never reach the application: it is logged at debug and the reader stops reading) and
never read anything themselves.

The bedrock-runtime shapes go through :mod:`..operations` and :mod:`..families` exactly as botocore's
parsed responses do: token headers first, the body's usage as fallback, InvokeModelWithResponseStream
chunks by family plus the final chunk's invocation metrics, ConverseStream's ``metadata`` event. The
mantle shapes are in :mod:`.mantle`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import zlib
from collections.abc import Mapping
from typing import Any

from .._logging import log_internal_error
from ..converse import converse_usage
from ..facts import ResponseFacts
from ..families import family_for
from ..families._fields import as_dict, string
from ..json_object import parse_json_object
from ..metering import INVOCATION_METRICS, invocation_metrics_usage
from ..model_id import parse_model_id
from ..operations import OPERATIONS
from ..usage import Usage
from . import request as ops
from .eventstream import EventStreamDecoder, Frame

logger = logging.getLogger(__name__)

_INVOCATION_METRICS_MARKER = INVOCATION_METRICS.encode()


class Reader:
    """Base reader: what one response said so far."""

    __slots__ = ("_inflate", "billed", "done", "error_code", "events", "facts", "failed", "reasoning_tokens")

    def __init__(self) -> None:
        self.facts = ResponseFacts()
        #: The authoritative usage (headers, the final usage event); ``facts.usage`` is the fallback.
        self.billed: Usage | None = None
        #: The response's final usage-bearing part has been read (a stream read to its end).
        self.done = False
        #: Decoded stream events so far (event frames / SSE events, not byte reads): what
        #: ``bedrock_tokens.stream.events`` counts, as botocore's stream counts the events it yields.
        self.events = 0
        #: An in-stream exception or error frame's code (``throttlingException``...), or the error
        #: of a failed mantle stream.
        self.error_code: str | None = None
        #: Reasoning (thinking) tokens, where the response states them (mantle shapes); part of output.
        self.reasoning_tokens: int | None = None
        #: Our own parsing failed once: the reader ignores everything after.
        self.failed = False
        self._inflate: Any = None

    def content_encoding(self, encoding: str | None) -> None:
        """The response's ``Content-Encoding``: a transport tees the bytes it receives, before the
        client library decompresses them, so a gzip or deflate body is inflated here (incrementally,
        as it arrives). Any other coding is not ours to read: the reader then ignores the body."""
        coding = (encoding or "").strip().lower()
        if coding in ("", "identity"):
            return
        if coding in ("gzip", "x-gzip", "deflate"):
            # wbits 47: zlib or gzip header, detected from the data.
            self._inflate = zlib.decompressobj(47)
        else:
            self.failed = True

    def _inflated(self, data: bytes) -> bytes:
        return data if self._inflate is None else self._inflate.decompress(data)

    def read_body(self, headers: Mapping[str, str], data: bytes) -> None:
        """A complete non-streamed body with its (lower-case keyed) response headers."""
        if self.failed:
            return
        try:
            self._body(headers, self._inflated(data))
        except Exception:
            self.failed = True
            log_internal_error(logger, "bedrock-tokens: could not read a response body")

    def feed(self, data: bytes) -> None:
        """The next bytes of a streamed body, exactly as the application just read them."""
        if self.failed or self.done or not data:
            return
        try:
            self._feed(self._inflated(data))
        except Exception:
            self.failed = True
            log_internal_error(logger, "bedrock-tokens: could not read a response stream")

    @property
    def usage(self) -> Usage:
        """The best usage known: the billed figures, each missing field filled from the fallback."""
        if self.billed is None:
            return self.facts.usage
        merged = Usage(
            self.billed.input_tokens,
            self.billed.output_tokens,
            self.billed.cache_read_tokens,
            self.billed.cache_write_tokens,
        )
        merged.fill_from(self.facts.usage)
        return merged

    def _body(self, headers: Mapping[str, str], data: bytes) -> None:
        raise NotImplementedError

    def _feed(self, data: bytes) -> None:
        raise NotImplementedError


def _metadata(headers: Mapping[str, str]) -> dict[str, Any]:
    """A botocore-shaped result holding only ``ResponseMetadata``, for the operations' readers."""
    return {"ResponseMetadata": {"HTTPHeaders": headers, "RequestId": headers.get("x-amzn-requestid")}}


class InvokeReader(Reader):
    """InvokeModel: token headers, the family's body usage as fallback (``InvokeModel.parse_response``)."""

    __slots__ = ("_request",)

    def __init__(self, model_id: str, request_body: bytes | None = None) -> None:
        super().__init__()
        self._request = OPERATIONS[ops.INVOKE_MODEL].request(
            {"modelId": model_id, "body": request_body}, (None, None)
        )

    def _body(self, headers: Mapping[str, str], data: bytes) -> None:
        operation = OPERATIONS[ops.INVOKE_MODEL]
        self.facts = operation.parse_response(self._request, _metadata(headers), data)  # type: ignore[attr-defined]
        self.done = True


class ConverseReader(Reader):
    __slots__ = ()

    def _body(self, headers: Mapping[str, str], data: bytes) -> None:
        parsed = parse_json_object(data) or {}
        parsed["ResponseMetadata"] = _metadata(headers)["ResponseMetadata"]
        self.facts = OPERATIONS[ops.CONVERSE].response(None, parsed)  # type: ignore[arg-type]
        self.done = True


class CountTokensReader(Reader):
    __slots__ = ()

    def _body(self, headers: Mapping[str, str], data: bytes) -> None:
        parsed = parse_json_object(data) or {}
        parsed["ResponseMetadata"] = _metadata(headers)["ResponseMetadata"]
        self.facts = OPERATIONS[ops.COUNT_TOKENS].response(None, parsed)  # type: ignore[arg-type]
        self.done = True


class _EventStreamReader(Reader):
    """Frames of an AWS event stream, decoded as the application reads them."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        super().__init__()
        self._decoder = EventStreamDecoder()

    def _feed(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            kind = frame.message_type
            if kind == "event":
                self.events += 1
                self._event(frame)
            elif kind == "exception":
                self.error_code = frame.headers.get(":exception-type")
            elif kind == "error":
                self.error_code = frame.headers.get(":error-code")
            if self.done:
                return

    def _body(self, headers: Mapping[str, str], data: bytes) -> None:
        self._feed(data)

    def _event(self, frame: Frame) -> None:
        raise NotImplementedError


#: How Bedrock serialises a ``chunk`` event's payload: ``{"bytes":"<base64>","p":"..."}``.
_BYTES_PREFIX = b'{"bytes":"'


def _encoded_prefixes(prefixes: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The base64 text every chunk starting with one of ``prefixes`` starts with: base64 maps each
    3 bytes to 4 characters independently, so the whole 3-byte groups of a prefix encode the same
    way in every chunk that starts with it."""
    encoded = []
    for prefix in prefixes:
        whole = len(prefix) - len(prefix) % 3
        if whole:
            encoded.append(base64.b64encode(prefix[:whole]))
    return tuple(encoded)


class InvokeStreamReader(_EventStreamReader):
    """InvokeModelWithResponseStream: ``chunk`` events ``{"bytes": base64(model JSON)}``; the family
    reads each chunk, the final chunk's invocation metrics are the billed usage.

    Per event, as on the botocore path (``streams``): a chunk that starts with one of the family's
    ``skip_prefixes`` is passed over, here on its base64 text (no decoding); the others are decoded
    and parsed only when they contain a family marker or the invocation metrics."""

    __slots__ = ("_family", "_skip")

    def __init__(self, model_id: str) -> None:
        super().__init__()
        self._family = family_for(parse_model_id(model_id))
        self._skip = _encoded_prefixes(self._family.skip_prefixes)

    def _event(self, frame: Frame) -> None:
        if frame.event_type != "chunk":
            return
        payload = frame.payload
        encoded: object
        if payload.startswith(_BYTES_PREFIX):
            start = len(_BYTES_PREFIX)
            end = payload.find(b'"', start)
            if end < 0:
                return
            if self._skip and payload.startswith(self._skip, start):
                return
            encoded = payload[start:end]
        else:
            envelope = parse_json_object(payload)
            encoded = envelope.get("bytes") if envelope is not None else None
            if not isinstance(encoded, str):
                return
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return
        family = self._family
        markers = family.chunk_markers
        if (
            markers is not None
            and data.find(_INVOCATION_METRICS_MARKER) < 0
            and not any(data.find(marker) >= 0 for marker in markers)
        ):
            return
        body = parse_json_object(data)
        if body is None:
            return
        family.read_chunk(body, self.facts)
        billed = invocation_metrics_usage(body.get(INVOCATION_METRICS))
        if billed is not None and not billed.is_empty():
            self.billed = billed
            self.done = True


class ConverseStreamReader(_EventStreamReader):
    """ConverseStream: ``messageStop`` has the stop reason, ``metadata`` the billed usage."""

    __slots__ = ()

    def _event(self, frame: Frame) -> None:
        kind = frame.event_type
        if kind == "metadata":
            event = parse_json_object(frame.payload)
            if event is None:
                return
            usage = Usage()
            converse_usage(event.get("usage"), usage)
            if not usage.is_empty():
                self.billed = usage
                self.done = True
        elif kind == "messageStop":
            event = parse_json_object(frame.payload)
            reason = string(as_dict(event) and event.get("stopReason")) if event is not None else None
            if reason is not None:
                self.facts.finish_reasons = (reason,)


def reader_for(
    operation: str,
    model_id: str | None,
    *,
    streamed: bool,
    request_body: bytes | None = None,
) -> Reader | None:
    """The reader for one recognized call (``streamed``: the response is an event stream or SSE,
    from its content type), or ``None`` when there is nothing to read."""
    from . import mantle

    if operation == ops.INVOKE_MODEL:
        return InvokeReader(model_id or "", request_body)
    if operation == ops.INVOKE_MODEL_STREAM:
        return InvokeStreamReader(model_id or "")
    if operation == ops.CONVERSE:
        return ConverseReader()
    if operation == ops.CONVERSE_STREAM:
        return ConverseStreamReader()
    if operation == ops.COUNT_TOKENS:
        return CountTokensReader()
    return mantle.reader_for(operation, streamed=streamed)
