"""Helpers for the aiobotocore tests: a real aiobotocore client for a loopback endpoint, plain asyncio.

Import this only after ``pytest.importorskip("aiobotocore")``: it imports aiobotocore.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from .replay import Interaction

T = TypeVar("T")

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-micro-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
TITAN = "amazon.titan-text-express-v1"
#: Every test's whole asyncio run is bounded by this (seconds).
TEST_TIMEOUT = 60.0

_session: AioSession | None = None


def run(coroutine: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    """Run ``coroutine`` on a fresh event loop, bounded by ``timeout``."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


@asynccontextmanager
async def aio_client(
    endpoint_url: str, retries: int = 0, read_timeout: float = 30.0, **config: Any
) -> AsyncIterator[Any]:
    """An aiobotocore ``bedrock-runtime`` client for a loopback endpoint, retries off by default.
    One session for every test: loading the service model once keeps the tests fast."""
    global _session
    if _session is None:
        _session = get_session()
    settings = AioConfig(
        retries={"total_max_attempts": retries + 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=read_timeout,
        **config,
    )
    async with _session.create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=settings,
    ) as client:
        yield client


def claude_request(text: str = "Tell me a joke about spans.", max_tokens: int = 60) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        }
    )


def messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


async def call_recorded_async(client: Any, interaction: Interaction) -> Any:
    """``replay.call_recorded`` for an aiobotocore client."""
    if interaction.operation == "InvokeModel":
        return await client.invoke_model(modelId=interaction.model_id, body=interaction.request_body)
    if interaction.operation == "InvokeModelWithResponseStream":
        return await client.invoke_model_with_response_stream(
            modelId=interaction.model_id, body=interaction.request_body
        )
    params = json.loads(interaction.request_body) if interaction.request_body else {}
    if interaction.operation == "Converse":
        return await client.converse(modelId=interaction.model_id, **params)
    if interaction.operation == "ConverseStream":
        return await client.converse_stream(modelId=interaction.model_id, **params)
    raise ValueError(interaction.operation)


async def consume(response: Any) -> list[Any]:
    """Read a response the way an app does: the whole body, or every event of the stream."""
    if "stream" in response:
        return [event async for event in response["stream"]]
    body = response.get("body")
    if body is None:
        return []
    if hasattr(body, "read"):
        return [await body.read()]
    return [event async for event in body]
