"""Fault injection: what goes wrong, for which operation and model, how many times.

Every fault is something real Bedrock (or the network in front of it) does: throttling, access
denied, validation errors, 5xx, a 200 whose body is not what it claims, an exception frame in the
middle of a stream, a stream that just stops, a slow first byte, a connection reset in the middle of
a body, a body cut short by an orderly close, extra latency. Tests script them through
:class:`FaultPlan`; the CLI and the control endpoint through the one-line spec :meth:`Fault.parse`
reads (``throttle,operation=Converse,times=2``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import COUNT_TOKENS_UNSUPPORTED, BedrockError
from .settings import STREAM_OPERATIONS, model_matches, operations_of

#: Fault kinds that only make sense on a stream.
STREAM_KINDS = frozenset({"stream_exception", "stream_error", "truncate"})

_ERROR_SHORTCUTS: dict[str, tuple[str, str | None]] = {
    "throttle": ("ThrottlingException", None),
    "access-denied": ("AccessDeniedException", None),
    "validation": ("ValidationException", None),
    "count-tokens-unsupported": ("ValidationException", COUNT_TOKENS_UNSUPPORTED),
    "server-error": ("InternalServerException", None),
    "unavailable": ("ServiceUnavailableException", None),
    "model-timeout": ("ModelTimeoutException", None),
    "model-not-ready": ("ModelNotReadyException", None),
    "model-error": ("ModelErrorException", None),
    "quota-exceeded": ("ServiceQuotaExceededException", None),
}
_KINDS = {
    "error": "error",
    "malformed": "malformed",
    "stream-exception": "stream_exception",
    "stream-error": "stream_error",
    "truncate": "truncate",
    "slow-first-byte": "slow_first_byte",
    "reset": "reset",
    "short-body": "short_body",
    "latency": "latency",
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of failure and its parameters. Build with the class methods."""

    kind: str
    #: ``error``/``stream_exception``/``stream_error``: the AWS error code (``ThrottlingException``).
    code: str | None = None
    message: str | None = None
    #: ``error``: HTTP status, when not the code's usual one (``server_error(503)``).
    status: int | None = None
    #: Stream faults: how many events the client receives first.
    after_events: int = 0
    #: ``reset`` / ``short_body``: how many body bytes the client receives first.
    after_bytes: int = 0
    #: ``slow_first_byte`` / ``latency``: seconds.
    seconds: float = 0.0
    #: ``truncate``: end inside a frame rather than between two.
    mid_frame: bool = False

    # --- constructors -----------------------------------------------------------------------
    @classmethod
    def error(cls, code: str, message: str | None = None, status: int | None = None) -> Fault:
        return cls("error", code=code, message=message, status=status)

    @classmethod
    def throttle(cls, message: str | None = None) -> Fault:
        return cls.error("ThrottlingException", message)

    @classmethod
    def access_denied(cls, message: str | None = None) -> Fault:
        return cls.error("AccessDeniedException", message)

    @classmethod
    def validation(cls, message: str) -> Fault:
        return cls.error("ValidationException", message)

    @classmethod
    def count_tokens_unsupported(cls) -> Fault:
        return cls.error("ValidationException", COUNT_TOKENS_UNSUPPORTED)

    @classmethod
    def server_error(cls, status: int = 500, message: str | None = None) -> Fault:
        code = "ServiceUnavailableException" if status == 503 else "InternalServerException"
        return cls.error(code, message, status)

    @classmethod
    def malformed_body(cls) -> Fault:
        """HTTP 200 whose body is cut short (JSON) or whose frame fails its CRC (streams)."""
        return cls("malformed")

    @classmethod
    def stream_exception(
        cls, after_events: int = 1, code: str = "ModelStreamErrorException", message: str | None = None
    ) -> Fault:
        """An exception frame after ``after_events`` events (botocore raises ``EventStreamError``)."""
        return cls("stream_exception", code=code, message=message, after_events=after_events)

    @classmethod
    def stream_error(
        cls, after_events: int = 1, code: str = "InternalFailure", message: str = "Internal failure"
    ) -> Fault:
        """An unmodeled ``:message-type: error`` frame."""
        return cls("stream_error", code=code, message=message, after_events=after_events)

    @classmethod
    def truncated_stream(cls, after_events: int = 1, mid_frame: bool = False) -> Fault:
        """The stream ends cleanly after ``after_events`` events, without its final usage event."""
        return cls("truncate", after_events=after_events, mid_frame=mid_frame)

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Fault:
        return cls("slow_first_byte", seconds=seconds)

    @classmethod
    def connection_reset(cls, after_bytes: int = 0) -> Fault:
        """TCP reset after the headers and ``after_bytes`` bytes of the body."""
        return cls("reset", after_bytes=after_bytes)

    @classmethod
    def short_body(cls, after_bytes: int = 0) -> Fault:
        """``after_bytes`` bytes of the body, then an orderly close: the body falls short of its
        ``Content-Length`` (or a stream of its last chunk) without a reset."""
        return cls("short_body", after_bytes=after_bytes)

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        return cls("latency", seconds=seconds)

    # --- derived ----------------------------------------------------------------------------
    def as_error(self) -> BedrockError:
        code = self.code or "InternalServerException"
        error = BedrockError.of(code[:1].upper() + code[1:], self.message)
        if self.status is not None:
            error.status = self.status
        return error

    def to_dict(self) -> dict[str, Any]:
        defaults = Fault("")
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name) or f.name == "kind"
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s): {sorted(unknown)}")
        fault = cls(**dict(data))
        if fault.kind not in _KINDS.values():
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        return fault

    # --- the one-line spec ------------------------------------------------------------------
    @staticmethod
    def parse(spec: str) -> tuple[Fault, dict[str, Any]]:
        """``KIND[,key=value...]`` -> (fault, placement) where placement holds ``operation``,
        ``model``, ``times`` and ``skip`` for :meth:`FaultPlan.add`.

        Kinds: ``throttle``, ``access-denied``, ``validation``, ``count-tokens-unsupported``,
        ``server-error``, ``unavailable``, ``model-timeout``, ``model-not-ready``, ``model-error``,
        ``quota-exceeded``, ``error`` (with ``code=``), ``malformed``, ``stream-exception``,
        ``stream-error``, ``truncate``, ``slow-first-byte``, ``reset``, ``short-body``, ``latency``.
        Keys: ``operation`` (``|``-separated), ``model``, ``times`` (a number or ``always``),
        ``skip``, ``code``, ``message``, ``status``, ``events``, ``bytes``, ``seconds``, ``mid_frame``.
        """
        head, *items = [part.strip() for part in spec.split(",")]
        options: dict[str, str] = {}
        for item in items:
            key, equals, value = item.partition("=")
            if not equals or not key:
                raise ValueError(f"fault option {item!r} is not key=value")
            options[key.strip()] = value.strip()
        if head in _ERROR_SHORTCUTS:
            code, message = _ERROR_SHORTCUTS[head]
            fault = Fault.error(options.pop("code", code), options.pop("message", message))
        elif head in _KINDS:
            fault = Fault(_KINDS[head])
        else:
            raise ValueError(
                f"unknown fault kind {head!r}; expected one of {', '.join([*_ERROR_SHORTCUTS, *_KINDS])}"
            )
        placement: dict[str, Any] = {}
        if "operation" in options:
            placement["operation"] = options.pop("operation").split("|")
        if "model" in options:
            placement["model"] = options.pop("model")
        if "times" in options:
            times = options.pop("times")
            placement["times"] = None if times == "always" else int(times)
        if "skip" in options:
            placement["skip"] = int(options.pop("skip"))
        converters: dict[str, tuple[str, Callable[[str], Any]]] = {
            "code": ("code", str),
            "message": ("message", str),
            "status": ("status", int),
            "events": ("after_events", int),
            "bytes": ("after_bytes", int),
            "seconds": ("seconds", float),
            "mid_frame": ("mid_frame", lambda v: v.lower() in ("1", "true", "yes")),
        }
        changes: dict[str, Any] = {}
        for key, value in options.items():
            if key not in converters:
                raise ValueError(f"unknown fault option {key!r}")
            name, convert = converters[key]
            changes[name] = convert(value)
        return replace(fault, **changes), placement


