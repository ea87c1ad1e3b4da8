"""The botocore transport: the adapter our layer on ``BaseClient._make_api_call`` calls, wrapt-style
(``wrapped, instance, args, kwargs``; the layer itself is in ``instrumentor``).

It only knows how to call botocore through and where the response's body or stream is; every step
of the call's life (span, prediction, budget guard, response facts, the single end) is the
:class:`.lifecycle.Lifecycle`'s, shared with every other transport. Calls to other services and
operations pass straight through after one dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .lifecycle import Lifecycle
from .operations import Operation
from .streams import StreamProxy
from .telemetry import Call


class BotocoreAdapter:
    """The wrapper for botocore clients of one ``instrument()``."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def __call__(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        lifecycle = self.lifecycle
        operation = lifecycle.operation_of(args, kwargs)
        if operation is None:
            return wrapped(*args, **kwargs)
        call = lifecycle.start(operation, instance, args[1])
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args)
        except BaseException as error:
            lifecycle.fail(call, error)
            raise
        return self._finish(call, operation, result)

    def _finish(self, call: Call, operation: Operation, result: Any) -> Any:
        lifecycle = self.lifecycle
        try:
            call.deactivate()
            if operation.stream_key is not None:
                return lifecycle.stream(call, operation, result, StreamProxy)
            response = operation.response(call.request, result)  # reads a botocore body in place
        except Exception:
            lifecycle.end_unrecorded(call)
            return result
        lifecycle.finish(call, operation, result, response)
        return result
