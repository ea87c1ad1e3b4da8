"""A request's input as billing sees it: an ordered list of pieces, some followed by a cache point.

Every operation (InvokeModel of any family, Converse, CountTokens) turns its request into a
:class:`Prompt` first; tokens, prompt-cache reads and writes, and CountTokens answers are all derived
from it, which is what keeps them consistent with each other. Order is the model's: tools, then the
system prompt, then the messages, as Anthropic and the Converse API process them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from .tokenizer import count_text

#: Default prompt-cache lifetime (Bedrock's "5m"); ``"1h"`` on a cache point asks for an hour.
DEFAULT_CACHE_TTL = 300.0
_TTLS = {"5m": 300.0, "1h": 3600.0}


def cache_ttl(value: object) -> float:
    return _TTLS.get(value, DEFAULT_CACHE_TTL) if isinstance(value, str) else DEFAULT_CACHE_TTL


@dataclass(frozen=True, slots=True)
class Piece:
    #: Canonical content: equal keys mean equal content for the prompt cache.
    key: str
    tokens: int
    #: A cache point follows this piece: the prompt up to here may be written to / read from the cache.
    cache_ttl: float | None = None


@dataclass(frozen=True, slots=True)
class CachePrefix:
    digest: str
    tokens: int
    ttl: float


@dataclass(frozen=True, slots=True)
class Prompt:
    pieces: tuple[Piece, ...]

    @property
    def total_tokens(self) -> int:
        return sum(piece.tokens for piece in self.pieces)

    @property
    def uses_cache(self) -> bool:
        return any(piece.cache_ttl is not None for piece in self.pieces)

    def cache_prefixes(self) -> list[CachePrefix]:
        """One entry per cache point: the digest of everything before it and its token count."""
        prefixes: list[CachePrefix] = []
        digest = hashlib.sha256()
        tokens = 0
        for piece in self.pieces:
            digest.update(piece.key.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
            tokens += piece.tokens
            if piece.cache_ttl is not None:
                prefixes.append(CachePrefix(digest.copy().hexdigest(), tokens, piece.cache_ttl))
        return prefixes

    def seed(self) -> int:
        """A stable number derived from the whole input: the same request gets the same reply."""
        digest = hashlib.sha256()
        for piece in self.pieces:
            digest.update(piece.key.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        return int.from_bytes(digest.digest()[:8], "big")


@dataclass(slots=True)
class PromptBuilder:
    """Collects pieces in order; ``cache_point()`` marks the end of the last piece."""

    pieces: list[Piece] = field(default_factory=list)

    def add(self, key: str, tokens: int) -> None:
        self.pieces.append(Piece(key, max(0, tokens)))

    def add_text(self, text: str, overhead: int = 0, kind: str = "text") -> None:
        self.add(f"{kind}:{text}", count_text(text) + overhead)

    def cache_point(self, ttl: float = DEFAULT_CACHE_TTL) -> None:
        """Bedrock ignores a cache point with nothing before it; so does the emulator."""
        if self.pieces:
            self.pieces[-1] = replace(self.pieces[-1], cache_ttl=ttl)

    def build(self) -> Prompt:
        return Prompt(tuple(self.pieces))
