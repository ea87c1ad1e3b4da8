"""The Converse API's one shape for every model: request to plan, answer to body or stream events.

Usage is ``{inputTokens, outputTokens, totalTokens}`` plus cache fields when the call used the cache
or the model always reports them (Claude: both the modeled ``cacheReadInputTokens`` and the
``cacheReadInputTokenCount`` spelling, as recorded); ``totalTokens`` includes cache reads and writes.
"""

from __future__ import annotations

import json

from .blocks import plan_messages
from .families.base import Answer, Chunk, Json, Plan, Stop, as_dict, max_tokens_of, text_tokens

STOP_REASONS = {
    Stop.END: "end_turn",
    Stop.MAX_TOKENS: "max_tokens",
    Stop.TOOL_USE: "tool_use",
    Stop.GUARDRAIL: "guardrail_intervened",
}


def tool_use_id(token: str) -> str:
    return f"tooluse_{token[:22]}"


def plan_converse(request: Json) -> Plan:
    config = as_dict(request.get("inferenceConfig"))
    limit = max_tokens_of(config.get("maxTokens"))
    return plan_messages(request.get("messages"), request.get("system"), request.get("toolConfig"), limit)


def usage(answer: Answer) -> Json:
    u = answer.usage
    fields: Json = {"inputTokens": u.input, "outputTokens": u.output, "totalTokens": u.total_input + u.output}
    if answer.report_cache:
        fields.update(
            cacheReadInputTokens=u.cache_read,
            cacheWriteInputTokens=u.cache_write,
            cacheReadInputTokenCount=u.cache_read,
            cacheWriteInputTokenCount=u.cache_write,
        )
        if answer.report_cache_details and u.cache_write:
            # Sorted by TTL, one hour first (botocore's model documents the order).
            details = [("1h", u.cache_write_1h), ("5m", u.cache_write_5m)]
            fields["cacheDetails"] = [{"ttl": ttl, "inputTokens": n} for ttl, n in details if n]
    return fields


def with_router(trace: Json | None, answer: Answer) -> Json | None:
    """``trace.promptRouter.invokedModelId`` when a prompt router chose the model."""
    if answer.invoked_model_arn is None:
        return trace
    return {**(trace or {}), "promptRouter": {"invokedModelId": answer.invoked_model_arn}}


def add_terms(result: Json, answer: Answer) -> None:
    """``performanceConfig`` and ``serviceTier``, as ConverseResponse and the metadata event carry them."""
    if answer.latency is not None:
        result["performanceConfig"] = {"latency": answer.latency}
    if answer.service_tier is not None:
        result["serviceTier"] = {"type": answer.service_tier}


def stop_reason(answer: Answer, intervened: bool) -> str:
    return "guardrail_intervened" if intervened else STOP_REASONS[answer.reply.stop]


def body(answer: Answer, latency_ms: int, intervened: bool = False, trace: Json | None = None) -> Json:
    content: list[Json] = []
    if answer.reply.deltas:
        content.append({"text": answer.reply.text})
    for call in answer.reply.tool_calls:
        content.append(
            {"toolUse": {"input": call.input, "name": call.name, "toolUseId": tool_use_id(call.id)}}
        )
    result: Json = {
        "metrics": {"latencyMs": latency_ms},
        "output": {"message": {"content": content, "role": "assistant"}},
        "stopReason": stop_reason(answer, intervened),
    }
    return _with_usage(result, answer, trace)


def _with_usage(result: Json, answer: Answer, trace: Json | None) -> Json:
    """The tail both a Converse body and a ConverseStream ``metadata`` event end with: billing
    terms, the trace (with the prompt router's choice), then the usage."""
    add_terms(result, answer)
    trace = with_router(trace, answer)
    if trace is not None:
        result["trace"] = trace
    result["usage"] = usage(answer)
    return result


def events(answer: Answer, intervened: bool = False) -> list[tuple[str, Chunk]]:
    """Every event but the final ``metadata`` one, which carries the measured latency."""
    out: list[tuple[str, Chunk]] = [("messageStart", Chunk({"role": "assistant"}))]
    index = 0
    if answer.reply.deltas:
        for delta in answer.reply.deltas:
            out.append(
                (
                    "contentBlockDelta",
                    Chunk({"contentBlockIndex": 0, "delta": {"text": delta}}, text_tokens(delta)),
                )
            )
        out.append(("contentBlockStop", Chunk({"contentBlockIndex": 0})))
        index = 1
    for call in answer.reply.tool_calls:
        start = {"toolUse": {"name": call.name, "toolUseId": tool_use_id(call.id)}}
        out.append(("contentBlockStart", Chunk({"contentBlockIndex": index, "start": start})))
        tool_delta: Json = {"toolUse": {"input": json.dumps(call.input, separators=(",", ":"))}}
        out.append(
            ("contentBlockDelta", Chunk({"contentBlockIndex": index, "delta": tool_delta}, call.tokens))
        )
        out.append(("contentBlockStop", Chunk({"contentBlockIndex": index})))
        index += 1
    out.append(("messageStop", Chunk({"stopReason": stop_reason(answer, intervened)})))
    return out


def metadata(answer: Answer, latency_ms: int, trace: Json | None = None) -> Json:
    return _with_usage({"metrics": {"latencyMs": latency_ms}}, answer, trace)
