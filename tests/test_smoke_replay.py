from __future__ import annotations

from .support.replay import RECORDINGS, Replayer, call_recorded, load
from .support.telemetry import TelemetryCapture


def test_prompt_cache_recording_reports_cache_inclusive_input(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    interactions = load(RECORDINGS / "openllmetry" / "traces__test_anthropic__test_prompt_cache.yaml")
    replayer.serve(*interactions)
    for interaction in interactions:
        call_recorded(replayer.client, interaction)["body"].read()
    first, second = instrumented.spans()
    assert first.attributes["gen_ai.usage.input_tokens"] == 4 + 18131
    assert second.attributes["gen_ai.usage.cache_read.input_tokens"] == 18131
