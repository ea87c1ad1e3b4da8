"""OpenTelemetry spans and metrics with the exact tokens Amazon Bedrock bills.

Imports only what ``instrument()`` with the default settings needs (cold starts are billed in AWS
Lambda): prediction, pricing, the emulator, the CLI and the demo are imported when first used.

>>> from otel_bedrock_tokens import BedrockTokensInstrumentor
>>> BedrockTokensInstrumentor().instrument()
"""

from .instrumentor import BedrockTokensInstrumentor
from .refusal import TokenBudgetExceeded
from .version import __version__

__all__ = ["BedrockTokensInstrumentor", "TokenBudgetExceeded", "__version__"]
