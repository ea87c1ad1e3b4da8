"""Which model a model id names, and what that model can do.

Every id form Bedrock accepts resolves here: foundation ids with or without version suffix, geo
profiles (``us.`` ``eu.`` ``apac.`` ``global.`` ``jp.`` ``au.`` ``us-gov.``...), foundation-model and
inference-profile ARNs in any partition, and opaque ids (application inference profiles, provisioned
and imported models, SageMaker endpoints) which are backed by a configurable model, Claude by
default. An id of an unknown vendor or family is invalid, as on Bedrock.

Prompt routers (``arn:...:default-prompt-router/anthropic.claude:1``, ``arn:...:prompt-router/ID``)
answer as the model they route to. The emulator's routers are deterministic: each default router
always picks its family's smaller model (a real router picks per prompt; what matters to a client is
that the response names the model it chose); a custom router runs what :meth:`Catalog.alias` says,
else the default backing.

Prompt caching and CountTokens support follow Bedrock's published model lists (2025); both can be
overridden per model by the emulator's settings.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from ..model_id import ModelRef, parse_model_id
from .families import BY_NAME, Family, family_for_base_model

#: What an opaque id (application inference profile, provisioned / imported model) runs by default.
DEFAULT_OPAQUE_BACKING = "anthropic.claude-3-5-haiku-20241022-v1:0"

_ANTHROPIC_CACHING = re.compile(r"claude-(3-5-haiku|3-7-sonnet|sonnet-4|opus-4|haiku-4)")
_ANTHROPIC_COUNT_TOKENS = re.compile(r"claude-(3-5|3-7|sonnet-4|opus-4|haiku-4)")
_NOVA_CACHING = re.compile(r"amazon\.nova-(micro|lite|pro|premier)")
_VERSION_SUFFIX = re.compile(r"-v\d+(:\d+)?$")
_ROUTER = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):bedrock:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<default>default-)?prompt-router/(?P<name>.+)$"
)
#: What each default prompt router routes to (by the router's name before ``:version``).
DEFAULT_ROUTES = {
    "anthropic.claude": "anthropic.claude-3-haiku-20240307-v1:0",
    "meta.llama": "meta.llama3-1-8b-instruct-v1:0",
    "amazon.nova": "amazon.nova-lite-v1:0",
}
_GEO_OF_REGION = (("us-gov-", "us-gov"), ("us-", "us"), ("ca-", "us"), ("eu-", "eu"), ("ap-", "apac"))


@dataclass(frozen=True, slots=True)
class Route:
    """A prompt router's choice: the foundation model and the ARN the response reports."""

    model_id: str
    invoked_model_arn: str


def router_target(model_id: str) -> tuple[str, str, str, str | None] | None:
    """``(partition, region, account, default route or None)`` when ``model_id`` is a prompt router."""
    match = _ROUTER.match(model_id)
    if match is None:
        return None
    route = DEFAULT_ROUTES.get(match["name"].split(":", 1)[0]) if match["default"] else None
    return match["partition"], match["region"], match["account"], route


def invoked_model_arn(partition: str, region: str, account: str, model_id: str) -> str:
    """The cross-region profile ARN of the routed model, the form Bedrock reports for routers."""
    geo = next((geo for prefix, geo in _GEO_OF_REGION if region.startswith(prefix)), "us")
    return f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{geo}.{model_id}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    #: The foundation model behind the id (``anthropic.claude-3-5-haiku-20241022-v1:0``), or
    #: ``family:<name>`` when an opaque id is backed by a bare family.
    model_id: str
    family: Family
    caching: bool
    #: Smallest prefix, in tokens, that a cache point caches.
    cache_minimum: int
    count_tokens: bool
    #: The ``model`` field Anthropic and OpenAI-style bodies carry.
    response_model: str
    #: Converse usage carries cache fields even without cache points (Claude does, Nova did not).
    converse_reports_cache: bool


def _response_model(model_id: str) -> str:
    if model_id.startswith("anthropic."):
        name = model_id.removeprefix("anthropic.")
        if name.startswith("claude-v2"):
            return "claude-2.1" if name.endswith(":1") else "claude-2.0"
        if name.startswith("claude-instant"):
            return "claude-instant-1.2"
        return _VERSION_SUFFIX.sub("", name)
    return model_id


def spec_for_model(model_id: str) -> ModelSpec | None:
    family = family_for_base_model(model_id)
    if family is None:
        return None
    lowered = model_id.lower()
    anthropic_caching = bool(_ANTHROPIC_CACHING.search(lowered))
    caching = anthropic_caching or bool(_NOVA_CACHING.match(lowered))
    minimum = 2048 if "haiku" in lowered else 1000 if lowered.startswith("amazon.nova") else 1024
    return ModelSpec(
        model_id=model_id,
        family=family,
        caching=caching,
        cache_minimum=minimum,
        count_tokens=lowered.startswith("anthropic.") and bool(_ANTHROPIC_COUNT_TOKENS.search(lowered)),
        response_model=_response_model(model_id),
        converse_reports_cache=anthropic_caching,
    )


def _family_spec(name: str) -> ModelSpec | None:
    family = BY_NAME.get(name)
    if family is None:
        return None
    return ModelSpec(f"family:{name}", family, False, 0, False, name, False)


class Catalog:
    """Resolves ids; thread-safe; opaque ids can be backed by any model or family."""

    def __init__(
        self, aliases: Mapping[str, str] | None = None, default_backing: str = DEFAULT_OPAQUE_BACKING
    ):
        self._lock = threading.Lock()
        self._aliases: dict[str, str] = {}
        self.default_backing = default_backing
        for model_id, backing in (aliases or {}).items():
            self.alias(model_id, backing)

    def alias(self, model_id: str, backing: str) -> None:
        """Serve ``model_id`` (an opaque ARN, or any id) as ``backing`` (a model id or family name)."""
        if self.backing_spec(backing) is None:
            raise ValueError(
                f"unknown backing model or family: {backing!r} (families: {', '.join(sorted(BY_NAME))})"
            )
        with self._lock:
            self._aliases[model_id] = backing

    @staticmethod
    def backing_spec(backing: str) -> ModelSpec | None:
        if backing in BY_NAME:
            return _family_spec(backing)
        ref = parse_model_id(backing)
        return spec_for_model(ref.base_model) if ref.base_model is not None else None

    def route(self, model_id: str) -> Route | None:
        """The model a prompt-router id runs, or ``None`` when ``model_id`` is not a router."""
        target = router_target(model_id)
        if target is None:
            return None
        partition, region, account, default_route = target
        with self._lock:
            backing = self._aliases.get(model_id)
        chosen = backing or default_route or self.default_backing
        spec = self.backing_spec(chosen)
        if spec is None or spec.model_id.startswith("family:"):
            return None
        return Route(spec.model_id, invoked_model_arn(partition, region, account, spec.model_id))

    def resolve(self, model_id: str) -> tuple[ModelRef, ModelSpec | None]:
        ref = parse_model_id(model_id)
        with self._lock:
            backing = self._aliases.get(model_id)
        if backing is None and router_target(model_id) is not None:
            route = self.route(model_id)
            return ref, spec_for_model(route.model_id) if route is not None else None
        if backing is not None:
            return ref, self.backing_spec(backing)
        if ref.base_model is not None:
            return ref, spec_for_model(ref.base_model)
        if ref.kind in ("application-inference-profile", "provisioned-model", "imported-model", "arn"):
            return ref, self.backing_spec(self.default_backing)
        return ref, None
