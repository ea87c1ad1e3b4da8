"""Everything that turns facts into spans and metric points, in one place.

:class:`Instruments` is built once per ``instrument()``: tracer, histograms and counters are created
here and never per call. :class:`Call` is one measured call from span start to its single end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider, get_meter
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider, get_tracer
from opentelemetry.util.types import AttributeValue

from . import _semconv as GenAI
from . import _semconv as GenAIMetrics
from . import names
from ._semconv import AWS_REQUEST_ID, ERROR_TYPE, SERVER_ADDRESS, SERVER_PORT
from .facts import RequestFacts, ResponseFacts
from .version import __version__

if TYPE_CHECKING:  # cost and pricing are imported only when something can price a call
    from .billing import BillingTerms
    from .cost import CostMeter
    from .pricing import Cost, PriceBook, UnitPrices

PROVIDER = GenAI.GEN_AI_PROVIDER_NAME_AWS_BEDROCK  # "aws.bedrock"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"

#: Advisory bucket boundaries from the GenAI semantic conventions.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

#: Relative prediction error buckets: exact, a fraction of a percent, a few percent, way off.
PREDICTION_ERROR_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

Attributes = dict[str, AttributeValue]
#: ``request_hook(span, service_name, operation_name, api_params)``, as in the botocore instrumentation.
RequestHook = Callable[[trace.Span, str, str, dict[str, Any]], None]
#: ``response_hook(span, service_name, operation_name, result)``.
ResponseHook = Callable[[trace.Span, str, str, Any], None]


class PredictionLike(Protocol):
    """What the lifecycle needs of a call's CountTokens prediction (``prediction.Prediction``)."""

    def settle(self, call: Call, actual_input: int | None) -> Attributes: ...


def _cost_meter(price_book: PriceBook, meter: Meter) -> CostMeter:
    """The cost counters of one ``instrument()``: :mod:`.cost` (and :mod:`.pricing`) are imported
    here, only when something can price a call, never on a cold start without prices."""
    from .cost import CostMeter

    return CostMeter(price_book, meter)


