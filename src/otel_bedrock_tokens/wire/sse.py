"""An incremental Server-Sent Events decoder (the mantle APIs' streams), fed bytes as the app reads them.

Follows the WHATWG event-stream rules that matter for the Anthropic and OpenAI streams: lines end in
``\\n``, ``\\r\\n`` or ``\\r`` (a ``\\r\\n`` may be split between two reads); ``event:`` names the event,
each ``data:`` line adds a line to the data; a line starting with ``:`` is a comment; a blank line
dispatches the event (none when it has no data). ``id:`` and ``retry:`` are of no use here and ignored.
Bytes are decoded as UTF-8 one line at a time, so a character split between reads is never mangled.
The buffer holds at most one incomplete line, and a line longer than :data:`MAX_LINE` stops the
decoder (a stream we cannot follow is not worth unbounded memory).
"""

from __future__ import annotations

from typing import NamedTuple

#: Longest line we keep buffering (mantle events are a few kB; a whole response fits easily).
MAX_LINE = 8 * 1024 * 1024


class SseEvent(NamedTuple):
    #: The ``event:`` field (``""`` when the event had none: OpenAI Chat Completions chunks).
    event: str
    #: The ``data:`` lines joined with ``\n``.
    data: str


class SseDecoder:
    """Turns arbitrarily split bytes into :class:`SseEvent` s; identical events for any chunking."""

    __slots__ = ("_buffer", "_data", "_event", "_skip_lf", "broken")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        #: The last read ended in ``\r``: a ``\n`` starting the next one belongs to that line end.
        self._skip_lf = False
        self.broken = False

    def feed(self, data: bytes) -> list[SseEvent]:
        """The events ``data`` completes, in order. Never raises."""
        if self.broken or not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        buffer = self._buffer + data if self._buffer else data
        events: list[SseEvent] = []
        if b"\r" not in buffer:
            # Every stream seen so far ends its lines with \n alone: one split instead of a search
            # per line.
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()
            line_of = self._line
            for line in lines:
                line_of(line, events)
            if len(self._buffer) > MAX_LINE:
                self.broken = True
                self._buffer = b""
            return events
        start, size = 0, len(buffer)
        while start < size:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf >= 0 else size)
            if cr >= 0:
                end, next_start = cr, cr + 1
                if next_start < size and buffer[next_start] == 0x0A:
                    next_start += 1
                elif next_start == size:
                    self._skip_lf = True
            elif lf >= 0:
                end, next_start = lf, lf + 1
            else:
                break
            self._line(buffer[start:end], events)
            start = next_start
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_LINE:
            self.broken = True
            self._buffer = b""
        return events

    def _line(self, raw: bytes, events: list[SseEvent]) -> None:
        if not raw:
            if self._data:
                events.append(SseEvent(self._event, "\n".join(self._data)))
            self._event = ""
            self._data = []
            return
        # The two fields every event has, without the general parse.
        if raw.startswith(b"data:"):
            value = raw[6:] if raw[5:6] == b" " else raw[5:]
            self._data.append(value.decode("utf-8", "replace"))
            return
        if raw.startswith(b"event:"):
            value = raw[7:] if raw[6:7] == b" " else raw[6:]
            self._event = value.decode("utf-8", "replace")
            return
        line = raw.decode("utf-8", "replace")
        field, colon, text = line.partition(":")
        if not field and colon:  # comment
            return
        if text[:1] == " ":
            text = text[1:]
        if field == "data":
            self._data.append(text)
        elif field == "event":
            self._event = text
