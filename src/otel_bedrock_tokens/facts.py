"""Plain values passed from parsing to telemetry: parsing never touches spans, telemetry never
parses bodies. Everything here is what one call *said*; nothing is derived twice."""

from __future__ import annotations

from dataclasses import dataclass, field

from .billing import BillingTerms
from .model_id import ModelRef
from .usage import Usage


@dataclass(slots=True)
class RequestParams:
    """Generation parameters the caller asked for (``gen_ai.request.*``)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    stop_sequences: tuple[str, ...] | None = None


@dataclass(slots=True)
class RequestFacts:
    """What is known before the call is sent."""

    #: botocore operation name (``InvokeModel``, ``Converse``...).
    api_operation: str
    #: ``gen_ai.operation.name``: ``chat``, ``text_completion``, ``embeddings``...
    operation_name: str
    #: The modelId exactly as passed.
    model_id: str
    model: ModelRef
    params: RequestParams
    server_address: str | None
    server_port: int | None
    #: The family parser chosen for this model and body, or ``None`` (opaque id, unknown family).
    family: str | None = None
    #: The guardrail the request names (``aws.bedrock.guardrail.id``), when it names one.
    guardrail_id: str | None = None


@dataclass(slots=True)
class ResponseFacts:
    """What the answer said."""

    usage: Usage = field(default_factory=Usage)
    finish_reasons: tuple[str, ...] | None = None
    response_id: str | None = None
    response_model: str | None = None
    request_id: str | None = None
    retry_attempts: int | None = None
    #: CountTokens' answer, when the call was the caller's own CountTokens.
    predicted_input_tokens: int | None = None
    #: Reading the response failed part-way (the caller meets the same exception when reading).
    read_error: BaseException | None = None
    #: How the call was billed (service tier, latency mode, cache writes by TTL, prompt router),
    #: ``None`` when the response said none of it.
    billing: BillingTerms | None = None
