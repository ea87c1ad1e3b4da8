"""Amazon's own models: Titan Text, Titan Embeddings and Nova (``messages-v1``).

Titan reports its counts in the body (``inputTextTokenCount``, ``tokenCount``) and streams few, large
chunks; Nova has Converse-shaped bodies, one content block per stream delta (as recorded), and has
reported cache fields in headers, usage and invocation metrics since February 2025.
"""

from __future__ import annotations

import json
import math
import random
from typing import ClassVar

from ..blocks import plan_messages
from ..ids import uuid_from
from ..prompt import PromptBuilder
from .base import (
    Answer,
    Chunk,
    EmbeddingFamily,
    Family,
    Json,
    Plan,
    Stop,
    as_dict,
    max_tokens_of,
    optional_int,
    require_str,
    text_tokens,
)

#: Titan streams few, large chunks (recorded: about 60 tokens each).
TITAN_DELTAS_PER_CHUNK = 48
_TITAN_STOPS = {Stop.END: "FINISH", Stop.MAX_TOKENS: "LENGTH", Stop.TOOL_USE: "FINISH"}
_NOVA_STOPS = {Stop.END: "end_turn", Stop.MAX_TOKENS: "max_tokens", Stop.TOOL_USE: "tool_use"}


def embedding(seed: int, dimensions: int) -> list[float]:
    """A deterministic unit vector."""
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


class TitanText(Family):
    name: ClassVar[str] = "amazon-titan-text"
    kind: ClassVar[str] = "text"
    default_max_tokens: ClassVar[int | None] = 512

    def plan(self, body: Json) -> Plan:
        text = require_str(body, "inputText")
        config = as_dict(body.get("textGenerationConfig"))
        builder = PromptBuilder()
        builder.add_text(text)
        limit = max_tokens_of(config.get("maxTokenCount"))
        return Plan(builder.build(), max_tokens=limit, last_user_text=text, input_text=text)

    def stop_reason(self, stop: Stop) -> str | None:
        # A blocked input has no completion reason (recorded: guardrail "Input blocked").
        return _TITAN_STOPS.get(stop)

    def body(self, answer: Answer) -> Json:
        result: Json = {"tokenCount": answer.usage.output, "outputText": "\n" + answer.reply.text}
        reason = self.stop_reason(answer.reply.stop)
        if reason is not None:
            result["completionReason"] = reason
        return {"inputTextTokenCount": answer.usage.total_input, "results": [result]}

    def chunks(self, answer: Answer) -> list[Chunk]:
        deltas = list(answer.reply.deltas) or [""]
        groups = [
            deltas[i : i + TITAN_DELTAS_PER_CHUNK] for i in range(0, len(deltas), TITAN_DELTAS_PER_CHUNK)
        ]
        chunks: list[Chunk] = []
        for number, group in enumerate(groups):
            text = ("\n" if number == 0 else "") + "".join(group)
            payload: Json = {"outputText": text, "index": 0}
            if number == len(groups) - 1:
                payload["totalOutputTextTokenCount"] = answer.usage.output
                reason = self.stop_reason(answer.reply.stop)
                if reason is not None:
                    payload["completionReason"] = reason
            if number == 0:
                payload["inputTextTokenCount"] = answer.usage.total_input
            chunks.append(Chunk(payload, sum(text_tokens(delta) for delta in group)))
        return chunks


class TitanEmbed(EmbeddingFamily):
    name: ClassVar[str] = "amazon-titan-embed"

    def __init__(self, version: int) -> None:
        self.version = version

    def plan(self, body: Json) -> Plan:
        text = require_str(body, "inputText")
        builder = PromptBuilder()
        builder.add_text(text)
        default = 1024 if self.version >= 2 else 1536
        dimensions = optional_int(body.get("dimensions")) or default
        return Plan(builder.build(), texts=(text,), dimensions=dimensions, input_text=text)

    def body(self, answer: Answer) -> Json:
        vector = embedding(answer.plan.prompt.seed(), answer.plan.dimensions or 1024)
        body: Json = {"embedding": vector}
        if self.version >= 2:
            body["embeddingsByType"] = {"float": vector}
        body["inputTextTokenCount"] = answer.usage.input
        return body


class Nova(Family):
    name: ClassVar[str] = "amazon-nova"
    always_reports_cache: ClassVar[bool] = True
    default_max_tokens: ClassVar[int | None] = 5000

    def plan(self, body: Json) -> Plan:
        config = as_dict(body.get("inferenceConfig"))
        limit = max_tokens_of(config.get("maxTokens"), config.get("max_new_tokens"))
        return plan_messages(body.get("messages"), body.get("system"), body.get("toolConfig"), limit, 64)

    def stop_reason(self, stop: Stop) -> str | None:
        return _NOVA_STOPS.get(stop, "end_turn")

    def _usage(self, answer: Answer, total: bool) -> Json:
        usage = answer.usage
        fields: Json = {"inputTokens": usage.input, "outputTokens": usage.output}
        if total:
            fields["totalTokens"] = usage.total_input + usage.output
        if answer.report_cache:
            fields["cacheReadInputTokenCount"] = usage.cache_read
            fields["cacheWriteInputTokenCount"] = usage.cache_write
        return fields

    def body(self, answer: Answer) -> Json:
        content: list[Json] = []
        if answer.reply.deltas:
            content.append({"text": answer.reply.text})
        for call in answer.reply.tool_calls:
            content.append(
                {"toolUse": {"toolUseId": uuid_from(call.id), "name": call.name, "input": call.input}}
            )
        return {
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": self.stop_reason(answer.reply.stop),
            "usage": self._usage(answer, total=True),
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        chunks = [Chunk({"messageStart": {"role": "assistant"}})]
        index = 0
        for delta in answer.reply.deltas:
            body = {"delta": {"text": delta}, "contentBlockIndex": index}
            chunks.append(Chunk({"contentBlockDelta": body}, text_tokens(delta)))
            chunks.append(Chunk({"contentBlockStop": {"contentBlockIndex": index}}))
            index += 1
        for call in answer.reply.tool_calls:
            start = {"toolUse": {"toolUseId": uuid_from(call.id), "name": call.name}}
            chunks.append(Chunk({"contentBlockStart": {"start": start, "contentBlockIndex": index}}))
            tool_delta: Json = {"toolUse": {"input": _compact(call.input)}}
            chunks.append(
                Chunk({"contentBlockDelta": {"delta": tool_delta, "contentBlockIndex": index}}, call.tokens)
            )
            chunks.append(Chunk({"contentBlockStop": {"contentBlockIndex": index}}))
            index += 1
        chunks.append(Chunk({"messageStop": {"stopReason": self.stop_reason(answer.reply.stop)}}))
        metadata = {"usage": self._usage(answer, total=False), "metrics": {}, "trace": {}}
        chunks.append(Chunk({"metadata": metadata}))
        return chunks


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


TITAN_TEXT = TitanText()
TITAN_EMBED_V1 = TitanEmbed(1)
TITAN_EMBED_V2 = TitanEmbed(2)
NOVA = Nova()
