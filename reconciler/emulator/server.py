"""The HTTP side of the emulator: a threaded HTTP/1.1 server and the ``Emulator`` handle.

Connections are kept alive (every response carries Content-Length) because
boto3 reuses them, and Nagle's algorithm is off so small responses are not
held back. Bodies are read by Content-Length up to a size limit; anything
the server cannot read cleanly is answered and the connection closed, and
the server keeps serving. Requests are logged at DEBUG only.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import socketserver
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from reconciler.emulator import errors
from reconciler.emulator.accounts import AccountMap
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.faults import FaultPlan
from reconciler.emulator.protocol import CONTENT_TYPE, MAX_BODY_BYTES, Endpoint
from reconciler.emulator.ratelimit import RateLimiter
from reconciler.emulator.store import Store

logger = logging.getLogger(__name__)

# An oversized body up to this size is read and discarded so that the client
# gets its 413 instead of a reset connection; beyond it the connection is cut.
DRAIN_LIMIT = 16 * MAX_BODY_BYTES
# An idle kept-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 120.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LightsailEmulator"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT
    server: _Server

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        response = self.server.endpoint.handle("POST", self.path, self.headers, body)
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(response.status, response.body)

    def do_GET(self) -> None:
        if self.path == "/":
            self._send(200, b"healthy: lightsail emulator\n", content_type="text/plain")
        else:
            self._send(404, errors.unknown_operation(f"GET {self.path[:80]}").to_json())

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            error = errors.serialization("Chunked request bodies are not supported")
            self._send(411, error.to_json(), close=True)
            return None
        text = self.headers.get("Content-Length")
        if text is None:
            error = errors.serialization("The Content-Length header is required")
            self._send(411, error.to_json(), close=True)
            return None
        try:
            length = int(text)
            if length < 0:
                raise ValueError(text)
        except ValueError:
            error = errors.serialization(f"Invalid Content-Length: {text[:40]!r}")
            self._send(400, error.to_json(), close=True)
            return None
        try:
            if length > MAX_BODY_BYTES:
                if length <= DRAIN_LIMIT:
                    self._discard(length)
                self._send(413, errors.too_large(length, MAX_BODY_BYTES).to_json(), close=True)
                return None
            body = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return None
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _send(
        self, status: int, body: bytes, *, close: bool = False, content_type: str = CONTENT_TYPE
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Cut kept-alive connections, so that no handler thread outlives the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Emulator:
    """A local Lightsail endpoint, served from a daemon thread.

    ``with Emulator(EmulatorConfig()) as emu:`` serves on ``emu.url`` until
    the block ends. ``calls`` counts every request by operation, faulted or
    not; ``throttled`` the calls the rate limit refused; ``committed`` the
    calls whose change was committed.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.config.check()
        self.store = Store(self.config.data_path, account_id=self.config.account_id)
        self._endpoint = Endpoint(self.config, self.store)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def calls(self) -> collections.Counter[str]:
        return self._endpoint.calls

    @property
    def throttled(self) -> collections.Counter[str]:
        """Calls refused by the rate limit, by operation."""
        return self._endpoint.throttled

    @property
    def accounts(self) -> AccountMap:
        """Access key -> account; ``lookups`` counts the questions asked of STS."""
        return self._endpoint.accounts

    @property
    def rate_limiter(self) -> RateLimiter:
        """The live token buckets; ``configure`` changes the limits between calls."""
        return self._endpoint.rate_limiter

    @property
    def committed(self) -> collections.Counter[str]:
        return self._endpoint.committed

    def reset_counters(self) -> None:
        self._endpoint.reset_counters()

    @property
    def force_error(self) -> str | None:
        """An error type (``AccessDeniedException``...) answered to every call; None: off."""
        return self._endpoint.force_error

    @force_error.setter
    def force_error(self, error_type: str | None) -> None:
        self._endpoint.force_error = error_type

    @property
    def region_errors(self) -> dict[str, str]:
        """Region -> error type answered to every call there, e.g. a region still
        being set up (``RegionSetupInProgressException``). Empty: off."""
        return self._endpoint.region_errors

    @property
    def operation_errors(self) -> dict[str, str]:
        """Operation -> error type answered to every call of it, before any effect."""
        return self._endpoint.operation_errors

    @property
    def region_operation_errors(self) -> dict[tuple[str, str], str]:
        """(region, operation) -> error type answered to that operation in that region,
        e.g. GetInstances denied in one region only. Empty: off."""
        return self._endpoint.region_operation_errors

    @property
    def faults(self) -> FaultPlan:
        """The live fault settings; tests may change the rates between calls."""
        return self._endpoint.faults

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.server_port

    @property
    def url(self) -> str:
        host = self._server.server_name if self._server else self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def start(self) -> Emulator:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        try:
            server = _Server(self.config.host, self.config.port, self._endpoint)
        except OSError as exc:
            raise errors.EmulatorError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}",
                hint="choose another --port, or --port 0 for a free one",
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"lightsail-emulator-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("lightsail emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join()
        self._server = self._thread = None
        self.store.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
