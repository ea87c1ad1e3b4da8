"""What every model family shares: the request plan, the reply, the usage and the answer to render.

A family turns an InvokeModel request body into a :class:`Plan` (the billed prompt and what it asks
for) and renders an :class:`Answer` as that model's response body or stream chunks. Families never
count tokens themselves beyond building prompt pieces, never touch the cache, the ledger or the
wire: the service does, the same way for all of them.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import MALFORMED_INPUT, BedrockError
from ..prompt import Prompt, PromptBuilder, cache_ttl
from ..tokenizer import count_text

Json = dict[str, Any]

#: Tokens a model adds per message (role markers and separators) and when tools are declared.
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 8
TOOL_PREAMBLE = 96
TOOL_CALL_OVERHEAD = 4
#: Tokens per 32 bytes of base64-encoded media (images, documents, video).
MEDIA_BYTES_PER_TOKEN = 32


class Stop(enum.Enum):
    END = "end"
    MAX_TOKENS = "max_tokens"
    TOOL_USE = "tool_use"
    #: A guardrail blocked the input: the reply is the guardrail's message.
    GUARDRAIL = "guardrail"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    schema: Json


@dataclass(frozen=True, slots=True)
class Plan:
    """What one request asks for, as billing and the reply generator see it."""

    prompt: Prompt
    max_tokens: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    #: The last user turn carries tool results: the model answers in text instead of calling again.
    tool_result_turn: bool = False
    last_user_text: str = ""
    #: All input text, for the guardrail's scan.
    input_text: str = ""
    #: Embedding requests: the texts and the requested dimensions.
    texts: tuple[str, ...] = ()
    dimensions: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    input: Json
    tokens: int


@dataclass(frozen=True, slots=True)
class Reply:
    #: The text as stream deltas; ``"".join(deltas)`` is the full text.
    deltas: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    stop: Stop
    output_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.deltas)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens as Bedrock bills them: ``input`` excludes cache reads and writes."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    #: The part of ``cache_write`` written with the one-hour TTL (the rest: five minutes).
    cache_write_1h: int = 0

    @property
    def total_input(self) -> int:
        return self.input + self.cache_read + self.cache_write

    @property
    def cache_write_5m(self) -> int:
        return self.cache_write - self.cache_write_1h


@dataclass(frozen=True, slots=True)
class Answer:
    """Everything a family needs to render a response."""

    plan: Plan
    reply: Reply
    usage: Usage
    #: Report cache fields (headers, usage keys, invocation metrics) for this call.
    report_cache: bool
    #: Response id (Anthropic ``msg_bdrk_...``, Cohere uuid...).
    message_id: str
    #: The ``model`` field some bodies carry.
    response_model: str
    #: Report the cache writes by TTL (Converse ``cacheDetails``, Anthropic ``cache_creation``):
    #: the fields Bedrock added in 2025 (off to answer like the older recordings).
    report_cache_details: bool = False
    #: The service tier that served the call, when the response reports it (``default``...).
    service_tier: str | None = None
    #: The latency mode (``standard`` / ``optimized``), when the request asked for one.
    latency: str | None = None
    #: A prompt router's choice, as ``trace.promptRouter.invokedModelId`` reports it (an ARN).
    invoked_model_arn: str | None = None
    #: The foundation model a prompt router chose (the ledger's ``routed_model``).
    routed_model: str | None = None
    #: The guardrail the request named, if any.
    guardrail_id: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """One stream chunk and the output tokens it carries (the emulator paces chunks by tokens)."""

    payload: Json
    tokens: int = 0


class Family(ABC):
    """One InvokeModel body format."""

    name: ClassVar[str]
    #: ``chat``, ``text`` or ``embeddings``.
    kind: ClassVar[str] = "chat"
    streaming: ClassVar[bool] = True
    converse: ClassVar[bool] = True
    #: Usage and invocation metrics carry cache fields even when the request set no cache point
    #: (Nova does since February 2025; Anthropic only when the request used ``cache_control``).
    always_reports_cache: ClassVar[bool] = False
    #: Used when the request sets no limit.
    default_max_tokens: ClassVar[int | None] = None

    def for_body(self, body: Json) -> Family:
        """The format that answers this body (Claude v2 and Mistral speak two)."""
        return self

    @abstractmethod
    def plan(self, body: Json) -> Plan: ...

    @abstractmethod
    def body(self, answer: Answer) -> Json: ...

    def chunks(self, answer: Answer) -> list[Chunk]:
        raise BedrockError.validation("The model is unsupported for streaming.")

    @abstractmethod
    def stop_reason(self, stop: Stop) -> str | None: ...

    def token_headers(self, answer: Answer) -> list[tuple[str, str]]:
        usage = answer.usage
        headers = [
            ("X-Amzn-Bedrock-Input-Token-Count", str(usage.input)),
            ("X-Amzn-Bedrock-Output-Token-Count", str(usage.output)),
        ]
        if answer.report_cache:
            headers += [
                ("X-Amzn-Bedrock-Cache-Read-Input-Token-Count", str(usage.cache_read)),
                ("X-Amzn-Bedrock-Cache-Write-Input-Token-Count", str(usage.cache_write)),
            ]
        return headers


class EmbeddingFamily(Family):
    kind: ClassVar[str] = "embeddings"
    streaming: ClassVar[bool] = False
    converse: ClassVar[bool] = False

    def stop_reason(self, stop: Stop) -> str | None:
        return None

    def token_headers(self, answer: Answer) -> list[tuple[str, str]]:
        return [("X-Amzn-Bedrock-Input-Token-Count", str(answer.usage.input))]


# --- helpers shared by the family modules -------------------------------------------------------


def malformed(detail: str) -> BedrockError:
    return BedrockError.validation(
        f"Malformed input request: {detail}, please reformat your input and try again."
    )


def require(body: Json, key: str) -> Any:
    if key not in body:
        raise malformed(f"#: required key [{key}] not found")
    return body[key]


def require_str(body: Json, key: str) -> str:
    value = require(body, key)
    if not isinstance(value, str):
        raise malformed(f"#/{key}: expected type: String, found: {type(value).__name__}")
    return value


def require_list(body: Json, key: str) -> list[Any]:
    value = require(body, key)
    if not isinstance(value, list):
        raise malformed(f"#/{key}: expected type: JSONArray, found: {type(value).__name__}")
    return value


def as_dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def optional_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def max_tokens_of(*values: object) -> int | None:
    """The first limit given; a limit below one is a validation error, as on Bedrock."""
    for value in values:
        limit = optional_int(value)
        if limit is not None:
            if limit < 1:
                raise BedrockError.validation(MALFORMED_INPUT)
            return limit
    return None


def prompt_plan(body: Json, max_tokens_key: str, required: bool = False) -> Plan:
    """The plan of a prompt-style body: its ``prompt`` text is the whole input, its output limit is
    under ``max_tokens_key`` (``required``: a body without it is malformed, checked after the
    prompt). Written once for every family that takes a bare prompt."""
    prompt = require_str(body, "prompt")
    limit = max_tokens_of(require(body, max_tokens_key) if required else body.get(max_tokens_key))
    builder = PromptBuilder()
    builder.add_text(prompt)
    return Plan(builder.build(), max_tokens=limit, last_user_text=prompt, input_text=prompt)


def media_tokens(block: Any) -> int:
    return max(1, len(str(block)) // MEDIA_BYTES_PER_TOKEN)


def add_cache_control(builder: PromptBuilder, block: Json) -> None:
    """Anthropic's ``cache_control`` on a block: a cache point after it."""
    control = block.get("cache_control")
    if isinstance(control, dict):
        builder.cache_point(cache_ttl(control.get("ttl")))


def without(block: Json, *keys: str) -> Json:
    return {key: value for key, value in block.items() if key not in keys}


def text_tokens(text: str, overhead: int = 0) -> int:
    return count_text(text) + overhead
