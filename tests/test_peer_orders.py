"""Every order of instrument / uninstrument of ours and of the official botocore instrumentation
(``opentelemetry-instrumentation-botocore``), then every order again (re-instrumenting either or
both): after each step a call gives exactly one span of ours when ours is on and none when off, the
peer's span exists iff the peer is on, and at the end botocore's (and aiobotocore's)
``_make_api_call`` is the very function object it was.

The peer uninstruments with ``opentelemetry.instrumentation.utils.unwrap``, which reads the attribute
with ``getattr`` on the class: that *binds* every wrapt wrapper of the chain to ``None`` and puts back
the outermost one's ``__wrapped__``, so whatever sits below the peer must come back from that binding
as itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.endpoint import Endpoint
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator

from .support.telemetry import TelemetryCapture

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Who wraps whom?"}]}]
OUR_SCOPE = "otel_bedrock_tokens"
PEER_SCOPE = "opentelemetry.instrumentation.botocore"
EVENTS = ("ours.instrument", "ours.uninstrument", "peer.instrument", "peer.uninstrument")


def _valid(order: tuple[str, ...]) -> bool:
    """Each library instruments before it uninstruments."""
    return all(
        order.index(f"{name}.instrument") < order.index(f"{name}.uninstrument") for name in ("ours", "peer")
    )


ORDERS = [order for order in itertools.permutations(EVENTS) if _valid(order)]
ORIGINAL_MAKE_API_CALL = BaseClient.__dict__["_make_api_call"]
ORIGINAL_PREPARE_REQUEST = Endpoint.__dict__["prepare_request"]


def _id(order: tuple[str, ...]) -> str:
    return ",".join(event.replace("instrument", "i").replace("uni", "u") for event in order)


@pytest.fixture(scope="module")
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


def _restore(peer: Any, cls: Any, original: Any) -> None:
    for instrumentor in (BedrockTokensInstrumentor(), peer):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    cls._make_api_call = original
    Endpoint.prepare_request = ORIGINAL_PREPARE_REQUEST


def _owners(telemetry: TelemetryCapture) -> list[str]:
    owners = []
    for span in telemetry.spans():
        scope = span.instrumentation_scope.name
        owners.append(
            "ours" if scope.startswith(OUR_SCOPE) else "peer" if scope.startswith(PEER_SCOPE) else scope
        )
    return sorted(owners)


def _play(
    steps: tuple[str, ...], peer: Any, telemetry: TelemetryCapture, call: Callable[[], None]
) -> list[tuple[str, list[str], list[str]]]:
    """Apply each step, call once, and return (step, expected owners, seen owners) for every step."""
    instrumentors = {"ours": BedrockTokensInstrumentor(), "peer": peer}
    on = {"ours": False, "peer": False}
    seen = []
    for step in steps:
        name, action = step.split(".")
        if action == "instrument":
            instrumentors[name].instrument(
                tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
            )
        else:
            instrumentors[name].uninstrument()
        on[name] = action == "instrument"
        telemetry.exporter.clear()
        call()
        expected = sorted(owner for owner in ("ours", "peer") if on[owner])
        seen.append((step, expected, _owners(telemetry)))
    return seen


@pytest.mark.parametrize("second", ORDERS, ids=_id)
@pytest.mark.parametrize("first", ORDERS, ids=_id)
def test_every_order_twice_keeps_both_working_and_restores_botocore(
    first: tuple[str, ...], second: tuple[str, ...], emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    client = emulator.client()
    peer = BotocoreInstrumentor()
    try:
        seen = _play(
            first + second, peer, telemetry, lambda: client.converse(modelId=CLAUDE, messages=MESSAGES)
        )
        final = BaseClient.__dict__["_make_api_call"]
    finally:
        _restore(peer, BaseClient, ORIGINAL_MAKE_API_CALL)
    assert [(step, got) for step, _, got in seen] == [(step, want) for step, want, _ in seen]
    assert final is ORIGINAL_MAKE_API_CALL


@pytest.mark.parametrize("order", ORDERS, ids=_id)
def test_every_order_with_the_aiobotocore_peer_restores_aiobotocore(
    order: tuple[str, ...], emulator: BedrockEmulator, telemetry: TelemetryCapture
) -> None:
    pytest.importorskip("aiobotocore")
    from aiobotocore.client import AioBaseClient
    from opentelemetry.instrumentation.botocore import AiobotocoreInstrumentor

    from .support.aio import aio_client, run

    original = AioBaseClient.__dict__["_make_api_call"]

    def call() -> None:
        async def main() -> None:
            async with aio_client(emulator.endpoint_url) as client:
                await client.converse(modelId=CLAUDE, messages=MESSAGES)

        run(main())

    peer = AiobotocoreInstrumentor()
    try:
        seen = _play(order + order, peer, telemetry, call)
        final = AioBaseClient.__dict__["_make_api_call"]
    finally:
        _restore(peer, AioBaseClient, original)
    assert [(step, got) for step, _, got in seen] == [(step, want) for step, want, _ in seen]
    assert final is original
