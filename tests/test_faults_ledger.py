"""Fault injection through the emulator, botocore retries on: the telemetry accounts for exactly what
the emulator billed. Nothing lost, nothing double-counted.

Every span carries ``aws.request_id`` and every ledger entry its request id, so each call is matched
to what the emulator served, one to one:

- a call the ledger billed and whose answer reached the client has exactly one span whose usage
  attributes equal the ledger entry (input includes cache reads and writes);
- a span that is not marked ``bedrock_tokens.stream.incomplete`` and has usage belongs to a billed
  entry (we never invent usage);
- the token metric sums equal the sums of the spans' usage attributes (no point recorded twice),
  and, over the calls the ledger billed, the ledger's totals;
- the only billed entries without a span are attempts the client abandoned (a read timeout that
  botocore retried: the emulator still wrote, and billed, the late answer).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.emulator import BedrockEmulator, Fault, LedgerEntry

from .support.telemetry import TelemetryCapture

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-micro-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
OPERATIONS = ("InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream")
STREAMS = ("InvokeModelWithResponseStream", "ConverseStream")
TOKENS = "gen_ai.client.token.usage"
CACHE = "bedrock_tokens.client.cache.token.usage"
SCOPE = "otel_bedrock_tokens.telemetry"
RETRIES = 2  # total_max_attempts = 3, standard mode

INPUT = "gen_ai.usage.input_tokens"
OUTPUT = "gen_ai.usage.output_tokens"
CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE = "gen_ai.usage.cache_creation.input_tokens"
REQUEST_ID = "aws.request_id"
RETRY_ATTEMPTS = "bedrock_tokens.retry_attempts"
INCOMPLETE = "bedrock_tokens.stream.incomplete"
ERROR_TYPE = "error.type"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retry backoff waits up to 1-2 s with jitter; the attempts are what is tested."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    # A small cache minimum so the repeated system prompts below read and write the prompt cache.
    with BedrockEmulator(cache_minimum=16) as running:
        yield running


@pytest.fixture
def on(telemetry: TelemetryCapture) -> Iterator[TelemetryCapture]:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        yield telemetry
    finally:
        instrumentor.uninstrument()


def invoke_body(model: str, text: str) -> str:
    if model.startswith("anthropic."):
        return json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 64,
                "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": text}],
            }
        )
    if model.startswith("amazon.nova"):
        return json.dumps({"messages": [{"role": "user", "content": [{"text": text}]}]})
    if model.startswith("meta."):
        return json.dumps({"prompt": text, "max_gen_len": 64})
    return json.dumps({"prompt": f"<s>[INST] {text} [/INST]", "max_tokens": 64})


SYSTEM = "You are a careful assistant. Answer in one short sentence. " * 4


def converse_kwargs(model: str, text: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "modelId": model,
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": {"maxTokens": 64},
    }
    if model == HAIKU:
        kwargs["system"] = [{"text": SYSTEM}, {"cachePoint": {"type": "default"}}]
    return kwargs


@dataclass
class Outcome:
    operation: str
    ok: bool
    error: str | None = None
    events: int = 0


def call(client: Any, operation: str, model: str, text: str) -> Outcome:
    """One call as an app makes it (reads the body / the whole stream); what the app met."""
    try:
        if operation == "InvokeModel":
            client.invoke_model(modelId=model, body=invoke_body(model, text))["body"].read()
            return Outcome(operation, True)
        if operation == "Converse":
            client.converse(**converse_kwargs(model, text))
            return Outcome(operation, True)
        if operation == "InvokeModelWithResponseStream":
            stream = client.invoke_model_with_response_stream(modelId=model, body=invoke_body(model, text))
            return Outcome(operation, True, events=sum(1 for _ in stream["body"]))
        stream = client.converse_stream(**converse_kwargs(model, text))
        return Outcome(operation, True, events=sum(1 for _ in stream["stream"]))
    except Exception as error:  # whatever the app meets; the tests say which are expected
        assert type(error).__module__.split(".")[0] in ("botocore", "urllib3"), repr(error)
        return Outcome(operation, False, type(error).__name__)


def our_spans(telemetry: TelemetryCapture) -> list[Any]:
    return [span for span in telemetry.spans() if span.instrumentation_scope.name == SCOPE]


def usage_of(span: Any) -> tuple[int, int, int, int]:
    attributes = span.attributes
    return (
        attributes.get(INPUT, 0),
        attributes.get(OUTPUT, 0),
        attributes.get(CACHE_READ, 0),
        attributes.get(CACHE_WRITE, 0),
    )


def billed_usage(entry: LedgerEntry) -> tuple[int, int, int, int]:
    return (entry.total_input_tokens, entry.output_tokens, entry.cache_read_tokens, entry.cache_write_tokens)


def metric_sum(telemetry: TelemetryCapture, name: str, key: str, value: str) -> int:
    return int(telemetry.histogram_sum(name, **{key: value}))


def account(telemetry: TelemetryCapture, emulator: BedrockEmulator) -> dict[str, Any]:
    """Match every span to the ledger and check the rules in this module's docstring."""
    spans = our_spans(telemetry)
    entries = {entry.request_id: entry for entry in emulator.ledger.entries()}
    by_request: dict[str, Any] = {}
    for span in spans:
        request_id = span.attributes.get(REQUEST_ID)
        if request_id is None:
            # No answer at all (the connection failed on every attempt): an error and no usage.
            assert ERROR_TYPE in span.attributes and usage_of(span) == (0, 0, 0, 0), dict(span.attributes)
            continue
        assert request_id not in by_request, f"two spans for request {request_id}"
        by_request[request_id] = span

    billed_with_span: list[LedgerEntry] = []
    for entry in entries.values():
        if entry.operation == "CountTokens":
            continue
        span = by_request.get(entry.request_id)
        if not entry.billed:
            continue
        if span is None:
            # Billed, but its answer never reached the client: an attempt abandoned on a read timeout.
            assert entry.fault == "slow_first_byte", f"billed call without a span: {entry}"
            continue
        billed_with_span.append(entry)
        assert usage_of(span) == billed_usage(entry), (entry, dict(span.attributes))

    for request_id, span in by_request.items():
        entry = entries[request_id]
        has_usage = INPUT in span.attributes or OUTPUT in span.attributes
        if has_usage and not span.attributes.get(INCOMPLETE):
            assert entry.billed, f"usage on a span the ledger did not bill: {entry} {dict(span.attributes)}"

    # Metrics equal the spans (nothing recorded twice) and, over billed calls, the ledger.
    span_input = sum(usage_of(span)[0] for span in spans)
    span_output = sum(usage_of(span)[1] for span in spans)
    assert metric_sum(telemetry, TOKENS, "gen_ai.token.type", "input") == span_input
    assert metric_sum(telemetry, TOKENS, "gen_ai.token.type", "output") == span_output
    assert metric_sum(telemetry, CACHE, "bedrock_tokens.cache.type", "read") == sum(
        usage_of(span)[2] for span in spans
    )
    assert metric_sum(telemetry, CACHE, "bedrock_tokens.cache.type", "write") == sum(
        usage_of(span)[3] for span in spans
    )
    partial = [span for span in spans if span.attributes.get(INCOMPLETE)]
    ledger_input = sum(entry.total_input_tokens for entry in billed_with_span)
    ledger_output = sum(entry.output_tokens for entry in billed_with_span)
    assert span_input - sum(usage_of(span)[0] for span in partial) == ledger_input
    assert span_output - sum(usage_of(span)[1] for span in partial) == ledger_output
    return {"spans": by_request, "billed": billed_with_span, "entries": entries}


