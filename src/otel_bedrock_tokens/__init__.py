"""OpenTelemetry spans and metrics with the exact tokens Amazon Bedrock bills.

Imports only what ``instrument()`` with the default settings needs (cold starts are billed in AWS
Lambda): prediction, pricing, the emulator, the CLI and the demo are imported when first used.

>>> from otel_bedrock_tokens import BedrockTokensInstrumentor
>>> BedrockTokensInstrumentor().instrument()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .instrumentor import BedrockTokensInstrumentor
from .version import __version__

if TYPE_CHECKING:
    from .counting import count_tokens
    from .prediction import TokenBudgetExceeded

__all__ = ["BedrockTokensInstrumentor", "TokenBudgetExceeded", "__version__", "count_tokens"]


def __getattr__(name: str) -> Any:
    """``TokenBudgetExceeded`` lives in :mod:`.prediction` and ``count_tokens`` in
    :mod:`.counting`, imported only when asked for (or when the ``count_tokens`` setting is on):
    the default settings never pay for them."""
    if name == "TokenBudgetExceeded":
        from .prediction import TokenBudgetExceeded

        return TokenBudgetExceeded
    if name == "count_tokens":
        from .counting import count_tokens

        return count_tokens
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
