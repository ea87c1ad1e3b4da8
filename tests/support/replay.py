"""Replay recorded Bedrock responses to a real boto3 client over loopback HTTP.

Each recording (a vcrpy cassette under ``tests/recordings/``) is served by a local HTTP server that
answers, in order, with the recorded status, headers and body bytes, so botocore parses real AWS
bytes. :func:`call_recorded` issues the boto3 call that produced each interaction.
"""

from __future__ import annotations

import functools
import http.server
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import yaml
from botocore.config import Config

RECORDINGS = Path(__file__).parent.parent / "recordings"

#: Last path segment -> botocore operation name.
OPERATION_BY_SUFFIX = {
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "count-tokens": "CountTokens",
}

_HOP_BY_HOP = {"content-length", "connection", "transfer-encoding", "keep-alive"}


@dataclass(frozen=True)
class Interaction:
    operation: str
    model_id: str
    request_body: bytes
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


#: libyaml's loader when PyYAML was built with it (about 10x faster than the pure-Python one).
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(path: Path) -> list[Interaction]:
    """The interactions of one recording (parsed once per run: many tests replay the same file)."""
    return list(_load_cached(path))


@functools.cache
def raw_recording(path: Path) -> dict[str, Any]:
    """A recording as the YAML says it, parsed once per run (callers must not mutate it)."""
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    return data


@functools.cache
def _load_cached(path: Path) -> tuple[Interaction, ...]:
    data = raw_recording(path)
    interactions = []
    for item in data["interactions"]:
        request, response = item["request"], item["response"]
        path_part = urlsplit(request["uri"]).path  # /model/<encoded id>/<suffix>
        encoded_model, _, suffix = path_part[len("/model/") :].rpartition("/")
        body = response["body"]["string"] if isinstance(response["body"], dict) else response["body"]
        request_body = request.get("body") or b""
        headers: list[tuple[str, str]] = []
        for key, value in response["headers"].items():
            for one in value if isinstance(value, list) else [value]:
                headers.append((key, str(one)))
        interactions.append(
            Interaction(
                operation=OPERATION_BY_SUFFIX[suffix],
                model_id=unquote(encoded_model),
                request_body=request_body.encode() if isinstance(request_body, str) else request_body,
                status=int(response["status"]["code"]),
                headers=tuple(headers),
                body=body.encode() if isinstance(body, str) else (body or b""),
            )
        )
    return tuple(interactions)


def all_recordings() -> list[Path]:
    return sorted(RECORDINGS.glob("*/*.yaml"))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ReplayServer

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.server.received.append((self.path, self.rfile.read(length)))
        operation = OPERATION_BY_SUFFIX.get(self.path.rsplit("/", 1)[-1])
        with self.server.lock:
            queue = self.server.queues.get(operation)
            interaction = queue.pop(0) if queue else None
        if interaction is None:
            self.send_error(599, "no recorded response left")
            return
        delay = self.server.delays.get(operation or "")
        if delay:
            # Simulated service latency (the server thread waits, never the test).
            threading.Event().wait(delay)
        self.send_response(interaction.status)
        for key, value in interaction.headers:
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(interaction.body)))
        self.end_headers()
        self.wfile.write(interaction.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ReplayServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when tests open dozens at once on a loaded machine
    # (seen as ConnectionClosedError in the 24-thread prediction test): as deep as the emulator's.
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        #: Recorded answers per operation, served in order: a CountTokens call made alongside an
        #: InvokeModel gets the CountTokens answer whichever request arrives first.
        self.queues: dict[str, list[Interaction]] = {}
        self.received: list[tuple[str, bytes]] = []
        self.delays: dict[str, float] = {}
        self.lock = threading.Lock()


class Replayer:
    """A loopback server plus a boto3 client pointed at it."""

    def __init__(self, server: _ReplayServer) -> None:
        self._server = server
        self.endpoint_url = f"http://127.0.0.1:{server.server_address[1]}"
        self.client = make_client(self.endpoint_url)

    def serve(self, *interactions: Interaction) -> None:
        with self._server.lock:
            for interaction in interactions:
                self._server.queues.setdefault(interaction.operation, []).append(interaction)

    def delay(self, operation: str, seconds: float) -> None:
        """Answer ``operation`` only after ``seconds`` (a slow endpoint)."""
        self._server.delays[operation] = seconds

    @property
    def received(self) -> list[tuple[str, bytes]]:
        return self._server.received


def make_client(endpoint_url: str, max_attempts: int = 1, read_timeout: float = 10) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=5,
            read_timeout=read_timeout,
        ),
    )


