"""The billing terms of one call, read from what Bedrock answered, and :func:`apply_terms`, which
keeps them on the call's response facts: pure functions, no telemetry.

Besides tokens, a response says *how* the call was billed: the service tier that served it
(``priority``, ``default``, ``flex``, ``reserved``), the latency mode (``standard``, ``optimized``),
how many cache writes were made for one hour rather than five minutes (an hour costs more), whether a
guardrail intervened, and which model a prompt router chose (the call is priced at that model).

Where Bedrock says it (botocore ``bedrock-runtime`` 2023-09-30):

* Converse response / ConverseStream ``metadata`` event: ``serviceTier.type``,
  ``performanceConfig.latency``, ``usage.cacheDetails: [{ttl, inputTokens}]``,
  ``trace.promptRouter.invokedModelId``; ``stopReason`` (Converse, ConverseStream ``messageStop``).
* InvokeModel / InvokeModelWithResponseStream response headers (``ResponseMetadata.HTTPHeaders``,
  lower-cased by botocore): ``x-amzn-bedrock-service-tier``,
  ``x-amzn-bedrock-performanceconfig-latency``.
* Anthropic InvokeModel bodies: ``usage.cache_creation: {ephemeral_5m_input_tokens,
  ephemeral_1h_input_tokens}`` (the ``message_start`` event's ``message.usage`` in streams), and
  ``amazon-bedrock-guardrailAction`` (``INTERVENED`` / ``NONE``) in bodies and chunks.

Every parser takes whatever the wire gave (any JSON value) and never raises. A field that is absent
or not what Bedrock documents is ``None``: a missing term is better than a wrong one, since prices
and dashboards are keyed by these values. Values outside Bedrock's enumerations are dropped for the
same reason (and to keep attribute cardinality bounded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .usage import token_count

if TYPE_CHECKING:
    from .facts import ResponseFacts

#: ``ServiceTierType`` in botocore's model.
SERVICE_TIERS = frozenset({"priority", "default", "flex", "reserved"})
#: ``PerformanceConfigLatency`` in botocore's model.
LATENCY_MODES = frozenset({"standard", "optimized"})
#: ``CacheTTL`` in botocore's model.
CACHE_TTLS = frozenset({"5m", "1h"})
#: Converse's stop reason when a guardrail intervened.
GUARDRAIL_STOP_REASON = "guardrail_intervened"
#: InvokeModel's guardrail action field (in the body and in each stream chunk).
GUARDRAIL_ACTION_KEY = "amazon-bedrock-guardrailAction"
#: Response headers, lower-cased as botocore stores them.
SERVICE_TIER_HEADER = "x-amzn-bedrock-service-tier"
LATENCY_HEADER = "x-amzn-bedrock-performanceconfig-latency"
#: The longest model id or ARN Bedrock accepts (``ConversationalModelId``'s max length).
_MAX_MODEL_ID = 2048


class BillingTerms(NamedTuple):
    """How one call was billed; ``None`` means the response did not say."""

    #: Tier that served the call: ``priority``, ``default``, ``flex`` or ``reserved``.
    service_tier: str | None = None
    #: Latency mode that served the call: ``standard`` or ``optimized``.
    latency_mode: str | None = None
    #: Cache writes with the five-minute TTL, in tokens.
    cache_write_5m: int | None = None
    #: Cache writes with the one-hour TTL, in tokens.
    cache_write_1h: int | None = None
    #: A guardrail intervened (blocked or masked content).
    guardrail_intervened: bool | None = None
    #: The model a prompt router chose (``trace.promptRouter.invokedModelId``, usually an ARN).
    routed_model: str | None = None

    def merged(self, other: BillingTerms | None) -> BillingTerms:
        """These terms, each missing one taken from ``other`` (a less authoritative source)."""
        if other is None:
            return self
        return BillingTerms(
            self.service_tier if self.service_tier is not None else other.service_tier,
            self.latency_mode if self.latency_mode is not None else other.latency_mode,
            self.cache_write_5m if self.cache_write_5m is not None else other.cache_write_5m,
            self.cache_write_1h if self.cache_write_1h is not None else other.cache_write_1h,
            self.guardrail_intervened
            if self.guardrail_intervened is not None
            else other.guardrail_intervened,
            self.routed_model if self.routed_model is not None else other.routed_model,
        )

    def is_empty(self) -> bool:
        return self is _EMPTY or self == _EMPTY


_EMPTY = BillingTerms()
#: The terms of a response that says nothing but its stop reason, by what that reason says of a
#: guardrail (``terms_from_converse``'s common case, built once).
_BY_GUARDRAIL: dict[bool | None, BillingTerms] = {
    None: _EMPTY,
    True: BillingTerms(guardrail_intervened=True),
    False: BillingTerms(guardrail_intervened=False),
}


def _member(value: object, allowed: frozenset[str]) -> str | None:
    return value if isinstance(value, str) and value in allowed else None


def _mapping(value: object) -> Mapping[str, Any] | None:
    # ``dict`` first: botocore's parsed responses are dicts, and an ABC check costs ~10x more.
    if type(value) is dict:
        return value
    # ``None`` (an absent member, the common case) without the ABC check either.
    return value if value is not None and isinstance(value, Mapping) else None


def _field(container: object, *path: str) -> object:
    """``container[path[0]][path[1]]...``, or ``None`` as soon as a step is not a mapping."""
    value: object = container
    for key in path:
        if type(value) is not dict:
            mapping = _mapping(value)
            if mapping is None:
                return None
            value = mapping.get(key)
        else:
            value = value.get(key)
    return value


def service_tier_of(value: object) -> str | None:
    """A tier from a header value or a ``ServiceTier`` structure's ``type``."""
    return _member(value, SERVICE_TIERS)


