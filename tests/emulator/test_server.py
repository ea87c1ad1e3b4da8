"""The HTTP server: loopback only, keep-alive, bounded everything, and a stop that never hangs."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from otel_bedrock_tokens.emulator import BedrockEmulator, Fault
from otel_bedrock_tokens.emulator.server import MAX_BODY

from ..support.emulator import HAIKU, MESSAGES, claude_body


def _post(
    emulator: BedrockEmulator, path: str, body: bytes, connection: http.client.HTTPConnection | None = None
) -> Any:
    conn = connection or http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response, response.read()


def test_connections_are_kept_alive(bedrock_emulator: BedrockEmulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", bedrock_emulator.port, timeout=5)
    path = f"/model/{HAIKU.replace(':', '%3A')}/invoke"
    for _ in range(3):
        response, _ = _post(bedrock_emulator, path, claude_body().encode(), conn)
        assert response.status == 200 and response.getheader("Connection") == "keep-alive"
    stream_path = path + "-with-response-stream"
    response, data = _post(bedrock_emulator, stream_path, claude_body().encode(), conn)
    assert response.getheader("Transfer-Encoding") == "chunked" and data
    response, _ = _post(bedrock_emulator, path, claude_body().encode(), conn)  # same socket, after a stream
    assert response.status == 200
    conn.close()


def test_only_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        BedrockEmulator(host="0.0.0.0").start()


def test_parallel_emulators_get_their_own_ports() -> None:
    with BedrockEmulator() as one, BedrockEmulator() as two:
        assert one.port != two.port
        one.client().converse(modelId=HAIKU, messages=MESSAGES)
        assert len(one.ledger) == 1 and len(two.ledger) == 0


def test_stop_is_quick_with_idle_and_busy_connections() -> None:
    emulator = BedrockEmulator().start()
    idle = socket.create_connection(("127.0.0.1", emulator.port))
    rule = emulator.inject(Fault.slow_first_byte(30.0), operation="Converse")
    client = emulator.client(read_timeout=60)
    failures: list[BaseException] = []

    def slow_call() -> None:
        try:
            client.converse(modelId=HAIKU, messages=MESSAGES)
        except Exception as error:
            failures.append(error)

    caller = threading.Thread(target=slow_call)
    caller.start()
    assert emulator.faults.wait_fired(rule, timeout=5)  # the slow call is in flight
    started = time.perf_counter()
    emulator.stop()
    assert time.perf_counter() - started < 2.0
    caller.join(10)
    assert not caller.is_alive() and failures  # the client saw the connection go
    idle.close()
    assert not emulator.running


def test_unknown_routes_and_methods(bedrock_emulator: BedrockEmulator) -> None:
    response, data = _post(bedrock_emulator, "/model/x/summon", b"{}")
    assert response.status == 404 and b"No route" in data
    conn = http.client.HTTPConnection("127.0.0.1", bedrock_emulator.port, timeout=5)
    conn.request("GET", "/model/x/invoke")
    assert conn.getresponse().status == 404


def test_oversized_bodies_are_refused_unread(bedrock_emulator: BedrockEmulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", bedrock_emulator.port, timeout=5)
    conn.putrequest("POST", "/model/x/invoke")
    conn.putheader("Content-Length", str(MAX_BODY + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 400
    assert response.getheader("x-amzn-ErrorType", "").startswith("ValidationException")


def test_control_endpoint_scripts_a_running_emulator(bedrock_emulator: BedrockEmulator) -> None:
    def control(method: str, name: str, payload: dict[str, Any] | None = None) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", bedrock_emulator.port, timeout=5)
        conn.request(method, f"/_emulator/{name}", body=json.dumps(payload).encode() if payload else None)
        response = conn.getresponse()
        return response.status, json.loads(response.read())

    assert control("GET", "health") == (200, {"ok": True})
    status, created = control("POST", "faults", {"spec": "throttle,operation=Converse"})
    assert status == 200 and created["id"] >= 1
    assert control("POST", "faults", {"fault": {"kind": "truncate", "after_events": 2}, "times": 2})[0] == 200
    assert len(control("GET", "faults")[1]["faults"]) == 2
    assert control("POST", "drift", {"model": HAIKU, "offset": 7}) == (200, {"ok": True})
    assert control("POST", "latency", {"first_byte": 0.001})[0] == 200
    assert (
        control(
            "POST",
            "alias",
            {"model": "arn:aws:bedrock:us-east-1:1:provisioned-model/p", "backing": "amazon.nova-micro-v1:0"},
        )[0]
        == 200
    )
    client = bedrock_emulator.client()
    with pytest.raises(ClientError):
        client.converse(modelId=HAIKU, messages=MESSAGES)
    ledger = control("GET", "ledger")[1]
    assert ledger["models"][HAIKU]["errors"] == 1 and ledger["entries"][0]["error"] == "ThrottlingException"
    assert control("DELETE", "faults") == (200, {"ok": True})
    assert control("POST", "reset") == (200, {"ok": True})
    assert control("GET", "ledger")[1]["entries"] == []
    assert control("POST", "faults", {"spec": "explode"})[0] == 400
    assert control("GET", "nothing")[0] == 404


def test_the_pytest_plugin_fixtures(bedrock_emulator: BedrockEmulator, bedrock_client: Any) -> None:
    assert bedrock_client.meta.endpoint_url == bedrock_emulator.endpoint_url
    bedrock_client.converse(modelId=HAIKU, messages=MESSAGES)
    assert bedrock_emulator.ledger.total().calls == 1


def test_ipv6_loopback_when_available() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        emulator = BedrockEmulator(host="::1").start()
    except OSError:
        pytest.skip("IPv6 loopback not configured")
    with emulator:
        assert emulator.endpoint_url.startswith("http://[::1]:")
        emulator.client().converse(modelId=HAIKU, messages=MESSAGES)
