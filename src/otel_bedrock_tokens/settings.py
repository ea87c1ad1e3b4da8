"""Settings from ``instrument()`` keyword arguments and ``OTEL_BEDROCK_TOKENS_*`` variables.

A keyword argument wins over the environment. A bad value raises :class:`SettingError` naming the
setting (the keyword or the variable it came from) and what it accepts, at ``instrument()`` time,
never later on a user's call.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Chunk timing granularity: see ``streams.CHUNK_TIMING_STREAM``.
CHUNK_TIMINGS = ("stream", "chunk")
#: CountTokens prediction modes.
COUNT_TOKENS_MODES = ("off", "parallel", "before")

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
}


class SettingError(ValueError):
    """A setting has a value we cannot use."""


def env_name(keyword: str) -> str:
    return ENV_PREFIX + keyword.upper()


class _Source:
    """Where each setting's raw value comes from, so an error can name it."""

    def __init__(self, kwargs: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self._kwargs = kwargs
        self._environ = environ

    def get(self, keyword: str) -> tuple[object, str] | None:
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
        raise SettingError(f"{where} must be one of {', '.join(allowed)}; got {value!r}")
    return value.strip().lower()


def _number(
    source: _Source, keyword: str, default: float, low: float, high: float, whole: bool = False
) -> float:
    found = source.get(keyword)
    if found is None:
        return default
    value, where = found
    number = math.nan
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = float(value)
    kind = "a whole number" if whole else "a number"
    if not (low <= number <= high) or (whole and not number.is_integer()):
        raise SettingError(f"{where} must be {kind} from {low:g} to {high:g}; got {value!r}")
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
                raise SettingError(f"{where} must look like key=value,key2=value2; got {value!r}")
            pairs.append((key.strip(), target.strip()))
    else:
        raise SettingError(f"{where} must be a mapping or key=value,...; got {value!r}")
    if not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in pairs):
        raise SettingError(f"{where} must map non-empty strings to non-empty strings; got {value!r}")
    return dict(pairs)


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
        number = int(limit) if isinstance(limit, str) and limit.strip().isdigit() else limit
        if not isinstance(model, str) or not model or type(number) is not int or number < 0:
            raise SettingError(f"{where} must be a whole number of tokens or model=number,...; got {value!r}")
        budget[model] = number
    return budget


def _callback(kwargs: Mapping[str, Any], keyword: str) -> Callable[..., Any] | None:
    given = kwargs.get(keyword)
    if given is None:
        return None
    if not callable(given):
        raise SettingError(f"instrument({keyword}=...) must be callable; got {given!r}")
    return given  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class PredictionSettings:
    mode: str = "off"
    sample_rate: float = 1.0
    timeout: float = 2.0
    workers: int = 4
    cache_size: int = 1024
    remember_seconds: float = 600.0
    model_map: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = 1_000_000
    budget: Mapping[str, int] = field(default_factory=dict)
    on_budget_exceeded: Callable[..., Any] | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    request_hook: Callable[..., Any] | None = None
    response_hook: Callable[..., Any] | None = None
    chunk_timing: str = "stream"
    prediction: PredictionSettings = field(default_factory=PredictionSettings)

    @classmethod
    def load(cls, kwargs: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
        source = _Source(kwargs, os.environ if environ is None else environ)
        prediction = PredictionSettings(
            mode=_choice(source, "count_tokens", COUNT_TOKENS_MODES, "off"),
            sample_rate=_number(source, "count_tokens_sample_rate", 1.0, 0.0, 1.0),
            timeout=_number(source, "count_tokens_timeout", 2.0, 0.001, 600.0),
            workers=_integer(source, "count_tokens_workers", 4, 1, 64),
            cache_size=_integer(source, "count_tokens_cache_size", 1024, 0, 1_000_000),
            remember_seconds=_number(source, "count_tokens_remember_seconds", 600.0, 0.0, 86_400.0),
            model_map=_mapping(source, "count_tokens_model_map"),
            max_body_bytes=_integer(source, "count_tokens_max_body_bytes", 1_000_000, 0, 1 << 40),
            budget=_budget(source),
            on_budget_exceeded=_callback(kwargs, "on_budget_exceeded"),
        )
        if prediction.budget and prediction.mode != "before":
            where = source.get("max_input_tokens")[1]  # type: ignore[index]
            raise SettingError(
                f"{where} needs the prediction before the call: set count_tokens='before' "
                f"({env_name('count_tokens')}=before); it is {prediction.mode!r}"
            )
        return cls(
            request_hook=_callback(kwargs, "request_hook"),
            response_hook=_callback(kwargs, "response_hook"),
            chunk_timing=_choice(source, "chunk_timing", CHUNK_TIMINGS, "stream"),
            prediction=prediction,
        )
