"""Anthropic Claude on InvokeModel: the Messages API body and the legacy Text Completions body.

Shapes follow the recordings: ``message_start`` carries the input usage (and cache fields when the
request used ``cache_control``), ``message_delta`` the output count, ``message_stop`` Bedrock's
invocation metrics. Prompt order for billing and caching: tools, system, messages.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ..prompt import PromptBuilder
from ..tokenizer import count_json
from .base import (
    MESSAGE_OVERHEAD,
    TOOL_CALL_OVERHEAD,
    TOOL_OVERHEAD,
    TOOL_PREAMBLE,
    Answer,
    Chunk,
    Family,
    Json,
    Plan,
    Stop,
    ToolSpec,
    add_cache_control,
    as_dict,
    malformed,
    max_tokens_of,
    media_tokens,
    prompt_plan,
    require,
    require_list,
    require_str,
    text_tokens,
    without,
)

_MESSAGE_STOPS = {Stop.END: "end_turn", Stop.MAX_TOKENS: "max_tokens", Stop.TOOL_USE: "tool_use"}
HUMAN_STOP = "\n\nHuman:"


def tool_use_id(token: str) -> str:
    return f"toolu_bdrk_{token}"


def _block_text(block: Json) -> str:
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    return ""


def _content_tokens(block: Any) -> tuple[str, int]:
    """(cache key, tokens) of one content block of a message or tool result."""
    if isinstance(block, str):
        return f"text:{block}", text_tokens(block)
    if not isinstance(block, dict):
        raise malformed("#/messages: content blocks must be objects")
    kind = block.get("type")
    clean = without(block, "cache_control")
    if kind == "text":
        return f"text:{block.get('text', '')}", text_tokens(str(block.get("text", "")))
    if kind in ("image", "document"):
        return json.dumps(clean, sort_keys=True), media_tokens(clean)
    if kind == "tool_use":
        return json.dumps(clean, sort_keys=True), count_json(block.get("input", {})) + TOOL_CALL_OVERHEAD
    if kind == "tool_result":
        content = block.get("content", "")
        inner = content if isinstance(content, list) else [content]
        return json.dumps(clean, sort_keys=True), sum(_content_tokens(item)[1] for item in inner) + 4
    if kind in ("thinking", "redacted_thinking"):
        return json.dumps(clean, sort_keys=True), text_tokens(str(block.get("thinking", "")))
    return json.dumps(clean, sort_keys=True), count_json(clean)


class Messages(Family):
    name: ClassVar[str] = "anthropic-messages"

    def for_body(self, body: Json) -> Family:
        return TEXT if "messages" not in body and "prompt" in body else self

    def plan(self, body: Json) -> Plan:
        require_str(body, "anthropic_version")
        messages = require_list(body, "messages")
        limit = max_tokens_of(require(body, "max_tokens"))
        builder = PromptBuilder()
        raw_tools = body.get("tools")
        tools: list[Any] = raw_tools if isinstance(raw_tools, list) else []
        specs: list[ToolSpec] = []
        if tools:
            builder.add("tools:preamble", TOOL_PREAMBLE)
        for tool in tools:
            tool = as_dict(tool)
            clean = without(tool, "cache_control")
            builder.add(f"tool:{json.dumps(clean, sort_keys=True)}", count_json(clean) + TOOL_OVERHEAD)
            add_cache_control(builder, tool)
            if isinstance(tool.get("name"), str):
                specs.append(ToolSpec(tool["name"], as_dict(tool.get("input_schema"))))
        system = body.get("system")
        texts: list[str] = []
        if isinstance(system, str) and system:
            builder.add_text(system, 2, "system")
            texts.append(system)
        elif isinstance(system, list):
            for block in system:
                block = as_dict(block)
                text = str(block.get("text", ""))
                builder.add_text(text, 0, "system")
                texts.append(text)
                add_cache_control(builder, block)
        last_user = ""
        tool_result_turn = False
        for message in messages:
            message = as_dict(message)
            role = message.get("role")
            if role not in ("user", "assistant"):
                raise malformed("#/messages: role must be user or assistant")
            builder.add(f"role:{role}", MESSAGE_OVERHEAD)
            content = message.get("content", "")
            blocks = content if isinstance(content, list) else [content]
            user_texts = []
            for block in blocks:
                key, tokens = _content_tokens(block)
                builder.add(key, tokens)
                if isinstance(block, dict):
                    add_cache_control(builder, block)
                text = block if isinstance(block, str) else _block_text(block)
                texts.append(text)
                user_texts.append(text)
            if role == "user":
                last_user = " ".join(user_texts)
                tool_result_turn = any(as_dict(b).get("type") == "tool_result" for b in blocks)
        return Plan(
            prompt=builder.build(),
            max_tokens=limit,
            tools=tuple(specs),
            tool_result_turn=tool_result_turn,
            last_user_text=last_user,
            input_text="\n".join(texts),
        )

    def stop_reason(self, stop: Stop) -> str | None:
        return _MESSAGE_STOPS.get(stop, "end_turn")

    def _usage(self, answer: Answer, output: int) -> Json:
        usage: Json = {"input_tokens": answer.usage.input}
        if answer.report_cache:
            usage["cache_creation_input_tokens"] = answer.usage.cache_write
            usage["cache_read_input_tokens"] = answer.usage.cache_read
            if answer.report_cache_details:
                usage["cache_creation"] = {
                    "ephemeral_5m_input_tokens": answer.usage.cache_write_5m,
                    "ephemeral_1h_input_tokens": answer.usage.cache_write_1h,
                }
        usage["output_tokens"] = output
        return usage

    def body(self, answer: Answer) -> Json:
        content: list[Json] = []
        if answer.reply.deltas:
            content.append({"type": "text", "text": answer.reply.text})
        for call in answer.reply.tool_calls:
            content.append(
                {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": call.input}
            )
        return {
            "id": f"msg_bdrk_{answer.message_id}",
            "type": "message",
            "role": "assistant",
            "model": answer.response_model,
            "content": content,
            "stop_reason": self.stop_reason(answer.reply.stop),
            "stop_sequence": None,
            "usage": self._usage(answer, answer.usage.output),
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        reply = answer.reply
        message: Json = {
            "id": f"msg_bdrk_{answer.message_id}",
            "type": "message",
            "role": "assistant",
            "model": answer.response_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(answer, 1),
        }
        chunks = [Chunk({"type": "message_start", "message": message})]
        index = 0
        if reply.deltas:
            chunks.append(
                Chunk(
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
                )
            )
            for delta in reply.deltas:
                chunks.append(
                    Chunk(
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": delta},
                        },
                        tokens=text_tokens(delta),
                    )
                )
            chunks.append(Chunk({"type": "content_block_stop", "index": 0}))
            index = 1
        for call in reply.tool_calls:
            start = {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": {}}
            chunks.append(Chunk({"type": "content_block_start", "index": index, "content_block": start}))
            encoded = json.dumps(call.input)
            middle = len(encoded) // 2
            for part, tokens in (
                ("", 0),
                (encoded[:middle], call.tokens // 2),
                (encoded[middle:], call.tokens - call.tokens // 2),
            ):
                json_delta: Json = {"type": "input_json_delta", "partial_json": part}
                chunks.append(
                    Chunk({"type": "content_block_delta", "index": index, "delta": json_delta}, tokens)
                )
            chunks.append(Chunk({"type": "content_block_stop", "index": index}))
            index += 1
        chunks.append(
            Chunk(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason(reply.stop), "stop_sequence": None},
                    "usage": {"output_tokens": answer.usage.output},
                }
            )
        )
        chunks.append(Chunk({"type": "message_stop"}))
        return chunks


class Text(Family):
    """Claude v2 Text Completions: ``Human: ... Assistant:`` prompts, no usage in the body."""

    name: ClassVar[str] = "anthropic-text"
    kind: ClassVar[str] = "text"

    def plan(self, body: Json) -> Plan:
        return prompt_plan(body, "max_tokens_to_sample", required=True)

    def stop_reason(self, stop: Stop) -> str | None:
        return "max_tokens" if stop is Stop.MAX_TOKENS else "stop_sequence"

    def _stop(self, stop: Stop) -> str | None:
        return None if stop is Stop.MAX_TOKENS else HUMAN_STOP

    def body(self, answer: Answer) -> Json:
        stop = answer.reply.stop
        return {
            "type": "completion",
            "completion": " " + answer.reply.text,
            "stop_reason": self.stop_reason(stop),
            "stop": self._stop(stop),
        }

    def chunks(self, answer: Answer) -> list[Chunk]:
        deltas = list(answer.reply.deltas)
        chunks = [
            Chunk(
                {"completion": (" " if i == 0 else "") + delta, "stop_reason": None, "stop": None},
                text_tokens(delta),
            )
            for i, delta in enumerate(deltas)
        ]
        stop = answer.reply.stop
        chunks.append(
            Chunk({"completion": "", "stop_reason": self.stop_reason(stop), "stop": self._stop(stop)})
        )
        return chunks


MESSAGES = Messages()
TEXT = Text()
