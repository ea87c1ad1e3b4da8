"""What a call cost in USD: per-token prices looked up once per (model, tier), multiplied per call.

Prices come from two places:

* ``genai-prices`` (the optional extra ``otel-bedrock-tokens[cost]``): its bundled data, provider
  ``aws``, never its network update. Importing it costs 150-250 ms (it pulls pydantic), so it is
  imported on the first price lookup (or :meth:`PriceBook.load`), never when this module is
  imported and never when cost is off. Not installed: every call is unpriced, nothing fails.
* a user price file (``OTEL_BEDROCK_TOKENS_PRICES=path.json``, :func:`load_price_file`), with the
  keys genai-prices uses, per model id and service tier; it overrides or adds prices (Bedrock's
  ``priority`` / ``flex`` / ``reserved`` prices, which genai-prices does not have for Bedrock)::

      {"us.anthropic.claude-sonnet-4-6": {
          "default":  {"input_mtok": 3.3, "output_mtok": 16.5, "cache_read_mtok": 0.33,
                       "cache_write_mtok": 4.125, "cache_write_1h_mtok": 6.6},
          "priority": {"input_mtok": 5.775, "output_mtok": 28.875}},
       "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc": {
          "input_mtok": 0.8, "output_mtok": 4}}

  A model's object is either tiers -> prices, or prices alone (the ``default`` tier).

How an id finds its price: a prompt router's call is priced at the model it routed to
(:attr:`BillingTerms.routed_model`). The id is reduced with :func:`~.model_id.parse_model_id` to
``<geo>.<foundation model>`` (``global.`` profiles are priced apart: they cost less than regional
ones) or the bare foundation model; foundation-model and inference-profile ARNs reduce the same way.
The user file is tried first (the id exactly as called, then the reduced id, then the bare
foundation model for regional ids), then genai-prices with the reduced id. Opaque ids (application
profiles, provisioned, imported and custom models) have no public price: only the user file can
price them, by their exact id. A tier other than ``default`` is priced only where genai-prices has a
variant for it or the user file prices it. Anything else is unpriced: no cost, one debug log per
model, never a guessed price.

Semantics follow genai-prices exactly (the tests check totals against its ``calc_price``): a cache
read or write kind without its own price is charged at the next more general price (one-hour
writes at the cache-write price, cache writes and reads at the input price); thresholds
("tiered" prices) apply to the call's total input tokens, cache included.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from . import names
from .billing import SERVICE_TIERS, BillingTerms
from .model_id import parse_model_id
from .usage import Usage

logger = logging.getLogger(__name__)

#: Environment variable naming the user price file.
PRICES_ENV = "OTEL_BEDROCK_TOKENS_PRICES"
#: genai-prices' provider id for Amazon Bedrock.
PROVIDER_ID = "aws"
DEFAULT_TIER = "default"
SOURCE_USER = "user"
SOURCE_UNPRICED = "unpriced"
#: Cost components, the values of ``bedrock_tokens.cost.component``.
COMPONENTS = names.COST_COMPONENTS
#: genai-prices' price keys this library uses, USD per million tokens. ``cache_write_mtok`` is the
#: five-minute write price (genai-prices' ``cache_write_5m_mtok`` is accepted as its alias).
PRICE_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_5m_mtok",
    "cache_write_1h_mtok",
)
_PER_MTOK = 1_000_000
#: Model ids kept in the price cache at most (an app uses a handful; a bound keeps it bounded).
_MAX_CACHED = 4096


class PriceFileError(ValueError):
    """The user price file cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per token. ``thresholds``: (start, price) from genai-prices' tiered prices: a call whose
    total input tokens exceed ``start`` pays that price for all its tokens of this kind."""

    base: float
    thresholds: tuple[tuple[int, float], ...] = ()

    def at(self, total_input: int) -> float:
        if not self.thresholds:  # most prices: one rate whatever the size
            return self.base
        for start, price in reversed(self.thresholds):
            if total_input > start:
                return price
        return self.base


class Cost(NamedTuple):
    """The price of one call: ``total_usd`` is exactly the sum of ``components`` (added in the
    order of :data:`COMPONENTS`), so a counter by component sums to the span's total."""

    total_usd: float
    components: dict[str, float]
    source: str


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """The resolved per-token prices of one (model id, service tier)."""

    #: The id the price was looked up for (after prompt-router resolution and id reduction).
    model_ref: str
    #: The genai-prices model entry that matched (``regional.anthropic.claude-...``), or the key of
    #: the user file's entry.
    matched: str
    tier: str
    #: ``global`` (a ``global.`` profile) or ``regional``.
    region_kind: str
    #: ``genai-prices <version>`` or ``user``.
    source: str
    input: Rate
    output: Rate | None
    cache_read: Rate | None
    cache_write_5m: Rate | None
    cache_write_1h: Rate | None
    #: Prices as given, USD per million tokens, by price key (for display).
    per_mtok: tuple[tuple[str, str], ...] = ()

    def cost(self, usage: Usage, terms: BillingTerms | None = None) -> Cost | None:
        """``None`` when the usage cannot be priced: input unknown, or output tokens with no
        output price. ``usage.input_tokens`` excludes the cache (Bedrock's own convention)."""
        uncached = usage.input_tokens
        if uncached is None:
            return None
        output = usage.output_tokens or 0
        if output and self.output is None:
            return None
        read = usage.cache_read_tokens or 0
        write = usage.cache_write_tokens or 0
        hour = terms.cache_write_1h if terms is not None and terms.cache_write_1h is not None else 0
        if not write and terms is not None:
            write = (terms.cache_write_5m or 0) + hour
        hour = min(hour, write)
        total_input = uncached + read + write
        input_rate = self.input.at(total_input)
        write_rate = self.cache_write_5m.at(total_input) if self.cache_write_5m is not None else input_rate
        hour_rate = self.cache_write_1h.at(total_input) if self.cache_write_1h is not None else write_rate
        read_rate = self.cache_read.at(total_input) if self.cache_read is not None else input_rate
        output_rate = self.output.at(total_input) if self.output is not None else 0.0
        components = {
            "input": uncached * input_rate,
            "output": output * output_rate,
            "cache_read": read * read_rate,
            "cache_write": (write - hour) * write_rate + hour * hour_rate,
        }
        total = components["input"] + components["output"] + components["cache_read"]
        total += components["cache_write"]
        return Cost(total, components, self.source)


