"""Settings from ``instrument()`` keyword arguments and ``OTEL_BEDROCK_TOKENS_*`` variables.

A keyword argument wins over the environment. A bad value raises :class:`SettingError` naming the
setting (the keyword or the variable it came from) and what it accepts, at ``instrument()`` time,
never later on a user's call; an unknown keyword raises ``TypeError`` naming the known ones; an
unknown ``OTEL_BEDROCK_TOKENS_*`` variable is a warning naming the closest known one.

Loaded leniently (by the auto-instrumentation loader, see ``instrumentor``), a bad value is logged
as one error and that setting keeps its default: raising there would stop the loader from applying
every other instrumentation of the process.

Every known name derives from :data:`DOCS` (plus the keyword-only ones): a new setting is one entry
there and one line in :meth:`Settings._parse`.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

if TYPE_CHECKING:
    from .pricing import UserPrices

logger = logging.getLogger(__name__)

#: Chunk timing granularity: see ``streams.CHUNK_TIMING_STREAM``.
CHUNK_TIMINGS = ("stream", "chunk")
#: ``count_tokens``: off (the default), CountTokens alongside the request, or before it (budget guard).
CountTokensMode = Literal["off", "parallel", "before"]
COUNT_TOKENS_MODES: tuple[CountTokensMode, ...] = ("off", "parallel", "before")

ENV_PREFIX = "OTEL_BEDROCK_TOKENS_"

#: keyword -> what it does, for error messages and the README table. The variable is
#: ``OTEL_BEDROCK_TOKENS_`` + the keyword in upper case.
DOCS: dict[str, str] = {
    "chunk_timing": "stream (default): one time_per_output_chunk point per stream, the mean gap; "
    "chunk: one point per chunk (costs ~10 µs of SDK time per chunk).",
    "count_tokens": "off (default), parallel, before: call CountTokens alongside each request.",
    "count_tokens_sample_rate": "share of requests predicted, 0..1 (default 1).",
    "count_tokens_timeout": "seconds to wait for a prediction (default 2).",
    "count_tokens_workers": "threads calling CountTokens, 1..64 (default 4).",
    "count_tokens_cache_size": "identical requests remembered, 0 disables (default 1024).",
    "count_tokens_remember_seconds": "how long a model that cannot be counted is not asked again "
    "(default 600).",
    "count_tokens_model_map": "opaque model id -> foundation model id, as id=model,id2=model2.",
    "count_tokens_max_body_bytes": "requests larger than this are not predicted (skip_reason "
    "too_large), 0 for no limit (default 1000000).",
    "max_input_tokens": "budget guard (needs count_tokens=before): a number, or model=number,...,*=number.",
    "max_request_cost_usd": "money budget guard (needs count_tokens=before): refuse a request whose "
    "predicted input cost plus its max_tokens output at the output price is over this many USD.",
    "prices": "path of a JSON price file (genai-prices' keys, per model id and service tier) that "
    "overrides or adds prices for bedrock_tokens.cost.usd; a bad file is an error at instrument().",
}


#: Keyword-only settings (callables): no variable.
KEYWORD_ONLY = ("request_hook", "response_hook", "on_budget_exceeded")
#: Keywords other instrumentations take and the auto-instrumentation loader or a distro may pass to
#: every instrumentor: accepted (the providers we use, the others ignored).
PASSED_THROUGH = ("tracer_provider", "meter_provider", "logger_provider", "event_logger_provider")
KNOWN_KEYWORDS = frozenset((*DOCS, *KEYWORD_ONLY, *PASSED_THROUGH))

#: A decimal number in ASCII (no ``inf``, ``nan``, ``1_000``, ``0x10``, nor other scripts' digits).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
#: Largest token budget (``sys.maxsize`` on 64-bit builds: "no limit" written as a number).
MAX_BUDGET = 2**63 - 1


class SettingError(ValueError):
    """A setting has a value we cannot use; ``keyword`` is the setting (a lenient load gives it its
    default; one without a keyword cannot be passed over and is raised even then)."""

    def __init__(self, message: str, keyword: str = "") -> None:
        super().__init__(message)
        self.keyword = keyword


def env_name(keyword: str) -> str:
    return ENV_PREFIX + keyword.upper()


class _Source:
    """Where each setting's raw value comes from, so an error can name it. Settings in ``skip``
    read as unset (their default): how a lenient load passes over a bad one."""

    def __init__(
        self, kwargs: Mapping[str, Any], environ: Mapping[str, str], skip: frozenset[str] = frozenset()
    ) -> None:
        self._kwargs = kwargs
        self._environ = environ
        self._skip = skip

    def keyword(self, keyword: str) -> Any:
        return None if keyword in self._skip else self._kwargs.get(keyword)

    def get(self, keyword: str) -> tuple[object, str] | None:
        if keyword in self._skip:
            return None
        if self._kwargs.get(keyword) is not None:
            return self._kwargs[keyword], f"instrument({keyword}=...)"
        raw = self._environ.get(env_name(keyword))
        if raw is None or not raw.strip():
            return None
        return raw.strip(), env_name(keyword)


def _choice(source: _Source, keyword: str, allowed: tuple[str, ...], default: str) -> str:
    found = source.get(keyword)
    if found is None:
        return default
    value, where = found
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise SettingError(f"{where} must be one of {', '.join(allowed)}; got {value!r}", keyword)
    return value.strip().lower()


def _as_float(value: object) -> float:
    """``value`` as a float; NaN for anything that is not a plain number or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return math.nan
    if isinstance(value, str):
        value = value.strip()
        if not _DECIMAL.fullmatch(value):
            return math.nan
    try:
        return float(value)
    except (ValueError, OverflowError):  # OverflowError: an int beyond a float's range
        return math.nan


