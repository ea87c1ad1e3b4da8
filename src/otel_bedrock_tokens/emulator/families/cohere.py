"""Cohere Command (``prompt`` -> ``generations[]``), Command R (``message`` -> ``text``) and Embed.
No usage in any body: the counts travel only in headers and invocation metrics."""

from __future__ import annotations

from typing import ClassVar

from ..ids import uuid_from
from ..prompt import PromptBuilder
from .amazon import embedding
from .base import (
    MESSAGE_OVERHEAD,
    Answer,
    Chunk,
    EmbeddingFamily,
    Family,
    Json,
    Plan,
    Stop,
    as_dict,
    max_tokens_of,
    prompt_plan,
    require_list,
    require_str,
    text_tokens,
)


def _uuid(answer: Answer, salt: str) -> str:
    return uuid_from(f"{answer.message_id}/{salt}")


class Command(Family):
    name: ClassVar[str] = "cohere-command"
    kind: ClassVar[str] = "text"
    converse: ClassVar[bool] = True
    #: Cohere's documented default ``max_tokens`` for Command.
    default_max_tokens: ClassVar[int | None] = 20

    def plan(self, body: Json) -> Plan:
        return prompt_plan(body, "max_tokens")

    def stop_reason(self, stop: Stop) -> str | None:
        return "MAX_TOKENS" if stop is Stop.MAX_TOKENS else "COMPLETE"

    def body(self, answer: Answer) -> Json:
        generation = {
            "id": _uuid(answer, "generation"),
            "text": " " + answer.reply.text,
            "finish_reason": self.stop_reason(answer.reply.stop),
        }
        return {"id": _uuid(answer, "id"), "generations": [generation], "prompt": answer.plan.last_user_text}

    def chunks(self, answer: Answer) -> list[Chunk]:
        chunks = [
            Chunk({"text": (" " if i == 0 else "") + d, "is_finished": False, "index": 0}, text_tokens(d))
            for i, d in enumerate(answer.reply.deltas)
        ]
        chunks.append(
            Chunk({"is_finished": True, "finish_reason": self.stop_reason(answer.reply.stop), "index": 0})
        )
        return chunks


class CommandR(Family):
    name: ClassVar[str] = "cohere-command-r"
    default_max_tokens: ClassVar[int | None] = 4000

    def plan(self, body: Json) -> Plan:
        message = require_str(body, "message")
        builder = PromptBuilder()
        texts = []
        preamble = body.get("preamble")
        if isinstance(preamble, str) and preamble:
            builder.add_text(preamble, 2, "system")
            texts.append(preamble)
        history = body.get("chat_history")
        for turn in history if isinstance(history, list) else []:
            turn = as_dict(turn)
            text = str(turn.get("message", ""))
            builder.add_text(text, MESSAGE_OVERHEAD, f"role:{turn.get('role')}")
            texts.append(text)
        builder.add_text(message, MESSAGE_OVERHEAD, "role:USER")
        texts.append(message)
        limit = max_tokens_of(body.get("max_tokens"))
        return Plan(builder.build(), max_tokens=limit, last_user_text=message, input_text="\n".join(texts))

    def stop_reason(self, stop: Stop) -> str | None:
        return "MAX_TOKENS" if stop is Stop.MAX_TOKENS else "COMPLETE"

    def body(self, answer: Answer) -> Json:
        return {
            "response_id": _uuid(answer, "response"),
            "text": answer.reply.text,
            "generation_id": _uuid(answer, "generation"),
            "chat_history": [
                {"role": "USER", "message": answer.plan.last_user_text},
                {"role": "CHATBOT", "message": answer.reply.text},
            ],
            "finish_reason": self.stop_reason(answer.reply.stop),
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        generation_id = _uuid(answer, "generation")
        chunks = [Chunk({"is_finished": False, "event_type": "stream-start", "generation_id": generation_id})]
        chunks += [
            Chunk({"is_finished": False, "event_type": "text-generation", "text": d}, text_tokens(d))
            for d in answer.reply.deltas
        ]
        final = {
            "is_finished": True,
            "event_type": "stream-end",
            "response": self.body(answer),
            "finish_reason": self.stop_reason(answer.reply.stop),
        }
        chunks.append(Chunk(final))
        return chunks


class Embed(EmbeddingFamily):
    name: ClassVar[str] = "cohere-embed"

    def plan(self, body: Json) -> Plan:
        texts = [str(text) for text in require_list(body, "texts")]
        builder = PromptBuilder()
        for text in texts:
            builder.add_text(text)
        return Plan(builder.build(), texts=tuple(texts), dimensions=1024, input_text="\n".join(texts))

    def body(self, answer: Answer) -> Json:
        seed = answer.plan.prompt.seed()
        return {
            "embeddings": [
                embedding(seed + i, answer.plan.dimensions or 1024) for i in range(len(answer.plan.texts))
            ],
            "id": _uuid(answer, "embed"),
            "response_type": "embeddings_floats",
            "texts": list(answer.plan.texts),
        }


COMMAND = Command()
COMMAND_R = CommandR()
EMBED = Embed()
