"""Fixtures only (helpers live in tests/support/): an SDK tracer/meter with in-memory exporters and
the instrumentor on them; plus the hook that runs ``slow`` tests first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from otel_bedrock_tokens import BedrockTokensInstrumentor

from .support.replay import Replayer, replay_server
from .support.telemetry import TelemetryCapture, make_telemetry
from .support.transports import TRANSPORTS, Driver, aio_available, make_driver

# Deterministic property tests with no per-example deadline: a deadline is a timed assertion, and on a
# loaded 2-core machine examples that make a loopback HTTP call exceed it (seen: 328 ms against 200).
settings.register_profile("otel-bedrock-tokens", deadline=None, derandomize=True)
settings.load_profile("otel-bedrock-tokens")


@pytest.fixture
def telemetry() -> TelemetryCapture:
    return make_telemetry()


@pytest.fixture
def make_instrumentor(telemetry: TelemetryCapture) -> Iterator[Any]:
    """``make(**settings)``: an instrumentor on ``telemetry`` with those settings; all removed after
    the test."""
    made: list[BedrockTokensInstrumentor] = []

    def make(**settings: Any) -> BedrockTokensInstrumentor:
        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **settings
        )
        made.append(instrumentor)
        return instrumentor

    yield make
    for instrumentor in made:
        instrumentor.uninstrument()


@pytest.fixture
def instrumented(telemetry: TelemetryCapture) -> Iterator[TelemetryCapture]:
    """The instrumentor active on ``telemetry`` for the test, removed afterwards."""
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        yield telemetry
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def replayer() -> Iterator[Replayer]:
    with replay_server() as server:
        yield server


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """A ``Driver`` for each transport we instrument (botocore sync, aiobotocore): a test using it
    states one behaviour once and runs on every transport."""
    if request.param == "aiobotocore" and not aio_available():
        pytest.skip("aiobotocore is not installed")
    driver = make_driver(request.param)
    try:
        yield driver
    finally:
        driver.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the ``slow`` tests first (stable order otherwise). Under pytest-xdist every worker collects
    this same order and the scheduler hands tests out in it, so the long ones start while the many
    short ones fill in around them, instead of one long test finishing alone at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
