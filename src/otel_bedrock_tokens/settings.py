"""Settings from ``instrument()`` keyword arguments and ``OTEL_BEDROCK_TOKENS_*`` variables.

A keyword argument wins over the environment. A bad value raises :class:`SettingError` naming the
setting and the values it accepts, at ``instrument()`` time, never later on a user's call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .telemetry import RequestHook, ResponseHook


class SettingError(ValueError):
    """A setting has a value we cannot use."""


@dataclass(frozen=True, slots=True)
class Setting:
    keyword: str
    env: str
    doc: str


#: Every setting, for validation and for the README's table.
SETTINGS: dict[str, Setting] = {
    s.keyword: s
    for s in (
        Setting(
            "count_tokens",
            "OTEL_BEDROCK_TOKENS_COUNT_TOKENS",
            "CountTokens prediction: off, parallel, before (default off).",
        ),
        Setting(
            "chunk_timing",
            "OTEL_BEDROCK_TOKENS_CHUNK_TIMING",
            "time_per_output_chunk points: stream (one per stream, the mean gap; default) or chunk "
            "(one per chunk, ~10 µs of SDK time each).",
        ),
    )
}


def from_env(keyword: str, environ: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if environ is None else environ).get(SETTINGS[keyword].env)
    if value is None or not value.strip():
        return None
    return value.strip()


def choice(
    keyword: str,
    given: object,
    allowed: tuple[str, ...],
    default: str,
    environ: Mapping[str, str] | None = None,
) -> str:
    """One of ``allowed``: from the keyword, else the environment, else ``default``."""
    source = f"instrument({keyword}=...)"
    value = given
    if value is None:
        value = from_env(keyword, environ)
        source = SETTINGS[keyword].env
    if value is None:
        return default
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise SettingError(f"{source} must be one of {', '.join(allowed)}; got {value!r}")
    return value.strip().lower()


def callback(keyword: str, given: object) -> Callable[..., Any] | None:
    if given is None:
        return None
    if not callable(given):
        raise SettingError(f"instrument({keyword}=...) must be callable; got {given!r}")
    return given


def hooks(kwargs: Mapping[str, Any]) -> tuple[RequestHook | None, ResponseHook | None]:
    return callback("request_hook", kwargs.get("request_hook")), callback(
        "response_hook", kwargs.get("response_hook")
    )