@contextmanager
def replay_server() -> Iterator[Replayer]:
    server = _ReplayServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Replayer(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def answer(operation: str, status: int, body: dict[str, Any], error_code: str | None = None) -> Interaction:
    """A synthetic answer (e.g. CountTokens, which the recordings do not cover)."""
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", "synthetic")]
    if error_code is not None:
        headers.append(("x-amzn-ErrorType", f"{error_code}:http://internal.amazon.com/coral/"))
    return Interaction(operation, "", b"", status, tuple(headers), json.dumps(body).encode())


def call_recorded(client: Any, interaction: Interaction) -> Any:
    """Issue the boto3 call that produced ``interaction`` (raises what botocore raises)."""
    if interaction.operation in ("InvokeModel", "InvokeModelWithResponseStream"):
        method = (
            client.invoke_model
            if interaction.operation == "InvokeModel"
            else client.invoke_model_with_response_stream
        )
        return method(modelId=interaction.model_id, body=interaction.request_body)
    params = json.loads(interaction.request_body) if interaction.request_body else {}
    if interaction.operation == "Converse":
        return client.converse(modelId=interaction.model_id, **params)
    if interaction.operation == "ConverseStream":
        return client.converse_stream(modelId=interaction.model_id, **params)
    raise ValueError(interaction.operation)


# --- Helpers for the core tests: synthetic answers and servers that misbehave ----------------------

CLAUDE_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def claude_body(
    input_tokens: int = 11,
    output_tokens: int = 7,
    cache_read: int | None = None,
    cache_write: int | None = None,
    stop_reason: str = "end_turn",
) -> bytes:
    """A Claude Messages API response body with the given usage."""
    usage: dict[str, int] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if cache_read is not None:
        usage["cache_read_input_tokens"] = cache_read
    if cache_write is not None:
        usage["cache_creation_input_tokens"] = cache_write
    return json.dumps(
        {
            "id": "msg_bdrk_test",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "Hello."}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
    ).encode()


def token_headers(
    input_tokens: int | None = 11,
    output_tokens: int | None = 7,
    cache_read: int | None = None,
    cache_write: int | None = None,
    request_id: str = "req-0001",
) -> tuple[tuple[str, str], ...]:
    """InvokeModel response headers: content type, request id and the token-count headers given."""
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
    for name, value in (
        ("X-Amzn-Bedrock-Input-Token-Count", input_tokens),
        ("X-Amzn-Bedrock-Output-Token-Count", output_tokens),
        ("X-Amzn-Bedrock-Cache-Read-Input-Token-Count", cache_read),
        ("X-Amzn-Bedrock-Cache-Write-Input-Token-Count", cache_write),
    ):
        if value is not None:
            headers.append((name, str(value)))
    return tuple(headers)


def synthetic(
    body: bytes,
    *,
    operation: str = "InvokeModel",
    model_id: str = CLAUDE_MODEL,
    status: int = 200,
    headers: tuple[tuple[str, str], ...] | None = None,
    request_body: bytes = b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50}',
) -> Interaction:
    """An interaction made up by a test (``call_recorded`` issues it like a recorded one)."""
    return Interaction(
        operation=operation,
        model_id=model_id,
        request_body=request_body,
        status=status,
        headers=token_headers() if headers is None else headers,
        body=body,
    )


def read_http_request(conn: Any) -> bytes:
    """Read one HTTP/1.1 request (head and Content-Length body) from a socket; bounded by its timeout."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class RawServer:
    """A loopback TCP server that hands each connection to ``respond(conn, server)`` in a thread.

    For answers ``http.server`` cannot give: a body shorter than its Content-Length, a reset
    connection, no answer at all. ``release`` is set when the server stops, so a handler that
    withholds its answer waits on it instead of sleeping.
    """

    def __init__(self, respond: Any) -> None:
        self._respond = respond
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.release = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)

    def _accept_loop(self) -> None:
        while not self.release.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: Any) -> None:
        with conn, suppress(OSError):
            self._respond(conn, self)

    def __enter__(self) -> RawServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