def _number(
    source: _Source, keyword: str, default: float, low: float, high: float, whole: bool = False
) -> float:
    found = source.get(keyword)
    if found is None:
        return default
    value, where = found
    number = _as_float(value)
    kind = "a whole number" if whole else "a number"
    if not (low <= number <= high) or (whole and not number.is_integer()):
        raise SettingError(
            f"{where} must be {kind} from {low:g} to {high:g} (decimal, as 4 or 0.5); got {value!r}",
            keyword,
        )
    return number


def _integer(source: _Source, keyword: str, default: int, low: int, high: int) -> int:
    return int(_number(source, keyword, default, low, high, whole=True))


def _mapping(source: _Source, keyword: str) -> dict[str, str]:
    found = source.get(keyword)
    if found is None:
        return {}
    value, where = found
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in value.split(","):
            key, eq, target = item.partition("=")
            if not eq or not key.strip() or not target.strip():
                raise SettingError(f"{where} must look like key=value,key2=value2; got {value!r}", keyword)
            pairs.append((key.strip(), target.strip()))
    else:
        raise SettingError(f"{where} must be a mapping or key=value,...; got {value!r}", keyword)
    if not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in pairs):
        raise SettingError(f"{where} must map non-empty strings to non-empty strings; got {value!r}", keyword)
    return dict(pairs)


def _tokens(limit: object) -> int | None:
    """A budget: an int, or ASCII digits; ``None`` when it is neither or out of range."""
    if isinstance(limit, str) and _DIGITS.fullmatch(limit.strip()):
        limit = int(limit.strip())
    if type(limit) is not int or not 0 <= limit <= MAX_BUDGET:
        return None
    return limit