def latency_mode_of(value: object) -> str | None:
    return _member(value, LATENCY_MODES)


def _identifier(value: object) -> str | None:
    """A non-empty, printable id of sane length with no whitespace, else ``None``."""
    if not isinstance(value, str) or not value or len(value) > _MAX_MODEL_ID:
        return None
    if any(character.isspace() for character in value) or not value.isprintable():
        return None
    return value


def routed_model_of(value: object) -> str | None:
    """``trace.promptRouter.invokedModelId`` (an ARN of the model the router chose)."""
    return _identifier(value)


def cache_writes_from_details(details: object) -> tuple[int | None, int | None]:
    """(5m, 1h) cache-write tokens from Converse ``usage.cacheDetails``.

    Absent -> ``(None, None)``. A list -> the sum per TTL, ``0`` for a TTL it does not list (the
    model documents an empty list as "no cache creation"). If any entry is malformed, neither
    number can be trusted: ``(None, None)``.
    """
    if not isinstance(details, list):
        return None, None
    totals = {"5m": 0, "1h": 0}
    for detail in details:
        ttl = _field(detail, "ttl")
        tokens = token_count(_field(detail, "inputTokens"))
        if not isinstance(ttl, str) or ttl not in CACHE_TTLS or tokens is None:
            return None, None
        totals[ttl] += tokens
    return totals["5m"], totals["1h"]


def cache_writes_from_anthropic_usage(usage: object) -> tuple[int | None, int | None]:
    """(5m, 1h) cache-write tokens from an Anthropic ``usage.cache_creation`` object."""
    creation = _mapping(_field(usage, "cache_creation"))
    if creation is None:
        return None, None
    five = token_count(creation.get("ephemeral_5m_input_tokens"))
    hour = token_count(creation.get("ephemeral_1h_input_tokens"))
    if five is None and hour is None:
        return None, None
    # One key present and valid, the other absent: Anthropic then wrote nothing with that TTL.
    # One present but malformed: unknown.
    if (five is None and "ephemeral_5m_input_tokens" in creation) or (
        hour is None and "ephemeral_1h_input_tokens" in creation
    ):
        return None, None
    return five or 0, hour or 0


def guardrail_intervened_from_stop_reason(stop_reason: object) -> bool | None:
    """Converse's ``stopReason``: ``guardrail_intervened`` -> True, any other reason -> False."""
    if not isinstance(stop_reason, str) or not stop_reason:
        return None
    return stop_reason == GUARDRAIL_STOP_REASON


def guardrail_intervened_from_action(action: object) -> bool | None:
    """InvokeModel's ``amazon-bedrock-guardrailAction``: ``INTERVENED`` / ``NONE``."""
    if action == "INTERVENED":
        return True
    if action == "NONE":
        return False
    return None


