"""OpenAI-style chat/text completion bodies: OpenAI gpt-oss, AI21 Jamba, DeepSeek, Mistral chat,
and imported models served by OpenAI-compatible runtimes. ``usage.prompt_tokens`` /
``completion_tokens`` when present; finish reasons from ``choices[]``."""

from __future__ import annotations

from ..facts import RequestParams, ResponseFacts
from ._fields import as_dict, number, reasons, str_tuple, string, token_count
from .base import Body, Family, chat_if_messages


def request_params(body: Body) -> RequestParams:
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return RequestParams(
        max_tokens=token_count(max_tokens),
        temperature=number(body.get("temperature")),
        top_p=number(body.get("top_p")),
        top_k=number(body.get("top_k")),
        stop_sequences=str_tuple(body.get("stop")),
    )


def read_response(body: Body, facts: ResponseFacts) -> None:
    facts.response_id = string(body.get("id")) or facts.response_id
    facts.response_model = string(body.get("model")) or facts.response_model
    choices = body.get("choices")
    found = reasons(choices, "finish_reason") or reasons(choices, "stop_reason")
    if found is not None:
        facts.finish_reasons = found
    usage = as_dict(body.get("usage"))
    if usage is not None:
        facts.usage.input_tokens = token_count(usage.get("prompt_tokens"))
        facts.usage.output_tokens = token_count(usage.get("completion_tokens"))
        details = as_dict(usage.get("prompt_tokens_details"))
        if details is not None:
            # OpenAI reports cached tokens *inside* prompt_tokens; Bedrock's convention keeps
            # input exclusive of cache reads, so split them out to avoid counting twice.
            cached = token_count(details.get("cached_tokens"))
            if cached and facts.usage.input_tokens is not None and cached <= facts.usage.input_tokens:
                facts.usage.input_tokens -= cached
                facts.usage.cache_read_tokens = cached
        # Reasoning tokens are part of completion_tokens (billed once), reported apart.
        completion = as_dict(usage.get("completion_tokens_details"))
        if completion is not None:
            facts.usage.reasoning_output_tokens = token_count(completion.get("reasoning_tokens"))


FAMILY = Family(
    "openai",
    chat_if_messages,
    request_params,
    read_response,
    read_response,
    chunk_markers=(b'"usage"',),
)
