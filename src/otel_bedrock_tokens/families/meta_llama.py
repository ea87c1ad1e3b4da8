"""Meta Llama bodies: prompt in, ``generation`` out, token counts in the body and in each chunk."""

from __future__ import annotations

from ..facts import RequestParams, ResponseFacts
from ._fields import number, string, token_count
from .base import Body, Family


def _text_completion(body: Body) -> str:
    return "text_completion"


def request_params(body: Body) -> RequestParams:
    return RequestParams(
        max_tokens=token_count(body.get("max_gen_len")),
        temperature=number(body.get("temperature")),
        top_p=number(body.get("top_p")),
    )


def read_response(body: Body, facts: ResponseFacts) -> None:
    """Works for the whole body and for each stream chunk: chunks repeat the same fields."""
    prompt = token_count(body.get("prompt_token_count"))
    if prompt is not None:
        facts.usage.input_tokens = prompt
    generated = token_count(body.get("generation_token_count"))
    if generated is not None:
        facts.usage.output_tokens = generated
    reason = string(body.get("stop_reason"))
    if reason is not None:
        facts.finish_reasons = (reason,)


FAMILY = Family(
    "meta.llama",
    _text_completion,
    request_params,
    read_response,
    read_response,
    # Only the final chunk carries a stop reason, next to the invocation metrics.
    chunk_markers=(),
)
