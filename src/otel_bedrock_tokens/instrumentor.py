"""``BedrockTokensInstrumentor``: the lifecycle of the patch on botocore, and of its asyncio twin on
aiobotocore when aiobotocore is installed.

aiobotocore is never imported by us: ``instrument()`` registers a post-import hook that patches
``AioBaseClient._make_api_call`` as soon as the application imports ``aiobotocore.client`` (at once
when it already has). A sync-only process with aiobotocore merely installed pays nothing for it
(importing aiobotocore costs some 300 ms), and one without it registers nothing at all.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Collection
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ._hooks import BedrockHook
from ._logging import log_internal_error
from .operations import OPERATIONS
from .prediction import Predictor
from .settings import Settings
from .streams import wrap_stream
from .telemetry import Telemetry

logger = logging.getLogger(__name__)

_AIO_PACKAGE = "aiobotocore"
_AIO_MODULE = "aiobotocore.client"
_AIO_CLASS = "AioBaseClient"


#: Every wrapt proxy (in wrapt 2, FunctionWrapper is no longer an ObjectProxy).
_PROXY = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


def _find_our_wrapper(outer: Any, hook: object) -> tuple[Any, Any] | None:
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


def _unwrap(cls: Any, hook: object) -> None:
    """Remove our wrapper (the one whose wrapper object is ``hook``) from ``cls._make_api_call``."""
    found = _find_our_wrapper(cls.__dict__.get("_make_api_call"), hook)
    if found is None:
        return  # already gone; the inactive hook would pass straight through anyway
    parent, ours = found
    if parent is None:
        cls._make_api_call = ours.__wrapped__
    else:
        # Another instrumentation wrapped on top of us: splice ourselves out of its chain.
        parent.__wrapped__ = ours.__wrapped__


#: The OpenTelemetry auto-instrumentation loader (``opentelemetry-instrument``, its ``initialize()``).
_AUTO_INSTRUMENTATION = "opentelemetry.instrumentation.auto_instrumentation"


def _loaded_by_auto_instrumentation() -> bool:
    """Whether the auto-instrumentation loader is calling us. It instruments every installed library
    in turn and stops at the first that raises, so there a bad setting of ours must not raise.

    Found on the call stack (once per ``instrument()``): the loader passes nothing that tells
    (``skip_dep_check`` is removed by ``BaseInstrumentor.instrument`` before ``_instrument``), and
    a distro may override how it calls each instrumentor, but the loader is always below it."""
    frame = sys._getframe(1)
    for _ in range(256):  # the loader is a few frames down; never walk a pathological stack forever
        name = frame.f_globals.get("__name__")
        if isinstance(name, str) and name.startswith(_AUTO_INSTRUMENTATION):
            return True
        if frame.f_back is None:
            return False
        frame = frame.f_back
    return False


def _installed(package: str) -> bool:
    """Whether ``package`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


class _AioPatch:
    """The aiobotocore half of one ``instrument()``: applied when ``aiobotocore.client`` is imported.

    wrapt's post-import hooks cannot be unregistered, so ``uninstrument()`` marks this one cancelled
    and a later import applies nothing."""

    def __init__(self, hook: BedrockHook) -> None:
        self.hook = hook
        self.cancelled = False
        self.applied: Any = None  # the AioBedrockHook, once wrapped
        self.target: Any = None  # AioBaseClient

    def apply(self, module: ModuleType) -> None:
        if self.cancelled or self.applied is not None:
            return
        try:
            from ._aio_hooks import AioBedrockHook

            aio_hook = AioBedrockHook(self.hook)
            target = getattr(module, _AIO_CLASS)
            _wrap_innermost(target, aio_hook)
            self.applied, self.target = aio_hook, target
        except Exception:
            # An aiobotocore too different from the one we know: sync clients are still measured.
            log_internal_error(logger, "bedrock-tokens: could not instrument aiobotocore", logging.WARNING)

    def remove(self) -> None:
        self.cancelled = True
        if self.applied is not None:
            _unwrap(self.target, self.applied)
            self.applied = self.target = None


class BedrockTokensInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Spans and metrics with the exact tokens Bedrock bills, for every ``bedrock-runtime`` call.

    ``instrument(tracer_provider=None, meter_provider=None, request_hook=None, response_hook=None)``;
    see the README for every setting and its ``OTEL_BEDROCK_TOKENS_*`` variable.
    """

    _hook: BedrockHook | None = None
    _aio: _AioPatch | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("botocore >= 1.34",)

    def _instrument(self, **kwargs: Any) -> None:
        # Explicit instrument(): a bad setting raises. Zero-code: logged, that setting's default.
        config = Settings.load(kwargs, lenient=_loaded_by_auto_instrumentation())
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
        if _installed(_AIO_PACKAGE):
            aio = type(self)._aio = _AioPatch(hook)
            wrapt.register_post_import_hook(aio.apply, _AIO_MODULE)

    def wait_for_predictions(self, timeout: float = 5.0) -> bool:
        """Wait until every CountTokens prediction in flight has been recorded (before exporting
        metrics at shutdown, say). ``True`` when none is left; ``False`` on timeout."""
        hook = type(self)._hook
        if hook is None or hook.predictor is None:
            return True
        return hook.predictor.wait_idle(timeout)

    async def wait_for_predictions_async(self, timeout: float = 5.0) -> bool:
        """:meth:`wait_for_predictions` for asyncio code: awaits instead of blocking the event loop
        (whose tasks are the predictions in flight for aiobotocore clients)."""
        hook = type(self)._hook
        if hook is None or hook.predictor is None:
            return True
        return await hook.predictor.wait_idle_async(timeout)

    def _uninstrument(self, **kwargs: Any) -> None:
        from botocore.client import BaseClient

        hook = type(self)._hook
        aio = type(self)._aio
        type(self)._hook = type(self)._aio = None
        if hook is None:
            return
        hook.active = False
        if hook.predictor is not None:
            hook.predictor.shutdown()
        _unwrap(BaseClient, hook)
        if aio is not None:
            aio.remove()
