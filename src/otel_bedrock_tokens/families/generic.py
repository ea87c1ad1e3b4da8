"""Bodies of models whose family the id does not reveal (imported models, application inference
profiles, provisioned throughput, new vendors): recognise the usage shape by its field names.
The response headers, read first, are authoritative; this is only the fallback."""

from __future__ import annotations

from ..facts import ResponseFacts
from . import amazon_nova, anthropic, meta_llama, openai_style
from ._fields import as_dict
from .base import Body, Family, chat_if_messages


def read_response(body: Body, facts: ResponseFacts) -> None:
    usage = as_dict(body.get("usage"))
    if usage is not None and "input_tokens" in usage:
        anthropic.read_response(body, facts)
    elif usage is not None and "inputTokens" in usage:
        amazon_nova.read_response(body, facts)
    elif "prompt_token_count" in body or "generation_token_count" in body:
        meta_llama.read_response(body, facts)
    else:
        openai_style.read_response(body, facts)


def read_chunk(chunk: Body, facts: ResponseFacts) -> None:
    if "type" in chunk:
        anthropic.read_chunk(chunk, facts)
    elif "metadata" in chunk or "messageStop" in chunk:
        amazon_nova.read_chunk(chunk, facts)
    else:
        read_response(chunk, facts)


FAMILY = Family("generic", chat_if_messages, openai_style.request_params, read_response, read_chunk)