def only_span(telemetry: TelemetryCapture) -> Any:
    (span,) = our_spans(telemetry)
    return span


# --- retries: throttling, 5xx, connection resets, read timeouts -------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.throttle(), "ThrottlingException"),
        (Fault.server_error(500), "InternalServerException"),
        (Fault.server_error(503), "ServiceUnavailableException"),
    ],
    ids=["throttle", "500", "503"],
)
def test_retried_errors_then_success(
    on: TelemetryCapture, emulator: BedrockEmulator, operation: str, fault: Fault, code: str
) -> None:
    emulator.inject(fault, operation=operation, times=2)
    outcome = call(emulator.client(retries=RETRIES), operation, HAIKU, "Is it raining?")
    assert outcome.ok
    span = only_span(on)
    assert span.attributes[RETRY_ATTEMPTS] == 2
    assert ERROR_TYPE not in span.attributes
    assert emulator.ledger.total().error_codes == {code: 2}
    accounts = account(on, emulator)
    assert len(accounts["billed"]) == 1


@pytest.mark.parametrize("operation", OPERATIONS)
def test_retries_exhausted_record_the_error_and_no_tokens(
    on: TelemetryCapture, emulator: BedrockEmulator, operation: str
) -> None:
    emulator.inject(Fault.throttle(), operation=operation, times=3)
    outcome = call(emulator.client(retries=RETRIES), operation, HAIKU, "Is it raining?")
    assert (outcome.ok, outcome.error) == (False, "ThrottlingException")  # botocore's modeled class
    span = only_span(on)
    assert (span.attributes[ERROR_TYPE], span.attributes[RETRY_ATTEMPTS]) == ("ThrottlingException", 2)
    assert on.points(TOKENS) == []
    account(on, emulator)