class Instruments:
    """The tracer and instruments of one ``instrument()``."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        price_book: PriceBook | None = None,
    ) -> None:
        self.tracer = get_tracer(__name__, __version__, tracer_provider, schema_url=SCHEMA_URL)
        meter = get_meter(__name__, __version__, meter_provider, schema_url=SCHEMA_URL)
        self.token_usage: Histogram = meter.create_histogram(
            GenAIMetrics.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration: Histogram = meter.create_histogram(
            GenAIMetrics.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.time_to_first_chunk: Histogram = meter.create_histogram(
            GenAIMetrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.time_per_output_chunk: Histogram = meter.create_histogram(
            GenAIMetrics.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
            unit="s",
            description="Time between consecutive chunks of a streamed response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.prediction_error: Histogram = meter.create_histogram(
            names.PREDICTION_ERROR,
            unit="1",
            description="CountTokens prediction error per call: |actual input - predicted| / predicted.",
            explicit_bucket_boundaries_advisory=PREDICTION_ERROR_BUCKETS,
        )
        self.prediction_tokens: Histogram = meter.create_histogram(
            names.PREDICTION_TOKENS,
            unit="{token}",
            description="Input tokens of calls with a prediction: predicted and actual (cache included).",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.prediction_outcomes: Counter = meter.create_counter(
            names.PREDICTION_OUTCOMES,
            unit="{prediction}",
            description="CountTokens predictions by outcome (ok, unsupported, throttled, timeout, ...).",
        )
        self.cache_usage: Histogram = meter.create_histogram(
            names.CACHE_TOKEN_USAGE,
            unit="{token}",
            description="Prompt-cache input tokens read or written per call (only calls that used "
            "the cache).",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._common: dict[tuple[str, str, str | None, int | None], CommonAttributes] = {}
        #: The cost counters and price book; ``None`` when nothing can price a call (see ``cost``).
        self.cost: CostMeter | None = _cost_meter(price_book, meter) if price_book is not None else None
        # Released semantic-convention names unless the user opted in to the newest (read once).
        latest = names.latest_experimental()
        self.cache_read_name = GenAI.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
        released_write = GenAI.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
        self.cache_write_name = names.LATEST_CACHE_WRITE_INPUT_TOKENS if latest else released_write

    def response_attributes(self, response: ResponseFacts) -> Attributes:
        attributes: Attributes = {}
        usage = response.usage
        if usage.total_input is not None:
            attributes[GenAI.GEN_AI_USAGE_INPUT_TOKENS] = usage.total_input
        if usage.output_tokens is not None:
            attributes[GenAI.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
        if usage.cache_read_tokens is not None:
            attributes[self.cache_read_name] = usage.cache_read_tokens
        if usage.cache_write_tokens is not None:
            attributes[self.cache_write_name] = usage.cache_write_tokens
        if usage.reasoning_output_tokens is not None:
            attributes[names.USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_output_tokens
        if response.finish_reasons is not None:
            attributes[GenAI.GEN_AI_RESPONSE_FINISH_REASONS] = response.finish_reasons
        if response.response_id is not None:
            attributes[GenAI.GEN_AI_RESPONSE_ID] = response.response_id
        if response.response_model is not None:
            attributes[GenAI.GEN_AI_RESPONSE_MODEL] = response.response_model
        if response.request_id is not None:
            attributes[AWS_REQUEST_ID] = response.request_id
        if response.predicted_input_tokens is not None:
            attributes[names.PREDICTED_INPUT_TOKENS] = response.predicted_input_tokens
        if response.retry_attempts:
            attributes[names.RETRY_ATTEMPTS] = response.retry_attempts
        terms = response.billing
        if terms is not None:
            if terms.service_tier is not None:
                attributes[names.SERVICE_TIER] = terms.service_tier
            if terms.latency_mode is not None:
                attributes[names.PERFORMANCE_CONFIG_LATENCY] = terms.latency_mode
            if terms.cache_write_5m is not None:
                attributes[names.USAGE_CACHE_CREATION_5M] = terms.cache_write_5m
            if terms.cache_write_1h is not None:
                attributes[names.USAGE_CACHE_CREATION_1H] = terms.cache_write_1h
        return attributes

    def start(self, request: RequestFacts) -> Call:
        """Start the span (with the attributes samplers need) and the clock."""
        common = self._common_attributes(request)
        span_attributes = common.span.copy()
        params = request.params
        if params.max_tokens is not None:
            span_attributes[GenAI.GEN_AI_REQUEST_MAX_TOKENS] = params.max_tokens
        if params.temperature is not None:
            span_attributes[GenAI.GEN_AI_REQUEST_TEMPERATURE] = params.temperature
        if params.top_p is not None:
            span_attributes[GenAI.GEN_AI_REQUEST_TOP_P] = params.top_p
        if params.top_k is not None:
            span_attributes[GenAI.GEN_AI_REQUEST_TOP_K] = params.top_k
        if params.stop_sequences is not None:
            span_attributes[GenAI.GEN_AI_REQUEST_STOP_SEQUENCES] = params.stop_sequences
        if request.guardrail_id is not None:
            span_attributes[names.GUARDRAIL_ID] = request.guardrail_id
        span = self.tracer.start_span(common.span_name, kind=SpanKind.CLIENT, attributes=span_attributes)
        return Call(self, span, common, request)

    def _common_attributes(self, request: RequestFacts) -> CommonAttributes:
        """The attribute sets every call of one (operation, model, server) shares, built once."""
        key = (request.operation_name, request.model_id, request.server_address, request.server_port)
        found = self._common.get(key)
        if found is None:
            if len(self._common) >= _COMMON_CACHE_SIZE:
                self._common.clear()  # an app that invents model ids must not grow this forever
            found = self._common[key] = CommonAttributes(request)
        return found


#: Distinct (operation, model, server) attribute sets kept; a real app uses a handful.
_COMMON_CACHE_SIZE = 256


class CommonAttributes:
    """Span-start and metric attribute dicts for one (operation, model, server). Shared by many
    calls, so never mutated after construction (the SDK copies what it keeps)."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "cache_write_1h",
        "cache_write_5m",
        "cost",
        "input",
        "metric",
        "output",
        "span",
        "span_name",
        "variants",
    )

    span: Attributes
    span_name: str
    metric: Attributes

    def __init__(
        self,
        request: RequestFacts | None,
        base: CommonAttributes | None = None,
        terms: Attributes | None = None,
    ) -> None:
        if base is not None:  # a variant: the same call attributes plus the billing terms served
            self.span = base.span
            self.span_name = base.span_name
            self.metric = {**base.metric, **(terms or {})}
        else:
            assert request is not None
            span: Attributes = {
                GenAI.GEN_AI_OPERATION_NAME: request.operation_name,
                GenAI.GEN_AI_PROVIDER_NAME: PROVIDER,
                GenAI.GEN_AI_REQUEST_MODEL: request.model_id,
            }
            if request.server_address is not None:
                span[SERVER_ADDRESS] = request.server_address
            if request.server_port is not None:
                span[SERVER_PORT] = request.server_port
            self.span = span
            self.span_name = f"{request.operation_name} {request.model_id}"
            self.metric = dict(span)
        metric = self.metric
        self.input: Attributes = {**metric, GenAI.GEN_AI_TOKEN_TYPE: "input"}
        self.output: Attributes = {**metric, GenAI.GEN_AI_TOKEN_TYPE: "output"}
        self.cache_read: Attributes = {**metric, names.CACHE_TYPE: names.CACHE_TYPE_READ}
        self.cache_write: Attributes = {**metric, names.CACHE_TYPE: names.CACHE_TYPE_WRITE}
        self.cache_write_5m: Attributes = {**self.cache_write, names.CACHE_TTL: names.CACHE_TTL_5M}
        self.cache_write_1h: Attributes = {**self.cache_write, names.CACHE_TTL: names.CACHE_TTL_1H}
        #: Cost counter attributes by component (built here once; a few dicts per model).
        self.cost: dict[str, Attributes] = {
            component: {**metric, names.COST_COMPONENT: component} for component in names.COST_COMPONENTS
        }
        #: (service tier, latency mode) -> the same dicts with those terms, built once each.
        self.variants: dict[tuple[str | None, str | None], CommonAttributes] = {}

    def with_terms(self, service_tier: str | None, latency_mode: str | None) -> CommonAttributes:
        """These attributes plus the tier and latency mode a response reported (both enumerations
        of a few values, so at most a handful of variants per model)."""
        if service_tier is None and latency_mode is None:
            return self
        key = (service_tier, latency_mode)
        found = self.variants.get(key)
        if found is None:
            terms: Attributes = {}
            if service_tier is not None:
                terms[names.SERVICE_TIER] = service_tier
            if latency_mode is not None:
                terms[names.PERFORMANCE_CONFIG_LATENCY] = latency_mode
            # Racing threads may both build one: same content, last one kept.
            found = self.variants[key] = CommonAttributes(None, self, terms)
        return found


