"""The money side of one ``instrument()``: which price book applies, and the cost of each call on
its span and on the cost counters.

Cost is on only when something can price a call: genai-prices is installed (the extra
``otel-bedrock-tokens[cost]``; checked with ``importlib.util.find_spec``, which does not import it)
or the user gave a price file. With neither, no counter is created, genai-prices is never imported
and a call pays nothing for cost.

Per call, the hot path is one cached dict lookup of the per-token prices of (priced model, served
tier) (:meth:`~.pricing.PriceBook.prices_for`: resolved once per key) and a few multiplications;
genai-prices itself is imported by the first lookup (or at start-up when the user asks,
``PriceBook.load``), never per call.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import Counter, Meter

from . import names
from ._logging import log_internal_error
from .billing import BillingTerms
from .facts import RequestFacts
from .pricing import COMPONENTS, Cost, PriceBook, UnitPrices, UserPrices
from .usage import Usage

logger = logging.getLogger(__name__)

#: genai-prices' import name.
GENAI_PRICES_MODULE = "genai_prices"

Attributes = Mapping[str, Any]


def genai_prices_installed() -> bool:
    """Whether genai-prices can be imported, without importing it (150-250 ms, pydantic)."""
    try:
        return importlib.util.find_spec(GENAI_PRICES_MODULE) is not None
    except (ImportError, ValueError):
        return False


def price_book_for(user_prices: UserPrices | None) -> PriceBook | None:
    """The price book of one ``instrument()``, or ``None`` when nothing can price a call (then cost
    is off: no counter, no attribute, no import)."""
    if user_prices is None and not genai_prices_installed():
        return None
    return PriceBook(user_prices)


def unit_prices(book: PriceBook, model_id: str, terms: BillingTerms | None) -> UnitPrices | None:
    """The cached per-token prices a call is charged at: the routed model's for a prompt router,
    at the served tier (``default`` when the response named none)."""
    tier = terms.service_tier if terms is not None else None
    return book.prices_for(book.priced_model(model_id, terms), tier)


def cache_savings(prices: UnitPrices, usage: Usage, cost: Cost) -> float:
    """What the call's cache reads would have cost as uncached input, minus what they cost: the
    money the prompt cache saved (never negative)."""
    read = usage.cache_read_tokens or 0
    if not read or usage.input_tokens is None:
        return 0.0
    total_input = usage.input_tokens + read + (usage.cache_write_tokens or 0)
    saved = read * prices.input.at(total_input) - cost.components["cache_read"]
    return saved if saved > 0 else 0.0


class CostMeter:
    """The cost counters of one ``instrument()`` and its price book."""

    __slots__ = ("book", "counter", "savings")

    def __init__(self, book: PriceBook, meter: Meter) -> None:
        self.book = book
        self.counter: Counter = meter.create_counter(
            names.COST,
            unit="USD",
            description="Money spent on Bedrock calls, by cost component (input, output, cache_read, "
            "cache_write), at the served service tier.",
        )
        self.savings: Counter = meter.create_counter(
            names.CACHE_SAVINGS,
            unit="USD",
            description="What prompt-cache reads would have cost as uncached input, minus what they cost.",
        )

    def price(
        self, request: RequestFacts, usage: Usage, terms: BillingTerms | None
    ) -> tuple[UnitPrices | None, Cost | None]:
        """(prices, cost) of one call; ``(None, None)`` when unpriced, ``(prices, None)`` when the
        usage cannot be priced (no input count, output tokens without an output price). Never
        raises: a pricing fault leaves the call unpriced, logged at debug level."""
        try:
            prices = unit_prices(self.book, request.model_id, terms)
            if prices is None:
                return None, None
            return prices, prices.cost(usage, terms)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not price a call")
            return None, None

    def record(
        self,
        prices: UnitPrices,
        usage: Usage,
        cost: Cost,
        component_attributes: Mapping[str, Attributes],
        savings_attributes: Attributes,
        context: Any,
    ) -> None:
        """One counter point per component that cost something (a zero adds nothing to the sum),
        and the cache savings. Never raises."""
        try:
            counter = self.counter
            components = cost.components
            for component in COMPONENTS:
                amount = components[component]
                if amount > 0:
                    counter.add(amount, component_attributes[component], context=context)
            savings = cache_savings(prices, usage, cost)
            if savings > 0:
                self.savings.add(savings, savings_attributes, context=context)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not record a call's cost")
