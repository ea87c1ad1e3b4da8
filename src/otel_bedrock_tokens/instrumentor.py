"""``BedrockTokensInstrumentor``: the lifecycle of the patch on botocore, and of its asyncio twin on
aiobotocore when aiobotocore is installed.

Our layer on ``_make_api_call`` is a plain function, not a wrapt proxy. Other instrumentations (the
official botocore one) uninstrument with ``opentelemetry.instrumentation.utils.unwrap``, which reads
the attribute with ``getattr`` on the class: that binds every wrapt wrapper of the chain to ``None``,
and a wrapt wrapper of ours below theirs came back as a *bound* wrapper of ours, which they then set
on the class (calls kept going through our old layer, ``uninstrument()`` could not find it, and a new
``instrument()`` measured nothing). A function bound to ``None`` is the function itself, so whatever
they put back is exactly what was below them. A plain function is also cheaper per call than a wrapt
wrapper (no bound-wrapper object per call).

aiobotocore is never imported by us: one import callback (:func:`_on_aio_import`), registered with
wrapt once per process, applies the current instrumentation when the application imports
``aiobotocore.client`` (at once when it already has). wrapt cannot unregister such a callback, so it
holds no state: it reads :attr:`BedrockTokensInstrumentor._aio`, which ``uninstrument()`` clears;
instrument/uninstrument cycles leave nothing behind. A sync-only process with aiobotocore merely
installed pays nothing for it (importing aiobotocore costs some 300 ms), and one without it registers
nothing at all.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Collection
from types import FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ._logging import log_internal_error
from .botocore_adapter import BotocoreAdapter
from .lifecycle import Lifecycle
from .operations import OPERATIONS
from .settings import Settings
from .telemetry import Instruments

if TYPE_CHECKING:
    from .prediction import Predictor
    from .pricing import PriceBook
    from .settings import PredictionSettings

logger = logging.getLogger(__name__)

_AIO_PACKAGE = "aiobotocore"
_AIO_MODULE = "aiobotocore.client"
_AIO_CLASS = "AioBaseClient"
_METHOD = "_make_api_call"


#: Every wrapt proxy (in wrapt 2, FunctionWrapper is no longer an ObjectProxy).
_PROXY = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


def _sync_patch(adapter: Any) -> Callable[..., Any]:
    """Our layer on ``BaseClient._make_api_call``: calls ``adapter`` wrapt-style with what is below us
    (``__wrapped__``, read per call so that a layer can be spliced out beneath us)."""

    def _make_api_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return adapter(MethodType(_make_api_call.__wrapped__, self), self, args, kwargs)  # type: ignore[attr-defined]

    return _make_api_call


def _async_patch(adapter: Any) -> Callable[..., Any]:
    """Our layer on ``AioBaseClient._make_api_call``: a coroutine function like the method it
    replaces (``inspect.iscoroutinefunction`` stays true); the adapter returns the coroutine to await."""

    async def _make_api_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await adapter(MethodType(_make_api_call.__wrapped__, self), self, args, kwargs)  # type: ignore[attr-defined]

    return _make_api_call


#: How a function of ours is told from any other: by its code object, which no one else's shares.
_PATCH_CODES = frozenset(make(None).__code__ for make in (_sync_patch, _async_patch))


def _is_patch(obj: object) -> bool:
    return type(obj) is FunctionType and obj.__code__ in _PATCH_CODES


def _is_layer(obj: object) -> bool:
    """A layer of a wrapper chain whose ``__wrapped__`` can be replaced: a wrapt proxy or ours."""
    return isinstance(obj, _PROXY) or _is_patch(obj)


def _make_patch(below: Any, adapter: Any, is_async: bool) -> Any:
    patch: Any = (_async_patch if is_async else _sync_patch)(adapter)
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(patch, name, getattr(below, name, getattr(patch, name)))
    patch.__wrapped__ = below
    #: The adapter, under the name wrapt gives a wrapper's: tools that read wrapt chains read ours.
    patch._self_wrapper = adapter
    return patch


def _find_our_wrapper(outer: Any, adapter: object) -> tuple[Any, Any] | None:
    """Walk a chain of wrappers; return (the layer whose ``__wrapped__`` is ours or ``None``, ours)."""
    parent = None
    current = outer
    for _ in range(32):  # chains are short; never loop forever on a strange object
        if _is_patch(current) and current._self_wrapper is adapter:
            return parent, current
        if not _is_layer(current):
            return None
        parent, current = current, current.__wrapped__
    return None


def _wrap_innermost(cls: Any, adapter: Any, is_async: bool = False) -> None:
    """Put our layer, calling ``adapter``, on ``cls._make_api_call`` *below* any wrappers already there.

    Other instrumentations (the official botocore one) uninstrument by replacing the attribute with
    the outermost wrapper's ``__wrapped__``. Were we on top of them, their ``uninstrument()`` would
    remove us and leave them patched for good; below them, it removes exactly their own layer.
    """
    current = cls.__dict__.get(_METHOD)
    innermost = None
    for _ in range(32):
        if not _is_layer(current):
            break
        innermost, current = current, current.__wrapped__
    if not callable(current):
        raise TypeError(f"{cls.__name__}.{_METHOD} is not a function: {current!r}")
    patch = _make_patch(current, adapter, is_async)
    if innermost is None:
        setattr(cls, _METHOD, patch)
    else:
        innermost.__wrapped__ = patch


def _unwrap(cls: Any, adapter: object) -> None:
    """Remove our layer (the one calling ``adapter``) from ``cls._make_api_call``."""
    found = _find_our_wrapper(cls.__dict__.get(_METHOD), adapter)
    if found is None:
        return  # already gone; the inactive adapter would pass straight through anyway
    parent, ours = found
    if parent is None:
        setattr(cls, _METHOD, ours.__wrapped__)
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
    """The aiobotocore half of the current ``instrument()``: applied when ``aiobotocore.client`` is
    imported (by :func:`_on_aio_import`), or at once when it already is."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.applied: Any = None  # the AioBotocoreAdapter, once wrapped
        self.target: Any = None  # AioBaseClient

    def apply(self, module: ModuleType) -> None:
        if self.applied is not None:
            return
        try:
            from .aiobotocore_adapter import AioBotocoreAdapter

            aio_adapter = AioBotocoreAdapter(self.lifecycle)
            target = getattr(module, _AIO_CLASS)
            _wrap_innermost(target, aio_adapter, is_async=True)
            self.applied, self.target = aio_adapter, target
        except Exception:
            # An aiobotocore too different from the one we know: sync clients are still measured.
            log_internal_error(logger, "bedrock-tokens: could not instrument aiobotocore", logging.WARNING)

    def remove(self) -> None:
        if self.applied is not None:
            _unwrap(self.target, self.applied)
            self.applied = self.target = None