def test_connection_reset_before_the_body_is_retried(on: TelemetryCapture, emulator: BedrockEmulator) -> None:
    """Converse: a reset right after the headers is retried by botocore; one span, the retry's usage."""
    emulator.inject(Fault.connection_reset(after_bytes=0), operation="Converse")
    assert call(emulator.client(retries=RETRIES), "Converse", HAIKU, "Is it raining?").ok
    assert only_span(on).attributes[RETRY_ATTEMPTS] == 1
    assert len(account(on, emulator)["billed"]) == 1


@pytest.mark.parametrize("operation", ["InvokeModel", *STREAMS])
def test_connection_reset_before_the_body_reaches_the_app(
    on: TelemetryCapture, emulator: BedrockEmulator, operation: str
) -> None:
    """InvokeModel and the streams hand the body over unread: a reset right after the headers is
    met when reading, as without instrumentation; the span ends in error, the ledger still agrees."""
    emulator.inject(Fault.connection_reset(after_bytes=0), operation=operation)
    outcome = call(emulator.client(retries=RETRIES), operation, HAIKU, "Is it raining?")
    assert not outcome.ok
    assert ERROR_TYPE in only_span(on).attributes
    account(on, emulator)


def test_converse_reset_mid_body_is_retried(on: TelemetryCapture, emulator: BedrockEmulator) -> None:
    emulator.inject(Fault.connection_reset(after_bytes=20), operation="Converse")
    assert call(emulator.client(retries=RETRIES), "Converse", HAIKU, "Is it raining?").ok
    assert only_span(on).attributes[RETRY_ATTEMPTS] == 1
    entries = emulator.ledger.entries()
    assert [(entry.fault, entry.billed) for entry in entries] == [("reset", False), (None, True)]
    assert len(account(on, emulator)["billed"]) == 1


