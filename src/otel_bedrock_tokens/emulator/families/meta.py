"""Meta Llama: a prompt in, ``generation`` out, the counts in the body and in every stream chunk."""

from __future__ import annotations

from typing import ClassVar

from ..prompt import PromptBuilder
from .base import Answer, Chunk, Family, Json, Plan, Stop, max_tokens_of, require_str, text_tokens


class Llama(Family):
    name: ClassVar[str] = "meta-llama"
    kind: ClassVar[str] = "text"
    default_max_tokens: ClassVar[int | None] = 512

    def plan(self, body: Json) -> Plan:
        prompt = require_str(body, "prompt")
        builder = PromptBuilder()
        builder.add_text(prompt)
        return Plan(
            builder.build(),
            max_tokens=max_tokens_of(body.get("max_gen_len")),
            last_user_text=prompt,
            input_text=prompt,
        )

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
