"""Request builders and constants for the emulator's tests (tests/emulator/)."""

from __future__ import annotations

import json
from typing import Any

ANTHROPIC_VERSION = "bedrock-2023-05-31"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET4 = "anthropic.claude-sonnet-4-20250514-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "What is the weather in Seattle today?"}]}]


def claude_body(text: str = "Tell me a joke about spans.", **extra: Any) -> str:
    body: dict[str, Any] = {
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(extra)
    return json.dumps(body)


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    return dict(response["ResponseMetadata"]["HTTPHeaders"])
