"""Fixtures for the emulator's tests: the package's own pytest plugin fixtures.

``bedrock_emulator`` / ``bedrock_client`` come from ``otel_bedrock_tokens.emulator.pytest_plugin``
(the fixtures users get), so these tests exercise exactly what is offered. Helpers live in
tests/support/emulator.py.
"""

from otel_bedrock_tokens.emulator.pytest_plugin import bedrock_client, bedrock_emulator

__all__ = ["bedrock_client", "bedrock_emulator"]
