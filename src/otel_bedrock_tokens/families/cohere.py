"""Cohere Command (prompt / ``generations[]``), Command R (``message`` / ``text``) and Embed bodies.
No usage in the body: tokens come from the response headers."""

from __future__ import annotations

from ..facts import RequestParams, ResponseFacts
from ._fields import number, reasons, str_tuple, string, token_count
from .base import Body, Family


def _text_completion(body: Body) -> str:
    return "text_completion"


def _chat(body: Body) -> str:
    return "chat"


def _embeddings(body: Body) -> str:
    return "embeddings"


def request_params(body: Body) -> RequestParams:
    return RequestParams(
        max_tokens=token_count(body.get("max_tokens")),
        temperature=number(body.get("temperature")),
        top_p=number(body.get("p")),
        top_k=number(body.get("k")),
        stop_sequences=str_tuple(body.get("stop_sequences")),
    )


def _no_params(body: Body) -> RequestParams:
    return RequestParams()


def read_command(body: Body, facts: ResponseFacts) -> None:
    facts.response_id = string(body.get("id"))
    found = reasons(body.get("generations"), "finish_reason")
    if found is None:  # stream chunks: {"is_finished": true, "finish_reason": "COMPLETE"}
        reason = string(body.get("finish_reason"))
        found = (reason,) if reason is not None else None
    if found is not None:
        facts.finish_reasons = found


def read_command_r(body: Body, facts: ResponseFacts) -> None:
    facts.response_id = string(body.get("response_id")) or facts.response_id
    reason = string(body.get("finish_reason"))
    if reason is not None:
        facts.finish_reasons = (reason,)


def read_embed(body: Body, facts: ResponseFacts) -> None:
    facts.response_id = string(body.get("id"))


#: The finish reason arrives in the final chunk, next to the invocation metrics.
_FINISH_MARKERS: tuple[bytes, ...] = ()
COMMAND = Family(
    "cohere.command", _text_completion, request_params, read_command, read_command, _FINISH_MARKERS
)
COMMAND_R = Family("cohere.command-r", _chat, request_params, read_command_r, read_command_r, _FINISH_MARKERS)
EMBED = Family("cohere.embed", _embeddings, _no_params, read_embed)
