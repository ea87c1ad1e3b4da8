"""The emulator's model families: which InvokeModel body format each model speaks.

This is the server side and deliberately independent of the instrumentation's own parsers: the
emulator must be what a client is tested against, not a mirror of the client.
"""

from __future__ import annotations

from . import ai21, amazon, anthropic, cohere, meta, mistral, openai_style
from .base import Answer, Chunk, Family, Json, Plan, Reply, Stop, ToolCall, ToolSpec, Usage

__all__ = [
    "BY_NAME",
    "Answer",
    "Chunk",
    "Family",
    "Json",
    "Plan",
    "Reply",
    "Stop",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "family_for_base_model",
]

#: (foundation-model id prefix, family); the first match wins, so longer prefixes come first.
_BY_PREFIX: tuple[tuple[str, Family], ...] = (
    ("anthropic.claude", anthropic.MESSAGES),
    ("amazon.titan-embed-text-v1", amazon.TITAN_EMBED_V1),
    ("amazon.titan-embed-g1-text", amazon.TITAN_EMBED_V1),
    ("amazon.titan-embed", amazon.TITAN_EMBED_V2),
    ("amazon.titan-text", amazon.TITAN_TEXT),
    ("amazon.titan-tg1", amazon.TITAN_TEXT),
    ("amazon.nova-micro", amazon.NOVA),
    ("amazon.nova-lite", amazon.NOVA),
    ("amazon.nova-pro", amazon.NOVA),
    ("amazon.nova-premier", amazon.NOVA),
    ("meta.llama", meta.LLAMA),
    ("mistral.", mistral.TEXT),
    ("cohere.command-r", cohere.COMMAND_R),
    ("cohere.command", cohere.COMMAND),
    ("cohere.embed", cohere.EMBED),
    ("ai21.j2", ai21.J2),
    ("ai21.jamba", openai_style.CHAT),
    ("deepseek.", openai_style.DEEPSEEK),
    ("openai.gpt-oss", openai_style.CHAT),
)

#: Families by name, for backing opaque ids (``emulator.alias(arn, "openai-completion")``).
BY_NAME: dict[str, Family] = {
    family.name: family
    for family in (
        anthropic.MESSAGES,
        anthropic.TEXT,
        amazon.TITAN_TEXT,
        amazon.TITAN_EMBED_V2,
        amazon.NOVA,
        meta.LLAMA,
        mistral.TEXT,
        mistral.CHAT,
        cohere.COMMAND,
        cohere.COMMAND_R,
        cohere.EMBED,
        ai21.J2,
        openai_style.CHAT,
        openai_style.DEEPSEEK,
        openai_style.COMPLETION,
    )
}


def family_for_base_model(base_model: str) -> Family | None:
    lowered = base_model.lower()
    for prefix, family in _BY_PREFIX:
        if lowered.startswith(prefix):
            return family
    return None
