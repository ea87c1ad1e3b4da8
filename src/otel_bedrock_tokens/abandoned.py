"""Streams dropped unclosed: their spans are ended from a safe place, never from their finalizer.

A stream proxy's finalizer (a weakref callback) runs wherever the last reference goes away, and for a
stream caught in a reference cycle (an app that keeps the exception that broke its loop: frame ->
traceback -> frame) that is wherever the cyclic garbage collector happens to run: possibly inside
the OpenTelemetry SDK's own locked sections (a metric reader collecting, an aggregation in progress),
whose locks are not reentrant. Ending the span there deadlocks that thread on a lock it holds.

So the finalizer does one thing: :func:`abandon` appends the stream's state to a ``deque``, which is
atomic in CPython, takes no lock, calls no SDK and does no I/O. The span is then ended, with
``bedrock_tokens.stream.end=abandoned``, by whichever comes first:

- the next instrumented call, on the caller's thread before it starts (:func:`drain`; the lifecycle tests
  ``if ABANDONED:`` first, so the hot path pays one truth test of a deque);
- the reaper, a daemon thread that polls every :data:`REAP_INTERVAL` seconds (a finalizer cannot wake
  a thread: ``Event.set`` takes a lock). It is started from a normal code path, when a stream proxy is
  created (:func:`track`), runs only while some stream is open or queued, and exits after
  :data:`IDLE_POLLS` idle polls: ``uninstrument()`` leaves no thread behind for good (one that is
  still polling exits once the app's last open stream has ended). Forked children start their own;
- exit: :func:`_at_exit`, registered with ``atexit`` after the SDK providers' own handlers (so it runs
  before their shutdown exports), ends the queued spans and those of streams still open (the app will
  never finish them), as ``abandoned``. The finalizers themselves are not run at exit
  (``weakref.finalize.atexit`` is off).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from typing import Protocol

from ._logging import log_internal_error

logger = logging.getLogger(__name__)

#: Seconds between two polls of the reaper.
REAP_INTERVAL = 0.5
#: Polls with nothing open or queued after which the reaper exits (a new stream starts another).
IDLE_POLLS = 4


class Abandonable(Protocol):
    """What this module needs of a stream's state (``streams.StreamState``)."""

    def abandon(self) -> None:
        """End the span as abandoned (once; a no-op if it already ended). Never raises."""


#: States whose proxy was collected unclosed. Appended to by finalizers only, popped by :func:`drain`.
ABANDONED: deque[Abandonable] = deque()
#: States of the streams whose span has not ended yet (for the reaper's lifetime and for exit).
_open: set[Abandonable] = set()
_lock = threading.Lock()  # never taken by a finalizer: only by track() and the reaper
_reaper: threading.Thread | None = None


def abandon(state: Abandonable) -> None:
    """The finalizer of a stream proxy: hand the state over, nothing else (see the module docstring)."""
    ABANDONED.append(state)


def track(state: Abandonable) -> None:
    """A stream proxy was created (a normal code path): remember it and make sure the reaper runs."""
    with _lock:
        _open.add(state)
        if _reaper is None:
            _start_reaper()


def ended(state: Abandonable) -> None:
    """The stream's span has ended (whichever way)."""
    _open.discard(state)


def drain() -> None:
    """End the span of every abandoned stream queued so far. Called from safe places only: the start of
    an instrumented call, the reaper, exit. Never raises an ``Exception``."""
    while ABANDONED:
        try:
            state = ABANDONED.popleft()
        except IndexError:  # another thread drained it meanwhile
            return
        try:
            state.abandon()
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not end an abandoned stream's span")
        except BaseException:
            ABANDONED.appendleft(state)  # interrupted (KeyboardInterrupt): ended by a later drain
            raise


def _start_reaper() -> None:
    """Start the reaper (``_lock`` held) and put our exit handler after every one registered so far."""
    global _reaper
    thread = threading.Thread(target=_reap, name="bedrock-tokens-reaper", daemon=True)
    _reaper = thread
    try:
        thread.start()
    except RuntimeError:  # interpreter shutting down: exit ends what is left
        _reaper = None
    # The SDK providers register their shutdown with atexit when they are built, before any stream of
    # theirs exists: registered again now, ours runs first (atexit runs handlers last in, first out).
    atexit.unregister(_at_exit)
    atexit.register(_at_exit)


def _reap() -> None:
    global _reaper
    idle = 0
    while True:
        time.sleep(REAP_INTERVAL)
        drain()
        if _open or ABANDONED:
            idle = 0
            continue
        idle += 1
        if idle < IDLE_POLLS:
            continue
        with _lock:
            if _open or ABANDONED:
                idle = 0
                continue
            if _reaper is threading.current_thread():
                _reaper = None
            return


def _at_exit() -> None:
    """Before the SDK shuts down: end the queued spans, then those of streams still open."""
    try:
        drain()
        for state in list(_open):
            state.abandon()
    except Exception:
        log_internal_error(logger, "bedrock-tokens: could not end stream spans at exit")


def _after_fork_in_child() -> None:
    """The reaper thread does not survive a fork, and the lock may have been held by another thread."""
    global _lock, _reaper
    _lock = threading.Lock()
    _reaper = None
    if _open or ABANDONED:
        try:
            with _lock:
                _start_reaper()
        except Exception:
            log_internal_error(logger, "bedrock-tokens: could not start the reaper after fork")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