# --- the user price file ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserPrices:
    """Validated prices of the user file: model id -> tier -> price key -> USD per MTok."""

    path: str
    models: Mapping[str, Mapping[str, Mapping[str, Decimal]]]

    def get(self, model_key: str, tier: str) -> Mapping[str, Decimal] | None:
        tiers = self.models.get(model_key)
        return tiers.get(tier) if tiers is not None else None


def _price_value(path: str, where: str, key: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PriceFileError(
            f"{path}: {where}: {key} must be a number (USD per million tokens), got {value!r}"
        )
    if not math.isfinite(value) or value < 0:
        raise PriceFileError(f"{path}: {where}: {key} must be a finite number >= 0, got {value!r}")
    return Decimal(str(value))


def _prices(path: str, where: str, entry: object) -> dict[str, Decimal]:
    if not isinstance(entry, dict):
        raise PriceFileError(f"{path}: {where}: expected an object of prices, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(PRICE_KEYS))
    if unknown:
        raise PriceFileError(
            f"{path}: {where}: unknown price key {unknown[0]!r} (expected some of {', '.join(PRICE_KEYS)})"
        )
    if "input_mtok" not in entry:
        raise PriceFileError(f"{path}: {where}: input_mtok is required")
    if "cache_write_mtok" in entry and "cache_write_5m_mtok" in entry:
        raise PriceFileError(f"{path}: {where}: give cache_write_mtok or cache_write_5m_mtok, not both")
    return {key: _price_value(path, where, key, value) for key, value in entry.items()}


def parse_price_document(document: object, path: str = "<prices>") -> UserPrices:
    """Validate a decoded price file (see the module docstring for its shape)."""
    if not isinstance(document, dict):
        raise PriceFileError(f"{path}: expected a JSON object mapping model ids to prices")
    models: dict[str, dict[str, dict[str, Decimal]]] = {}
    for model, entry in document.items():
        if not model:
            raise PriceFileError(f"{path}: empty model id")
        if not isinstance(entry, dict) or not entry:
            raise PriceFileError(f"{path}: {model!r}: expected a non-empty object of tiers or prices")
        if any(isinstance(key, str) and key.endswith("_mtok") for key in entry):  # prices alone
            models[model] = {DEFAULT_TIER: _prices(path, repr(model), entry)}
            continue
        tiers: dict[str, dict[str, Decimal]] = {}
        for tier, prices in entry.items():
            if tier not in SERVICE_TIERS:
                raise PriceFileError(
                    f"{path}: {model!r}: unknown service tier or price key {tier!r} "
                    f"(tiers: {', '.join(sorted(SERVICE_TIERS))}; prices: {', '.join(PRICE_KEYS)})"
                )
            tiers[tier] = _prices(path, f"{model!r} tier {tier!r}", prices)
        models[model] = tiers
    return UserPrices(path, models)


def load_price_file(path: str | os.PathLike[str]) -> UserPrices:
    """Read and validate a user price file; :class:`PriceFileError` names the file and the fault."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as error:
        raise PriceFileError(f"{name}: cannot read the price file: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise PriceFileError(f"{name}: the price file is not UTF-8 text") from None
    except ValueError as error:  # a path no file can have (an embedded NUL)
        raise PriceFileError(f"{name!r}: not a usable path: {error}") from None
    try:
        document = json.loads(text, parse_constant=lambda constant: float("nan"))
    except ValueError as error:
        raise PriceFileError(f"{name}: not valid JSON: {error}") from None
    return parse_price_document(document, name)


def user_prices_from_env(environ: Mapping[str, str] | None = None) -> UserPrices | None:
    """The file ``OTEL_BEDROCK_TOKENS_PRICES`` names, validated, or ``None`` when it is unset."""
    path = (os.environ if environ is None else environ).get(PRICES_ENV, "").strip()
    return load_price_file(path) if path else None


# --- genai-prices ------------------------------------------------------------------------------


def _rate(value: object) -> Rate | None:
    """genai-prices' ``Decimal`` or ``TieredPrices`` (per MTok) as a per-token :class:`Rate`."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return Rate(float(value) / _PER_MTOK)
    base = getattr(value, "base", None)
    tiers = getattr(value, "tiers", None)
    if isinstance(base, Decimal) and isinstance(tiers, list):
        return Rate(
            float(base) / _PER_MTOK,
            tuple((int(tier.start), float(tier.price) / _PER_MTOK) for tier in tiers),
        )
    return None


def _display(value: object) -> str:
    base = getattr(value, "base", value)
    return f"{base} (+thresholds)" if base is not value else str(value)


def _unit_prices(
    prices: Mapping[str, object], model_ref: str, matched: str, tier: str, region_kind: str, source: str
) -> UnitPrices | None:
    def rate(key: str) -> Rate | None:
        return _rate(prices.get(key))

    input_rate = rate("input_mtok")
    if input_rate is None:
        return None
    return UnitPrices(
        model_ref=model_ref,
        matched=matched,
        tier=tier,
        region_kind=region_kind,
        source=source,
        input=input_rate,
        output=rate("output_mtok"),
        cache_read=rate("cache_read_mtok"),
        cache_write_5m=rate("cache_write_mtok") or rate("cache_write_5m_mtok"),
        cache_write_1h=rate("cache_write_1h_mtok"),
        per_mtok=tuple((key, _display(prices[key])) for key in PRICE_KEYS if prices.get(key) is not None),
    )


def reduce_model_id(model_id: str) -> tuple[str, str] | None:
    """(id to price, region kind) for a priceable id: ``<geo>.<model>`` or ``<model>``, and
    ``global`` / ``regional``; ``None`` for opaque ids and custom models (no public price)."""
    ref = parse_model_id(model_id)
    if ref.base_model is None or ref.kind == "custom-model":
        return None
    if ref.geo is not None:
        return f"{ref.geo}.{ref.base_model}", "global" if ref.geo == "global" else "regional"
    return ref.base_model, "regional"


class PriceBook:
    """Per-token prices by (model id, service tier), each looked up once and cached.

    Thread-safe: concurrent first lookups of one key may both resolve it (same result); the hot
    path is one dict lookup and a few multiplications (:meth:`cost`).
    """

    def __init__(self, user_prices: UserPrices | None = None, *, use_genai_prices: bool = True) -> None:
        self.user_prices = user_prices
        self._use_genai = use_genai_prices
        self._genai: Any = None
        self._genai_loaded = False
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], UnitPrices | None] = {}
        self._logged: set[str] = set()

    # --- genai-prices, lazily ----------------------------------------------------------------
    def load(self) -> bool:
        """Import genai-prices now (it is otherwise imported by the first lookup); ``True`` when
        it is available. Call it where a 150-250 ms pause does not matter (at start-up)."""
        with self._lock:
            if not self._genai_loaded:
                self._genai_loaded = True
                if self._use_genai:
                    try:
                        import genai_prices
                        from genai_prices import data_snapshot

                        data_snapshot.get_snapshot()
                        self._genai = genai_prices
                    except Exception:  # not installed, or broken: prices then come from the user only
                        logger.debug("genai-prices is not available; only user prices apply", exc_info=True)
            return self._genai is not None

    @property
    def genai_prices_version(self) -> str | None:
        return str(self._genai.__version__) if self.load() else None

    def _from_genai(self, model_ref: str, tier: str, region_kind: str) -> UnitPrices | None:
        if not self.load():
            return None
        from genai_prices import data_snapshot

        try:
            _, model = data_snapshot.get_snapshot().find_provider_model(model_ref, None, PROVIDER_ID, None)
        except LookupError:
            return None
        now = datetime.now(tz=timezone.utc)
        if tier == DEFAULT_TIER:
            model_price = model.get_prices(now)
        elif any(variant.when == {"service_tier": tier} for variant in model.price_variants or ()):
            model_price = model.get_prices(now, {"service_tier": tier})
        else:
            return None
        prices = {key: getattr(model_price, key, None) for key in PRICE_KEYS}
        source = f"genai-prices {self._genai.__version__}"
        return _unit_prices(prices, model_ref, str(model.id), tier, region_kind, source)

    # --- lookups ----------------------------------------------------------------------------
    def _from_user(self, model_id: str, reduced: tuple[str, str] | None, tier: str) -> UnitPrices | None:
        if self.user_prices is None:
            return None
        keys = [model_id]
        if reduced is not None:
            keys.append(reduced[0])
            ref = parse_model_id(model_id)
            if reduced[1] == "regional" and ref.base_model is not None:
                keys.append(ref.base_model)
        for key in keys:
            prices = self.user_prices.get(key, tier)
            if prices is not None:
                region_kind = reduced[1] if reduced is not None else "regional"
                return _unit_prices(
                    prices, reduced[0] if reduced else model_id, key, tier, region_kind, SOURCE_USER
                )
        return None

    def _resolve(self, model_id: str, tier: str) -> UnitPrices | None:
        reduced = reduce_model_id(model_id)
        found = self._from_user(model_id, reduced, tier)
        if found is None and reduced is not None:
            found = self._from_genai(reduced[0], tier, reduced[1])
        if found is None and model_id not in self._logged:
            self._logged.add(model_id)
            logger.debug("no price for model %r at service tier %r: its calls are unpriced", model_id, tier)
        return found

    def prices_for(self, model_id: str, service_tier: str | None = None) -> UnitPrices | None:
        """The per-token prices of ``model_id`` at ``service_tier`` (``None``: ``default``), cached."""
        key = (model_id, service_tier or DEFAULT_TIER)
        try:
            return self._cache[key]
        except KeyError:
            pass
        try:
            found = self._resolve(*key)
        except Exception:  # a broken price source must never break the call
            logger.debug("price lookup failed for %r", model_id, exc_info=True)
            found = None
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = found
        return found

    @staticmethod
    def priced_model(model_id: str, terms: BillingTerms | None) -> str:
        """The model a call is priced at: a prompt router's choice, else the id called."""
        return terms.routed_model if terms is not None and terms.routed_model else model_id

    def cost(self, model_id: str, usage: Usage, terms: BillingTerms | None = None) -> Cost | None:
        """The price of one call, or ``None`` when unpriced (no price, or usage not priceable)."""
        prices = self.prices_for(
            self.priced_model(model_id, terms), terms.service_tier if terms is not None else None
        )
        return prices.cost(usage, terms) if prices is not None else None

    def source(self, model_id: str, terms: BillingTerms | None = None) -> str:
        """``genai-prices <version>``, ``user`` or ``unpriced``: ``bedrock_tokens.cost.source``."""
        prices = self.prices_for(
            self.priced_model(model_id, terms), terms.service_tier if terms is not None else None
        )
        return prices.source if prices is not None else SOURCE_UNPRICED

    def snapshot_description(self) -> str:
        """Which price data genai-prices holds: bundled (with the latest price-change date in it, a
        lower bound of the snapshot date: the data itself carries none) or auto-updated (when)."""
        if not self.load():
            return "genai-prices not installed"
        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        if snapshot.from_auto_update:
            return f"genai-prices {self._genai.__version__}, data updated {snapshot.timestamp.isoformat()}"
        dates = [
            start
            for provider in snapshot.providers
            for model in provider.models
            if isinstance(model.prices, list)
            for price in model.prices
            if (start := getattr(price.constraint, "start_date", None)) is not None
        ]
        latest = f", latest price change in it {max(dates).isoformat()}" if dates else ""
        return f"data bundled with genai-prices {self._genai.__version__}{latest}"


def price_book_from_env(environ: Mapping[str, str] | None = None) -> PriceBook:
    """A :class:`PriceBook` with the user file ``OTEL_BEDROCK_TOKENS_PRICES`` names, if any.
    Raises :class:`PriceFileError` for a bad file (call it from ``instrument()``)."""
    return PriceBook(user_prices_from_env(environ))
