"""The five ``bedrock-runtime`` operations: a request in, a planned response and its billing out.

One path for all of them: resolve the model id, fire a scripted fault if one matches, build the
:class:`~.families.base.Plan` (the billed prompt), apply the prompt cache, generate the reply, then
render the family's body or stream and settle the ledger once the server reports how much of the
response reached the client. Nothing here touches a socket.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from ..model_id import ModelRef
from . import converse
from .cache import CacheOutcome, PromptCache
from .catalog import Catalog, ModelSpec
from .errors import (
    CONVERSE_UNSUPPORTED,
    COUNT_TOKENS_UNSUPPORTED,
    ERROR_TYPE_SUFFIX,
    INVALID_MODEL,
    MALFORMED_INPUT,
    STREAMING_UNSUPPORTED,
    BedrockError,
)
from .eventstream import (
    chunk_frame,
    compact_json,
    corrupt,
    error_frame,
    event_frame,
    exception_frame,
    padding,
)
from .families import Answer, Family, Json, Plan, Reply, Stop, Usage
from .families.base import as_dict
from .faults import Fault, FaultPlan
from .guardrails import Guardrails, GuardrailVerdict, add_invoke_fields, converse_trace
from .ids import Ids
from .ledger import Ledger
from .reply import blocked_reply, make_reply
from .settings import Drift, Latency, Rules
from .wire import Delivery, Header, PlainResponse, Response, StreamEvent, StreamResponse, Timing

JSON = "application/json"
EVENT_STREAM = "application/vnd.amazon.eventstream"
#: One operation: (call, parsed id, model, lower-case request headers, request body) -> response.
Handler = Callable[["Call", ModelRef, ModelSpec, Mapping[str, str], bytes], Response]
#: Model id kinds CountTokens accepts (a foundation model id or its ARN).
_COUNTABLE_KINDS = frozenset({"foundation", "foundation-model"})
#: ``ServiceTierType`` and ``PerformanceConfigLatency`` in botocore's bedrock-runtime model.
SERVICE_TIERS = frozenset({"priority", "default", "flex", "reserved"})
LATENCY_MODES = frozenset({"standard", "optimized"})
#: Bedrock's answers to a tier it does not know and to ``reserved`` without a reservation.
INVALID_TIER = "The service tier provided is invalid."
NO_RESERVATION = "Reservation not found."


@dataclass(frozen=True, slots=True)
class Terms:
    """What the request asked of billing: tier and latency mode (``None``: not asked)."""

    tier: str | None = None
    latency: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Terms:
        return cls(
            headers.get("x-amzn-bedrock-service-tier"),
            headers.get("x-amzn-bedrock-performanceconfig-latency"),
        )

    @classmethod
    def from_converse(cls, request: Json) -> Terms:
        tier = as_dict(request.get("serviceTier")).get("type") if "serviceTier" in request else None
        latency = as_dict(request.get("performanceConfig")).get("latency")
        return cls(
            tier if tier is None or isinstance(tier, str) else repr(tier),
            latency if latency is None or isinstance(latency, str) else repr(latency),
        )

    def check(self, model_id: str, reservations: set[str]) -> None:
        if self.tier is not None and self.tier not in SERVICE_TIERS:
            raise BedrockError.validation(INVALID_TIER)
        if self.tier == "reserved" and model_id not in reservations:
            raise BedrockError.validation(NO_RESERVATION)
        if self.latency is not None and self.latency not in LATENCY_MODES:
            raise BedrockError.validation(
                f"1 validation error detected: Value '{self.latency}' at 'performanceConfig.latency' "
                "failed to satisfy constraint: Member must satisfy enum value set: [optimized, standard]"
            )


@dataclass(slots=True)
class State:
    """Everything the requests share; each part is thread-safe on its own."""

    catalog: Catalog = field(default_factory=Catalog)
    cache: PromptCache = field(default_factory=PromptCache)
    faults: FaultPlan = field(default_factory=FaultPlan)
    ledger: Ledger = field(default_factory=Ledger)
    guardrails: Guardrails = field(default_factory=Guardrails)
    ids: Ids = field(default_factory=Ids)
    drift: Rules[Drift] = field(default_factory=lambda: Rules(Drift()))
    latency: Rules[Latency] = field(default_factory=lambda: Rules(Latency()))
    count_tokens_support: Rules[bool | None] = field(default_factory=lambda: Rules[bool | None](None))
    #: Typical reply length in tokens (each reply is this, give or take four, capped by max_tokens).
    output_tokens: int = 24
    #: Overrides every model's minimum cacheable prefix (``0`` caches any prefix).
    cache_minimum: int | None = None
    #: Let CountTokens take inference-profile ids (Bedrock's behaviour there is not settled).
    count_tokens_accepts_profiles: bool = False
    #: Report the billing fields Bedrock added in 2025 on every call: the served ``serviceTier``
    #: (``default`` when none was asked) and cache writes by TTL. ``False`` answers like the
    #: recordings made before them (a tier is then reported only when the request asked for one).
    billing_fields: bool = True
    #: Models with a ``reserved`` tier reservation (any other model refuses ``reserved``).
    reservations: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the service sees it: what was asked of which model, and its fault, if any."""

    operation: str
    model_id: str
    request_id: str
    base_model: str | None
    fault: Fault | None

    @property
    def extra_delay(self) -> float:
        if self.fault is not None and self.fault.kind in ("slow_first_byte", "latency"):
            return self.fault.seconds
        return 0.0

    def has(self, kind: str) -> bool:
        return self.fault is not None and self.fault.kind == kind

    def cut_after(self) -> int | None:
        """Body bytes sent before a ``reset`` or ``short_body`` fault cuts the response."""
        if self.fault is None or self.fault.kind not in ("reset", "short_body"):
            return None
        return self.fault.after_bytes


