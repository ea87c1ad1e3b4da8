"""``BedrockTokensInstrumentor``: the lifecycle of the one patch on botocore."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ._hooks import BedrockHook
from .operations import OPERATIONS
from .prediction import Predictor
from .settings import Settings
from .streams import wrap_stream
from .telemetry import Telemetry

logger = logging.getLogger(__name__)



#: Every wrapt proxy (in wrapt 2, FunctionWrapper is no longer an ObjectProxy).
_PROXY = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


def _find_our_wrapper(outer: Any, hook: BedrockHook) -> tuple[Any, Any] | None:
    """Walk a chain of wrapt wrappers; return (wrapper whose ``__wrapped__`` is ours, ours)."""
    parent = None
    current = outer
    for _ in range(32):  # chains are short; never loop forever on a strange object
        if isinstance(current, wrapt.FunctionWrapper) and current._self_wrapper is hook:
            return parent, current
        if not isinstance(current, _PROXY):
            return None
        parent, current = current, current.__wrapped__
    return None


def _wrap_innermost(cls: Any, hook: Any) -> None:
    """Wrap ``cls._make_api_call`` with ``hook`` *below* any wrappers already there.

    Other instrumentations (the official botocore one) uninstrument by replacing the attribute with
    the outermost wrapper's ``__wrapped__``. Were we on top of them, their ``uninstrument()`` would
    remove us and leave them patched for good; below them, it removes exactly their own layer.
    """
    current = cls.__dict__.get("_make_api_call")
    innermost = None
    for _ in range(32):
        if not isinstance(current, _PROXY):
            break
        innermost, current = current, current.__wrapped__
    if innermost is None:
        cls._make_api_call = wrapt.FunctionWrapper(current, hook)
    else:
        innermost.__wrapped__ = wrapt.FunctionWrapper(current, hook)


class BedrockTokensInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Spans and metrics with the exact tokens Bedrock bills, for every ``bedrock-runtime`` call.

    ``instrument(tracer_provider=None, meter_provider=None, request_hook=None, response_hook=None)``;
    see the README for every setting and its ``OTEL_BEDROCK_TOKENS_*`` variable.
    """

    _hook: BedrockHook | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("botocore >= 1.34",)

    def _instrument(self, **kwargs: Any) -> None:
        config = Settings.load(kwargs)
        predictor = Predictor(config.prediction) if config.prediction.mode != "off" else None
        hook = BedrockHook(
            Telemetry(kwargs.get("tracer_provider"), kwargs.get("meter_provider")),
            OPERATIONS,
            request_hook=config.request_hook,
            response_hook=config.response_hook,
            wrap_stream=wrap_stream,
            chunk_timing=config.chunk_timing,
            predictor=predictor,
        )
        from botocore.client import BaseClient

        _wrap_innermost(BaseClient, hook)
        type(self)._hook = hook

    def wait_for_predictions(self, timeout: float = 5.0) -> bool:
        """Wait until every CountTokens prediction in flight has been recorded (before exporting
        metrics at shutdown, say). ``True`` when none is left; ``False`` on timeout."""
        hook = type(self)._hook
        if hook is None or hook.predictor is None:
            return True
        return hook.predictor.wait_idle(timeout)

    def _uninstrument(self, **kwargs: Any) -> None:
        from botocore.client import BaseClient

        hook = type(self)._hook
        type(self)._hook = None
        if hook is None:
            return
        hook.active = False
        if hook.predictor is not None:
            hook.predictor.shutdown()
        found = _find_our_wrapper(BaseClient.__dict__.get("_make_api_call"), hook)
        if found is None:
            return  # already gone; the inactive hook would pass straight through anyway
        parent, ours = found
        if parent is None:
            BaseClient._make_api_call = ours.__wrapped__
        else:
            # Another instrumentation wrapped on top of us: splice ourselves out of its chain.
            parent.__wrapped__ = ours.__wrapped__
