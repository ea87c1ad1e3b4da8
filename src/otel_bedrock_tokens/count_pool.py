"""The sync path's CountTokens workers (botocore clients): a small thread pool, fork-safe, and the
``before-send`` handler that starts a ``parallel`` prediction when the caller's request is sent.

The pool is started on first use and shut down by ``uninstrument()``. A forked child (``os.fork``,
multiprocessing's fork start method, gunicorn ``--preload``, Celery prefork) inherits none of its
threads: :meth:`CountPool.after_fork_in_child` forgets the parent's executor and lock, and this
module's at-fork hook gives the child fresh thread-local and registry state.

Why start at send time: preparing and signing a CountTokens request costs the worker about a
millisecond of CPU. Started at call start, that competes for the GIL with the caller's own
serialising and signing and shows in the caller's wall time; started from ``before-send``, it
overlaps the caller's wait for Bedrock instead. The handler is one module-level function, registered
first (so a handler that answers the request itself, a stub, cannot skip ours) under one constant id:
at most one per client, however many ``instrument()`` cycles it lives through, and taken off again
by :func:`detach_send_handlers` when the last predictor shuts down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._logging import log_internal_error

logger = logging.getLogger(__name__)

#: The botocore event ``parallel`` mode waits for, and the one id our handler is registered under.
_SEND_EVENT = "before-send.bedrock-runtime"
_SEND_HANDLER_ID = "otel-bedrock-tokens-count"


class CountPool:
    """A bounded thread pool for CountTokens calls, started on the first :meth:`submit`."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._closed = False  # shut down: no pool is ever started again
        self._fresh_process_state()

    def _fresh_process_state(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., int], *args: Any) -> Future[int] | None:
        """``fn(*args)`` on a worker, or ``None`` once shut down (also when that happens meanwhile)."""
        with self._lock:
            if self._closed:
                return None
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="bedrock-tokens-count"
                )
            executor = self._executor
        try:
            return executor.submit(fn, *args)
        except RuntimeError:  # shut down by uninstrument() meanwhile
            return None

    def shutdown(self) -> None:
        """Stop the workers without waiting; queued calls are cancelled (their predictions settle
        as errors)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def after_fork_in_child(self) -> None:
        """The parent's worker threads and lock owners did not survive the fork: start afresh."""
        self._fresh_process_state()


# --- send-time release: process-wide, since botocore handlers are per client, not per predictor ---

#: ``.release``: this thread's deferred CountTokens start, run at send time.
_deferred = threading.local()
#: Guards the client registry.
_clients_lock = threading.Lock()
#: Clients whose event system carries our send handler, so that shutdown can take it off again.
_clients_with_handler: weakref.WeakSet[Any] = weakref.WeakSet()


def attach_send_handler(client: Any) -> None:
    """Put our send handler on ``client`` once (the check is lock-free on the hot path)."""
    if client in _clients_with_handler:
        return
    with _clients_lock:
        client.meta.events.register_first(_SEND_EVENT, _release_on_send, unique_id=_SEND_HANDLER_ID)
        _clients_with_handler.add(client)


def release_at_send(release: Callable[[], None]) -> None:
    """Run ``release`` when this thread's next request is sent (the handler must be attached)."""
    _deferred.release = release


def forget_release(release: Callable[[], None]) -> None:
    """The call ended before its request was sent: ``release`` is not run."""
    if getattr(_deferred, "release", None) is release:
        _deferred.release = None


def _release_on_send(**_: Any) -> None:
    """The botocore ``before-send`` handler (caller's thread): run this thread's deferred start,
    whichever predictor it belongs to. Without one (no call of ours in flight on this thread, or
    nothing instrumented any more) it returns at once."""
    try:  # inside botocore's send path: nothing may escape into the caller's request
        release: Callable[[], None] | None = getattr(_deferred, "release", None)
        if release is None:
            return
        _deferred.release = None
        release()
    except Exception:
        log_internal_error(logger, "bedrock-tokens: could not start a prediction at send time")


def detach_send_handlers() -> None:
    """Take our send handler off every client that carries it: an uninstrumented client keeps
    nothing of ours."""
    with _clients_lock:
        for client in list(_clients_with_handler):
            with contextlib.suppress(Exception):
                client.meta.events.unregister(_SEND_EVENT, _release_on_send, unique_id=_SEND_HANDLER_ID)
        _clients_with_handler.clear()


def _after_fork_in_child() -> None:
    """``os.register_at_fork`` hook: fresh thread-local state and lock in a forked child."""
    global _deferred, _clients_lock
    try:
        _deferred = threading.local()
        _clients_lock = threading.Lock()
    except Exception:
        log_internal_error(logger, "bedrock-tokens: could not reset the CountTokens pool after fork")


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
