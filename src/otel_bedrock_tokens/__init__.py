"""OpenTelemetry spans and metrics with the exact tokens Amazon Bedrock bills.

>>> from otel_bedrock_tokens import BedrockTokensInstrumentor
>>> BedrockTokensInstrumentor().instrument()
"""

from .instrumentor import BedrockTokensInstrumentor
from .prediction import TokenBudgetExceeded
from .version import __version__

__all__ = ["BedrockTokensInstrumentor", "TokenBudgetExceeded", "__version__"]
