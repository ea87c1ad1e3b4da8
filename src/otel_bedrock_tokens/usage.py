"""The token usage of one call, as Bedrock billed it.

Bedrock reports input tokens *excluding* prompt-cache reads and writes (Claude ``input_tokens``, the
``X-Amzn-Bedrock-Input-Token-Count`` header, Converse ``inputTokens``). The semantic conventions want
``gen_ai.usage.input_tokens`` to include them, so :attr:`Usage.total_input` adds them back; the raw
fields stay as billed so nothing is counted twice.
"""

from __future__ import annotations

import math

from ._record import Record

#: Largest token count we believe (2**53: exactly representable as a float and beyond any context).
_MAX_TOKENS = 1 << 53


def token_count(value: object) -> int | None:
    """Return ``value`` as a token count, or ``None`` when it is not one.

    Accepts ints, integral floats (Titan sends ``28.0``) and decimal strings (HTTP headers). Rejects
    bools, negatives, fractions, NaN/inf and absurdly large numbers: a wrong number is worse than none.
    """
    if type(value) is int:  # fast path; also excludes bool
        return value if 0 <= value <= _MAX_TOKENS else None
    if value is None:  # an absent field, the next most common case
        return None
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and 0 <= value <= _MAX_TOKENS:
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and text.isascii() and len(text) <= 16:
            number = int(text)
            return number if number <= _MAX_TOKENS else None
        return None
    return None


class Usage(Record):
    """Tokens of one call; ``None`` means Bedrock did not say (not the same as zero)."""

    __slots__ = (  # noqa: RUF023 (constructor order, for repr)
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_output_tokens",
    )

    def __init__(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_output_tokens: int | None = None,
    ) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cache_read_tokens = cache_read_tokens
        self.cache_write_tokens = cache_write_tokens
        #: Output tokens spent on reasoning/thinking, where the response reports them (already part
        #: of ``output_tokens``: billed once, reported apart as ``gen_ai.usage.reasoning.output_tokens``).
        self.reasoning_output_tokens = reasoning_output_tokens

    @property
    def total_input(self) -> int | None:
        """All input tokens, cache included (``gen_ai.usage.input_tokens``)."""
        if self.input_tokens is None:
            return None
        return self.input_tokens + (self.cache_read_tokens or 0) + (self.cache_write_tokens or 0)

    def is_empty(self) -> bool:
        return (
            self.input_tokens is None
            and self.output_tokens is None
            and self.cache_read_tokens is None
            and self.cache_write_tokens is None
        )

    def fill_from(self, other: Usage | None) -> None:
        """Take each field ``self`` lacks from ``other`` (a less authoritative source)."""
        if other is None:
            return
        if self.input_tokens is None:
            self.input_tokens = other.input_tokens
        if self.output_tokens is None:
            self.output_tokens = other.output_tokens
        if self.cache_read_tokens is None:
            self.cache_read_tokens = other.cache_read_tokens
        if self.cache_write_tokens is None:
            self.cache_write_tokens = other.cache_write_tokens
        if self.reasoning_output_tokens is None:
            self.reasoning_output_tokens = other.reasoning_output_tokens