def _budget(source: _Source) -> dict[str, int]:
    """``max_input_tokens``: a number (every model) or per-model numbers, ``*`` for the rest."""
    found = source.get("max_input_tokens")
    if found is None:
        return {}
    value, where = found
    raw: object = value
    if isinstance(value, str):
        raw = _mapping(source, "max_input_tokens") if "=" in value else {"*": value}
    elif isinstance(value, int) and not isinstance(value, bool):
        raw = {"*": value}
    if not isinstance(raw, Mapping):
        raw = {"": None}
    budget: dict[str, int] = {}
    for model, limit in raw.items():
        number = _tokens(limit)
        if not isinstance(model, str) or not model or number is None:
            raise SettingError(
                f"{where} must be a whole number of tokens from 0 to {MAX_BUDGET} (decimal digits) "
                f"or model=number,...; got {value!r}",
                "max_input_tokens",
            )
        budget[model] = number
    return budget


def _user_prices(source: _Source) -> UserPrices | None:
    """``prices``: a price file's path (or, as a keyword, the decoded document itself), validated
    now so a bad file fails at ``instrument()``, never on a call."""
    found = source.get("prices")
    if found is None:
        return None
    value, where = found
    from .pricing import PriceFileError, load_price_file, parse_price_document  # only with a price file

    try:
        if isinstance(value, Mapping):
            return parse_price_document(dict(value), where)
        if isinstance(value, (str, os.PathLike)):
            return load_price_file(value)
    except PriceFileError as error:
        reason = str(error).encode("unicode_escape").decode("ascii")  # one line, whatever the path
    else:
        reason = "neither a path nor a mapping"
    raise SettingError(
        f"{where} must be the path of a JSON price file (model id -> service tier -> genai-prices' "
        f"price keys) or such a mapping: {reason}; got {value!r}",
        "prices",
    )


def _cost_budget(source: _Source) -> float | None:
    if source.get("max_request_cost_usd") is None:
        return None
    return _number(source, "max_request_cost_usd", 0.0, 0.0, 1e12)


def _callback(source: _Source, keyword: str) -> Callable[..., Any] | None:
    given = source.keyword(keyword)
    if given is None:
        return None
    if not callable(given):
        raise SettingError(f"instrument({keyword}=...) must be callable; got {given!r}", keyword)
    return given  # type: ignore[no-any-return]


