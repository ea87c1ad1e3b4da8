"""Meta Llama: a prompt in, ``generation`` out, the counts in the body and in every stream chunk."""

from __future__ import annotations

from typing import ClassVar

from .base import (
    Answer,
    Chunk,
    Family,
    Json,
    Plan,
    Stop,
    prompt_plan,
    text_tokens,
)


class Llama(Family):
    name: ClassVar[str] = "meta-llama"
    kind: ClassVar[str] = "text"
    default_max_tokens: ClassVar[int | None] = 512

    def plan(self, body: Json) -> Plan:
        return prompt_plan(body, "max_gen_len")

    def stop_reason(self, stop: Stop) -> str | None:
        return "length" if stop is Stop.MAX_TOKENS else "stop"

    def body(self, answer: Answer) -> Json:
        return {
            "generation": answer.reply.text,
            "prompt_token_count": answer.usage.input,
            "generation_token_count": answer.usage.output,
            "stop_reason": self.stop_reason(answer.reply.stop),
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        chunks: list[Chunk] = []
        generated = 0
        for index, delta in enumerate(answer.reply.deltas):
            tokens = text_tokens(delta)
            generated += tokens
            payload: Json = {
                "generation": delta,
                "prompt_token_count": answer.usage.input if index == 0 else None,
                "generation_token_count": generated,
                "stop_reason": None,
            }
            chunks.append(Chunk(payload, tokens))
        final: Json = {
            "generation": "",
            "prompt_token_count": None if chunks else answer.usage.input,
            "generation_token_count": answer.usage.output,
            "stop_reason": self.stop_reason(answer.reply.stop),
        }
        chunks.append(Chunk(final))
        return chunks


LLAMA = Llama()