def test_invoke_model_reset_mid_body_keeps_the_billed_header_tokens(
    on: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    """InvokeModel's token headers arrive before the body: the ledger bills them although the body
    read fails, and so do we (with ``error.type``); the app meets the read error as without us."""
    emulator.inject(Fault.connection_reset(after_bytes=20), operation="InvokeModel")
    outcome = call(emulator.client(retries=RETRIES), "InvokeModel", HAIKU, "Is it raining?")
    assert (outcome.ok, outcome.error) == (False, "ResponseStreamingError")
    span = only_span(on)
    assert span.attributes[ERROR_TYPE] == "botocore.exceptions.ResponseStreamingError"
    (entry,) = emulator.ledger.entries()
    assert (entry.fault, entry.billed) == ("reset", True)
    assert usage_of(span) == billed_usage(entry)
    account(on, emulator)


@pytest.mark.parametrize("operation", STREAMS)
def test_stream_reset_mid_body(on: TelemetryCapture, emulator: BedrockEmulator, operation: str) -> None:
    """Reset inside a stream: the app's iteration raises; nothing billed; the span ends in error."""
    emulator.inject(Fault.connection_reset(after_bytes=300), operation=operation)
    outcome = call(emulator.client(retries=RETRIES), operation, HAIKU, "Is it raining?")
    assert not outcome.ok
    span = only_span(on)
    assert span.attributes["bedrock_tokens.stream.end"] == "error"
    assert span.attributes[INCOMPLETE] is True
    assert ERROR_TYPE in span.attributes
    assert emulator.ledger.total().calls == 0
    account(on, emulator)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_read_timeout_is_retried(on: TelemetryCapture, emulator: BedrockEmulator, operation: str) -> None:
    """A first byte slower than the read timeout: botocore retries; one span with the retry's usage.
    (The emulator bills the abandoned attempt when it writes it late, as Bedrock would: no client
    can see those tokens; ``account`` checks that is the only billed call without a span.)"""
    rule = emulator.inject(Fault.slow_first_byte(0.6), operation=operation)
    client = emulator.client(retries=RETRIES, read_timeout=0.2)
    outcome = call(client, operation, HAIKU, "Is it raining?")
    assert outcome.ok
    assert emulator.faults.wait_fired(rule)
    assert only_span(on).attributes[RETRY_ATTEMPTS] == 1
    assert len(account(on, emulator)["billed"]) == 1


def test_read_timeout_without_retries_records_the_error(
    on: TelemetryCapture, emulator: BedrockEmulator
) -> None:
    emulator.inject(Fault.slow_first_byte(0.6), operation="Converse")
    outcome = call(emulator.client(retries=0, read_timeout=0.2), "Converse", HAIKU, "Is it raining?")
    assert (outcome.ok, outcome.error) == (False, "ReadTimeoutError")
    span = only_span(on)
    assert span.attributes[ERROR_TYPE] == "botocore.exceptions.ReadTimeoutError"
    assert on.points(TOKENS) == []


# --- streams: exception frames, error frames, truncation ---------------------------------------


@pytest.mark.parametrize("operation", STREAMS)
@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.stream_exception(after_events=2), "modelStreamErrorException"),
        (Fault.stream_exception(after_events=1, code="ThrottlingException"), "throttlingException"),
        (Fault.stream_error(after_events=3), "InternalFailure"),
    ],
    ids=["model-stream-error", "throttling", "error-frame"],
)
def test_stream_exception_frames(
    on: TelemetryCapture, emulator: BedrockEmulator, operation: str, fault: Fault, code: str
) -> None:
    emulator.inject(fault, operation=operation)
    outcome = call(emulator.client(retries=RETRIES), operation, HAIKU, "Is it raining?")
    assert (outcome.ok, outcome.error) == (False, "EventStreamError")
    span = only_span(on)
    assert span.attributes[ERROR_TYPE] == code
    assert span.attributes["bedrock_tokens.stream.end"] == "error"
    assert span.attributes[INCOMPLETE] is True
    assert emulator.ledger.total().calls == 0
    account(on, emulator)


@pytest.mark.parametrize("operation", STREAMS)
@pytest.mark.parametrize("mid_frame", [False, True])
def test_truncated_streams(
    on: TelemetryCapture, emulator: BedrockEmulator, operation: str, mid_frame: bool
) -> None:
    emulator.inject(Fault.truncated_stream(after_events=3, mid_frame=mid_frame), operation=operation)
    outcome = call(emulator.client(retries=RETRIES), operation, HAIKU, "Is it raining?")
    assert outcome.ok  # botocore ends a cut stream quietly
    span = only_span(on)
    assert span.attributes[INCOMPLETE] is True
    assert span.attributes["bedrock_tokens.stream.events"] == outcome.events
    assert emulator.ledger.total().calls == 0
    account(on, emulator)


