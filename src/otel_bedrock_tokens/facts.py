"""Plain values passed from parsing to telemetry: parsing never touches spans, telemetry never
parses bodies. Everything here is what one call *said*; nothing is derived twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._record import Record
from .model_id import ModelRef
from .usage import Usage

if TYPE_CHECKING:
    from .billing import BillingTerms

# Plain slotted classes (see ``_record``), not dataclasses: defining a dataclass costs every cold start.


class RequestParams(Record):
    """Generation parameters the caller asked for (``gen_ai.request.*``)."""

    __slots__ = ("max_tokens", "temperature", "top_p", "top_k", "stop_sequences")  # noqa: RUF023 (constructor order, for repr)

    def __init__(
        self,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: float | None = None,
        stop_sequences: tuple[str, ...] | None = None,
    ) -> None:
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.stop_sequences = stop_sequences


class RequestFacts(Record):
    """What is known before the call is sent.

    ``api_operation``: botocore operation name (``InvokeModel``, ``Converse``...);
    ``operation_name``: ``gen_ai.operation.name`` (``chat``, ``text_completion``, ``embeddings``...);
    ``model_id``: the modelId exactly as passed; ``family``: the family parser chosen for this model
    and body, or ``None`` (opaque id, unknown family).
    """

    __slots__ = (  # noqa: RUF023 (constructor order, for repr)
        "api_operation",
        "operation_name",
        "model_id",
        "model",
        "params",
        "server_address",
        "server_port",
        "family",
        "guardrail_id",
    )

    def __init__(
        self,
        api_operation: str,
        operation_name: str,
        model_id: str,
        model: ModelRef,
        params: RequestParams,
        server_address: str | None,
        server_port: int | None,
        family: str | None = None,
        guardrail_id: str | None = None,
    ) -> None:
        self.api_operation = api_operation
        self.operation_name = operation_name
        self.model_id = model_id
        self.model = model
        self.params = params
        self.server_address = server_address
        self.server_port = server_port
        self.family = family
        #: The guardrail the request names (``aws.bedrock.guardrail.id``), when it names one.
        self.guardrail_id = guardrail_id


class ResponseFacts(Record):
    """What the answer said.

    ``predicted_input_tokens``: CountTokens' answer, when the call was the caller's own CountTokens;
    ``read_error``: reading the response failed part-way (the caller meets the same exception when
    reading). ``usage`` defaults to a new, empty :class:`Usage`.
    """

    __slots__ = (  # noqa: RUF023 (constructor order, for repr)
        "usage",
        "finish_reasons",
        "response_id",
        "response_model",
        "request_id",
        "retry_attempts",
        "predicted_input_tokens",
        "read_error",
        "billing",
    )

    def __init__(
        self,
        usage: Usage | None = None,
        finish_reasons: tuple[str, ...] | None = None,
        response_id: str | None = None,
        response_model: str | None = None,
        request_id: str | None = None,
        retry_attempts: int | None = None,
        predicted_input_tokens: int | None = None,
        read_error: BaseException | None = None,
        billing: BillingTerms | None = None,
    ) -> None:
        self.usage: Usage = Usage() if usage is None else usage
        self.finish_reasons = finish_reasons
        self.response_id = response_id
        self.response_model = response_model
        self.request_id = request_id
        self.retry_attempts = retry_attempts
        self.predicted_input_tokens = predicted_input_tokens
        self.read_error = read_error
        #: How the call was billed (service tier, latency mode, cache writes by TTL, prompt router),
        #: ``None`` when the response said none of it.
        self.billing = billing
