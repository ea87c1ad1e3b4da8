"""One way to drive a call through every transport we instrument, so a behaviour is written once and
parametrized over the transport (the ``transport`` fixture in tests/conftest.py).

A ``Driver`` hides only how a client is made and how its results are awaited: botocore's sync client
returns values, aiobotocore's returns awaitables, run here on one event loop per test, each step
bounded by a timeout. ``driver.scenario`` runs a whole sequence of calls in one go instead (one
coroutine on aiobotocore, so the event loop never pauses between two steps, as in an app): the
scenario is a generator that yields each value the client returns and gets it back resolved, or
gets the exception raised at the ``yield``. Everything goes through the public API
(``BedrockTokensInstrumentor`` patches the real clients; the tests never touch our private adapter
classes), so the suites survive a rewrite of the internals. ``driver.resolve(body.read(5))`` is the
value on botocore, the awaited value on aiobotocore.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

from .replay import Interaction, make_client

#: Every awaited step of an aiobotocore test is bounded by this (seconds).
STEP_TIMEOUT = 60.0

TRANSPORTS = ("botocore", "aiobotocore")
#: A scenario never yields more often than this (every loop here is bounded).
MAX_STEPS = 100_000

#: ``scenario(raw_client)``: yields what the client returns, receives it resolved; returns a result.
Scenario = Callable[[Any], Generator[Any, Any, Any]]


class Client:
    """A client whose operations return plain values on every transport: ``client.converse(...)``
    is the response dict (or raises what the real client raises). ``raw`` is the real client."""

    def __init__(self, raw: Any, resolve: Callable[[Any], Any]) -> None:
        self.raw = raw
        self._resolve = resolve

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.raw, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._resolve(method(*args, **kwargs))

        return call


class Driver:
    """Drives calls through one transport. Subclasses: ``SyncDriver`` (botocore) and ``AioDriver``
    (aiobotocore)."""

    name: str

    def client(self, endpoint_url: str, retries: int = 0, read_timeout: float = 30.0) -> Any:
        """Context manager giving a ``Client`` for a loopback endpoint (retries off by default)."""
        raise NotImplementedError

    def resolve(self, value: Any) -> Any:
        """``value``, awaited first when the transport returned an awaitable."""
        raise NotImplementedError

    def events(self, stream: Any) -> list[Any]:
        """Every event of an event stream, read the way an app does."""
        raise NotImplementedError

    def first_event(self, stream: Any) -> Any:
        """The next event of an event stream (``StopIteration``/``StopAsyncIteration`` at its end)."""
        raise NotImplementedError

    def take(self, stream: Any, count: int | None = None) -> Any:
        """In a scenario: the first ``count`` events (all when ``None``), read with a ``for`` /
        ``async for`` loop left by ``break`` as an app does (the value, or an awaitable of it)."""
        raise NotImplementedError

    def patched_class(self) -> type:
        """The client class whose ``_make_api_call`` ``instrument()`` wraps for this transport."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the driver holds (the event loop)."""

    def scenario(
        self, endpoint_url: str, scenario: Scenario, retries: int = 0, read_timeout: float = 30.0
    ) -> Any:
        """Run ``scenario`` with a real client for ``endpoint_url``; its return value."""
        raise NotImplementedError

    def call_recorded(self, client: Client, interaction: Interaction) -> Any:
        """Issue the call that produced ``interaction`` (raises what the client raises)."""
        if interaction.operation == "InvokeModel":
            return client.invoke_model(modelId=interaction.model_id, body=interaction.request_body)
        if interaction.operation == "InvokeModelWithResponseStream":
            return client.invoke_model_with_response_stream(
                modelId=interaction.model_id, body=interaction.request_body
            )
        params = json.loads(interaction.request_body) if interaction.request_body else {}
        if interaction.operation == "Converse":
            return client.converse(modelId=interaction.model_id, **params)
        if interaction.operation == "ConverseStream":
            return client.converse_stream(modelId=interaction.model_id, **params)
        raise ValueError(interaction.operation)

    def consume(self, response: dict[str, Any]) -> list[Any]:
        """Read a response the way an app does: the whole body, or every event of the stream."""
        if "stream" in response:
            return self.events(response["stream"])
        body = response.get("body")
        if body is None:
            return []
        if hasattr(body, "read"):
            return [self.resolve(body.read())]
        return self.events(body)