@pytest.mark.parametrize("operation", STREAMS)
def test_malformed_stream_frame(on: TelemetryCapture, emulator: BedrockEmulator, operation: str) -> None:
    emulator.inject(Fault.malformed_body(), operation=operation)
    outcome = call(emulator.client(retries=RETRIES), operation, HAIKU, "Is it raining?")
    assert (outcome.ok, outcome.error) == (False, "ChecksumMismatch")
    assert only_span(on).attributes[ERROR_TYPE] == "botocore.eventstream.ChecksumMismatch"
    account(on, emulator)


@pytest.mark.parametrize("operation", ["InvokeModel", "Converse"])
def test_malformed_plain_body(on: TelemetryCapture, emulator: BedrockEmulator, operation: str) -> None:
    """A 200 whose JSON is cut short: InvokeModel still bills (and we record) the header tokens;
    Converse bills nothing and we record no tokens."""
    emulator.inject(Fault.malformed_body(), operation=operation)
    call(emulator.client(retries=RETRIES), operation, HAIKU, "Is it raining?")
    only_span(on)
    account(on, emulator)


# --- a mixed workload ----------------------------------------------------------------------------

MODELS = {
    "InvokeModel": (HAIKU, NOVA, LLAMA, MISTRAL),
    "InvokeModelWithResponseStream": (HAIKU, NOVA, LLAMA, MISTRAL),
    "Converse": (HAIKU, NOVA, LLAMA),
    "ConverseStream": (HAIKU, NOVA, LLAMA),
}

FAULTS: tuple[tuple[Callable[[], Fault], tuple[str, ...]], ...] = (
    (Fault.throttle, OPERATIONS),
    (lambda: Fault.server_error(500), OPERATIONS),
    (lambda: Fault.server_error(503), OPERATIONS),
    (lambda: Fault.connection_reset(after_bytes=0), OPERATIONS),
    (lambda: Fault.connection_reset(after_bytes=20), ("InvokeModel", "Converse")),
    (lambda: Fault.connection_reset(after_bytes=300), STREAMS),
    (lambda: Fault.stream_exception(after_events=2), STREAMS),
    (lambda: Fault.stream_error(after_events=1), STREAMS),
    (lambda: Fault.truncated_stream(after_events=2), STREAMS),
    (lambda: Fault.truncated_stream(after_events=4, mid_frame=True), STREAMS),
    (Fault.malformed_body, OPERATIONS),
    (Fault.access_denied, OPERATIONS),
)


def test_mixed_workload_matches_the_ledger(on: TelemetryCapture, emulator: BedrockEmulator) -> None:
    """120 calls over four operations and four model families, a third of them hit by a fault
    (some retried to success, some not): per call and in total, telemetry equals the ledger."""
    rng = random.Random(20240611)
    client = emulator.client(retries=RETRIES)
    outcomes: list[Outcome] = []
    for index in range(120):
        operation = rng.choice(OPERATIONS)
        model = rng.choice(MODELS[operation])
        if rng.random() < 0.35:
            make, _ = rng.choice([item for item in FAULTS if operation in item[1]])
            emulator.inject(make(), operation=operation, times=rng.choice((1, 1, 2, 3)))
        # A few repeated questions so Claude's system prompt is written to and read from the cache.
        outcomes.append(call(client, operation, model, f"Question {index % 7}: is it raining in Seattle?"))
        emulator.faults.clear()
    accounts = account(on, emulator)
    assert len(our_spans(on)) == len(outcomes)  # one span per call, whatever happened
    ok = sum(outcome.ok for outcome in outcomes)
    assert ok >= 80
    assert len(accounts["billed"]) >= 70
    total = emulator.ledger.total()
    assert total.cache_read_tokens > 0 and total.cache_write_tokens > 0
    assert total.errors > 0 and total.faults > 0
