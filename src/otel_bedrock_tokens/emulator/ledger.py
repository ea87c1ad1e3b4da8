"""What the emulator served and billed, per call and per model: the truth tests compare telemetry to.

A call is *billed* when its usage reached the client in a form a correct client can read: the token
headers of InvokeModel (written before the body), the body of Converse, the last event of a stream.
So a throttled call, a stream cut before its usage event, or a Converse body that never completed
bills nothing, while an InvokeModel whose body is later reset still billed what its headers said.
Errors (HTTP errors and exception frames in streams) are counted, never billed. CountTokens calls are
free; they are counted separately with the number they answered.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

COUNT_TOKENS = "CountTokens"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    sequence: int
    request_id: str
    operation: str
    #: The model id exactly as the client passed it.
    model_id: str
    #: The foundation model (or ``family:<name>``) that served it; ``None`` for an invalid id.
    base_model: str | None
    status: int
    #: AWS error code, for HTTP errors and for exception frames inside a stream.
    error: str | None = None
    #: The injected fault's kind, if one fired.
    fault: str | None = None
    billed: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    #: CountTokens: the number answered (drift included).
    counted_tokens: int | None = None
    latency_ms: int = 0
    #: The part of ``cache_write_tokens`` written with the one-hour TTL.
    cache_write_1h_tokens: int = 0
    #: The service tier that served the call as the response reported it (``None``: not reported).
    service_tier: str | None = None
    #: The latency mode the request asked for (``standard`` / ``optimized``).
    latency_mode: str | None = None
    #: The foundation model a prompt router chose.
    routed_model: str | None = None
    #: The guardrail the request named.
    guardrail_id: str | None = None

    @property
    def cache_write_5m_tokens(self) -> int:
        return self.cache_write_tokens - self.cache_write_1h_tokens

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass(slots=True)
class ModelTotals:
    #: Billed inference calls (InvokeModel, Converse and the streams).
    calls: int = 0
    #: Billed input tokens, excluding cache reads and writes (Bedrock's own convention).
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    #: The part of ``cache_write_tokens`` written with the one-hour TTL.
    cache_write_1h_tokens: int = 0
    #: Inference calls that ended in an AWS error (HTTP or in-stream).
    errors: int = 0
    #: Inference calls hit by a fault that is not an AWS error (reset, truncation, malformed body).
    faults: int = 0
    count_tokens_calls: int = 0
    count_tokens_errors: int = 0
    #: Sum of the CountTokens answers.
    counted_tokens: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    error_codes: dict[str, int] = field(default_factory=dict)

    @property
    def total_input_tokens(self) -> int:
        """All input, cache included: what ``gen_ai.client.token.usage{type=input}`` sums to."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def add(self, entry: LedgerEntry) -> None:
        self.by_operation[entry.operation] = self.by_operation.get(entry.operation, 0) + 1
        if entry.error is not None:
            self.error_codes[entry.error] = self.error_codes.get(entry.error, 0) + 1
        if entry.operation == COUNT_TOKENS:
            if entry.error is not None:
                self.count_tokens_errors += 1
            elif entry.counted_tokens is not None:
                self.count_tokens_calls += 1
                self.counted_tokens += entry.counted_tokens
            return
        if entry.error is not None:
            self.errors += 1
        elif entry.fault is not None and not entry.billed:
            self.faults += 1
        if entry.billed:
            self.calls += 1
            self.input_tokens += entry.input_tokens
            self.output_tokens += entry.output_tokens
            self.cache_read_tokens += entry.cache_read_tokens
            self.cache_write_tokens += entry.cache_write_tokens
            self.cache_write_1h_tokens += entry.cache_write_1h_tokens

    def copy(self) -> ModelTotals:
        return replace(self, by_operation=dict(self.by_operation), error_codes=dict(self.error_codes))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_input_tokens"] = self.total_input_tokens
        return data


class Ledger:
    """Thread-safe. Totals are kept exactly for every call ever recorded; the entries themselves
    are kept for the last ``max_entries`` calls, so a long-running emulator stays bounded."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LedgerEntry] = deque(maxlen=max_entries)
        self._recorded = 0
        self._by_model: dict[str, ModelTotals] = {}
        self._by_base: dict[str, ModelTotals] = {}
        self._total = ModelTotals()
        self._listeners: list[Callable[[LedgerEntry], None]] = []

    def record(self, **fields: Any) -> LedgerEntry:
        with self._lock:
            self._recorded += 1
            entry = LedgerEntry(sequence=self._recorded, **fields)
            self._entries.append(entry)
            self._by_model.setdefault(entry.model_id, ModelTotals()).add(entry)
            self._by_base.setdefault(entry.base_model or entry.model_id, ModelTotals()).add(entry)
            self._total.add(entry)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(entry)
        return entry

    def subscribe(self, listener: Callable[[LedgerEntry], None]) -> None:
        """Call ``listener(entry)`` after each record (the CLI's request log)."""
        with self._lock:
            self._listeners.append(listener)

    def entries(self) -> list[LedgerEntry]:
        """The most recent entries (all of them unless more than ``max_entries`` were recorded)."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        """Calls recorded since the last reset."""
        with self._lock:
            return self._recorded

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._recorded = 0
            self._by_model.clear()
            self._by_base.clear()
            self._total = ModelTotals()

    def totals(self, by: str = "model_id") -> dict[str, ModelTotals]:
        """Per model id as the client passed it (``by="model_id"``) or per backing model
        (``by="base_model"``, so ``us.`` profiles and ARNs of one model add up). Copies."""
        if by not in ("model_id", "base_model"):
            raise ValueError("by must be 'model_id' or 'base_model'")
        with self._lock:
            source = self._by_model if by == "model_id" else self._by_base
            return {model: totals.copy() for model, totals in source.items()}

    def total(self) -> ModelTotals:
        with self._lock:
            return self._total.copy()

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": {model: totals.to_dict() for model, totals in self.totals().items()},
            "total": self.total().to_dict(),
            "entries": [asdict(entry) for entry in self.entries()],
        }
