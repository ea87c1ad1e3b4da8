"""The emulator's tokenizer: deterministic, fast, and the same for billing and for CountTokens.

It is not any real model's tokenizer, and must not pretend to be. What matters is that every number
the emulator reports comes from this one function, so a CountTokens answer predicts exactly what
InvokeModel / Converse then bill (unless a test configures drift). The rule: a run of letters is one
token per six letters, a run of digits one token per three digits, and every other visible character
(punctuation, symbols, underscores, emoji) is a token of its own; whitespace is free. English prose
comes out at roughly 1.3 tokens per word, close to real BPE tokenizers.

Replies are built from :data:`VOCABULARY`, words of at most six letters, so a reply of ``n`` words
and a final period is exactly ``n + 1`` tokens, and a stream's deltas add up to the billed output.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

_TOKEN = re.compile(r"[^\W\d_]{1,6}|\d{1,3}|\S")

#: Words of at most six letters: each is exactly one token.
# fmt: off
VOCABULARY = (
    "trace", "span", "metric", "token", "cloud", "model", "stream", "cache", "batch", "signal",
    "export", "probe", "query", "spark", "river", "stone", "light", "quiet", "swift", "amber",
    "north", "field", "frame", "graph", "layer", "merge", "node", "parse", "route", "scale",
    "shard", "store", "timer", "value", "vector", "window", "yield", "agent", "alert", "audit",
    "bucket", "buffer", "carbon", "delta", "echo", "fiber", "gauge", "harbor", "index", "kernel",
    "ledger", "mirror", "orbit", "pulse", "quota", "relay", "sample", "socket", "tensor", "tunnel",
    "update", "bridge",
)
# fmt: on


def count_text(text: str) -> int:
    """Tokens in ``text`` (see the module docstring for the rule)."""
    return sum(1 for _ in _TOKEN.finditer(text))


def count_json(value: Any) -> int:
    """Tokens in a JSON value (tool schemas, tool inputs), written canonically so order never matters."""
    return count_text(canonical_json(value))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def reply_words(seed: int, tokens: int) -> list[str]:
    """``tokens`` tokens of deterministic prose, as stream deltas: words (each after the first with
    its leading space) and a closing period on the last one. ``sum(count_text(d)) == tokens``."""
    if tokens <= 0:
        return []
    rng = random.Random(seed)
    words = [rng.choice(VOCABULARY) for _ in range(max(1, tokens - 1))]
    words[0] = words[0].capitalize()
    deltas = [words[0]] + [" " + word for word in words[1:]]
    if tokens > 1:
        deltas[-1] += "."
    return deltas