class Call:
    """One measured call. :meth:`end` runs once, whoever calls it first (stream end, close, GC)."""

    __slots__ = (
        "_base",
        "_common",
        "_context",
        "_end_guard",
        "_metric_attributes",
        "_telemetry",
        "_token",
        "prediction",
        "request",
        "span",
        "started",
    )

    def __init__(
        self,
        telemetry: Instruments,
        span: trace.Span,
        common: CommonAttributes,
        request: RequestFacts,
    ) -> None:
        self._telemetry = telemetry
        self.request = request
        self.span = span
        self._common = self._base = common
        self._metric_attributes = common.metric
        self._end_guard = threading.Lock()
        self._token: object | None = None
        self._context: Context | None = None
        #: Set by the predictor when CountTokens runs for this call; settled by the lifecycle's end.
        self.prediction: PredictionLike | None = None
        self.started = perf_counter()

    # The span is current only while botocore runs, so nested HTTP spans are its children; it is
    # never left current on the caller's thread after the call returns.
    def activate(self) -> None:
        self._token = context.attach(self.context)

    def deactivate(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            context.detach(token)  # type: ignore[arg-type]

    def use_terms(self, terms: BillingTerms | None) -> None:
        """Put the service tier and latency mode the response reported on every metric point of
        the call still to be recorded (streams call it before their chunk timings, :meth:`end`
        before everything else)."""
        if terms is None or (terms.service_tier is None and terms.latency_mode is None):
            return
        self._common = self._base.with_terms(terms.service_tier, terms.latency_mode)
        self._metric_attributes = self._common.metric

    def end(
        self,
        response: ResponseFacts | None,
        error_type: str | None = None,
        extra: Attributes | None = None,
    ) -> bool:
        """Record the span's result and the metric points; ``False`` if already ended.

        The prediction is not settled here (the lifecycle settles it, then calls
        :meth:`claim_end` and :meth:`record_end`): the call never calls back into the prediction."""
        if not self._end_guard.acquire(blocking=False):
            return False
        self.record_end(response, error_type, extra)
        return True

    def claim_end(self) -> bool:
        """Take the single right to end this call (``False``: someone already has); the claimant
        then calls :meth:`record_end`. Never blocks: safe from any thread."""
        return self._end_guard.acquire(blocking=False)

    def record_end(
        self,
        response: ResponseFacts | None,
        error_type: str | None = None,
        extra: Attributes | None = None,
    ) -> None:
        """The end itself, after a successful :meth:`claim_end`: span attributes, metric points."""
        elapsed = perf_counter() - self.started
        span = self.span
        terms = response.billing if response is not None else None
        if terms is not None:
            self.use_terms(terms)
        metric_attributes = self._metric_attributes
        telemetry = self._telemetry
        # One set_attributes call: the SDK takes a lock and validates per call.
        attributes = telemetry.response_attributes(response) if response is not None else {}
        if extra:
            attributes.update(extra)
        cost_meter = telemetry.cost
        cost: Cost | None = None
        prices: UnitPrices | None = None
        if cost_meter is not None and response is not None and not response.usage.is_empty():
            prices, cost = cost_meter.price(self.request, response.usage, terms)
            if cost is not None:
                attributes[names.COST_USD] = cost.total_usd
                attributes[names.COST_SOURCE] = cost.source
            else:
                attributes[names.COST_SOURCE] = names.COST_SOURCE_UNPRICED
        if error_type is not None:
            metric_attributes = {**metric_attributes, ERROR_TYPE: error_type}
            attributes[ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR))
        if attributes:
            span.set_attributes(attributes)
        call_context = self.context
        telemetry.duration.record(elapsed, metric_attributes, context=call_context)
        if response is not None:
            usage = response.usage
            total_input = usage.total_input
            if error_type is None:
                common = self._common  # prebuilt dicts for the common, successful case
                input_attributes, output_attributes = common.input, common.output
                read_attributes, write_attributes = common.cache_read, common.cache_write
                write_5m, write_1h = common.cache_write_5m, common.cache_write_1h
            else:
                input_attributes = {**metric_attributes, GenAI.GEN_AI_TOKEN_TYPE: "input"}
                output_attributes = {**metric_attributes, GenAI.GEN_AI_TOKEN_TYPE: "output"}
                read_attributes = {**metric_attributes, names.CACHE_TYPE: names.CACHE_TYPE_READ}
                write_attributes = {**metric_attributes, names.CACHE_TYPE: names.CACHE_TYPE_WRITE}
                write_5m = {**write_attributes, names.CACHE_TTL: names.CACHE_TTL_5M}
                write_1h = {**write_attributes, names.CACHE_TTL: names.CACHE_TTL_1H}
            if total_input is not None:
                telemetry.token_usage.record(total_input, input_attributes, context=call_context)
            if usage.output_tokens is not None:
                telemetry.token_usage.record(usage.output_tokens, output_attributes, context=call_context)
            if usage.cache_read_tokens:
                telemetry.cache_usage.record(usage.cache_read_tokens, read_attributes, context=call_context)
            written = usage.cache_write_tokens
            if written:
                five = terms.cache_write_5m if terms is not None else None
                hour = terms.cache_write_1h if terms is not None else None
                if five is not None and hour is not None and five + hour == written:
                    # Split by TTL (an hour's write costs more); the points still sum to the writes.
                    if five:
                        telemetry.cache_usage.record(five, write_5m, context=call_context)
                    if hour:
                        telemetry.cache_usage.record(hour, write_1h, context=call_context)
                else:
                    telemetry.cache_usage.record(written, write_attributes, context=call_context)
            if cost is not None and prices is not None and cost_meter is not None:  # priced
                if error_type is None:
                    cost_attributes = self._common.cost
                else:
                    cost_attributes = {
                        component: {**metric_attributes, names.COST_COMPONENT: component}
                        for component in names.COST_COMPONENTS
                    }
                cost_meter.record(prices, usage, cost, cost_attributes, metric_attributes, call_context)
        span.end()

    def record_prediction(self, outcome: str, predicted: int | None, actual: int | None) -> None:
        """One prediction's outcome; with both numbers, its error and the two token counts."""
        telemetry = self._telemetry
        attributes = self._metric_attributes
        telemetry.prediction_outcomes.add(
            1, {**attributes, names.PREDICTION_STATUS: outcome}, context=self.context
        )
        if predicted is None or actual is None or predicted <= 0:
            return
        direction = "under" if actual > predicted else "over" if actual < predicted else "exact"
        telemetry.prediction_error.record(
            abs(actual - predicted) / predicted,
            {**attributes, names.PREDICTION_DIRECTION: direction},
            context=self.context,
        )
        telemetry.prediction_tokens.record(
            predicted, {**attributes, names.PREDICTION_KIND: "predicted"}, context=self.context
        )
        telemetry.prediction_tokens.record(
            actual, {**attributes, names.PREDICTION_KIND: "actual"}, context=self.context
        )

    @property
    def context(self) -> Context:
        """A context holding this call's span, so metric exemplars point at it even after the
        span stopped being current (it is current only while botocore runs). Built once: a
        ``Context`` is immutable, and the call uses it to activate the span and for every point."""
        found = self._context
        if found is None:
            found = self._context = trace.set_span_in_context(self.span)
        return found

    def record_first_chunk(self, seconds: float) -> None:
        """Streams: time from sending the request to the first chunk."""
        self._telemetry.time_to_first_chunk.record(seconds, self._metric_attributes, context=self.context)

    def record_chunk_gap(self, seconds: float) -> None:
        """Streams: time between chunks (per chunk or per-stream mean, see ``streams``)."""
        self._telemetry.time_per_output_chunk.record(seconds, self._metric_attributes, context=self.context)
