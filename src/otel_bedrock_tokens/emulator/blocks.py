"""Converse-style content blocks (``{"text": ...}``, ``{"cachePoint": ...}``, ``{"toolUse": ...}``)
as prompt pieces. The Converse API, CountTokens' ``converse`` input and Amazon Nova's InvokeModel body
all use this shape, so all three bill the same content the same way.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import BedrockError
from .families.base import (
    MESSAGE_OVERHEAD,
    TOOL_CALL_OVERHEAD,
    TOOL_OVERHEAD,
    TOOL_PREAMBLE,
    Json,
    Plan,
    ToolSpec,
    as_dict,
    media_tokens,
)
from .prompt import PromptBuilder, cache_ttl
from .tokenizer import count_json, count_text

_MEDIA = ("image", "document", "video", "audio")


def _text_of(block: Json) -> str:
    if isinstance(block.get("text"), str):
        return str(block["text"])
    guard = as_dict(block.get("guardContent"))
    inner = as_dict(guard.get("text"))
    return str(inner.get("text", "")) if inner else ""


def add_block(builder: PromptBuilder, block: Any) -> str:
    """Add one block; return its text (for the guardrail and tool arguments)."""
    if not isinstance(block, dict):
        raise BedrockError.validation("The content block must be an object.")
    if "cachePoint" in block:
        builder.cache_point(cache_ttl(as_dict(block["cachePoint"]).get("ttl")))
        return ""
    text = _text_of(block)
    if "text" in block or "guardContent" in block:
        builder.add_text(text)
        return text
    key = json.dumps(block, sort_keys=True, default=str)
    if "toolUse" in block:
        builder.add(key, count_json(as_dict(block["toolUse"]).get("input", {})) + TOOL_CALL_OVERHEAD)
    elif "toolResult" in block:
        content = as_dict(block["toolResult"]).get("content")
        items = content if isinstance(content, list) else []
        tokens = 4
        for item in items:
            item = as_dict(item)
            tokens += count_text(item["text"]) if isinstance(item.get("text"), str) else count_json(item)
        builder.add(key, tokens)
    elif "reasoningContent" in block:
        reasoning = as_dict(as_dict(block["reasoningContent"]).get("reasoningText"))
        builder.add(key, count_text(str(reasoning.get("text", ""))))
    elif any(kind in block for kind in _MEDIA):
        builder.add(key, media_tokens(block))
    else:
        builder.add(key, count_json(block))
    return ""


def plan_messages(
    messages: Any,
    system: Any = None,
    tool_config: Any = None,
    max_tokens: int | None = None,
    tool_preamble: int = TOOL_PREAMBLE,
) -> Plan:
    """Tools, then system, then messages: the order the model reads (and caches) them."""
    if not isinstance(messages, list):
        raise BedrockError.validation("The messages field is required.")
    builder = PromptBuilder()
    texts: list[str] = []
    specs: list[ToolSpec] = []
    tools = as_dict(tool_config).get("tools")
    if isinstance(tools, list) and tools:
        builder.add("tools:preamble", tool_preamble)
        for tool in tools:
            tool = as_dict(tool)
            if "cachePoint" in tool:
                builder.cache_point(cache_ttl(as_dict(tool["cachePoint"]).get("ttl")))
                continue
            spec = as_dict(tool.get("toolSpec"))
            builder.add(f"tool:{json.dumps(spec, sort_keys=True)}", count_json(spec) + TOOL_OVERHEAD)
            if isinstance(spec.get("name"), str):
                specs.append(ToolSpec(spec["name"], as_dict(as_dict(spec.get("inputSchema")).get("json"))))
    if isinstance(system, list):
        for block in system:
            texts.append(add_block(builder, block))
    last_user = ""
    tool_result_turn = False
    for message in messages:
        message = as_dict(message)
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise BedrockError.validation("A conversation must alternate between user and assistant roles.")
        builder.add(f"role:{role}", MESSAGE_OVERHEAD)
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        message_texts = [add_block(builder, block) for block in blocks]
        texts.extend(message_texts)
        if role == "user":
            last_user = " ".join(text for text in message_texts if text)
            tool_result_turn = any("toolResult" in as_dict(block) for block in blocks)
    return Plan(
        prompt=builder.build(),
        max_tokens=max_tokens,
        tools=tuple(specs),
        tool_result_turn=tool_result_turn,
        last_user_text=last_user,
        input_text="\n".join(text for text in texts if text),
    )