@dataclass(slots=True)
class FaultRule:
    id: int
    fault: Fault
    operations: frozenset[str] | None
    model: str | None
    #: Remaining uses; ``None`` = forever.
    times: int | None
    #: Matching calls to let through before the fault starts.
    skip: int
    fired: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.fault.to_dict(),
            "operations": sorted(self.operations) if self.operations is not None else None,
            "model": self.model,
            "times": self.times,
            "skip": self.skip,
            "fired": self.fired,
        }


class FaultPlan:
    """The scripted faults of one emulator; thread-safe; the first matching rule fires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fired = threading.Condition(self._lock)
        self._rules: list[FaultRule] = []
        self._fire_counts: dict[int, int] = {}
        self._next_id = 1

    def add(
        self,
        fault: Fault,
        *,
        operation: str | Iterable[str] | None = None,
        model: str | None = None,
        times: int | None = 1,
        skip: int = 0,
    ) -> int:
        """Fire ``fault`` on the next ``times`` matching calls (``None``: on every one), after letting
        ``skip`` of them through. ``model`` matches as in :func:`settings.model_matches`. Returns the
        rule id for :meth:`remove`."""
        operations = operations_of(operation)
        if fault.kind in STREAM_KINDS:
            operations = operations if operations is not None else STREAM_OPERATIONS
            if not operations <= STREAM_OPERATIONS:
                raise ValueError(f"a {fault.kind} fault only applies to stream operations")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for always)")
        with self._lock:
            rule = FaultRule(self._next_id, fault, operations, model, times, max(0, skip))
            self._next_id += 1
            self._rules.append(rule)
            return rule.id

    def add_spec(self, spec: str) -> int:
        fault, placement = Fault.parse(spec)
        return self.add(fault, **placement)

    def remove(self, rule_id: int) -> None:
        with self._lock:
            self._rules = [rule for rule in self._rules if rule.id != rule_id]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_dict() for rule in self._rules]

    def wait_fired(self, rule_id: int, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until rule ``rule_id`` has fired ``count`` times (``False`` on timeout): lets a test
        wait until, say, a slow call is in flight, without sleeping."""
        with self._fired:
            return self._fired.wait_for(lambda: self._fire_counts.get(rule_id, 0) >= count, timeout)

    def take(self, operation: str, model_id: str, base_model: str | None) -> Fault | None:
        """The fault for this call, if any (consumes one use of the rule)."""
        with self._lock:
            for rule in self._rules:
                if rule.operations is not None and operation not in rule.operations:
                    continue
                if not model_matches(rule.model, model_id, base_model):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.fired += 1
                self._fire_counts[rule.id] = rule.fired
                self._fired.notify_all()
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
                return rule.fault
        return None
