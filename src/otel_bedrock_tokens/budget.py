"""The budget guard: whether a request CountTokens has counted may be sent (``count_tokens="before"``).

Two budgets, both judged on the predicted input tokens before anything is sent: ``max_input_tokens``
(per model id, base model or ``"*"``) and ``max_request_cost_usd`` (predicted input at the input
price plus ``max_tokens`` at the output price). Over either, the user's ``on_budget_exceeded``
callback may let it through; otherwise the guard raises :class:`~.refusal.RefuseRequest` carrying
:class:`TokenBudgetExceeded` (or the callback's own error), which the lifecycle raises to the caller
in place of sending. The guard holds no state and takes no lock: a pure decision on its inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._logging import log_internal_error
from .facts import RequestFacts
from .pricing import PriceBook
from .refusal import RefuseRequest
from .settings import PredictionSettings

logger = logging.getLogger(__name__)


class TokenBudgetExceeded(Exception):
    """Raised before a request is sent when CountTokens predicts more input tokens than the
    configured ``max_input_tokens`` allows (``count_tokens="before"`` only)."""

    # Public home and the span's ``error.type`` (the qualified name): otel_bedrock_tokens.prediction,
    # where it was defined before the guard had a module of its own. A contract, kept as it was.
    __module__ = "otel_bedrock_tokens.prediction"

    def __init__(
        self,
        model_id: str,
        predicted: int,
        limit: int | None,
        *,
        cost_usd: float | None = None,
        limit_usd: float | None = None,
        max_output_tokens: int | None = None,
    ) -> None:
        if limit_usd is not None and cost_usd is not None:
            output = f" + {max_output_tokens} max output tokens" if max_output_tokens else ""
            message = (
                f"request to {model_id} would cost up to {cost_usd:.6f} USD ({predicted} input tokens "
                f"predicted{output}), over the budget of {limit_usd:g} USD "
                "(otel-bedrock-tokens max_request_cost_usd); nothing was sent"
            )
        else:
            message = (
                f"request to {model_id} would use {predicted} input tokens, over the budget of {limit} "
                "(otel-bedrock-tokens max_input_tokens); nothing was sent"
            )
        super().__init__(message)
        self.model_id = model_id
        self.predicted = predicted
        #: The token budget (``None`` when the money budget refused).
        self.limit = limit
        #: Money budget refusals: the predicted cost (input + ``max_tokens`` output) and the limit.
        self.cost_usd = cost_usd
        self.limit_usd = limit_usd
        self.max_output_tokens = max_output_tokens


def guard(
    settings: PredictionSettings,
    price_book: PriceBook | None,
    request: RequestFacts,
    predicted: int | None,
) -> None:
    """Raise :class:`RefuseRequest` when ``request``, predicted at ``predicted`` input tokens, is
    over a budget the user's callback does not waive. Without a prediction there is nothing to judge:
    the request passes (a failed CountTokens never blocks the caller)."""
    if predicted is None:
        return
    if settings.max_request_cost_usd is not None:
        _guard_cost(settings, price_book, request, predicted, settings.max_request_cost_usd)
    budget = settings.budget
    if not budget:
        return
    limit = budget.get(request.model_id)
    if limit is None and request.model.base_model is not None:
        limit = budget.get(request.model.base_model)
    if limit is None:
        limit = budget.get("*")
    if limit is None or predicted <= limit:
        return
    if _waived(settings.on_budget_exceeded, request.model_id, predicted, limit):
        return
    raise RefuseRequest(TokenBudgetExceeded(request.model_id, predicted, limit))


def _guard_cost(
    settings: PredictionSettings,
    price_book: PriceBook | None,
    request: RequestFacts,
    predicted: int,
    limit_usd: float,
) -> None:
    """``max_request_cost_usd``: predicted input at the input price plus ``max_tokens`` at the
    output price (the most the answer can cost), at the default tier (the served tier is known
    only from the response). A model with no price cannot be judged: it passes."""
    if price_book is None:
        return
    try:
        prices = price_book.prices_for(request.model_id)
        if prices is None:
            return
        max_output = request.params.max_tokens or 0
        cost = predicted * prices.input.at(predicted)
        if max_output and prices.output is not None:
            cost += max_output * prices.output.at(predicted)
    except Exception:
        log_internal_error(logger, "bedrock-tokens: could not price a request for its budget")
        return
    if cost <= limit_usd:
        return
    if _waived(settings.on_budget_exceeded, request.model_id, cost, limit_usd):
        return
    raise RefuseRequest(
        TokenBudgetExceeded(
            request.model_id,
            predicted,
            None,
            cost_usd=cost,
            limit_usd=limit_usd,
            max_output_tokens=max_output or None,
        )
    )


def _waived(decide: Callable[..., Any] | None, model_id: str, amount: float, limit: float) -> bool:
    """Whether the user's ``on_budget_exceeded`` lets an over-budget request through (answers
    truthy). When the callback raises, it refused in its own words: :class:`RefuseRequest` carries
    its error to the caller."""
    if decide is None:
        return False
    try:
        return bool(decide(model_id, amount, limit))
    except Exception as error:
        raise RefuseRequest(error) from None
