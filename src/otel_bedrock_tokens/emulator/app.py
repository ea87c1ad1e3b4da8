"""``BedrockEmulator``: a local ``bedrock-runtime`` that botocore cannot tell from the real one.

>>> with BedrockEmulator() as emulator:                      # doctest: +SKIP
...     client = emulator.client()
...     client.converse(modelId="us.anthropic.claude-sonnet-4-20250514-v1:0", messages=[...])
...     emulator.ledger.totals()["us.anthropic.claude-sonnet-4-20250514-v1:0"].output_tokens

One instance is one server on ``127.0.0.1`` (port 0 by default: the OS picks a free one, so
parallel tests never collide) with its own prompt cache, faults, settings and ledger.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from .cache import PromptCache
from .catalog import DEFAULT_OPAQUE_BACKING, Catalog
from .faults import Fault, FaultPlan
from .guardrails import BLOCKED_MESSAGE, Guardrails
from .ids import Ids
from .ledger import Ledger
from .server import EmulatorHTTPServer
from .service import Service, State
from .settings import Drift, Latency, Rules

DUMMY_CREDENTIALS = ("emulator", "emulator")

_session_lock = threading.Lock()
_shared_session: Any = None


def _botocore_session() -> Any:
    """One botocore session for every emulator client: loading the service model once saves ~50 ms
    per client (and per test)."""
    global _shared_session
    with _session_lock:
        if _shared_session is None:
            import botocore.session

            _shared_session = botocore.session.Session()
        return _shared_session


class BedrockEmulator:
    """A running (after :meth:`start` or ``with``) local Bedrock runtime.

    :param port: TCP port; ``0`` lets the OS choose (see :attr:`endpoint_url`).
    :param host: a loopback address; anything else is refused.
    :param aliases: opaque model id -> backing model id or family name
        (``{"arn:...:application-inference-profile/abc": "anthropic.claude-sonnet-4-20250514-v1:0"}``).
    :param default_backing: what unaliased opaque ids run (Claude 3.5 Haiku, Messages shape).
    :param output_tokens: typical reply length (each reply is this +-4 tokens, capped by max_tokens).
    :param cache_minimum: minimum cacheable prefix for every model (default: each model's own,
        1024-2048 tokens; ``0`` caches anything, handy in tests).
    :param latency: default latency for every call (seconds before the first byte, or a :class:`Latency`).
    :param count_tokens_accepts_profiles: let CountTokens take ``us.``-style profile ids.
    :param seed: seeds request ids and message ids (replies are seeded by the prompt itself).
    :param socket_timeout: idle / read timeout of every connection, in seconds.
    :param billing_fields: report what Bedrock added to responses in 2025 on every call: the served
        service tier (``serviceTier`` / ``X-Amzn-Bedrock-Service-Tier``, ``default`` when the request
        asked for none) and cache writes by TTL (``usage.cacheDetails``, Anthropic
        ``usage.cache_creation``). ``False`` answers like responses recorded before then.
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        aliases: Mapping[str, str] | None = None,
        default_backing: str = DEFAULT_OPAQUE_BACKING,
        output_tokens: int = 24,
        cache_minimum: int | None = None,
        latency: Latency | float | None = None,
        count_tokens_accepts_profiles: bool = False,
        seed: int = 0,
        socket_timeout: float = 30.0,
        billing_fields: bool = True,
    ) -> None:
        default_latency = Latency(latency) if isinstance(latency, (int, float)) else latency or Latency()
        self.state = State(
            catalog=Catalog(aliases, default_backing),
            cache=PromptCache(),
            faults=FaultPlan(),
            ledger=Ledger(),
            guardrails=Guardrails(),
            ids=Ids(seed),
            drift=Rules(Drift()),
            latency=Rules(default_latency),
            count_tokens_support=Rules[bool | None](None),
            output_tokens=output_tokens,
            cache_minimum=cache_minimum,
            count_tokens_accepts_profiles=count_tokens_accepts_profiles,
            billing_fields=billing_fields,
        )
        self.service = Service(self.state)
        self._host = host
        self._port = port
        self._socket_timeout = socket_timeout
        self._server: EmulatorHTTPServer | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> BedrockEmulator:
        if self._server is None:
            self._server = EmulatorHTTPServer(
                (self._host, self._port), self.service, self._control, self._socket_timeout
            )
            self._server.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout)

    def __enter__(self) -> BedrockEmulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it in a with block")
        return self._server.server_port

    @property
    def host(self) -> str:
        return self._host

    @property
    def endpoint_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    # --- state ------------------------------------------------------------------------------
    @property
    def output_tokens(self) -> int:
        """Typical reply length in tokens (each reply: this +-4, capped by the request's limit)."""
        return self.state.output_tokens

    @output_tokens.setter
    def output_tokens(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError("output_tokens must be at least 1")
        self.state.output_tokens = tokens

    @property
    def ledger(self) -> Ledger:
        return self.state.ledger

    @property
    def faults(self) -> FaultPlan:
        return self.state.faults

    @property
    def cache(self) -> PromptCache:
        return self.state.cache

    @property
    def guardrails(self) -> Guardrails:
        return self.state.guardrails

    def inject(
        self,
        fault: Fault | str,
        *,
        operation: str | Iterable[str] | None = None,
        model: str | None = None,
        times: int | None = 1,
        skip: int = 0,
    ) -> int:
        """Shorthand for ``faults.add``; ``fault`` may be a one-line spec (``"throttle"``)."""
        if isinstance(fault, str):
            parsed, placement = Fault.parse(fault)
            placement.setdefault("operation", operation)
            placement.setdefault("model", model)
            placement.setdefault("times", times)
            placement.setdefault("skip", skip)
            return self.faults.add(parsed, **placement)
        return self.faults.add(fault, operation=operation, model=model, times=times, skip=skip)

    def set_drift(self, model: str, *, offset: int = 0, factor: float = 1.0) -> None:
        """CountTokens for ``model`` answers ``round(true * factor) + offset``: a prediction error."""
        self.state.drift.set(Drift(offset, factor), model=model)

    def set_latency(
        self,
        first_byte: float = 0.0,
        per_token: float = 0.0,
        *,
        model: str | None = None,
        operation: str | Iterable[str] | None = None,
    ) -> None:
        """Seconds before the first byte and per output token (streams are paced by it)."""
        self.state.latency.set(Latency(first_byte, per_token), model=model, operation=operation)

    def alias(self, model_id: str, backing: str) -> None:
        """Serve ``model_id`` (typically an opaque ARN) as ``backing`` (model id or family name)."""
        self.state.catalog.alias(model_id, backing)

    def set_count_tokens_support(self, model: str, supported: bool) -> None:
        self.state.count_tokens_support.set(supported, model=model, operation="CountTokens")

    def reserve(self, model: str) -> None:
        """Give ``model`` (its foundation model id) a reservation: it then accepts the ``reserved``
        tier, which every other model refuses with ``Reservation not found.``"""
        _, spec = self.state.catalog.resolve(model)
        self.state.reservations.add(spec.model_id if spec is not None else model)

    def deny_topic(self, guardrail: str, word: str, message: str = BLOCKED_MESSAGE) -> None:
        self.state.guardrails.deny_topic(guardrail, word, message)

    def reset(self) -> None:
        """Forget the ledger, the prompt cache, the faults and the per-model settings."""
        state = self.state
        state.ledger.reset()
        state.cache.clear()
        state.faults.clear()
        state.drift.clear()
        state.latency.clear()
        state.count_tokens_support.clear()
        state.guardrails.clear()
        state.reservations.clear()

    # --- clients ----------------------------------------------------------------------------
    def client(
        self,
        *,
        retries: int = 0,
        read_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        region: str = "us-east-1",
        **config: Any,
    ) -> Any:
        """A real botocore ``bedrock-runtime`` client for this emulator, with dummy credentials.

        ``retries`` is botocore's retry count in ``standard`` mode (0: the first error reaches you).
        """
        from botocore.config import Config

        settings = Config(
            region_name=region,
            retries={"total_max_attempts": retries + 1, "mode": "standard"},
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            **config,
        )
        session = _botocore_session()
        with _session_lock:  # create_client is not thread-safe on a shared session
            return session.create_client(
                "bedrock-runtime",
                region_name=region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=DUMMY_CREDENTIALS[0],
                aws_secret_access_key=DUMMY_CREDENTIALS[1],
                config=settings,
            )

    # --- control endpoint (/_emulator/...) -----------------------------------------------------
    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Script a running emulator over HTTP (the CLI's emulator, from another process)."""
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            name = path.strip("/").split("?")[0]
            if (method, name) == ("GET", "health"):
                return 200, {"ok": True}
            if (method, name) == ("GET", "ledger"):
                return 200, self.ledger.to_dict()
            if (method, name) == ("GET", "faults"):
                return 200, {"faults": self.faults.rules()}
            if (method, name) == ("POST", "faults"):
                if "spec" in data:
                    return 200, {"id": self.faults.add_spec(str(data["spec"]))}
                fault = Fault.from_dict(data.pop("fault"))
                return 200, {"id": self.faults.add(fault, **data)}
            if (method, name) == ("DELETE", "faults"):
                self.faults.clear()
                return 200, {"ok": True}
            if (method, name) == ("POST", "reset"):
                self.reset()
                return 200, {"ok": True}
            if (method, name) == ("POST", "drift"):
                self.set_drift(
                    str(data["model"]),
                    offset=int(data.get("offset", 0)),
                    factor=float(data.get("factor", 1.0)),
                )
                return 200, {"ok": True}
            if (method, name) == ("POST", "latency"):
                self.set_latency(
                    float(data.get("first_byte", 0.0)),
                    float(data.get("per_token", 0.0)),
                    model=data.get("model"),
                    operation=data.get("operation"),
                )
                return 200, {"ok": True}
            if (method, name) == ("POST", "alias"):
                self.alias(str(data["model"]), str(data["backing"]))
                return 200, {"ok": True}
        except (ValueError, KeyError, TypeError) as error:
            return 400, {"message": str(error)}
        return 404, {"message": f"unknown control endpoint {method} /_emulator/{path}"}
