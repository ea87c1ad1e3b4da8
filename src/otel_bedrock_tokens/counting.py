"""``count_tokens()``: Bedrock's own CountTokens figure for a request, before sending it.

The replacement for the anthropic SDK's old ``client.count_tokens(text)`` (a local tokenizer that
no longer matches Claude's) and for ``AnthropicBedrock.messages.count_tokens``, which raises on
Bedrock: the number comes from Bedrock's CountTokens API, the figure Bedrock then bills as input
tokens (for the models CountTokens supports). Sent through boto3 with OpenTelemetry
instrumentation suppressed, so it is never measured as a call of the application's, and with the
same model-id mapping as the prediction (geo prefixes stripped, profile ARNs reduced to their
foundation model, ``count_tokens_model_map`` for opaque ids).

Imported only when used: the default ``instrument()`` never pays for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation

from .model_id import parse_model_id

#: ``anthropic_version`` of an InvokeModel body built from Anthropic Messages arguments.
ANTHROPIC_VERSION = "bedrock-2023-05-31"

_clients: dict[str | None, Any] = {}
_clients_lock = threading.Lock()


def _default_client(region_name: str | None) -> Any:
    """One boto3 ``bedrock-runtime`` client per region for the process (clients are thread-safe
    and take tens of milliseconds to build)."""
    with _clients_lock:
        client = _clients.get(region_name)
        if client is None:
            import boto3

            if len(_clients) >= 16:  # bounded, whatever regions a caller passes
                _clients.clear()
            client = _clients[region_name] = boto3.client("bedrock-runtime", region_name=region_name)
        return client


def _is_converse(messages: Sequence[Any]) -> bool:
    """Converse messages have content blocks keyed by kind (``{"text": ...}``); Anthropic Messages
    have a string or blocks with a ``type``."""
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, Mapping):
                    return "type" not in block
        elif isinstance(content, str):
            return False
    return False


def count_input(
    *,
    messages: Sequence[Any] | None = None,
    system: Any = None,
    tools: Sequence[Any] | None = None,
    body: bytes | str | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The CountTokens ``input`` for these arguments (see :func:`count_tokens`)."""
    if body is not None:
        if messages is not None or system is not None or tools is not None:
            raise ValueError("pass either body= or messages=/system=/tools=, not both")
        if isinstance(body, Mapping):
            body = json.dumps(body)
        return {"invokeModel": {"body": body.encode() if isinstance(body, str) else bytes(body)}}
    if not messages:
        raise ValueError("count_tokens needs messages= (or body=)")
    if _is_converse(messages):
        converse: dict[str, Any] = {"messages": list(messages)}
        if system is not None:
            converse["system"] = [{"text": system}] if isinstance(system, str) else list(system)
        if tools:
            converse["toolConfig"] = {"tools": list(tools)}
        return {"converse": converse}
    anthropic: dict[str, Any] = {
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens": 1,  # required by the body's schema; counting does not depend on it
        "messages": list(messages),
    }
    if system is not None:
        anthropic["system"] = system
    if tools:
        anthropic["tools"] = list(tools)
    return {"invokeModel": {"body": json.dumps(anthropic).encode()}}


def count_model(model_id: str, model_map: Mapping[str, str] | None = None) -> str:
    """The model id CountTokens is asked about: the prediction's mapping, else ``model_id`` itself
    (an opaque id: Bedrock's answer, or its error, is then the caller's)."""
    from .count_tokens_input import count_model_id

    return count_model_id(parse_model_id(model_id), model_map) or model_id


def count_tokens(
    model_id: str,
    *,
    messages: Sequence[Any] | None = None,
    system: Any = None,
    tools: Sequence[Any] | None = None,
    body: bytes | str | Mapping[str, Any] | None = None,
    client: Any = None,
    region_name: str | None = None,
    model_map: Mapping[str, str] | None = None,
) -> int:
    """The input tokens Bedrock counts for a request to ``model_id``.

    Pass either what you would pass to ``AnthropicBedrock.messages.create`` (``messages``, and
    ``system`` and ``tools`` if any), a Converse request's ``messages`` / ``system`` / ``tools``
    (the ``toolConfig`` tools), or a whole InvokeModel ``body`` (bytes, text or a dict). ``client``:
    a boto3 ``bedrock-runtime`` client to send with (default: one per ``region_name`` from the
    default credential chain). Errors are boto3's (``ClientError``: an unsupported model is a
    ``ValidationException``); the call is never recorded as telemetry.
    """
    request = count_input(messages=messages, system=system, tools=tools, body=body)
    runtime = client if client is not None else _default_client(region_name)
    with suppress_instrumentation():
        response = runtime.count_tokens(modelId=count_model(model_id, model_map), input=request)
    tokens = response["inputTokens"]
    if type(tokens) is not int:
        raise ValueError(f"CountTokens answered {tokens!r}")
    return tokens
