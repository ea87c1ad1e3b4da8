"""What a model family contributes: how to read its request and response bodies.

A family is a table entry of plain functions, so adding one is a small module and the registry
stays a lookup. Every reader takes untrusted JSON and must never raise (``families._fields``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ..facts import RequestParams, ResponseFacts

Body = dict[str, Any]


def _no_chunk(chunk: Body, facts: ResponseFacts) -> None:
    """Families whose stream chunks carry nothing beyond the invocation metrics."""


class Family(NamedTuple):
    """(A NamedTuple, not a frozen dataclass: as immutable, and much cheaper to define at import,
    which every cold start pays.)"""

    name: str
    #: ``gen_ai.operation.name`` for a request body of this family.
    operation_name: Callable[[Body], str]
    #: ``gen_ai.request.*`` parameters from a request body.
    request_params: Callable[[Body], RequestParams]
    #: Fill usage / finish reasons / id / model from a complete InvokeModel response body.
    read_response: Callable[[Body, ResponseFacts], None]
    #: Fill the same from one InvokeModelWithResponseStream chunk (called once per chunk, in order).
    read_chunk: Callable[[Body, ResponseFacts], None] = _no_chunk
    #: Byte strings at least one of which appears in every chunk :attr:`read_chunk` learns from,
    #: besides the final chunk (which carries the invocation metrics and is always read). A chunk
    #: is parsed only when it contains one, which keeps the per-event cost of long streams to one or
    #: two substring searches. ``()``: only the final chunk; ``None``: parse every chunk.
    chunk_markers: tuple[bytes, ...] | None = None
    #: How chunks that carry nothing :attr:`read_chunk` reads, and are never the final chunk, begin
    #: (as Bedrock serialises them): text deltas, mostly. Such a chunk is passed over after one
    #: ``bytes.startswith``, cheaper than the marker searches; a chunk serialised any other way is
    #: searched as usual. Each family's prefixes are checked against every recorded stream
    #: (``tests/test_streams_recordings.py``).
    skip_prefixes: tuple[bytes, ...] = ()


def chat_if_messages(body: Body) -> str:
    """Messages-style bodies are ``chat``, prompt-style ones ``text_completion``."""
    return "chat" if "messages" in body else "text_completion"
