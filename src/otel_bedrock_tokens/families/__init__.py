"""Model families: which body parser reads which model's InvokeModel bodies.

Converse and ConverseStream have one shape for every model and do not come here.
"""

from __future__ import annotations

from functools import lru_cache

from ..model_id import ModelRef
from . import (
    ai21,
    amazon_nova,
    amazon_titan,
    anthropic,
    cohere,
    generic,
    meta_llama,
    mistral,
    openai_style,
)
from .base import Body, Family

__all__ = ["Body", "Family", "family_for"]

# (base-model prefix, family), longest prefixes first where they overlap.
_BY_PREFIX: tuple[tuple[str, Family], ...] = (
    ("anthropic.", anthropic.FAMILY),
    ("amazon.titan-embed", amazon_titan.EMBED),
    ("amazon.titan-text", amazon_titan.TEXT),
    ("amazon.titan-tg1", amazon_titan.TEXT),
    ("amazon.nova", amazon_nova.FAMILY),
    ("meta.", meta_llama.FAMILY),
    ("mistral.", mistral.FAMILY),
    ("cohere.command-r", cohere.COMMAND_R),
    ("cohere.command", cohere.COMMAND),
    ("cohere.embed", cohere.EMBED),
    ("ai21.j2", ai21.J2),
    ("ai21.jamba", openai_style.FAMILY),
    ("deepseek.", openai_style.FAMILY),
    ("openai.", openai_style.FAMILY),
)


@lru_cache(maxsize=512)
def _family_for_base(base_model: str) -> Family:
    lowered = base_model.lower()
    for prefix, family in _BY_PREFIX:
        if lowered.startswith(prefix):
            return family
    return generic.FAMILY


def family_for(model: ModelRef) -> Family:
    """The family that reads this model's InvokeModel bodies (``generic`` when the id is opaque)."""
    if model.base_model is None:
        return generic.FAMILY
    return _family_for_base(model.base_model)
