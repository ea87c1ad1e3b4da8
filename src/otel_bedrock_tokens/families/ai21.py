"""AI21 Jurassic-2 bodies (``completions[]``, the model's own token lists). Jamba speaks the
OpenAI-style chat shape and is handled by :mod:`.openai_style`."""

from __future__ import annotations

from ..facts import RequestParams, ResponseFacts
from ._fields import as_dict, number, str_tuple, token_count
from .base import Body, Family


def _text_completion(body: Body) -> str:
    return "text_completion"


def request_params(body: Body) -> RequestParams:
    return RequestParams(
        max_tokens=token_count(body.get("maxTokens")),
        temperature=number(body.get("temperature")),
        top_p=number(body.get("topP")),
        stop_sequences=str_tuple(body.get("stopSequences")),
    )


def _token_list_length(container: object) -> int | None:
    fields = as_dict(container)
    tokens = fields.get("tokens") if fields is not None else None
    return len(tokens) if isinstance(tokens, list) else None


def read_response(body: Body, facts: ResponseFacts) -> None:
    """J2 returns the tokenized prompt and completions: their lengths are the exact counts.
    (The response headers, read first, carry the same numbers.)"""
    response_id = body.get("id")
    if isinstance(response_id, (str, int)) and not isinstance(response_id, bool):
        facts.response_id = str(response_id)
    facts.usage.input_tokens = _token_list_length(body.get("prompt"))
    completions = body.get("completions")
    if not isinstance(completions, list):
        return
    output: int | None = 0
    finish: list[str] = []
    for completion in completions:
        fields = as_dict(completion)
        if fields is None:
            return
        count = _token_list_length(fields.get("data"))
        output = None if count is None or output is None else output + count
        reason = as_dict(fields.get("finishReason"))
        if reason is not None and isinstance(reason.get("reason"), str):
            finish.append(reason["reason"])
    facts.usage.output_tokens = output
    facts.finish_reasons = tuple(finish) or None


J2 = Family("ai21.j2", _text_completion, request_params, read_response)
