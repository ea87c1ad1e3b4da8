"""Metric points: token usage (input includes the cache), the project's cache instrument, duration,
common attributes and the advisory bucket boundaries."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .support.replay import RECORDINGS, Replayer, call_recorded, claude_body, load, synthetic, token_headers
from .support.telemetry import TelemetryCapture

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

TOKENS = "gen_ai.client.token.usage"
CACHE = "bedrock_tokens.client.cache.token.usage"
DURATION = "gen_ai.client.operation.duration"


def _invoke(replayer: Replayer, **usage: Any) -> None:
    """One InvokeModel whose token headers say ``usage`` (input, output, cache_read, cache_write)."""
    interaction = synthetic(claude_body(), headers=token_headers(**usage))
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)["body"].read()


def _by(points: list[Any], key: str) -> dict[str, float]:
    return {point.attributes[key]: point.sum for point in points}


def test_input_tokens_include_cache_read_and_write(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _invoke(replayer, input_tokens=10, output_tokens=5, cache_read=100, cache_write=1000)
    assert _by(instrumented.points(TOKENS), "gen_ai.token.type") == {"input": 1110, "output": 5}


def test_cache_points_for_read_and_write(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer, input_tokens=10, output_tokens=5, cache_read=100, cache_write=1000)
    assert _by(instrumented.points(CACHE), "bedrock_tokens.cache.type") == {"read": 100, "write": 1000}


def test_cache_write_only_gives_no_read_point(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer, input_tokens=4, output_tokens=50, cache_read=0, cache_write=18131)
    assert _by(instrumented.points(CACHE), "bedrock_tokens.cache.type") == {"write": 18131}


def test_cache_read_only_gives_no_write_point(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer, input_tokens=4, output_tokens=50, cache_read=18131, cache_write=0)
    assert _by(instrumented.points(CACHE), "bedrock_tokens.cache.type") == {"read": 18131}


def test_no_cache_points_when_the_cache_was_not_used(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _invoke(replayer, input_tokens=4, output_tokens=50, cache_read=0, cache_write=0)
    _invoke(replayer, input_tokens=4, output_tokens=50)
    assert instrumented.points(CACHE) == []


def test_recorded_prompt_cache_pair(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    """The recorded write-then-read pair: input points 18135 twice, one write and one read point."""
    interactions = load(
        RECORDINGS / "openllmetry" / "traces__test_prompt_caching__test_invoke_model_cache_tokens.yaml"
    )
    replayer.serve(*interactions)
    for interaction in interactions:
        call_recorded(replayer.client, interaction)["body"].read()
    (input_point,) = [p for p in instrumented.points(TOKENS) if p.attributes["gen_ai.token.type"] == "input"]
    assert (input_point.sum, input_point.count) == (2 * (4 + 18131), 2)
    assert _by(instrumented.points(CACHE), "bedrock_tokens.cache.type") == {"read": 18131, "write": 18131}


def test_token_points_carry_the_common_attributes(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer, input_tokens=10, output_tokens=5)
    port = int(replayer.endpoint_url.rsplit(":", 1)[1])
    for point in instrumented.points(TOKENS):
        attributes = dict(point.attributes)
        attributes.pop("gen_ai.token.type")
        assert attributes == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.request.model": "anthropic.claude-3-5-haiku-20241022-v1:0",
            "server.address": "127.0.0.1",
            "server.port": port,
        }


def test_duration_carries_the_common_attributes_without_error_type(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _invoke(replayer, input_tokens=10, output_tokens=5)
    (point,) = instrumented.points(DURATION)
    assert "error.type" not in point.attributes
    assert point.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert point.count == 1 and 0 < point.sum < 10


def test_duration_has_error_type_on_failure(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    (interaction,) = load(RECORDINGS / "otel-contrib" / "test_invoke_model_with_invalid_model.yaml")
    replayer.serve(interaction)
    with pytest.raises(ClientError):
        call_recorded(replayer.client, interaction)
    (point,) = instrumented.points(DURATION)
    assert point.attributes["error.type"] == "ValidationException"
    assert point.attributes["gen_ai.request.model"] == "does-not-exist"


def test_failed_call_records_no_token_points(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    (interaction,) = load(RECORDINGS / "otel-contrib" / "test_converse_with_invalid_model.yaml")
    replayer.serve(interaction)
    with pytest.raises(ClientError):
        call_recorded(replayer.client, interaction)
    assert instrumented.points(TOKENS) == []
    assert instrumented.points(CACHE) == []


def test_unknown_usage_records_no_token_points(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    """No headers and no usage in the body: nothing is made up, the duration is still there."""
    interaction = synthetic(b'{"outputs": [{"text": "x"}]}', headers=(("Content-Type", "application/json"),))
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)["body"].read()
    assert instrumented.points(TOKENS) == []
    assert len(instrumented.points(DURATION)) == 1


@pytest.mark.parametrize(
    ("metric", "unit", "bounds"),
    [
        (TOKENS, "{token}", TOKEN_BUCKETS),
        (CACHE, "{token}", TOKEN_BUCKETS),
        (DURATION, "s", DURATION_BUCKETS),
    ],
)
def test_advisory_buckets_and_units(
    metric: str, unit: str, bounds: tuple[float, ...], instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _invoke(replayer, input_tokens=10, output_tokens=5, cache_read=3)
    data = instrumented.reader.get_metrics_data()
    assert data is not None
    found = [
        m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == metric
    ]
    assert found and all(m.unit == unit for m in found)
    for point in (p for m in found for p in m.data.data_points):
        assert tuple(point.explicit_bounds) == bounds


def test_converse_tokens_include_cache(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    body = (
        b'{"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, '
        b'"stopReason": "end_turn", '
        b'"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 305, "cacheReadInputTokens": 200, '
        b'"cacheWriteInputTokens": 100}, "metrics": {"latencyMs": 10}}'
    )
    interaction = synthetic(
        body,
        operation="Converse",
        headers=(("Content-Type", "application/json"),),
        request_body=b'{"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}',
    )
    replayer.serve(interaction)
    call_recorded(replayer.client, interaction)
    assert _by(instrumented.points(TOKENS), "gen_ai.token.type") == {"input": 303, "output": 2}
    assert _by(instrumented.points(CACHE), "bedrock_tokens.cache.type") == {"read": 200, "write": 100}
