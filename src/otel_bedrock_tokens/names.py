"""Names of this project's own span attributes and instruments.

Semantic-convention names come from ``opentelemetry-semantic-conventions``; this module holds only
what the conventions do not define yet (prompt-cache token metrics, CountTokens predictions, stream
completeness), all under the ``bedrock_tokens.`` prefix so they can never collide with a future
convention. Dashboards and the README refer to these names: change them only with both.
"""

import os
from collections.abc import Mapping
from typing import Final

# --- span attributes -------------------------------------------------------------------------
#: Number of retries botocore made before the final answer (``ResponseMetadata.RetryAttempts``).
RETRY_ATTEMPTS: Final = "bedrock_tokens.retry_attempts"
#: The stream span ended before the final usage event arrived (early break, close, error, GC).
STREAM_INCOMPLETE: Final = "bedrock_tokens.stream.incomplete"
#: How the stream span ended: ``completed``, ``closed``, ``error``, ``abandoned``.
STREAM_END: Final = "bedrock_tokens.stream.end"
#: Number of events the stream delivered to the caller.
STREAM_EVENTS: Final = "bedrock_tokens.stream.events"
#: Input tokens CountTokens predicted for this request (cache not applicable: a prediction counts all).
PREDICTED_INPUT_TOKENS: Final = "bedrock_tokens.prediction.input_tokens"
#: Actual input tokens (``gen_ai.usage.input_tokens``, cache included) minus the prediction.
PREDICTION_DELTA: Final = "bedrock_tokens.prediction.delta"
#: Outcome of the prediction: ``ok``, ``unsupported``, ``throttled``, ``timeout``, ``error``,
#: ``skipped``, ``sampled_out``, ``late``.
PREDICTION_STATUS: Final = "bedrock_tokens.prediction.status"
#: Where the prediction came from: ``count_tokens`` (the API) or ``cache`` (an identical request).
PREDICTION_SOURCE: Final = "bedrock_tokens.prediction.source"
#: Why a prediction was skipped (opaque model id, unsupported model remembered, ...).
PREDICTION_SKIP_REASON: Final = "bedrock_tokens.prediction.skip_reason"

# --- metric attributes ----------------------------------------------------------------------
#: ``read`` or ``write`` on :data:`CACHE_TOKEN_USAGE`.
CACHE_TYPE: Final = "bedrock_tokens.cache.type"
CACHE_TYPE_READ: Final = "read"
CACHE_TYPE_WRITE: Final = "write"

#: ``under`` (CountTokens predicted fewer tokens than were billed), ``over``, or ``exact``.
PREDICTION_DIRECTION: Final = "bedrock_tokens.prediction.direction"
#: ``predicted`` or ``actual`` on :data:`PREDICTION_TOKENS`.
PREDICTION_KIND: Final = "bedrock_tokens.prediction.kind"

# --- instruments ----------------------------------------------------------------------------
#: Histogram of prompt-cache tokens per call, ``{token}``, with :data:`CACHE_TYPE`. Recorded only
#: when the call read or wrote the cache (a value above zero), so its sum over
#: ``gen_ai.client.token.usage{gen_ai.token.type="input"}``'s sum is the cache hit ratio.
CACHE_TOKEN_USAGE: Final = "bedrock_tokens.client.cache.token.usage"
#: Histogram of the relative prediction error per call, unit ``1``: |actual - predicted| / predicted
#: (OpenTelemetry histograms take no negative values), with :data:`PREDICTION_DIRECTION` for the sign.
PREDICTION_ERROR: Final = "bedrock_tokens.client.prediction.error"
#: Histogram of input tokens of calls that have a prediction, ``{token}``, with :data:`PREDICTION_KIND`:
#: sum(actual) - sum(predicted) per model is the signed total error, and the two lines chart well.
PREDICTION_TOKENS: Final = "bedrock_tokens.client.prediction.tokens"
#: Counter of prediction outcomes, ``{prediction}``, with :data:`PREDICTION_STATUS`.
PREDICTION_OUTCOMES: Final = "bedrock_tokens.client.prediction.outcomes"

# --- billing terms and cost (issue 16) ----------------------------------------------------------
#: Service tier that served the call, as the response reports it (``priority``, ``default``,
#: ``flex``, ``reserved``); on the span and on every metric point of the call; omitted when unreported.
SERVICE_TIER: Final = "bedrock_tokens.service_tier"
#: Latency mode that served the call (``standard`` / ``optimized``).
PERFORMANCE_CONFIG_LATENCY: Final = "bedrock_tokens.performance_config.latency"
#: Cache writes with the five-minute TTL, in tokens (span attribute).
USAGE_CACHE_CREATION_5M: Final = "bedrock_tokens.usage.cache_creation_5m.input_tokens"
#: Cache writes with the one-hour TTL, in tokens (span attribute).
USAGE_CACHE_CREATION_1H: Final = "bedrock_tokens.usage.cache_creation_1h.input_tokens"
#: ``5m`` or ``1h`` on the write points of :data:`CACHE_TOKEN_USAGE`.
CACHE_TTL: Final = "bedrock_tokens.cache.ttl"
CACHE_TTL_5M: Final = "5m"
CACHE_TTL_1H: Final = "1h"
#: The guardrail the request named (Converse ``guardrailConfig.guardrailIdentifier``, InvokeModel
#: ``guardrailIdentifier``).
GUARDRAIL_ID: Final = "aws.bedrock.guardrail.id"
#: Price of the whole call in USD (float): uncached input, cache reads, 5m and 1h cache writes and
#: output, at the served tier.
COST_USD: Final = "bedrock_tokens.cost.usd"
#: Where the price came from: ``genai-prices <version>``, ``user`` (the price file) or ``unpriced``.
COST_SOURCE: Final = "bedrock_tokens.cost.source"
COST_SOURCE_USER: Final = "user"
COST_SOURCE_UNPRICED: Final = "unpriced"
#: ``input`` / ``output`` / ``cache_read`` / ``cache_write`` on :data:`COST`.
COST_COMPONENT: Final = "bedrock_tokens.cost.component"
#: Its values, in the order a cost is split.
COST_COMPONENTS: Final = ("input", "output", "cache_read", "cache_write")
#: Counter of money spent, unit ``USD``, with :data:`COST_COMPONENT` and :data:`SERVICE_TIER`; its sum
#: over a period equals the sum of the spans' :data:`COST_USD`.
COST: Final = "bedrock_tokens.client.cost"
#: Counter, unit ``USD``: what the cache reads of a call would have cost as uncached input minus what
#: they cost (the dashboard's "cache savings"), with the call attributes and :data:`SERVICE_TIER`.
CACHE_SAVINGS: Final = "bedrock_tokens.client.cost.cache_savings"

#: Reasoning/thinking output tokens (part of the output tokens), where a response reports them.
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"  # as semconv 1.37+

# --- semantic-convention stability opt-in ---------------------------------------------------------
#: The conventions' own switch: a comma-separated list; ``gen_ai_latest_experimental`` selects the
#: newest experimental GenAI names where they differ from the released ones we emit by default.
SEMCONV_OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL: Final = "gen_ai_latest_experimental"
#: The newest experimental name of prompt-cache writes
#: (released: ``gen_ai.usage.cache_creation.input_tokens``).
LATEST_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"


def latest_experimental(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``. Read once per
    ``instrument()`` (by ``Instruments``), never per call."""
    raw = (os.environ if environ is None else environ).get(SEMCONV_OPT_IN_ENV, "")
    return LATEST_EXPERIMENTAL in (item.strip().lower() for item in raw.split(","))
