"""The HTTP side: a loopback-only HTTP/1.1 server that speaks ``bedrock-runtime``'s rest-json.

Routing works on the raw path (the model id is percent-encoded, ``/`` as ``%2F``, so ARNs stay one
segment), then decodes the id. Plain responses carry ``Content-Length``; streams are
``Transfer-Encoding: chunked``, one event-stream frame per HTTP chunk, so botocore sees each event as
soon as it is sent. Connections are kept alive between requests.

Robustness: every socket has a timeout, request bodies are bounded, every wait is interruptible by
:meth:`EmulatorHTTPServer.stop`, which closes every open connection and joins every thread within a
bounded time. Nothing ever binds anything but a loopback address.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import unquote

from . import mantle
from .errors import BedrockError
from .service import Call, Service
from .wire import Delivery, Header, PlainResponse, Response, StreamResponse, Timing

logger = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
#: Bedrock's request size limit is 25 MB for InvokeModel; anything larger is refused unread.
MAX_BODY = 25 * 1024 * 1024

_ROUTE = re.compile(r"^/model/(?P<model>[^/?]+)/(?P<action>[a-z-]+)/?(?:\?.*)?$")
_ACTIONS = {
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "count-tokens": "CountTokens",
}
CONTROL_PREFIX = "/_emulator/"

ControlHandler = Callable[[str, str, bytes], tuple[int, Any]]


def route(path: str) -> tuple[str, str] | None:
    """``/model/<percent-encoded id>/<action>`` -> (operation, model id)."""
    match = _ROUTE.match(path)
    if match is None or match["action"] not in _ACTIONS:
        return None
    return _ACTIONS[match["action"]], unquote(match["model"])


class _ResetConnection(Exception):
    """Raised inside the writer to abort the connection with a TCP RST (a fault)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.socket_timeout)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    # --- request handling -------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_DELETE(self) -> None:
        self._dispatch(self._read_body())

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        self._dispatch(body)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse("Chunked request bodies are not supported.")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._refuse("The request body is too large or its length is invalid.")
            return None
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, extra: list[Header] | None = None) -> None:
        data = json.dumps(payload).encode()
        headers = [("Content-Type", "application/json"), *(extra or []), ("Content-Length", str(len(data)))]
        self.wfile.write(self.head(status, headers) + data)

    def _refuse(self, message: str) -> None:
        self.close_connection = True
        error = BedrockError.validation(message)
        call = Call("Unknown", "", "00000000-0000-0000-0000-000000000000", None, None)
        response = self.server.service.error_response(call, error)
        response.settle = lambda delivery: None
        self._write(response, Timing())

    def _dispatch(self, body: bytes | None) -> None:
        if body is None:
            return
        timing = Timing()
        path = self.path
        if path.startswith(CONTROL_PREFIX):
            status, payload = self.server.control(self.command, path[len(CONTROL_PREFIX) :], body)
            self._send_json(status, payload)
            return
        found = route(path) if self.command == "POST" else None
        mantle_operation = mantle.route(path) if found is None and self.command == "POST" else None
        if mantle_operation is not None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._write(mantle.handle(self.server.service, mantle_operation, headers, body), timing)
            return
        if found is None:
            message = {"message": f"No route for {self.command} {path}"}
            self._send_json(404, message, [("x-amzn-ErrorType", "UnknownOperationException")])
            return
        operation, model_id = found
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.service.handle(operation, model_id, headers, body)
        self._write(response, timing)

    # --- writing ----------------------------------------------------------------------------
    def head(self, status: int, headers: list[Header]) -> bytes:
        """Status line and headers (``Date`` and ``Connection`` added), as bytes."""
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append("Connection: close" if self.close_connection else "Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, response: Response, timing: Timing) -> None:
        """Send ``response``. The ledger is settled *before* the bytes that let the client see the
        end of the response (the last write, or the reset), so a test that reads the ledger right
        after its call returns never races the server."""
        writer = _Writer(self, response, timing)
        try:
            if response.delay > 0 and self.server.stopping.wait(response.delay):
                raise ConnectionAbortedError("emulator stopping")
            if isinstance(response, PlainResponse):
                writer.plain(response)
            else:
                writer.stream(response)
        except _ResetConnection:
            writer.settle()
            if response.clean_cut:
                self._close_early()
            else:
                self._reset()
        except OSError as error:  # the client went away (closed early, timed out)
            logger.debug("bedrock emulator: client connection lost: %r", error)
            self.close_connection = True
        finally:
            writer.settle()

    def _close_early(self) -> None:
        """End the response short of its length with an orderly close (FIN, not RST)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)

    def _reset(self) -> None:
        """Abort with RST: SO_LINGER on, timeout zero, then close."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


class _Writer:
    """Writes one response and settles its billing exactly once, at the right moment."""

    def __init__(self, handler: Handler, response: Response, timing: Timing) -> None:
        self.handler = handler
        self.response = response
        self.timing = timing
        self.delivery = Delivery()
        self._settled = False
        self._budget = response.reset_after

    def settle(self) -> None:
        if self._settled:
            return
        self._settled = True
        self.delivery.elapsed_ms = self.timing.elapsed_ms()
        try:
            self.response.settle(self.delivery)
        except Exception:  # a ledger listener must never take the server down
            logger.exception("bedrock emulator: could not settle a response")

    def write(self, data: bytes, final: bool = False, events: int = 0) -> None:
        """Write body bytes carrying ``events`` stream events; a reset fault cuts them short.
        ``final``: these bytes end the response, so the billing is settled just before them."""
        if self._budget is not None and len(data) >= self._budget:
            self.handler.wfile.write(data[: self._budget])
            raise _ResetConnection
        if self._budget is not None:
            self._budget -= len(data)
        if final:
            self.delivery.events_sent += events
            self.delivery.completed = True
            self.settle()
            self.handler.wfile.write(data)
            return
        self.handler.wfile.write(data)
        self.delivery.events_sent += events

    def plain(self, response: PlainResponse) -> None:
        headers, body = response.render(self.timing)
        self.timing.first_byte = time.perf_counter()
        head = self.handler.head(response.status, [*headers, ("Content-Length", str(len(body)))])
        if self._budget is None:
            self.delivery.headers_sent = True
            self.write(head + body, final=True)
            return
        self.handler.wfile.write(head)
        self.delivery.headers_sent = True
        self.write(body, final=True)

    def stream(self, response: StreamResponse) -> None:
        handler = self.handler
        stopping = handler.server.stopping
        handler.wfile.write(handler.head(200, [*response.headers, ("Transfer-Encoding", "chunked")]))
        self.delivery.headers_sent = True
        last = len(response.events) - 1
        for number, event in enumerate(response.events):
            if number and event.delay > 0 and stopping.wait(event.delay):
                raise ConnectionAbortedError("emulator stopping")
            if self.timing.first_byte is None:
                self.timing.first_byte = time.perf_counter()
            frame = event.render(self.timing)
            data = b"%x\r\n%s\r\n" % (len(frame), frame)
            if number == last:
                self.write(data + b"0\r\n\r\n", final=True, events=1)
                return
            self.write(data, events=1)
        self.write(b"0\r\n\r\n", final=True)


class EmulatorHTTPServer(HTTPServer):
    """One thread per connection, every connection tracked so :meth:`stop` can end them all."""

    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        service: Service,
        control: ControlHandler,
        socket_timeout: float = 30.0,
    ) -> None:
        host = address[0]
        if host not in LOOPBACK:
            raise ValueError(f"the Bedrock emulator only listens on loopback addresses, not {host!r}")
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.service = service
        self.control = control
        self.socket_timeout = socket_timeout
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._serving: threading.Thread | None = None
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can take seconds.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()[:2]
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="bedrock-emulator-conn",
            daemon=True,
        )
        with self._lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            logger.debug("bedrock emulator: connection error", exc_info=True)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("bedrock emulator: error while handling a request", exc_info=True)

    def start(self) -> None:
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.01}, name="bedrock-emulator", daemon=True
        )
        self._serving.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every open connection, join every thread (bounded by ``timeout``)."""
        self.stopping.set()
        if self._serving is not None:
            self.shutdown()
            self._serving.join(timeout)
        self.server_close()
        with self._lock:
            connections = dict(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in connections.values():
            thread.join(timeout)