def terms_from_converse(response: object, stop_reason: object = None) -> BillingTerms:
    """Terms from a Converse response or a ConverseStream ``metadata`` event (the same members).

    ``stop_reason``: ConverseStream carries it in ``messageStop``, not in ``metadata``; pass it when
    known. A Converse response's own ``stopReason`` is read when ``stop_reason`` is not given.
    """
    if type(response) is dict and not (
        "serviceTier" in response or "performanceConfig" in response or "trace" in response
    ):
        # The common response (no tier, latency mode or router trace; no cache writes): a prebuilt
        # value equal to what the general path below builds, without its field walks.
        usage = response.get("usage")
        if usage is None or (type(usage) is dict and "cacheDetails" not in usage):
            reason = stop_reason if stop_reason is not None else response.get("stopReason")
            return _BY_GUARDRAIL[guardrail_intervened_from_stop_reason(reason)]
    if _mapping(response) is None:
        return _EMPTY
    five, hour = cache_writes_from_details(_field(response, "usage", "cacheDetails"))
    reason = stop_reason if stop_reason is not None else _field(response, "stopReason")
    return BillingTerms(
        service_tier=service_tier_of(_field(response, "serviceTier", "type")),
        latency_mode=latency_mode_of(_field(response, "performanceConfig", "latency")),
        cache_write_5m=five,
        cache_write_1h=hour,
        guardrail_intervened=guardrail_intervened_from_stop_reason(reason),
        routed_model=routed_model_of(_field(response, "trace", "promptRouter", "invokedModelId")),
    )


def terms_from_headers(headers: object) -> BillingTerms:
    """Terms from InvokeModel* response headers (lower-cased names, as botocore's ``HTTPHeaders``)."""
    mapping = _mapping(headers)
    if mapping is None:
        return _EMPTY
    tier = mapping.get(SERVICE_TIER_HEADER)
    latency = mapping.get(LATENCY_HEADER)
    if tier is None and latency is None:
        return _EMPTY  # the common response: nothing to build
    return BillingTerms(service_tier=service_tier_of(tier), latency_mode=latency_mode_of(latency))


def terms_from_anthropic_body(body: object) -> BillingTerms:
    """Terms from a decoded InvokeModel body or stream chunk of any family: Anthropic's cache
    writes by TTL (``usage`` of a body, ``message.usage`` of a ``message_start`` chunk) and the
    guardrail action Bedrock adds to every family's body."""
    if type(body) is dict and GUARDRAIL_ACTION_KEY not in body:
        # The common body or chunk (no guardrail action, no cache writes by TTL): the empty terms
        # the general path below would build, without its field walks (this runs per usage chunk).
        usage = body.get("usage")
        if usage is None:
            message = body.get("message")
            usage = message.get("usage") if type(message) is dict else message
        if usage is None or (type(usage) is dict and "cache_creation" not in usage):
            return _EMPTY
    if _mapping(body) is None:
        return _EMPTY
    usage = _field(body, "usage")
    if _mapping(usage) is None:
        usage = _field(body, "message", "usage")
    five, hour = cache_writes_from_anthropic_usage(usage)
    return BillingTerms(
        cache_write_5m=five,
        cache_write_1h=hour,
        guardrail_intervened=guardrail_intervened_from_action(_field(body, GUARDRAIL_ACTION_KEY)),
    )


def guardrail_id_from_request(params: object) -> str | None:
    """The guardrail a request names (``aws.bedrock.guardrail.id``): botocore's API parameters of
    Converse* (``guardrailConfig.guardrailIdentifier``) or InvokeModel* (``guardrailIdentifier``)."""
    identifier = _field(params, "guardrailIdentifier")
    if identifier is None:
        identifier = _field(params, "guardrailConfig", "guardrailIdentifier")
    return _identifier(identifier)


def apply_terms(facts: ResponseFacts, terms: BillingTerms) -> None:
    """Keep the billing terms of a response and what they say about the rest of it: a prompt
    router's choice is the response model; a guardrail's intervention is the call's finish reason
    (InvokeModel bodies keep the model's own stop reason, Converse already says it)."""
    if terms.is_empty():
        return
    facts.billing = terms.merged(facts.billing)
    if terms.routed_model is not None:
        facts.response_model = terms.routed_model
    if terms.guardrail_intervened and (
        facts.finish_reasons is None or GUARDRAIL_STOP_REASON not in facts.finish_reasons
    ):
        facts.finish_reasons = (GUARDRAIL_STOP_REASON,)