#: Whether :func:`_on_aio_import` is registered with wrapt (once per process: it cannot be removed).
_aio_import_watch_registered = False


def _on_aio_import(module: ModuleType) -> None:
    """The one import callback of the process (registered with wrapt): applies the aiobotocore half
    of whatever instrumentation is current when the application imports ``aiobotocore.client``
    (none: nothing)."""
    aio = BedrockTokensInstrumentor._aio
    if aio is not None:
        aio.apply(module)


def _arm_aio(aio: _AioPatch) -> None:
    """Apply ``aio`` now if aiobotocore is imported, else when it is."""
    global _aio_import_watch_registered
    module = sys.modules.get(_AIO_MODULE)
    if module is not None:
        aio.apply(module)
    elif not _aio_import_watch_registered:
        _aio_import_watch_registered = True
        wrapt.register_post_import_hook(_on_aio_import, _AIO_MODULE)


class _HttpxHalf:
    """The httpx/httpx2 half of the current ``instrument()`` (see :mod:`.httpx_adapter`): applied
    to each package when the application imports it, or at once when it already has. The adapter
    module (and the wire readers) are imported only then."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.patch: Any = None  # the HttpxPatch, once a package is patched

    def apply(self, module: ModuleType) -> None:
        try:
            if self.patch is None:
                from .httpx_adapter import HttpxPatch

                self.patch = HttpxPatch(self.lifecycle)
            self.patch.apply(module)
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not instrument httpx", logging.WARNING)

    def remove(self) -> None:
        if self.patch is not None:
            self.patch.remove()
            self.patch = None


#: The httpx packages whose post-import hook is registered (once per process: it cannot be removed).
_httpx_import_hooks: set[str] = set()
_HTTPX_PACKAGES = ("httpx", "httpx2")


def _on_httpx_import(module: ModuleType) -> None:
    """Post-import hook of ``httpx`` and ``httpx2``: applies the current instrumentation, if any."""
    half = BedrockTokensInstrumentor._httpx
    if half is not None:
        half.apply(module)


def _arm_httpx(half: _HttpxHalf) -> None:
    """Apply ``half`` to each httpx package now if imported, else when it is (installed ones only)."""
    for package in _HTTPX_PACKAGES:
        module = sys.modules.get(package)
        if module is not None:
            half.apply(module)
        elif package not in _httpx_import_hooks and _installed(package):
            _httpx_import_hooks.add(package)
            wrapt.register_post_import_hook(_on_httpx_import, package)


def _predictor(settings: PredictionSettings) -> Predictor:
    """A :class:`Predictor`, importing :mod:`.prediction` only now: with ``count_tokens="off"`` (the
    default) it is never imported, which keeps it out of the cold start."""
    from .prediction import Predictor

    return Predictor(settings)


def _price_book(config: Settings) -> PriceBook | None:
    """The price book of this ``instrument()``, or ``None`` (cost off) when nothing can price a call:
    neither genai-prices installed (looked up, not imported) nor a user price file. Only a price
    book imports :mod:`.cost` and :mod:`.pricing`."""
    if config.prices is None and not _installed("genai_prices"):
        return None
    from .cost import price_book_for

    return price_book_for(config.prices)


class BedrockTokensInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Spans and metrics with the exact tokens Bedrock bills, for every ``bedrock-runtime`` call.

    ``instrument(tracer_provider=None, meter_provider=None, request_hook=None, response_hook=None)``;
    see the README for every setting and its ``OTEL_BEDROCK_TOKENS_*`` variable.
    """

    _adapter: BotocoreAdapter | None = None
    _aio: _AioPatch | None = None
    _httpx: _HttpxHalf | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("botocore >= 1.34",)

    def _instrument(self, **kwargs: Any) -> None:
        # Explicit instrument(): a bad setting raises. Zero-code: logged, that setting's default.
        config = Settings.load(kwargs, lenient=_loaded_by_auto_instrumentation())
        predictor = _predictor(config.prediction) if config.prediction.mode != "off" else None
        # Cost is on when genai-prices is installed (not imported here) or the user priced models.
        price_book = _price_book(config)
        if predictor is not None:
            predictor.price_book = price_book
        lifecycle = Lifecycle(
            Instruments(kwargs.get("tracer_provider"), kwargs.get("meter_provider"), price_book),
            OPERATIONS,
            request_hook=config.request_hook,
            response_hook=config.response_hook,
            chunk_timing=config.chunk_timing,
            predictor=predictor,
        )
        adapter = BotocoreAdapter(lifecycle)
        from botocore.client import BaseClient

        _wrap_innermost(BaseClient, adapter)
        type(self)._adapter = adapter
        if _installed(_AIO_PACKAGE):
            aio = type(self)._aio = _AioPatch(lifecycle)
            _arm_aio(aio)
        half = type(self)._httpx = _HttpxHalf(lifecycle)
        _arm_httpx(half)

    def wait_for_predictions(self, timeout: float = 5.0) -> bool:
        """Wait until every CountTokens prediction in flight has been recorded (before exporting
        metrics at shutdown, say). ``True`` when none is left; ``False`` on timeout."""
        adapter = type(self)._adapter
        if adapter is None or adapter.lifecycle.predictor is None:
            return True
        return adapter.lifecycle.predictor.wait_idle(timeout)

    async def wait_for_predictions_async(self, timeout: float = 5.0) -> bool:
        """:meth:`wait_for_predictions` for asyncio code: awaits instead of blocking the event loop
        (whose tasks are the predictions in flight for aiobotocore clients)."""
        adapter = type(self)._adapter
        if adapter is None or adapter.lifecycle.predictor is None:
            return True
        return await adapter.lifecycle.predictor.wait_idle_async(timeout)

    def _uninstrument(self, **kwargs: Any) -> None:
        from botocore.client import BaseClient

        adapter = type(self)._adapter
        aio = type(self)._aio
        half = type(self)._httpx
        type(self)._adapter = type(self)._aio = type(self)._httpx = None
        if half is not None:
            half.remove()
        if adapter is None:
            return
        lifecycle = adapter.lifecycle
        lifecycle.active = False
        if lifecycle.predictor is not None:
            lifecycle.predictor.shutdown()
        _unwrap(BaseClient, adapter)
        if aio is not None:
            aio.remove()
