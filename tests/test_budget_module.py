"""The budget guard lives in ``budget.py``; its public exception keeps the name it is known by (the
``error.type`` of a refused call's span, and what users import)."""

from __future__ import annotations

from otel_bedrock_tokens import TokenBudgetExceeded, budget, prediction


def test_the_exception_is_one_class_under_its_public_name() -> None:
    assert budget.TokenBudgetExceeded is prediction.TokenBudgetExceeded is TokenBudgetExceeded
    assert f"{TokenBudgetExceeded.__module__}.{TokenBudgetExceeded.__qualname__}" == (
        "otel_bedrock_tokens.prediction.TokenBudgetExceeded"
    )