def parse_json(body: bytes) -> Json:
    try:
        value = json.loads(body) if body else None
    except (ValueError, RecursionError):
        raise BedrockError.validation(MALFORMED_INPUT) from None
    if not isinstance(value, dict):
        raise BedrockError.validation(MALFORMED_INPUT)
    return value


def half(data: bytes) -> bytes:
    """A body cut in the middle: what a 200 with a malformed body looks like."""
    return data[: max(1, len(data) // 2)]


class Service:
    """The operations of one emulator, over its shared :class:`State`."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._handlers: dict[str, Handler] = {
            "InvokeModel": self._invoke,
            "InvokeModelWithResponseStream": self._invoke_stream,
            "Converse": self._converse,
            "ConverseStream": self._converse_stream,
            "CountTokens": self._count_tokens,
        }

    # --- entry point ------------------------------------------------------------------------
    def handle(self, operation: str, model_id: str, headers: Mapping[str, str], body: bytes) -> Response:
        """``headers`` have lower-case names."""
        state = self.state
        ref, spec = state.catalog.resolve(model_id)
        base = spec.model_id if spec is not None else None
        call = Call(operation, model_id, state.ids.uuid(), base, state.faults.take(operation, model_id, base))
        try:
            if call.fault is not None and call.fault.kind == "error":
                raise call.fault.as_error()
            if spec is None:
                raise BedrockError.validation(INVALID_MODEL)
            return self._handlers[operation](call, ref, spec, headers, body)
        except BedrockError as error:
            return self.error_response(call, error)

    def error_response(self, call: Call, error: BedrockError) -> PlainResponse:
        data = compact_json(error.payload())
        headers: list[Header] = [
            ("Content-Type", JSON),
            ("x-amzn-ErrorType", error.code + ERROR_TYPE_SUFFIX),
            ("x-amzn-RequestId", call.request_id),
        ]
        latency = self.state.latency.get(call.operation, call.model_id, call.base_model)
        return PlainResponse(
            error.status,
            lambda timing: (headers, data),
            delay=latency.first_byte + call.extra_delay,
            reset_after=call.cut_after(),
            clean_cut=call.has("short_body"),
            settle=self._settle(call, error.status, None, lambda d: False, error=error.code),
        )

    # --- shared steps -----------------------------------------------------------------------
    def _settle(
        self,
        call: Call,
        status: int,
        usage: Usage | None,
        billed_when: Callable[[Delivery], bool],
        error: str | None = None,
        counted: int | None = None,
        answer: Answer | None = None,
    ) -> Callable[[Delivery], None]:
        ledger = self.state.ledger

        def settle(delivery: Delivery) -> None:
            billed = usage is not None and billed_when(delivery)
            ledger.record(
                service_tier=answer.service_tier if answer is not None else None,
                latency_mode=answer.latency if answer is not None else None,
                routed_model=answer.routed_model if answer is not None else None,
                guardrail_id=answer.guardrail_id if answer is not None else None,
                cache_write_1h_tokens=usage.cache_write_1h if billed and usage else 0,
                request_id=call.request_id,
                operation=call.operation,
                model_id=call.model_id,
                base_model=call.base_model,
                status=status,
                error=error,
                fault=call.fault.kind if call.fault is not None else None,
                billed=billed,
                input_tokens=usage.input if billed and usage else 0,
                output_tokens=usage.output if billed and usage else 0,
                cache_read_tokens=usage.cache_read if billed and usage else 0,
                cache_write_tokens=usage.cache_write if billed and usage else 0,
                counted_tokens=counted,
                latency_ms=delivery.elapsed_ms,
            )

        return settle

    def _answer(
        self,
        call: Call,
        spec: ModelSpec,
        family: Family,
        plan: Plan,
        verdict: GuardrailVerdict | None,
        for_converse: bool,
        terms: Terms,
    ) -> Answer:
        state = self.state
        terms.check(spec.model_id, state.reservations)
        if plan.max_tokens is None and family.default_max_tokens is not None:
            plan = replace(plan, max_tokens=family.default_max_tokens)
        blocked = verdict is not None and verdict.blocked
        cache = CacheOutcome()
        if spec.caching and plan.prompt.uses_cache and not blocked:
            minimum = state.cache_minimum if state.cache_minimum is not None else spec.cache_minimum
            cache = state.cache.apply(spec.model_id, plan.prompt.cache_prefixes(), minimum)
        seed = plan.prompt.seed()
        reply: Reply
        if verdict is not None and verdict.blocked:
            reply = blocked_reply(verdict.message)
        elif family.kind == "embeddings":
            reply = Reply((), (), Stop.END, 0)
        else:
            reply = make_reply(plan, seed, state.output_tokens, state.ids.token())
        total = plan.prompt.total_tokens
        usage = Usage(
            total - cache.read - cache.write, reply.output_tokens, cache.read, cache.write, cache.write_1h
        )
        always = spec.converse_reports_cache if for_converse else family.always_reports_cache
        route = state.catalog.route(call.model_id)
        served_tier = terms.tier or ("default" if state.billing_fields else None)
        return Answer(
            plan=plan,
            reply=reply,
            usage=usage,
            report_cache=spec.caching and (always or plan.prompt.uses_cache),
            message_id=state.ids.token(),
            response_model=spec.response_model,
            report_cache_details=state.billing_fields,
            service_tier=served_tier,
            latency=terms.latency,
            invoked_model_arn=route.invoked_model_arn if route is not None else None,
            routed_model=route.model_id if route is not None else None,
            guardrail_id=verdict.identifier if verdict is not None else None,
        )

    def _latency(self, call: Call) -> Latency:
        return self.state.latency.get(call.operation, call.model_id, call.base_model)

    def answer_response(
        self,
        call: Call,
        answer: Answer,
        render: Callable[[Timing], tuple[list[Header], bytes]],
        billed_when: Callable[[Delivery], bool],
    ) -> PlainResponse:
        """A 200 with a whole answer in its body (InvokeModel, Converse, the mantle APIs): delayed by
        the model's latency for the answer's output, cut as the call's fault says, and billed when
        ``billed_when`` says the delivery reached the client."""
        return PlainResponse(
            200,
            render,
            delay=self._latency(call).total(answer.usage.output) + call.extra_delay,
            reset_after=call.cut_after(),
            clean_cut=call.has("short_body"),
            settle=self._settle(call, 200, answer.usage, billed_when, answer=answer),
        )

    @staticmethod
    def _invocation_metrics(answer: Answer, timing: Timing) -> Json:
        usage = answer.usage
        metrics: Json = {
            "inputTokenCount": usage.input,
            "outputTokenCount": usage.output,
            "invocationLatency": timing.elapsed_ms(),
            "firstByteLatency": timing.first_byte_ms(),
        }
        if answer.report_cache:
            metrics["cacheReadInputTokenCount"] = usage.cache_read
            metrics["cacheWriteInputTokenCount"] = usage.cache_write
        return metrics

    @staticmethod
    def _stream_fault(
        fault: Fault | None, events: list[StreamEvent], usage_index: int | None
    ) -> tuple[list[StreamEvent], int | None, str | None]:
        """Apply a stream fault; return the events, the index of the usage event if the client
        still gets it, and the error code the client sees (for exception frames)."""
        if fault is None or fault.kind not in ("stream_exception", "stream_error", "truncate", "malformed"):
            return events, usage_index, None
        keep = max(0, fault.after_events)
        survives = usage_index if usage_index is not None and usage_index < keep else None
        if fault.kind == "stream_exception":
            error = fault.as_error()
            frame = exception_frame(error.stream_member, error.payload())
            return [*events[:keep], StreamEvent(frame)], survives, error.stream_member
        if fault.kind == "stream_error":
            code = fault.code or "InternalFailure"
            return [*events[:keep], StreamEvent(error_frame(code, fault.message or code))], survives, code
        if fault.kind == "truncate":
            kept = events[:keep]
            if fault.mid_frame and keep < len(events):
                cut = events[keep]
                kept.append(StreamEvent(lambda timing: half(cut.render(timing)), cut.delay))
            return kept, survives, None
        index = min(keep, len(events) - 1)
        broken = events[index]
        events = [*events[:index], StreamEvent(lambda timing: corrupt(broken.render(timing)), broken.delay)]
        return events, None, None

    def _stream(
        self, call: Call, headers: list[Header], events: list[StreamEvent], answer: Answer, latency: Latency
    ) -> StreamResponse:
        events, usage_index, error = self._stream_fault(call.fault, events, len(events) - 1)

        def billed(delivery: Delivery) -> bool:
            return usage_index is not None and delivery.events_sent > usage_index

        return StreamResponse(
            headers=headers,
            events=events,
            delay=latency.first_byte + call.extra_delay,
            reset_after=call.cut_after(),
            clean_cut=call.has("short_body"),
            settle=self._settle(call, 200, answer.usage, billed, error=error, answer=answer),
        )

    # --- InvokeModel ------------------------------------------------------------------------
    def _invoke_plan(
        self, call: Call, spec: ModelSpec, headers: Mapping[str, str], body: bytes
    ) -> tuple[Family, Answer, GuardrailVerdict | None]:
        request = parse_json(body)
        family = spec.family.for_body(request)
        plan = family.plan(request)
        verdict = self.state.guardrails.for_invoke(headers, plan.input_text)
        terms = Terms.from_headers(headers)
        return family, self._answer(call, spec, family, plan, verdict, False, terms), verdict

    @staticmethod
    def _term_headers(answer: Answer) -> list[Header]:
        """InvokeModel*'s response headers for the served tier and latency mode."""
        headers: list[Header] = []
        if answer.latency is not None:
            headers.append(("X-Amzn-Bedrock-PerformanceConfig-Latency", answer.latency))
        if answer.service_tier is not None:
            headers.append(("X-Amzn-Bedrock-Service-Tier", answer.service_tier))
        return headers

    def _invoke(
        self, call: Call, ref: ModelRef, spec: ModelSpec, headers: Mapping[str, str], body: bytes
    ) -> Response:
        family, answer, verdict = self._invoke_plan(call, spec, headers, body)
        payload = family.body(answer)
        add_invoke_fields(payload, verdict, answer.reply.text, last=True)
        data = compact_json(payload)
        if call.has("malformed"):
            data = half(data)
        token_headers = family.token_headers(answer) + self._term_headers(answer)

        def render(timing: Timing) -> tuple[list[Header], bytes]:
            return [
                ("Content-Type", JSON),
                *token_headers,
                ("X-Amzn-Bedrock-Invocation-Latency", str(timing.elapsed_ms())),
                ("x-amzn-RequestId", call.request_id),
            ], data

        # The token headers are written before the body: the usage reached the client.
        return self.answer_response(call, answer, render, lambda d: d.headers_sent)

    def _invoke_stream(
        self, call: Call, ref: ModelRef, spec: ModelSpec, headers: Mapping[str, str], body: bytes
    ) -> Response:
        family, answer, verdict = self._invoke_plan(call, spec, headers, body)
        if not family.streaming:
            raise BedrockError.validation(STREAMING_UNSUPPORTED)
        chunks = family.chunks(answer)
        blocked = verdict is not None and verdict.blocked
        latency = self._latency(call)
        events: list[StreamEvent] = []
        for index, chunk in enumerate(chunks):
            payload = dict(chunk.payload)
            last = index == len(chunks) - 1
            add_invoke_fields(payload, verdict, answer.reply.text, last)
            frame: bytes | Callable[[Timing], bytes]
            if last and not blocked:
                # Recorded: a guardrail-blocked stream carries no invocation metrics.
                def frame(timing: Timing, payload: Json = payload, index: int = index) -> bytes:
                    metrics = self._invocation_metrics(answer, timing)
                    return chunk_frame({**payload, "amazon-bedrock-invocationMetrics": metrics}, index)

            else:
                frame = chunk_frame(payload, index)
            events.append(StreamEvent(frame, latency.per_token * chunk.tokens))
        headers_out: list[Header] = [
            ("Content-Type", EVENT_STREAM),
            ("X-Amzn-Bedrock-Content-Type", JSON),
            *self._term_headers(answer),
            ("x-amzn-RequestId", call.request_id),
        ]
        return self._stream(call, headers_out, events, answer, latency)

    # --- Converse ---------------------------------------------------------------------------
    def _converse_plan(
        self, call: Call, spec: ModelSpec, body: bytes
    ) -> tuple[Answer, GuardrailVerdict | None]:
        request = parse_json(body)
        if not spec.family.converse:
            raise BedrockError.validation(CONVERSE_UNSUPPORTED)
        plan = converse.plan_converse(request)
        verdict = self.state.guardrails.for_converse(request, plan.input_text)
        terms = Terms.from_converse(request)
        return self._answer(call, spec, spec.family, plan, verdict, True, terms), verdict

    def _converse(
        self, call: Call, ref: ModelRef, spec: ModelSpec, headers: Mapping[str, str], body: bytes
    ) -> Response:
        answer, verdict = self._converse_plan(call, spec, body)
        intervened = verdict is not None and verdict.intervened
        trace = converse_trace(verdict, answer.reply.text) if verdict is not None and verdict.trace else None
        malformed = call.has("malformed")

        def render(timing: Timing) -> tuple[list[Header], bytes]:
            data = compact_json(converse.body(answer, timing.elapsed_ms(), intervened, trace))
            return [("Content-Type", JSON), ("x-amzn-RequestId", call.request_id)], half(
                data
            ) if malformed else data

        return self.answer_response(call, answer, render, lambda d: d.completed and not malformed)

    def _converse_stream(
        self, call: Call, ref: ModelRef, spec: ModelSpec, headers: Mapping[str, str], body: bytes
    ) -> Response:
        answer, verdict = self._converse_plan(call, spec, body)
        intervened = verdict is not None and verdict.intervened
        trace = converse_trace(verdict, answer.reply.text) if verdict is not None and verdict.trace else None
        latency = self._latency(call)
        events: list[StreamEvent] = []
        for index, (event_type, chunk) in enumerate(converse.events(answer, intervened)):
            payload = dict(sorted({**chunk.payload, "p": padding(index)}.items()))
            events.append(StreamEvent(event_frame(event_type, payload), latency.per_token * chunk.tokens))
        final_index = len(events)

        def metadata(timing: Timing) -> bytes:
            fields = {**converse.metadata(answer, timing.elapsed_ms(), trace), "p": padding(final_index)}
            return event_frame("metadata", dict(sorted(fields.items())))

        events.append(StreamEvent(metadata))
        headers_out: list[Header] = [("Content-Type", EVENT_STREAM), ("x-amzn-RequestId", call.request_id)]
        return self._stream(call, headers_out, events, answer, latency)

    # --- CountTokens ------------------------------------------------------------------------
    def _count_tokens(
        self, call: Call, ref: ModelRef, spec: ModelSpec, headers: Mapping[str, str], body: bytes
    ) -> Response:
        state = self.state
        if ref.kind not in _COUNTABLE_KINDS and not state.count_tokens_accepts_profiles:
            raise BedrockError.validation(INVALID_MODEL)
        supported = state.count_tokens_support.get(call.operation, call.model_id, call.base_model)
        if not (spec.count_tokens if supported is None else supported):
            raise BedrockError.validation(COUNT_TOKENS_UNSUPPORTED)
        request = parse_json(body)
        source = request.get("input")
        if not isinstance(source, dict) or len(source) != 1:
            raise BedrockError.validation(
                "The input field must contain exactly one of invokeModel or converse."
            )
        if "invokeModel" in source:
            encoded = source["invokeModel"].get("body") if isinstance(source["invokeModel"], dict) else None
            try:
                raw = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
            except (binascii.Error, ValueError):
                raise BedrockError.validation(MALFORMED_INPUT) from None
            invoke_body = parse_json(raw)
            plan = spec.family.for_body(invoke_body).plan(invoke_body)
        elif "converse" in source:
            plan = converse.plan_converse(source["converse"] if isinstance(source["converse"], dict) else {})
        else:
            raise BedrockError.validation(
                "The input field must contain exactly one of invokeModel or converse."
            )
        counted = state.drift.get(call.operation, call.model_id, call.base_model).apply(
            plan.prompt.total_tokens
        )
        data = compact_json({"inputTokens": counted})
        if call.has("malformed"):
            data = half(data)
        latency = self._latency(call)
        return PlainResponse(
            200,
            lambda timing: ([("Content-Type", JSON), ("x-amzn-RequestId", call.request_id)], data),
            delay=latency.first_byte + call.extra_delay,
            reset_after=call.cut_after(),
            clean_cut=call.has("short_body"),
            settle=self._settle(call, 200, None, lambda d: False, counted=counted),
        )
