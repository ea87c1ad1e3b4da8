"""OpenAI-style bodies: OpenAI gpt-oss and AI21 Jamba (chat, ``usage.prompt_tokens``), DeepSeek R1
(prompt in, ``choices[].text`` out, no usage), and the text-completion shape of imported models
served by OpenAI-compatible runtimes (recorded: ``object: text_completion`` with ``usage``)."""

from __future__ import annotations

import time
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


def _finish(stop: Stop) -> str:
    return "length" if stop is Stop.MAX_TOKENS else "stop"


def _usage(answer: Answer) -> Json:
    usage = answer.usage
    return {
        "prompt_tokens": usage.total_input,
        "completion_tokens": usage.output,
        "total_tokens": usage.total_input + usage.output,
    }


def _chat_plan(body: Json) -> Plan:
    messages = require_list(body, "messages")
    builder = PromptBuilder()
    texts: list[str] = []
    last_user = ""
    for message in messages:
        message = as_dict(message)
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(as_dict(part).get("text", "")) for part in content)
        text = content if isinstance(content, str) else ""
        builder.add_text(text, MESSAGE_OVERHEAD, f"role:{message.get('role')}")
        texts.append(text)
        if message.get("role") == "user":
            last_user = text
    limit = max_tokens_of(body.get("max_completion_tokens"), body.get("max_tokens"))
    return Plan(builder.build(), max_tokens=limit, last_user_text=last_user, input_text="\n".join(texts))


class OpenAIChat(Family):
    """OpenAI gpt-oss and AI21 Jamba: chat completions with usage in the body."""

    name: ClassVar[str] = "openai-chat"

    def plan(self, body: Json) -> Plan:
        return _chat_plan(body)

    def stop_reason(self, stop: Stop) -> str | None:
        return _finish(stop)

    def body(self, answer: Answer) -> Json:
        return {
            "id": f"chatcmpl-{answer.message_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answer.response_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.reply.text},
                    "finish_reason": _finish(answer.reply.stop),
                }
            ],
            "usage": _usage(answer),
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        base = {
            "id": f"chatcmpl-{answer.message_id}",
            "object": "chat.completion.chunk",
            "model": answer.response_model,
        }
        chunks = [
            Chunk(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                    ],
                }
            )
        ]
        chunks += [
            Chunk(
                {**base, "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": None}]},
                text_tokens(d),
            )
            for d in answer.reply.deltas
        ]
        final: Json = {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(answer.reply.stop)}],
        }
        final["usage"] = _usage(answer)
        chunks.append(Chunk(final))
        return chunks


class DeepSeek(Family):
    """DeepSeek R1 on InvokeModel: ``prompt`` in, ``choices[].text`` out, no usage in the body."""

    name: ClassVar[str] = "deepseek"
    kind: ClassVar[str] = "text"
    default_max_tokens: ClassVar[int | None] = 8192

    def plan(self, body: Json) -> Plan:
        return prompt_plan(body, "max_tokens")

    def stop_reason(self, stop: Stop) -> str | None:
        return _finish(stop)

    def body(self, answer: Answer) -> Json:
        return {"choices": [{"text": answer.reply.text, "stop_reason": _finish(answer.reply.stop)}]}

    def chunks(self, answer: Answer) -> list[Chunk]:
        chunks = [
            Chunk({"choices": [{"text": d, "stop_reason": None}]}, text_tokens(d))
            for d in answer.reply.deltas
        ]
        chunks.append(Chunk({"choices": [{"text": "", "stop_reason": _finish(answer.reply.stop)}]}))
        return chunks


class OpenAICompletion(Family):
    """Imported models behind an OpenAI-compatible runtime: ``object: text_completion`` bodies."""

    name: ClassVar[str] = "openai-completion"
    kind: ClassVar[str] = "text"

    def plan(self, body: Json) -> Plan:
        if "messages" in body:
            return _chat_plan(body)
        return prompt_plan(body, "max_tokens")

    def stop_reason(self, stop: Stop) -> str | None:
        return _finish(stop)

    def _base(self) -> Json:
        return {"object": "text_completion", "id": "", "created": int(time.time()), "model": "/opt/ml/model"}

    def body(self, answer: Answer) -> Json:
        choice = {
            "index": 0,
            "text": answer.reply.text,
            "logprobs": None,
            "finish_reason": _finish(answer.reply.stop),
        }
        return {
            **self._base(),
            "system_fingerprint": "3.0.1-native",
            "choices": [choice],
            "usage": _usage(answer),
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        chunks = [
            Chunk(
                {
                    **self._base(),
                    "choices": [{"index": 0, "text": d, "logprobs": None, "finish_reason": None}],
                },
                text_tokens(d),
            )
            for d in answer.reply.deltas
        ]
        final = {
            **self._base(),
            "choices": [
                {"index": 0, "text": "", "logprobs": None, "finish_reason": _finish(answer.reply.stop)}
            ],
        }
        final["usage"] = _usage(answer)
        chunks.append(Chunk(final))
        return chunks


CHAT = OpenAIChat()
DEEPSEEK = DeepSeek()
COMPLETION = OpenAICompletion()
