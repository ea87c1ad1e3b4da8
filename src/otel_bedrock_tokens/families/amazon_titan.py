"""Amazon Titan Text and Titan Embeddings bodies."""

from __future__ import annotations

from ..facts import RequestParams, ResponseFacts
from ._fields import as_dict, number, reasons, str_tuple, string, token_count, tokens_sum
from .base import Body, Family


def _text_operation(body: Body) -> str:
    return "text_completion"


def _embed_operation(body: Body) -> str:
    return "embeddings"


def text_params(body: Body) -> RequestParams:
    config = as_dict(body.get("textGenerationConfig")) or {}
    return RequestParams(
        max_tokens=token_count(config.get("maxTokenCount")),
        temperature=number(config.get("temperature")),
        top_p=number(config.get("topP")),
        stop_sequences=str_tuple(config.get("stopSequences")),
    )


def read_text_response(body: Body, facts: ResponseFacts) -> None:
    # Titan sends counts as floats (``28.0``); token_count accepts integral floats.
    facts.usage.input_tokens = token_count(body.get("inputTextTokenCount"))
    results = body.get("results")
    facts.usage.output_tokens = tokens_sum(results, "tokenCount")
    facts.finish_reasons = reasons(results, "completionReason")


def read_text_chunk(chunk: Body, facts: ResponseFacts) -> None:
    count = token_count(chunk.get("inputTextTokenCount"))
    if count is not None:
        facts.usage.input_tokens = count
    total = token_count(chunk.get("totalOutputTextTokenCount"))
    if total is not None:
        facts.usage.output_tokens = total
    reason = string(chunk.get("completionReason"))
    if reason is not None:
        facts.finish_reasons = (reason,)


def _no_params(body: Body) -> RequestParams:
    return RequestParams()


def read_embed_response(body: Body, facts: ResponseFacts) -> None:
    facts.usage.input_tokens = token_count(body.get("inputTextTokenCount"))


TEXT = Family("amazon.titan-text", _text_operation, text_params, read_text_response, read_text_chunk)
EMBED = Family("amazon.titan-embed", _embed_operation, _no_params, read_embed_response)
