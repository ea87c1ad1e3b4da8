"""The model's side of the conversation: a deterministic reply, sized in tokens.

The same request always gets the same reply (it is seeded by the prompt), so a test can assert exact
numbers. A request that declares tools, and whose last turn is not a tool result, gets a short text
and one call of its first tool, with arguments taken from the user's words (``"weather in Seattle"``
-> ``{"location": "Seattle"}``); otherwise a plain text answer. ``max_tokens`` is honoured exactly.
"""

from __future__ import annotations

import re

from .families.base import TOOL_CALL_OVERHEAD, Plan, Reply, Stop, ToolCall, ToolSpec
from .tokenizer import count_json, count_text, reply_words

#: Tokens of the text that precedes a tool call ("I'll look that up" in a real model).
TOOL_PREFACE_TOKENS = 10
_ARGUMENT_WORD = re.compile(r"\b[A-Z][a-z]{2,}\b")


def target_tokens(seed: int, typical: int) -> int:
    """Reply length: ``typical`` give or take four, chosen by the prompt."""
    return max(1, typical + seed % 9 - 4)


def tool_arguments(tool: ToolSpec, user_text: str) -> dict[str, object]:
    properties = tool.schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return {}
    required = tool.schema.get("required")
    names = [name for name in required if name in properties] if isinstance(required, list) else []
    names = names or [next(iter(properties))]
    words = _ARGUMENT_WORD.findall(user_text)[1:] or ["Seattle"]
    arguments: dict[str, object] = {}
    for index, name in enumerate(names):
        kind = properties[name].get("type") if isinstance(properties[name], dict) else None
        if kind in ("number", "integer"):
            arguments[name] = 3
        elif kind == "boolean":
            arguments[name] = True
        elif kind == "array":
            arguments[name] = []
        elif kind == "object":
            arguments[name] = {}
        else:
            arguments[name] = words[index % len(words)]
    return arguments


def make_reply(plan: Plan, seed: int, typical_tokens: int, tool_id: str) -> Reply:
    limit = plan.max_tokens
    wanted = target_tokens(seed, typical_tokens)
    if plan.tools and not plan.tool_result_turn:
        tool = plan.tools[0]
        arguments = tool_arguments(tool, plan.last_user_text)
        call_tokens = count_text(tool.name) + count_json(arguments) + TOOL_CALL_OVERHEAD
        preface = min(TOOL_PREFACE_TOKENS, wanted)
        if limit is None or preface + call_tokens <= limit:
            deltas = tuple(reply_words(seed, preface))
            call = ToolCall(tool_id, tool.name, arguments, call_tokens)
            return Reply(deltas, (call,), Stop.TOOL_USE, preface + call_tokens)
    if limit is not None and limit < wanted:
        return Reply(tuple(reply_words(seed, limit)), (), Stop.MAX_TOKENS, limit)
    return Reply(tuple(reply_words(seed, wanted)), (), Stop.END, wanted)


def blocked_reply(message: str) -> Reply:
    """A guardrail's canned answer, billed as output tokens like any other text."""
    return Reply((message,), (), Stop.GUARDRAIL, count_text(message))
