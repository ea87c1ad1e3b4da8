"""What the service asks the HTTP layer to send, and what the HTTP layer reports back.

The service decides everything (status, headers, bytes, frames, delays, faults) without touching a
socket; the server writes it and tells the service, through :class:`Delivery`, how far it got, which
is what billing depends on. Parts that report a latency are rendered at send time with a
:class:`Timing`, so the numbers in headers, bodies and invocation metrics are measured, not made up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Header = tuple[str, str]


@dataclass(slots=True)
class Timing:
    """Clock of one request, started when its body has been read."""

    started: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None

    def elapsed_ms(self) -> int:
        return max(1, round((time.perf_counter() - self.started) * 1000))

    def first_byte_ms(self) -> int:
        moment = self.first_byte if self.first_byte is not None else time.perf_counter()
        return max(1, round((moment - self.started) * 1000))


@dataclass(slots=True)
class Delivery:
    """How far the response got: filled in by the server, read by the service's ``settle``."""

    headers_sent: bool = False
    #: Every byte of the planned response was handed to the kernel.
    completed: bool = False
    #: Stream events written completely.
    events_sent: int = 0
    #: Time from the request to the end of the response.
    elapsed_ms: int = 0


def _nothing(delivery: Delivery) -> None:
    return None


@dataclass(slots=True)
class PlainResponse:
    status: int
    #: ``render(timing) -> (headers, body)``, called once the delay has passed.
    render: Callable[[Timing], tuple[list[Header], bytes]]
    #: Seconds before the first byte.
    delay: float = 0.0
    #: Reset the connection after this many body bytes (a fault).
    reset_after: int | None = None
    #: ``reset_after`` closes the connection cleanly instead (the body falls short of its length).
    clean_cut: bool = False
    settle: Callable[[Delivery], None] = _nothing


@dataclass(slots=True)
class StreamEvent:
    """One frame: bytes, or a function of the timing (the final, usage-bearing event)."""

    frame: bytes | Callable[[Timing], bytes]
    #: Seconds to wait before sending it (pacing by output tokens).
    delay: float = 0.0

    def render(self, timing: Timing) -> bytes:
        return self.frame if isinstance(self.frame, bytes) else self.frame(timing)


@dataclass(slots=True)
class StreamResponse:
    headers: list[Header]
    events: list[StreamEvent]
    delay: float = 0.0
    reset_after: int | None = None
    clean_cut: bool = False
    settle: Callable[[Delivery], None] = _nothing


Response = PlainResponse | StreamResponse
