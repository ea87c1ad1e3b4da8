"""pytest fixtures for the emulator. Enable them in your ``conftest.py``::

    pytest_plugins = ["otel_bedrock_tokens.emulator.pytest_plugin"]

    def test_my_app(bedrock_emulator, bedrock_client):
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=[...])
        assert bedrock_emulator.ledger.total().calls == 1

Each test gets its own emulator on its own port, so tests can run in parallel (pytest-xdist).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .app import BedrockEmulator


@pytest.fixture
def bedrock_emulator() -> Iterator[BedrockEmulator]:
    """A running emulator, stopped (every connection closed) after the test."""
    with BedrockEmulator() as emulator:
        yield emulator


@pytest.fixture
def bedrock_client(bedrock_emulator: BedrockEmulator) -> Any:
    """A botocore ``bedrock-runtime`` client for ``bedrock_emulator``, retries off."""
    return bedrock_emulator.client()