def _unknown_keywords(kwargs: Mapping[str, Any], lenient: bool) -> Mapping[str, Any]:
    """``kwargs`` without unknown keywords: ``TypeError`` naming the known ones, or (lenient) an
    error logged and the keyword ignored."""
    unknown = sorted(name for name in kwargs if name not in KNOWN_KEYWORDS)
    if not unknown:
        return kwargs
    import difflib  # only for a misspelt keyword: kept out of every cold start

    for name in unknown:
        close = difflib.get_close_matches(name, KNOWN_KEYWORDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        message = (
            f"instrument() got an unexpected keyword argument {name!r}; {hint}"
            f"it takes {', '.join(sorted(KNOWN_KEYWORDS))}"
        )
        if not lenient:
            raise TypeError(message)
        logger.error("bedrock-tokens: %s; ignored", message)
    return {name: value for name, value in kwargs.items() if name in KNOWN_KEYWORDS}


def _warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """One warning per ``OTEL_BEDROCK_TOKENS_*`` variable that is no setting (a misspelling)."""
    known = [env_name(keyword) for keyword in DOCS]
    for name in sorted(key for key in environ if key.startswith(ENV_PREFIX) and key not in known):
        import difflib  # only for a misspelt variable: kept out of every cold start

        # Compared without the prefix, which every name shares and would make anything look close.
        close = difflib.get_close_matches(name[len(ENV_PREFIX) :].lower(), DOCS, n=1)
        hint = f"did you mean {env_name(close[0])}?" if close else f"the settings are {', '.join(known)}"
        logger.warning("bedrock-tokens: %s is not a setting and is ignored; %s", name, hint)


#: The default of the mapping settings: empty and read-only (NamedTuple defaults are shared).
_EMPTY: Mapping[str, Any] = MappingProxyType({})


# NamedTuples, not frozen dataclasses: as immutable, and defining them costs about a tenth as much,
# paid by every cold start.
class PredictionSettings(NamedTuple):
    mode: CountTokensMode = "off"
    sample_rate: float = 1.0
    timeout: float = 2.0
    workers: int = 4
    cache_size: int = 1024
    remember_seconds: float = 600.0
    model_map: Mapping[str, str] = _EMPTY
    max_body_bytes: int = 1_000_000
    budget: Mapping[str, int] = _EMPTY
    #: Money budget per request in USD (``max_request_cost_usd``), ``None``: no limit.
    max_request_cost_usd: float | None = None
    on_budget_exceeded: Callable[..., Any] | None = None


class Settings(NamedTuple):
    request_hook: Callable[..., Any] | None = None
    response_hook: Callable[..., Any] | None = None
    chunk_timing: str = "stream"
    prediction: PredictionSettings = PredictionSettings()
    #: The user's prices (``prices`` / ``OTEL_BEDROCK_TOKENS_PRICES``), validated; ``None``: none.
    prices: UserPrices | None = None

    @classmethod
    def load(
        cls, kwargs: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, lenient: bool = False
    ) -> Settings:
        """Settings from ``kwargs`` and ``environ`` (``os.environ``). Raises :class:`SettingError`
        (a ``ValueError``) or ``TypeError``; ``lenient``: logs each problem once as an error and
        keeps the default of the setting concerned instead."""
        environ = os.environ if environ is None else environ
        _warn_unknown_variables(environ)
        kwargs = _unknown_keywords(kwargs, lenient)
        skip: set[str] = set()
        for _ in range(len(KNOWN_KEYWORDS) + 1):  # each round passes over one more bad setting
            try:
                return cls._parse(_Source(kwargs, environ, frozenset(skip)))
            except SettingError as error:
                if not lenient or not error.keyword or error.keyword in skip:
                    raise
                logger.error("bedrock-tokens: %s; using the default for it", error)
                skip.add(error.keyword)
        raise AssertionError("unreachable: every round skips one more of the known settings")

    @classmethod
    def _parse(cls, source: _Source) -> Settings:
        prediction = PredictionSettings(
            mode=cast("CountTokensMode", _choice(source, "count_tokens", COUNT_TOKENS_MODES, "off")),
            sample_rate=_number(source, "count_tokens_sample_rate", 1.0, 0.0, 1.0),
            timeout=_number(source, "count_tokens_timeout", 2.0, 0.001, 600.0),
            workers=_integer(source, "count_tokens_workers", 4, 1, 64),
            cache_size=_integer(source, "count_tokens_cache_size", 1024, 0, 1_000_000),
            remember_seconds=_number(source, "count_tokens_remember_seconds", 600.0, 0.0, 86_400.0),
            model_map=_mapping(source, "count_tokens_model_map"),
            max_body_bytes=_integer(source, "count_tokens_max_body_bytes", 1_000_000, 0, 1 << 40),
            budget=_budget(source),
            max_request_cost_usd=_cost_budget(source),
            on_budget_exceeded=_callback(source, "on_budget_exceeded"),
        )
        if prediction.budget and prediction.mode != "before":
            where = source.get("max_input_tokens")[1]  # type: ignore[index]
            raise SettingError(
                f"{where} needs the prediction before the call: set count_tokens='before' "
                f"({env_name('count_tokens')}=before); it is {prediction.mode!r}",
                "max_input_tokens",
            )
        if prediction.max_request_cost_usd is not None and prediction.mode != "before":
            where = source.get("max_request_cost_usd")[1]  # type: ignore[index]
            raise SettingError(
                f"{where} needs the prediction before the call: set count_tokens='before' "
                f"({env_name('count_tokens')}=before); it is {prediction.mode!r}",
                "max_request_cost_usd",
            )
        return cls(
            request_hook=_callback(source, "request_hook"),
            response_hook=_callback(source, "response_hook"),
            chunk_timing=_choice(source, "chunk_timing", CHUNK_TIMINGS, "stream"),
            prediction=prediction,
            prices=_user_prices(source),
        )
