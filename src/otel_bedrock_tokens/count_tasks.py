"""The asyncio path's CountTokens calls (aiobotocore clients): tasks on the caller's event loop.

Each prediction is a task in a fresh context (like a pool thread's: the caller's span is not its
parent), kept referenced here (the loop holds only weak references), and at most ``workers`` run
CountTokens at once per loop, as on the pool. Also the helpers that treat a pool future and a task
alike from any thread (:func:`when_done`), since a call may end on another thread than its
prediction's (an abandoned aiobotocore stream is ended by the reaper thread or the next call).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Union

#: A prediction in flight: a thread pool future (botocore) or a task on the caller's loop (aiobotocore).
#: Both have done() / cancelled() / exception() / result() / add_done_callback(fn(future)).
PendingCount = Union["Future[int]", "asyncio.Task[int]"]


class CountTasks:
    """The CountTokens tasks in flight, and the per-loop bound on how many run at once."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self.after_fork_in_child()

    def after_fork_in_child(self) -> None:
        """Fresh state (also the initial one): the parent's loops and tasks are not the child's."""
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[int]] = set()
        self._limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, coroutine: Coroutine[Any, Any, int]) -> asyncio.Task[int] | None:
        """``coroutine`` as a task on the running loop, or ``None`` (closed) when there is none or
        it is shutting down."""
        try:
            loop = asyncio.get_running_loop()
            # A fresh context, like a pool thread's: the caller's span is not the prediction's parent.
            task: asyncio.Task[int] = contextvars.Context().run(loop.create_task, coroutine)
        except RuntimeError:
            coroutine.close()
            return None
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[int]) -> None:
        """Forget a finished task, and mark its error as seen: a prediction that failed after its
        call was settled (a ``before`` timeout, say) must not log "exception was never retrieved"."""
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()

    def limit(self) -> asyncio.Semaphore:
        """The running loop's bound: at most ``workers`` CountTokens calls at once, like the pool."""
        loop = asyncio.get_running_loop()
        with self._lock:
            limit = self._limits.get(loop)
            if limit is None:
                limit = self._limits[loop] = asyncio.Semaphore(self._workers)
            return limit


def when_done(future: PendingCount, callback: Callable[[PendingCount], None]) -> bool:
    """``future.add_done_callback(callback)``, safe from any thread: an asyncio task is not
    thread-safe, so its callback is added on its loop (and runs there); a pool future's runs on the
    worker that finished it (no lock held) or inline if already done. ``False`` when it can never
    run (the task's loop is closed)."""
    if isinstance(future, asyncio.Future):
        loop = future.get_loop()
        if asyncio._get_running_loop() is not loop:
            try:
                loop.call_soon_threadsafe(future.add_done_callback, callback)
            except RuntimeError:  # the loop is closed: the task will never finish
                return False
            return True
    future.add_done_callback(callback)
    return True


def cancelling() -> bool:
    """Whether the current task has a cancellation pending (``Task.cancelling``, Python 3.11+)."""
    task = asyncio.current_task()
    pending = getattr(task, "cancelling", None)
    return bool(pending()) if pending is not None else False
