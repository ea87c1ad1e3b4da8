"""Per botocore operation: the request facts before the call, the response facts after it.

One :class:`Operation` per ``bedrock-runtime`` operation we measure. Adding an operation (the
streams, CountTokens) means adding one entry to :data:`OPERATIONS`; the lifecycle, the transport
adapters and the telemetry do not change. An operation says where its response keeps a body to read
(:attr:`Operation.body_key`) or an event stream (:attr:`Operation.stream_key`, read as its
:meth:`Operation.stream_reading` says); how to read the bytes is the transport's. The wire shapes
themselves live in :mod:`.converse`, :mod:`.metering`, :mod:`.stream_events` and ``families/``.
Nothing here touches spans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.response import StreamingBody

from .billing import apply_terms as apply_terms  # re-exported: its old home
from .billing import (
    guardrail_id_from_request,
    terms_from_anthropic_body,
    terms_from_converse,
    terms_from_headers,
)
from .bodies import ReadResult, read_and_replay
from .converse import converse_params, converse_response
from .converse import converse_usage as converse_usage  # re-exported: its old home
from .facts import RequestFacts, RequestParams, ResponseFacts
from .families import Family, family_for
from .families._fields import token_count
from .json_object import parse_json_object as parse_json_object  # re-exported: its old home
from .metering import response_metadata, usage_from_headers
from .model_id import parse_model_id
from .stream_events import CONVERSE_STREAM_READING, NO_STREAM_READING, StreamReading, invoke_stream_reading


class Operation:
    """Base: the facts every operation shares (model id, server, response metadata)."""

    #: botocore operation name.
    api_name = ""
    #: The response holds an event stream in this key (``None`` for plain responses).
    stream_key: str | None = None
    #: The response holds a body to read the facts from in this key (``None``: no body to read).
    #: A transport that reads bodies its own way (aiobotocore: with ``await``) reads
    #: ``result[body_key]`` and hands the :class:`.bodies.ReadResult` to :meth:`response`.
    body_key: str | None = None

    def stream_reading(self, request: RequestFacts) -> StreamReading:
        """How the events of this operation's stream (:attr:`stream_key`) are read for ``request``:
        the observer and what the per-event step passes over unread. Asked once per stream."""
        return NO_STREAM_READING

    def request(self, params: Mapping[str, Any], server: tuple[str | None, int | None]) -> RequestFacts:
        model_id = params.get("modelId")
        model_id = model_id if isinstance(model_id, str) else ""
        model = parse_model_id(model_id)
        operation_name, family, request_params = self.describe(params, family_for(model))
        return RequestFacts(
            api_operation=self.api_name,
            operation_name=operation_name,
            model_id=model_id,
            model=model,
            params=request_params,
            server_address=server[0],
            server_port=server[1],
            family=family.name if family is not None else None,
            guardrail_id=guardrail_id_from_request(params),
        )

    def describe(self, params: Mapping[str, Any], family: Family) -> tuple[str, Family | None, RequestParams]:
        raise NotImplementedError

    def response(
        self, request: RequestFacts, result: Mapping[str, Any], read: ReadResult | None = None
    ) -> ResponseFacts:
        """The response facts; ``read`` is the body already read by the transport (only for an
        operation with a :attr:`body_key`)."""
        facts = ResponseFacts()
        response_metadata(result, facts)
        return facts


class _InvokeModelBase(Operation):
    """InvokeModel and InvokeModelWithResponseStream: the body's shape is the family's."""

    def describe(self, params: Mapping[str, Any], family: Family) -> tuple[str, Family | None, RequestParams]:
        body = parse_json_object(params.get("body"))
        if body is None:
            return "chat", family, RequestParams()
        return family.operation_name(body), family, family.request_params(body)


class InvokeModel(_InvokeModelBase):
    api_name = "InvokeModel"
    body_key = "body"

    def response(
        self, request: RequestFacts, result: Mapping[str, Any], read: ReadResult | None = None
    ) -> ResponseFacts:
        """The body's facts, then the headers' (what Bedrock billed). Without ``read``, a botocore
        ``StreamingBody`` is read here (the caller's body object stays in place, reading as it would
        have: see bodies); with it, the transport's replacement body is put in the result."""
        if read is None:
            body = result.get("body")
            if isinstance(body, StreamingBody):
                read = read_and_replay(body)
        elif isinstance(result, dict):
            result["body"] = read.replacement
        facts = self.parse_response(request, result, read.data if read is not None else None)
        if read is not None:
            facts.read_error = read.error
        return facts

    def parse_response(
        self, request: RequestFacts, result: Mapping[str, Any], data: bytes | None
    ) -> ResponseFacts:
        """The facts of a response whose body has already been read as ``data`` (``None``: not read)."""
        facts = ResponseFacts()
        headers = response_metadata(result, facts)
        parsed = parse_json_object(data)
        if parsed is not None:
            family_for(request.model).read_response(parsed, facts)
        # Headers are what Bedrock billed; the body's own usage only fills what they lack.
        billed = usage_from_headers(headers)
        billed.fill_from(facts.usage)
        facts.usage = billed
        terms = terms_from_headers(headers)
        if parsed is not None:
            terms = terms.merged(terms_from_anthropic_body(parsed))
        apply_terms(facts, terms)
        return facts


class InvokeModelWithResponseStream(_InvokeModelBase):
    api_name = "InvokeModelWithResponseStream"
    stream_key = "body"

    def stream_reading(self, request: RequestFacts) -> StreamReading:
        return invoke_stream_reading(family_for(request.model))


class _ConverseBase(Operation):
    def describe(self, params: Mapping[str, Any], family: Family) -> tuple[str, Family | None, RequestParams]:
        return "chat", None, converse_params(params)


class Converse(_ConverseBase):
    api_name = "Converse"

    def response(
        self, request: RequestFacts, result: Mapping[str, Any], read: ReadResult | None = None
    ) -> ResponseFacts:
        facts = super().response(request, result)
        converse_response(result, facts)
        apply_terms(facts, terms_from_converse(result))
        return facts


class ConverseStream(_ConverseBase):
    api_name = "ConverseStream"
    stream_key = "stream"

    def stream_reading(self, request: RequestFacts) -> StreamReading:
        return CONVERSE_STREAM_READING


class CountTokens(Operation):
    """The caller's own CountTokens call: measured like any call; its answer is a prediction, not
    usage, so it is recorded as ``bedrock_tokens.prediction.input_tokens`` and no token points."""

    api_name = "CountTokens"

    def describe(self, params: Mapping[str, Any], family: Family) -> tuple[str, Family | None, RequestParams]:
        return "count_tokens", None, RequestParams()

    def response(
        self, request: RequestFacts, result: Mapping[str, Any], read: ReadResult | None = None
    ) -> ResponseFacts:
        facts = super().response(request, result)
        facts.predicted_input_tokens = token_count(result.get("inputTokens"))
        return facts


OPERATIONS: dict[str, Operation] = {
    op.api_name: op
    for op in (
        InvokeModel(),
        InvokeModelWithResponseStream(),
        Converse(),
        ConverseStream(),
        CountTokens(),
    )
}
