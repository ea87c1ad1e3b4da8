"""Each fault reaches the client exactly as botocore raises it for real Bedrock, and the ledger
bills only what reached the client."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
import urllib3
from botocore.eventstream import ChecksumMismatch
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EventStreamError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

from ..support.emulator import HAIKU, MESSAGES, claude_body

NOVA = "amazon.nova-micro-v1:0"


@pytest.mark.parametrize(
    ("fault", "code", "status", "message"),
    [
        (Fault.throttle(), "ThrottlingException", 429, "Too many requests, please wait before trying again."),
        (
            Fault.access_denied(),
            "AccessDeniedException",
            403,
            "You don't have access to the model with the specified model ID.",
        ),
        (
            Fault.validation("Input is too long for requested model."),
            "ValidationException",
            400,
            "Input is too long for requested model.",
        ),
        (
            Fault.count_tokens_unsupported(),
            "ValidationException",
            400,
            "The provided model doesn't support counting tokens.",
        ),
        (Fault.server_error(), "InternalServerException", 500, None),
        (Fault.server_error(503), "ServiceUnavailableException", 503, None),
        (Fault.error("ModelTimeoutException"), "ModelTimeoutException", 408, None),
        (Fault.error("ModelErrorException"), "ModelErrorException", 424, None),
        (Fault.error("ModelNotReadyException"), "ModelNotReadyException", 429, None),
        (Fault.error("ServiceQuotaExceededException"), "ServiceQuotaExceededException", 400, None),
        (Fault.error("ResourceNotFoundException"), "ResourceNotFoundException", 404, None),
    ],
)
@pytest.mark.parametrize("operation", ["Converse", "InvokeModel", "CountTokens", "ConverseStream"])
def test_error_responses_become_client_errors(
    bedrock_emulator: BedrockEmulator,
    operation: str,
    fault: Fault,
    code: str,
    status: int,
    message: str | None,
) -> None:
    bedrock_emulator.inject(fault, operation=operation)
    client = bedrock_emulator.client()
    call = {
        "Converse": lambda: client.converse(modelId=HAIKU, messages=MESSAGES),
        "ConverseStream": lambda: client.converse_stream(modelId=HAIKU, messages=MESSAGES),
        "InvokeModel": lambda: client.invoke_model(modelId=HAIKU, body=claude_body()),
        "CountTokens": lambda: client.count_tokens(modelId=HAIKU, input={"converse": {"messages": MESSAGES}}),
    }[operation]
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value
    assert type(error).__name__ == code  # botocore's modeled exception class
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if message is not None:
        assert error.response["Error"]["Message"] == message
    (entry,) = bedrock_emulator.ledger.entries()
    assert (entry.status, entry.error, entry.billed) == (status, code, False)
    call()  # the fault fired once; the next call goes through


def test_throttling_is_retried_by_botocore_when_retries_are_on(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.inject("throttle", operation="Converse")
    response = bedrock_emulator.client(retries=1).converse(modelId=HAIKU, messages=MESSAGES)
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    totals = bedrock_emulator.ledger.totals()[HAIKU]
    assert (totals.calls, totals.errors, totals.error_codes) == (1, 1, {"ThrottlingException": 1})


def test_faults_target_models_and_skip_calls(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.inject(Fault.throttle(), model=HAIKU, skip=1, times=None)
    client = bedrock_emulator.client()
    client.converse(modelId=NOVA, messages=MESSAGES)
    client.converse(modelId=HAIKU, messages=MESSAGES)  # skipped
    for _ in range(2):
        with pytest.raises(ClientError, match="Throttling"):
            client.converse(modelId=f"us.{HAIKU}", messages=MESSAGES)  # matched through its base model
    assert bedrock_emulator.faults.rules()[0]["fired"] == 2
    bedrock_emulator.faults.clear()
    client.converse(modelId=HAIKU, messages=MESSAGES)


def test_malformed_200_bodies(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    bedrock_emulator.inject(Fault.malformed_body(), operation="InvokeModel")
    response = client.invoke_model(modelId=HAIKU, body=claude_body())
    data = response["body"].read()
    with pytest.raises(ValueError):
        json.loads(data)
    assert int(response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-output-token-count"]) > 0
    bedrock_emulator.inject(Fault.malformed_body(), operation="Converse")
    reply = client.converse(modelId=HAIKU, messages=MESSAGES)  # botocore does not raise on bad JSON
    assert "usage" not in reply and "output" not in reply
    invoke, converse = bedrock_emulator.ledger.entries()
    assert invoke.billed and not converse.billed  # InvokeModel's usage travelled in its headers


@pytest.mark.parametrize("operation", ["ConverseStream", "InvokeModelWithResponseStream"])
def test_malformed_stream_frames_fail_their_checksum(
    bedrock_emulator: BedrockEmulator, operation: str
) -> None:
    bedrock_emulator.inject(Fault("malformed", after_events=2), operation=operation)
    with pytest.raises(ChecksumMismatch):
        list(_stream(bedrock_emulator.client(), operation))
    assert not bedrock_emulator.ledger.entries()[0].billed


def _stream(client: Any, operation: str) -> Any:
    if operation == "ConverseStream":
        return client.converse_stream(modelId=HAIKU, messages=MESSAGES)["stream"]
    return client.invoke_model_with_response_stream(modelId=HAIKU, body=claude_body())["body"]


@pytest.mark.parametrize("operation", ["ConverseStream", "InvokeModelWithResponseStream"])
@pytest.mark.parametrize(
    ("code", "fault"),
    [
        ("modelStreamErrorException", Fault.stream_exception(after_events=3)),
        ("throttlingException", Fault.stream_exception(after_events=3, code="ThrottlingException")),
        ("internalServerException", Fault.stream_exception(after_events=3, code="internalServerException")),
        ("InternalFailure", Fault.stream_error(after_events=3)),
    ],
)
def test_exception_frames_mid_stream(
    bedrock_emulator: BedrockEmulator, operation: str, code: str, fault: Fault
) -> None:
    bedrock_emulator.inject(fault, operation=operation)
    received = []
    with pytest.raises(EventStreamError) as raised:
        for event in _stream(bedrock_emulator.client(), operation):
            received.append(event)
    assert len(received) == 3
    assert raised.value.response["Error"]["Code"] == code
    (entry,) = bedrock_emulator.ledger.entries()
    assert (entry.error, entry.billed) == (code, False)
    assert bedrock_emulator.ledger.totals()[HAIKU].errors == 1


@pytest.mark.parametrize("mid_frame", [False, True])
@pytest.mark.parametrize("operation", ["ConverseStream", "InvokeModelWithResponseStream"])
def test_truncated_streams_end_quietly_without_usage(
    bedrock_emulator: BedrockEmulator, operation: str, mid_frame: bool
) -> None:
    bedrock_emulator.inject(Fault.truncated_stream(after_events=4, mid_frame=mid_frame), operation=operation)
    events = list(_stream(bedrock_emulator.client(), operation))
    assert len(events) == 4  # botocore drops a half frame silently
    (entry,) = bedrock_emulator.ledger.entries()
    assert (entry.fault, entry.billed) == ("truncate", False)
    assert bedrock_emulator.ledger.totals()[HAIKU].faults == 1


def test_a_fault_after_the_last_event_changes_nothing(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.inject(Fault.truncated_stream(after_events=10_000), operation="ConverseStream")
    events = list(_stream(bedrock_emulator.client(), "ConverseStream"))
    assert "metadata" in events[-1]
    assert bedrock_emulator.ledger.entries()[0].billed


def test_connection_reset_mid_body(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    bedrock_emulator.inject(Fault.connection_reset(after_bytes=20), operation="InvokeModel")
    response = client.invoke_model(modelId=HAIKU, body=claude_body())
    with pytest.raises(ResponseStreamingError):
        response["body"].read()
    bedrock_emulator.inject(Fault.connection_reset(after_bytes=20), operation="Converse")
    with pytest.raises(ConnectionClosedError):
        client.converse(modelId=HAIKU, messages=MESSAGES)
    bedrock_emulator.inject(Fault.connection_reset(after_bytes=300), operation="ConverseStream")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(client.converse_stream(modelId=HAIKU, messages=MESSAGES)["stream"])
    invoke, converse, stream = bedrock_emulator.ledger.entries()
    assert invoke.billed  # its token headers arrived before the reset
    assert not converse.billed and not stream.billed
    client.converse(modelId=HAIKU, messages=MESSAGES)  # the client recovers on a new connection


def test_short_body_ends_cleanly_before_its_content_length(bedrock_emulator: BedrockEmulator) -> None:
    client = bedrock_emulator.client()
    bedrock_emulator.inject(Fault.parse("short-body,bytes=20")[0], operation="InvokeModel")
    body = client.invoke_model(modelId=HAIKU, body=claude_body())["body"]
    assert len(body.read(20)) == 20
    with pytest.raises(IncompleteReadError):  # an orderly end: no more bytes, and botocore counts
        body.read(30)
    (entry,) = bedrock_emulator.ledger.entries()
    assert (entry.fault, entry.billed) == ("short_body", True)
    client.converse(modelId=HAIKU, messages=MESSAGES)  # the client recovers on a new connection


def test_slow_first_byte(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.inject(Fault.slow_first_byte(5.0), operation="Converse")
    client = bedrock_emulator.client(read_timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(ReadTimeoutError):
        client.converse(modelId=HAIKU, messages=MESSAGES)
    assert time.perf_counter() - started < 3.0
    bedrock_emulator.inject(Fault.slow_first_byte(0.2), operation="ConverseStream")
    started = time.perf_counter()
    events = list(client.converse_stream(modelId=HAIKU, messages=MESSAGES)["stream"])
    assert time.perf_counter() - started >= 0.2
    assert events[-1]["metadata"]["metrics"]["latencyMs"] >= 200


def test_configurable_latency_paces_streams(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.set_latency(first_byte=0.05, per_token=0.004, model=HAIKU)
    client = bedrock_emulator.client()
    started = time.perf_counter()
    chunks = [
        json.loads(e["chunk"]["bytes"])
        for e in client.invoke_model_with_response_stream(modelId=HAIKU, body=claude_body())["body"]
    ]
    elapsed = time.perf_counter() - started
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    expected = 0.05 + 0.004 * metrics["outputTokenCount"]
    assert elapsed >= expected
    assert metrics["firstByteLatency"] >= 50
    assert metrics["invocationLatency"] >= expected * 1000 - 1
    bedrock_emulator.inject(Fault.latency(0.1), operation="InvokeModel")
    response = client.invoke_model(modelId=NOVA, body=json.dumps({"messages": MESSAGES}))
    assert int(response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-invocation-latency"]) >= 100


def test_stream_faults_only_apply_to_streams(bedrock_emulator: BedrockEmulator) -> None:
    with pytest.raises(ValueError):
        bedrock_emulator.inject(Fault.truncated_stream(), operation="Converse")
    bedrock_emulator.inject(Fault.truncated_stream(1))
    bedrock_emulator.client().converse(modelId=HAIKU, messages=MESSAGES)  # unaffected
    assert len(bedrock_emulator.faults.rules()) == 1


# --- the one-line spec ------------------------------------------------------------------------

KINDS = [
    "throttle",
    "access-denied",
    "server-error",
    "unavailable",
    "malformed",
    "reset",
    "latency",
    "slow-first-byte",
]


@given(
    st.sampled_from(KINDS),
    st.sampled_from([None, "Converse", "InvokeModel|Converse"]),
    st.one_of(st.none(), st.integers(1, 50)),
    st.integers(0, 5),
)
def test_fault_specs_parse(kind: str, operation: str | None, times: int | None, skip: int) -> None:
    spec = kind
    if operation:
        spec += f",operation={operation}"
    spec += f",times={times if times is not None else 'always'},skip={skip}"
    spec += ",model=arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"
    fault, placement = Fault.parse(spec)
    assert placement["times"] == times and placement["skip"] == skip
    assert placement["model"] == "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"
    if operation:
        assert placement["operation"] == operation.split("|")
    assert Fault.from_dict(fault.to_dict()) == fault


def test_fault_spec_options() -> None:
    fault, _ = Fault.parse("stream-exception,events=3,code=throttlingException,message=slow")
    assert fault == Fault("stream_exception", code="throttlingException", message="slow", after_events=3)
    assert Fault.parse("truncate,events=2,mid_frame=true")[0].mid_frame
    assert Fault.parse("reset,bytes=10")[0].after_bytes == 10
    assert Fault.parse("count-tokens-unsupported")[0] == Fault.count_tokens_unsupported()
    for bad in ("nope", "throttle,times", "throttle,colour=red", "error,status=abc"):
        with pytest.raises(ValueError):
            Fault.parse(bad)


def _raw_stream_body_length(emulator: BedrockEmulator, body: bytes, path: str) -> int:
    """Bytes of a stream's chunked body on the wire (frames plus chunk framing)."""
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode() + body)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    return len(raw) - raw.index(b"\r\n\r\n") - 4


def test_a_reset_inside_the_usage_event_bills_nothing(bedrock_emulator: BedrockEmulator) -> None:
    path = f"/model/{HAIKU.replace(':', '%3A')}/converse-stream"
    total = _raw_stream_body_length(bedrock_emulator, json.dumps({"messages": MESSAGES}).encode(), path)
    assert bedrock_emulator.ledger.entries()[0].billed
    # 10 bytes before the end: inside the final (metadata) frame, after every other event.
    bedrock_emulator.inject(Fault.connection_reset(after_bytes=total - 10), operation="ConverseStream")
    received = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for event in bedrock_emulator.client().converse_stream(modelId=HAIKU, messages=MESSAGES)["stream"]:
            received.append(event)
    assert "messageStop" in received[-1]
    assert not bedrock_emulator.ledger.entries()[-1].billed
