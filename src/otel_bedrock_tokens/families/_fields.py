"""Defensive readers for untrusted JSON: each returns ``None`` instead of raising on a wrong type,
so a family parser is a flat list of lookups and can never throw into the app."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ..usage import Usage, token_count

__all__ = [
    "UsageKeys",
    "as_dict",
    "first_dict",
    "number",
    "read_usage_keys",
    "reasons",
    "str_tuple",
    "string",
    "token_count",
    "tokens_sum",
]


class UsageKeys(NamedTuple):
    """Where one wire shape's ``usage`` object keeps the four billed counts."""

    input: str
    output: str
    cache_read: str
    cache_write: str


def read_usage_keys(usage: object, into: Usage, keys: UsageKeys) -> None:
    """Set the four counts of ``into`` from a ``usage`` object with these ``keys`` (a count absent or
    not a token count is ``None``); nothing when ``usage`` is not an object. The shapes differ only
    in their key names (Converse, Nova, Anthropic), so the reading is written once."""
    fields = as_dict(usage)
    if fields is None:
        return
    into.input_tokens = token_count(fields.get(keys.input))
    into.output_tokens = token_count(fields.get(keys.output))
    into.cache_read_tokens = token_count(fields.get(keys.cache_read))
    into.cache_write_tokens = token_count(fields.get(keys.cache_write))


def as_dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def first_dict(value: object) -> dict[str, Any] | None:
    """The first element of a list when it is an object (``choices[0]``, ``results[0]``)."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return None


def string(value: object) -> str | None:
    return value if isinstance(value, str) else None


def number(value: object) -> float | None:
    """A finite real number (not a bool) as float, e.g. a temperature."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except OverflowError:  # an int beyond float range (JSON allows any size)
            return None
        return as_float if math.isfinite(as_float) else None
    return None


def str_tuple(value: object) -> tuple[str, ...] | None:
    """A list of strings (stop sequences); a lone string counts as a list of one."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def tokens_sum(items: object, key: str) -> int | None:
    """Sum of ``item[key]`` token counts over a list of objects (Titan ``results[].tokenCount``)."""
    if not isinstance(items, list) or not items:
        return None
    total = 0
    for item in items:
        count = token_count(item.get(key)) if isinstance(item, dict) else None
        if count is None:
            return None
        total += count
    return total


def reasons(items: object, key: str) -> tuple[str, ...] | None:
    """``item[key]`` of each object in a list, as finish reasons (``choices[].finish_reason``)."""
    if not isinstance(items, list):
        return None
    found = tuple(item[key] for item in items if isinstance(item, dict) and isinstance(item.get(key), str))
    return found or None
