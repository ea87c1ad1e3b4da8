"""Per-model (and per-operation) settings that tests change while the emulator runs.

A rule names a model the way a test thinks of it: the id exactly as the client passes it, the
foundation model behind it (so ``anthropic.claude-x`` also covers ``us.anthropic.claude-x`` and its
ARNs), a prefix ending in ``*``, or ``*`` for every model. Later rules win over earlier ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

OPERATIONS = ("InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream", "CountTokens")
STREAM_OPERATIONS = frozenset({"InvokeModelWithResponseStream", "ConverseStream"})


def model_matches(pattern: str | None, model_id: str, base_model: str | None) -> bool:
    if pattern is None or pattern == "*":
        return True
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return model_id.startswith(prefix) or (base_model is not None and base_model.startswith(prefix))
    return pattern in (model_id, base_model)


def operations_of(operation: str | Iterable[str] | None) -> frozenset[str] | None:
    if operation is None:
        return None
    names = frozenset((operation,) if isinstance(operation, str) else operation)
    unknown = names - set(OPERATIONS)
    if unknown:
        raise ValueError(f"unknown operation(s) {sorted(unknown)}; expected some of {', '.join(OPERATIONS)}")
    return names


@dataclass(frozen=True, slots=True)
class Drift:
    """CountTokens answers ``round(true * factor) + offset`` (never below zero)."""

    offset: int = 0
    factor: float = 1.0

    def apply(self, tokens: int) -> int:
        return max(0, round(tokens * self.factor) + self.offset)


@dataclass(frozen=True, slots=True)
class Latency:
    """Time before the first byte, plus time per output token (streams pace their chunks by it)."""

    first_byte: float = 0.0
    per_token: float = 0.0

    def total(self, output_tokens: int) -> float:
        return self.first_byte + self.per_token * output_tokens


@dataclass(frozen=True, slots=True)
class _Rule(Generic[T]):
    model: str | None
    operations: frozenset[str] | None
    value: T


class Rules(Generic[T]):
    """An ordered, thread-safe list of (model, operation) -> value rules."""

    def __init__(self, default: T) -> None:
        self.default = default
        self._rules: list[_Rule[T]] = []
        self._lock = threading.Lock()

    def set(self, value: T, model: str | None = None, operation: str | Iterable[str] | None = None) -> None:
        with self._lock:
            self._rules.append(_Rule(model, operations_of(operation), value))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def get(self, operation: str, model_id: str, base_model: str | None) -> T:
        with self._lock:
            rules = list(self._rules)
        for rule in reversed(rules):
            if (rule.operations is None or operation in rule.operations) and model_matches(
                rule.model, model_id, base_model
            ):
                return rule.value
        return self.default
