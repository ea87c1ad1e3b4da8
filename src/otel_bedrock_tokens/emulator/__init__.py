"""A local, wire-faithful Amazon Bedrock runtime for demos and tests: no AWS account needed.

>>> from otel_bedrock_tokens.emulator import BedrockEmulator, Fault
>>> with BedrockEmulator() as emulator:                     # doctest: +SKIP
...     emulator.inject(Fault.throttle(), operation="Converse")
...     client = emulator.client()

It speaks ``bedrock-runtime``'s rest-json protocol over HTTP on 127.0.0.1: InvokeModel (every family
the instrumentation knows), InvokeModelWithResponseStream, Converse, ConverseStream and CountTokens,
with Bedrock's headers, event-stream framing, errors and prompt-cache accounting, a deterministic
tokenizer (CountTokens predicts exactly what the call then bills, unless drift is configured), fault
injection, and a :class:`Ledger` of everything it billed. Run it standalone with
``otel-bedrock-tokens emulator``; in pytest, use ``otel_bedrock_tokens.emulator.pytest_plugin``.
"""

from .app import BedrockEmulator
from .errors import BedrockError
from .faults import Fault, FaultPlan
from .ledger import Ledger, LedgerEntry, ModelTotals
from .settings import Drift, Latency

__all__ = [
    "BedrockEmulator",
    "BedrockError",
    "Drift",
    "Fault",
    "FaultPlan",
    "Latency",
    "Ledger",
    "LedgerEntry",
    "ModelTotals",
]
