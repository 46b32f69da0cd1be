"""A recording HTTP proxy in front of moto or the emulator: which AWS operations were called.

AWS JSON-protocol services (Lightsail, SSM, Secrets Manager, KMS) name the
operation in the ``X-Amz-Target`` header; the proxy counts them, can refuse
some (as an IAM policy without them would), can rewrite the JSON of an
operation's successful answers (a service answering outside its model), and
can hold the response of one call so a test can kill the caller while the
call has taken effect (or before it is forwarded).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.calls: Counter[str] = Counter()
        self.refused: set[str] = set()
        # Operation -> what its successful JSON answers become (the answer's effect stands).
        self.rewrite: dict[str, Callable[[Any], Any]] = {}
        # Hold the response of the Nth call of an operation (after it took effect).
        self.hold_operation: str | None = None
        self.hold_at = 0
        # ... or before it is forwarded (it never takes effect).
        self.hold_before = False
        self.held = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        target = handler.headers.get("X-Amz-Target", "")
        operation = target.rsplit(".", 1)[-1] if target else "(other)"
        with self._lock:
            self.calls[operation] += 1
            count = self.calls[operation]
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        if operation in self.refused:
            payload = (
                b'{"__type":"AccessDeniedException","message":"not allowed by the test policy"}'
            )
            self._reply(handler, 400, payload, "application/x-amz-json-1.1")
            return
        if self.hold_before and operation == self.hold_operation and count == self.hold_at:
            self.held.set()
            self.release.wait(60)
            return  # never forwarded, never answered
        upstream = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        upstream.request("POST", handler.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        content_type = response.getheader("Content-Type", "application/x-amz-json-1.1")
        upstream.close()
        if operation == self.hold_operation and count == self.hold_at:
            self.held.set()
            self.release.wait(60)
            return  # the caller never hears back
        rewrite = self.rewrite.get(operation)
        if rewrite is not None and response.status == 200:
            data = json.dumps(rewrite(json.loads(data))).encode()
        self._reply(handler, response.status, data, content_type)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, data: bytes, kind: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def recording_proxy(upstream: str) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
