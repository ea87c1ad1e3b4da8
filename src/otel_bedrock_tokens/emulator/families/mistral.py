"""Mistral: prompt-style bodies (``outputs[]``) and chat-style bodies (``choices[]``, Mistral Large
2407+). No usage in the body: the token counts travel only in headers and invocation metrics."""

from __future__ import annotations

from typing import ClassVar

from ..prompt import PromptBuilder
from .base import (
    MESSAGE_OVERHEAD,
    Answer,
    Chunk,
    Family,
    Json,
    Plan,
    Stop,
    as_dict,
    max_tokens_of,
    prompt_plan,
    require_list,
    text_tokens,
)


class MistralText(Family):
    name: ClassVar[str] = "mistral-text"
    kind: ClassVar[str] = "text"
    default_max_tokens: ClassVar[int | None] = 512

    def for_body(self, body: Json) -> Family:
        return CHAT if "messages" in body else self

    def plan(self, body: Json) -> Plan:
        return prompt_plan(body, "max_tokens")

    def stop_reason(self, stop: Stop) -> str | None:
        return "length" if stop is Stop.MAX_TOKENS else "stop"

    def body(self, answer: Answer) -> Json:
        return {
            "outputs": [{"text": " " + answer.reply.text, "stop_reason": self.stop_reason(answer.reply.stop)}]
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        deltas = list(answer.reply.deltas)
        chunks = [
            Chunk({"outputs": [{"text": (" " if i == 0 else "") + d, "stop_reason": None}]}, text_tokens(d))
            for i, d in enumerate(deltas)
        ]
        chunks.append(Chunk({"outputs": [{"text": "", "stop_reason": self.stop_reason(answer.reply.stop)}]}))
        return chunks


class MistralChat(MistralText):
    name: ClassVar[str] = "mistral-chat"
    kind: ClassVar[str] = "chat"

    def for_body(self, body: Json) -> Family:
        return self

    def plan(self, body: Json) -> Plan:
        messages = require_list(body, "messages")
        builder = PromptBuilder()
        texts: list[str] = []
        last_user = ""
        for message in messages:
            message = as_dict(message)
            content = message.get("content")
            text = content if isinstance(content, str) else ""
            builder.add_text(text, MESSAGE_OVERHEAD, f"role:{message.get('role')}")
            texts.append(text)
            if message.get("role") == "user":
                last_user = text
        limit = max_tokens_of(body.get("max_tokens"))
        return Plan(builder.build(), max_tokens=limit, last_user_text=last_user, input_text="\n".join(texts))

    def body(self, answer: Answer) -> Json:
        message = {"role": "assistant", "content": answer.reply.text}
        return {
            "choices": [{"index": 0, "message": message, "stop_reason": self.stop_reason(answer.reply.stop)}]
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        chunks = [
            Chunk(
                {
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": d}, "stop_reason": None}
                    ]
                },
                text_tokens(d),
            )
            for d in answer.reply.deltas
        ]
        reason = self.stop_reason(answer.reply.stop)
        chunks.append(
            Chunk(
                {
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": ""}, "stop_reason": reason}
                    ]
                }
            )
        )
        return chunks


TEXT = MistralText()
CHAT = MistralChat()
