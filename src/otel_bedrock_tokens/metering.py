"""The wire shapes of what Bedrock bills, apart from any body: the token-count response headers of
InvokeModel, the ``amazon-bedrock-invocationMetrics`` of a stream's last chunk, and the botocore
``ResponseMetadata`` (request id, retries, headers). Plain mappings in, values out: usable by any
transport (botocore's parsed results, or raw headers and decoded JSON of an HTTP client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .facts import ResponseFacts
from .families._fields import as_dict, string, token_count
from .usage import Usage

#: Token-count response headers of InvokeModel (lower-cased, as botocore stores them).
INPUT_HEADER = "x-amzn-bedrock-input-token-count"
OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"
CACHE_READ_HEADER = "x-amzn-bedrock-cache-read-input-token-count"
CACHE_WRITE_HEADER = "x-amzn-bedrock-cache-write-input-token-count"

#: The key of a stream's final chunk that holds what Bedrock billed for the stream.
INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"


def usage_from_headers(headers: Mapping[str, str]) -> Usage:
    """The usage Bedrock billed for an InvokeModel call, from its (lower-cased) response headers."""
    return Usage(
        input_tokens=token_count(headers.get(INPUT_HEADER)),
        output_tokens=token_count(headers.get(OUTPUT_HEADER)),
        cache_read_tokens=token_count(headers.get(CACHE_READ_HEADER)),
        cache_write_tokens=token_count(headers.get(CACHE_WRITE_HEADER)),
    )


def invocation_metrics_usage(metrics: object) -> Usage | None:
    """The usage Bedrock billed for a stream, from the last chunk's invocation metrics."""
    fields = as_dict(metrics)
    if fields is None:
        return None
    return Usage(
        input_tokens=token_count(fields.get("inputTokenCount")),
        output_tokens=token_count(fields.get("outputTokenCount")),
        cache_read_tokens=token_count(fields.get("cacheReadInputTokenCount")),
        cache_write_tokens=token_count(fields.get("cacheWriteInputTokenCount")),
    )


def response_metadata(result: Mapping[str, Any], facts: ResponseFacts) -> Mapping[str, str]:
    """Fill request id and retry count from ``ResponseMetadata``; return its HTTP headers."""
    metadata = as_dict(result.get("ResponseMetadata"))
    if metadata is None:
        return {}
    facts.request_id = string(metadata.get("RequestId"))
    facts.retry_attempts = token_count(metadata.get("RetryAttempts"))
    headers = metadata.get("HTTPHeaders")
    # ``dict`` first: botocore's headers are a dict, and an ABC check costs ~10x more.
    return headers if type(headers) is dict or isinstance(headers, Mapping) else {}
