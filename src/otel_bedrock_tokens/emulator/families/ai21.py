"""AI21 Jurassic-2: the body returns the tokenized prompt and completion, so their lengths are the
billed counts (the emulator tokenizes with its own tokenizer, so they agree with the headers).
J2 does not stream. Jamba speaks the OpenAI chat shape (:mod:`.openai_style`)."""

from __future__ import annotations

import re
from typing import ClassVar

from .base import Answer, Family, Json, Plan, Stop, prompt_plan

_TOKEN = re.compile(r"[^\W\d_]{1,6}|\d{1,3}|\S")


def token_list(text: str) -> list[Json]:
    return [
        {
            "generatedToken": {"token": match.group(), "logprob": -1.0, "raw_logprob": -1.0},
            "topTokens": None,
            "textRange": {"start": match.start(), "end": match.end()},
        }
        for match in _TOKEN.finditer(text)
    ]


class Jurassic2(Family):
    name: ClassVar[str] = "ai21-j2"
    kind: ClassVar[str] = "text"
    streaming: ClassVar[bool] = False
    default_max_tokens: ClassVar[int | None] = 16

    def plan(self, body: Json) -> Plan:
        return prompt_plan(body, "maxTokens")

    def stop_reason(self, stop: Stop) -> str | None:
        return "length" if stop is Stop.MAX_TOKENS else "endoftext"

    def body(self, answer: Answer) -> Json:
        prompt = answer.plan.last_user_text
        text = answer.reply.text
        reason: Json = {"reason": self.stop_reason(answer.reply.stop)}
        if answer.reply.stop is Stop.MAX_TOKENS:
            reason["length"] = answer.usage.output
        return {
            "id": 1234,
            "prompt": {"text": prompt, "tokens": token_list(prompt)},
            "completions": [{"data": {"text": text, "tokens": token_list(text)}, "finishReason": reason}],
        }


J2 = Jurassic2()
