"""Mistral bodies: prompt-style (``outputs[]``) and chat-style (``choices[]``). No usage in the
body: tokens come from the response headers and the stream's invocation metrics."""

from __future__ import annotations

from ..facts import RequestParams, ResponseFacts
from . import openai_style
from ._fields import number, reasons, str_tuple, token_count
from .base import Body, Family, chat_if_messages


def request_params(body: Body) -> RequestParams:
    return RequestParams(
        max_tokens=token_count(body.get("max_tokens")),
        temperature=number(body.get("temperature")),
        top_p=number(body.get("top_p")),
        top_k=number(body.get("top_k")),
        stop_sequences=str_tuple(body.get("stop")),
    )


def read_response(body: Body, facts: ResponseFacts) -> None:
    if "choices" in body:
        openai_style.read_response(body, facts)
        return
    found = reasons(body.get("outputs"), "stop_reason")
    if found is not None:
        facts.finish_reasons = found


FAMILY = Family(
    "mistral",
    chat_if_messages,
    request_params,
    read_response,
    read_response,
    chunk_markers=(),
)
