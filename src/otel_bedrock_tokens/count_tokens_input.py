"""CountTokens' input, built once for every caller: which model to ask about, and what to send.

Both the predictor (a request being sent) and the ``count`` CLI command (a prompt or request file)
ask Bedrock's CountTokens; they share this module so that they ask the same question about the same
model id. Imported only when prediction or the CLI is used (never with ``count_tokens="off"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model_id import ModelRef

#: The Converse request fields CountTokens' ``converse`` input takes (the rest, inferenceConfig and
#: the like, do not change the input token count and CountTokens refuses them).
CONVERSE_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")

#: Operations whose InvokeModel body is sent as CountTokens' ``invokeModel`` input.
_INVOKE_OPERATIONS = ("InvokeModel", "InvokeModelWithResponseStream")


def count_model_id(model: ModelRef, model_map: Mapping[str, str] | None = None) -> str | None:
    """The foundation model id CountTokens is asked about, or ``None`` for an opaque id.

    ``model_map`` (the ``count_tokens_model_map`` setting) wins for the id exactly as passed.
    Otherwise geo prefixes are stripped and every ARN (foundation model, system profile) reduced to
    its plain foundation-model id: CountTokens takes a foundation-model id, the plain id is valid in
    every region and partition (an ARN names one region), and whether CountTokens accepts
    cross-region profiles is not settled. Custom models and opaque ids (application profiles,
    provisioned and imported models) name no model CountTokens can count."""
    if model_map:
        mapped = model_map.get(model.raw)
        if mapped is not None:
            return mapped
    if model.base_model is None or model.kind == "custom-model":
        return None
    return model.base_model


def count_tokens_input(api_operation: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The CountTokens ``input`` for a request, or ``None`` when its body cannot be counted."""
    if api_operation in _INVOKE_OPERATIONS:
        body = params.get("body")
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, (bytes, bytearray)):
            return None  # a file-like body is the caller's to read, not ours
        return {"invokeModel": {"body": bytes(body)}}
    converse = {key: params[key] for key in CONVERSE_FIELDS if key in params}
    return {"converse": converse} if "messages" in converse else None


def request_size(api_operation: str, params: Mapping[str, Any], stop_above: int) -> int:
    """The size in bytes (characters for text) of what CountTokens would be sent for a request,
    without copying or serialising it; the count stops once it is past ``stop_above``.

    For InvokeModel that is the body's length; for Converse, the lengths of every string and byte
    string among the counted fields' values (images and documents included), walked iteratively:
    a cheap lower bound of the JSON, enough to tell a 50 MB request from a 1 MB one."""
    if api_operation in _INVOKE_OPERATIONS:
        body = params.get("body")
        return len(body) if isinstance(body, (bytes, bytearray, str)) else 0
    size = 0
    stack: list[Any] = [params[key] for key in CONVERSE_FIELDS if key in params]
    while stack and size <= stop_above:
        item = stack.pop()
        kind = type(item)  # exact types first: this runs on every predicted Converse call
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is str or kind is bytes or isinstance(item, (str, bytes, bytearray)):
            size += len(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return size
