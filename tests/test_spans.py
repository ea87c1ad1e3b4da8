"""The span: name, kind, the attributes samplers see at start, server, request id, response facts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from otel_bedrock_tokens import BedrockTokensInstrumentor

from .support.replay import CLAUDE_MODEL, Replayer, call_recorded, claude_body, synthetic
from .support.telemetry import TelemetryCapture

CLAUDE_REQUEST = (
    b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, '
    b'"top_k": 40, "stop_sequences": ["END"], "messages": [{"role": "user", "content": "Hi"}]}'
)
CONVERSE_BODY = (
    b'{"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, '
    b'"stopReason": "max_tokens", '
    b'"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 10}}'
)
CONVERSE_REQUEST = (
    b'{"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"maxTokens": 20, '
    b'"temperature": 0.25, "topP": 0.5, "stopSequences": ["x", "y"]}, '
    b'"additionalModelRequestFields": {"top_k": 7}}'
)


class RecordingSampler(Sampler):
    """Samples everything and remembers the attributes each span had when it was sampled."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, SpanKind | None, dict[str, Any]]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.seen.append((name, kind, dict(attributes or {})))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RecordingSampler"


@pytest.fixture
def sampled(replayer: Replayer) -> Iterator[tuple[RecordingSampler, InMemorySpanExporter]]:
    sampler = RecordingSampler()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield sampler, exporter
    finally:
        instrumentor.uninstrument()


def _invoke(replayer: Replayer, model_id: str = CLAUDE_MODEL, request_body: bytes = CLAUDE_REQUEST) -> Any:
    interaction = synthetic(claude_body(), model_id=model_id, request_body=request_body)
    replayer.serve(interaction)
    result = call_recorded(replayer.client, interaction)
    result["body"].read()
    return result


def _converse(replayer: Replayer) -> Any:
    interaction = synthetic(
        CONVERSE_BODY,
        operation="Converse",
        headers=(("Content-Type", "application/json"), ("x-amzn-RequestId", "req-converse")),
        request_body=CONVERSE_REQUEST,
    )
    replayer.serve(interaction)
    return call_recorded(replayer.client, interaction)


def test_span_name_is_operation_and_model(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer)
    (span,) = instrumented.spans()
    assert span.name == f"chat {CLAUDE_MODEL}"


def test_text_completion_body_names_the_operation(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(
        replayer, request_body=b'{"prompt": "\\n\\nHuman: Hi\\n\\nAssistant:", "max_tokens_to_sample": 9}'
    )
    (span,) = instrumented.spans()
    assert span.name == f"text_completion {CLAUDE_MODEL}"


def test_span_kind_is_client(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer)
    (span,) = instrumented.spans()
    assert span.kind is SpanKind.CLIENT


def test_sampler_sees_name_kind_and_request_attributes(
    sampled: tuple[RecordingSampler, InMemorySpanExporter], replayer: Replayer
) -> None:
    sampler, _ = sampled
    _invoke(replayer)
    port = int(replayer.endpoint_url.rsplit(":", 1)[1])
    ((name, kind, attributes),) = sampler.seen
    assert (name, kind) == (f"chat {CLAUDE_MODEL}", SpanKind.CLIENT)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": CLAUDE_MODEL,
        "server.address": "127.0.0.1",
        "server.port": port,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 40.0,
        "gen_ai.request.stop_sequences": ("END",),
    }


def test_sampler_sees_converse_inference_config(
    sampled: tuple[RecordingSampler, InMemorySpanExporter], replayer: Replayer
) -> None:
    sampler, _ = sampled
    _converse(replayer)
    ((_, _, attributes),) = sampler.seen
    assert {k: v for k, v in attributes.items() if k.startswith("gen_ai.request.")} == {
        "gen_ai.request.model": CLAUDE_MODEL,
        "gen_ai.request.max_tokens": 20,
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.request.top_k": 7.0,
        "gen_ai.request.stop_sequences": ("x", "y"),
    }


def test_server_address_and_port_from_the_endpoint(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _invoke(replayer)
    (span,) = instrumented.spans()
    assert f"http://{span.attributes['server.address']}:{span.attributes['server.port']}" == (
        replayer.endpoint_url
    )


def test_aws_request_id(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    result = _invoke(replayer)
    (span,) = instrumented.spans()
    assert span.attributes["aws.request_id"] == result["ResponseMetadata"]["RequestId"] == "req-0001"


def test_converse_span_tokens_and_finish_reason(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _converse(replayer)
    (span,) = instrumented.spans()
    assert (
        span.attributes["gen_ai.usage.input_tokens"],
        span.attributes["gen_ai.usage.output_tokens"],
        tuple(span.attributes["gen_ai.response.finish_reasons"]),
        span.attributes["aws.request_id"],
    ) == (3, 2, ("max_tokens",), "req-converse")


def test_claude_response_id_and_model(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer)
    (span,) = instrumented.spans()
    assert (span.attributes["gen_ai.response.id"], span.attributes["gen_ai.response.model"]) == (
        "msg_bdrk_test",
        "claude-3-5-haiku-20241022",
    )


def test_no_deprecated_gen_ai_system(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer)
    (span,) = instrumented.spans()
    assert "gen_ai.system" not in span.attributes


def test_no_prompt_or_completion_content_by_default(
    instrumented: TelemetryCapture, replayer: Replayer
) -> None:
    _invoke(replayer)
    (span,) = instrumented.spans()
    assert not [value for value in span.attributes.values() if value in ("Hi", "Hello.")]
    assert span.events == ()


def test_span_is_not_left_current_after_the_call(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    before = trace.get_current_span()
    _invoke(replayer)
    assert trace.get_current_span() is before


def test_span_is_a_child_of_the_callers_span(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    tracer = instrumented.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("app work") as parent:
        _invoke(replayer)
    ours, _ = instrumented.spans()
    assert ours.parent is not None and ours.parent.span_id == parent.get_span_context().span_id


def test_successful_call_leaves_status_unset(instrumented: TelemetryCapture, replayer: Replayer) -> None:
    _invoke(replayer)
    (span,) = instrumented.spans()
    assert span.status.status_code is trace.StatusCode.UNSET
    assert "error.type" not in span.attributes
