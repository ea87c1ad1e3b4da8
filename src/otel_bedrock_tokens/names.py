"""Names of this project's own span attributes and instruments.

Semantic-convention names come from ``opentelemetry-semantic-conventions``; this module holds only
what the conventions do not define yet (prompt-cache token metrics, CountTokens predictions, stream
completeness), all under the ``bedrock_tokens.`` prefix so they can never collide with a future
convention. Dashboards and the README refer to these names: change them only with both.
"""

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
