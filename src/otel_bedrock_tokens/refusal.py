"""The budget guard's exceptions, in a module of their own so that the hooks (which catch
:class:`RefuseRequest`) and the package (which exports :class:`TokenBudgetExceeded`) need not import
:mod:`.prediction`: with ``count_tokens="off"`` (the default) prediction is never imported, which
keeps it (and its imports) out of every cold start."""

from __future__ import annotations


class RefuseRequest(Exception):
    """Internal: the budget guard refused; the hook ends the span and raises ``error`` instead."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class TokenBudgetExceeded(Exception):
    """Raised before a request is sent when CountTokens predicts more input tokens than the
    configured ``max_input_tokens`` allows (``count_tokens="before"`` only)."""

    def __init__(self, model_id: str, predicted: int, limit: int) -> None:
        super().__init__(
            f"request to {model_id} would use {predicted} input tokens, over the budget of {limit} "
            "(otel-bedrock-tokens max_input_tokens); nothing was sent"
        )
        self.model_id = model_id
        self.predicted = predicted
        self.limit = limit


# Users match on the exception's name (``error.type`` on the span, logs, pickles): it was defined in
# ``otel_bedrock_tokens.prediction`` (which still exports it) and keeps that public name.
TokenBudgetExceeded.__module__ = "otel_bedrock_tokens.prediction"