class SyncDriver(Driver):
    """botocore's sync client (boto3)."""

    name = "botocore"

    @contextmanager
    def client(self, endpoint_url: str, retries: int = 0, read_timeout: float = 30.0) -> Iterator[Client]:
        raw = make_client(endpoint_url, max_attempts=retries + 1, read_timeout=read_timeout)
        try:
            yield Client(raw, self.resolve)
        finally:
            raw.close()

    def resolve(self, value: Any) -> Any:
        return value

    def take(self, stream: Any, count: int | None = None) -> Any:
        events: list[Any] = []
        if count == 0:
            return events
        for event in stream:
            events.append(event)
            if len(events) == count:
                break
        return events

    def patched_class(self) -> type:
        from botocore.client import BaseClient

        return BaseClient

    def events(self, stream: Any) -> list[Any]:
        return list(stream)

    def first_event(self, stream: Any) -> Any:
        return next(iter(stream))

    def scenario(
        self, endpoint_url: str, scenario: Scenario, retries: int = 0, read_timeout: float = 30.0
    ) -> Any:
        with self.client(endpoint_url, retries=retries, read_timeout=read_timeout) as client:
            steps = scenario(client.raw)
            try:
                value = next(steps)
                for _ in range(MAX_STEPS):
                    value = steps.send(value)
            except StopIteration as stop:
                return stop.value
            raise RuntimeError(f"scenario took more than {MAX_STEPS} steps")


class AioDriver(Driver):
    """aiobotocore's client, every step run on this driver's own event loop."""

    name = "aiobotocore"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def _run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, STEP_TIMEOUT))

    @contextmanager
    def client(self, endpoint_url: str, retries: int = 0, read_timeout: float = 30.0) -> Iterator[Client]:
        from .aio import aio_client

        manager = aio_client(endpoint_url, retries=retries, read_timeout=read_timeout)
        raw = self._run(manager.__aenter__())
        try:
            yield Client(raw, self.resolve)
        finally:
            self._run(manager.__aexit__(None, None, None))

    def take(self, stream: Any, count: int | None = None) -> Any:
        async def collect() -> list[Any]:
            events: list[Any] = []
            if count == 0:
                return events
            async for event in stream:
                events.append(event)
                if len(events) == count:
                    break
            return events

        return collect()

    def patched_class(self) -> type:
        from aiobotocore.client import AioBaseClient

        return AioBaseClient  # type: ignore[no-any-return]

    def resolve(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            return self._run(value)
        return value

    def events(self, stream: Any) -> list[Any]:
        async def collect() -> list[Any]:
            return [event async for event in stream]

        return list(self._run(collect()))

    def first_event(self, stream: Any) -> Any:
        return self._run(stream.__aiter__().__anext__())

    def scenario(
        self, endpoint_url: str, scenario: Scenario, retries: int = 0, read_timeout: float = 30.0
    ) -> Any:
        from .aio import aio_client

        async def drive() -> Any:
            async with aio_client(endpoint_url, retries=retries, read_timeout=read_timeout) as raw:
                steps = scenario(raw)
                value: Any = None
                error: BaseException | None = None
                for _ in range(MAX_STEPS):
                    try:
                        item = steps.send(value) if error is None else steps.throw(error)
                    except StopIteration as stop:
                        return stop.value
                    try:
                        value, error = (await item) if inspect.isawaitable(item) else item, None
                    except Exception as raised:
                        value, error = None, raised
                raise RuntimeError(f"scenario took more than {MAX_STEPS} steps")

        return self._run(drive())

    def close(self) -> None:
        """What ``asyncio.run`` does at its end: cancel the tasks still pending (a prediction the
        test did not wait for), let them finish, close the async generators, close the loop."""
        try:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self._run(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


def aio_available() -> bool:
    return importlib.util.find_spec("aiobotocore") is not None


def make_driver(name: str) -> Driver:
    if name == "botocore":
        return SyncDriver()
    if name == "aiobotocore":
        return AioDriver()
    raise ValueError(name)
