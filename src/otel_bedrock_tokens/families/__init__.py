"""Model families: which body parser reads which model's InvokeModel bodies.

Converse and ConverseStream have one shape for every model and do not come here.
"""

from __future__ import annotations

import importlib
from functools import cache, lru_cache
from typing import Any

from ..model_id import ModelRef
from .base import Body, Family

__all__ = ["Body", "Family", "family_for"]

# (base-model prefix, family module, its attribute), longest prefixes first where they overlap.
# The family modules are imported when a model of theirs is first seen, not with the package: an app
# calls one or two families, and every cold start would pay for importing all of them.
_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("anthropic.", "anthropic", "FAMILY"),
    ("amazon.titan-embed", "amazon_titan", "EMBED"),
    ("amazon.titan-text", "amazon_titan", "TEXT"),
    ("amazon.titan-tg1", "amazon_titan", "TEXT"),
    ("amazon.nova", "amazon_nova", "FAMILY"),
    ("meta.", "meta_llama", "FAMILY"),
    ("mistral.", "mistral", "FAMILY"),
    ("cohere.command-r", "cohere", "COMMAND_R"),
    ("cohere.command", "cohere", "COMMAND"),
    ("cohere.embed", "cohere", "EMBED"),
    ("ai21.j2", "ai21", "J2"),
    ("ai21.jamba", "openai_style", "FAMILY"),
    ("deepseek.", "openai_style", "FAMILY"),
    ("openai.", "openai_style", "FAMILY"),
)


@cache
def _load(module: str, attr: str) -> Family:
    family: Family = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    return family


def __getattr__(name: str) -> Any:
    """``_BY_PREFIX``: (prefix, family) for every prefix, every family module imported (for tests
    and tools that list the families; the lookup itself imports only the family it needs)."""
    if name == "_BY_PREFIX":
        return tuple((prefix, _load(module, attr)) for prefix, module, attr in _PREFIXES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@lru_cache(maxsize=512)
def _family_for_base(base_model: str) -> Family:
    lowered = base_model.lower()
    for prefix, module, attr in _PREFIXES:
        if lowered.startswith(prefix):
            return _load(module, attr)
    return _load("generic", "FAMILY")


def family_for(model: ModelRef) -> Family:
    """The family that reads this model's InvokeModel bodies (``generic`` when the id is opaque)."""
    if model.base_model is None:
        return _load("generic", "FAMILY")
    return _family_for_base(model.base_model)
