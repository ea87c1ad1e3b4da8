"""Parse every form of Bedrock model id into what the instrumentation needs to know.

The request-model attribute always keeps the id exactly as the caller passed it; this parse only
decides which body parser reads the response and which foundation model CountTokens is asked about.
Results are memoised: an app uses a handful of ids, and this runs on every call.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

#: Geographic prefixes of cross-region inference profiles (``us.anthropic.claude...``).
GEO_PREFIXES = frozenset({"us", "eu", "apac", "us-gov", "jp", "au", "ca", "global"})

# ARN resource types that name a foundation model or a system-defined profile (vendor is in the id),
# and those that are opaque (an account-specific name, vendor unknown).
_TRANSPARENT_RESOURCES = frozenset({"foundation-model", "inference-profile", "custom-model"})


class ModelRef(NamedTuple):
    """What a model id says about the model behind it. (A NamedTuple, not a dataclass: as immutable,
    and about ten times cheaper to define, which every cold start pays.)"""

    #: The id as the caller passed it.
    raw: str
    #: ``foundation``, ``inference-profile``, ``application-inference-profile``,
    #: ``provisioned-model``, ``imported-model``, ``custom-model``, ``arn`` (other ARN), ``unknown``.
    kind: str
    #: Model vendor (``anthropic``, ``amazon``, ``meta``...), or ``None`` when the id is opaque.
    vendor: str | None
    #: The foundation model id without geo prefix or ARN (``anthropic.claude-3-5-haiku-20241022-v1:0``),
    #: or ``None`` when the id is opaque.
    base_model: str | None
    #: The geo prefix of a cross-region profile (``us``, ``global``...), if any.
    geo: str | None


def _from_plain_id(raw: str, plain: str, kind: str) -> ModelRef:
    head, dot, rest = plain.partition(".")
    geo = None
    if dot and head in GEO_PREFIXES and "." in rest:
        geo = head
        plain = rest
        head, dot, rest = plain.partition(".")
        if kind == "foundation":
            kind = "inference-profile"
    if not dot or not head or not rest:
        return ModelRef(raw, "unknown" if kind == "foundation" else kind, None, None, geo)
    return ModelRef(raw, kind, head.lower(), plain, geo)


@lru_cache(maxsize=1024)
def parse_model_id(raw: str) -> ModelRef:
    """Parse ``raw`` (any id form, also percent-encoded) into a :class:`ModelRef`; never raises."""
    text = unquote(raw) if "%" in raw else raw
    if not text.startswith("arn:"):
        return _from_plain_id(raw, text, "foundation")
    # arn:partition:service:region:account:resource-type/resource-id
    parts = text.split(":", 5)
    if len(parts) < 6:
        return ModelRef(raw, "arn", None, None, None)
    resource = parts[5]
    resource_type, slash, resource_id = resource.partition("/")
    if not slash:
        return ModelRef(raw, "arn", None, None, None)
    if resource_type in _TRANSPARENT_RESOURCES:
        # custom-model/<base model id>/<suffix>: the base model is the first path segment.
        model_part = resource_id.split("/", 1)[0]
        return _from_plain_id(raw, model_part, resource_type)
    if resource_type in {"application-inference-profile", "provisioned-model", "imported-model"}:
        return ModelRef(raw, resource_type, None, None, None)
    return ModelRef(raw, "arn", None, None, None)
