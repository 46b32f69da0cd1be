"""A seeded fault proxy for tests: HTTP between a client and an AWS endpoint (moto).

Each request is, by a seeded draw (or because it falls in an outage): answered
with a 500 / 503 / throttling error without being forwarded (in S3's XML, or
the JSON of SSM and Secrets Manager); forwarded late,
after the client's timeout; forwarded and then dropped without an answer (it
took effect, the client cannot know); forwarded and answered with the status and
headers but only part of the body before the connection is cut (it took effect;
botocore, left alone, parses the part as a success); or passed through.
With ``rate_limit``, requests are first metered by a token bucket, as AWS
meters an account's calls per region: one finding it empty is throttled
(HTTP 400 ``ThrottlingException`` in JSON, 503 ``SlowDown`` in XML) without
being forwarded. ``counts`` says how often each happened.
"""

from __future__ import annotations

import collections
import http.client
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ERRORS = (
    (500, "InternalError", "We encountered an internal error. Please try again."),
    (503, "ServiceUnavailable", "Please reduce your request rate."),
    (503, "SlowDown", "Please reduce your request rate."),
)
# The JSON-protocol services (SSM, Secrets Manager: requests carry X-Amz-Target).
_JSON_ERRORS = (
    (500, "InternalServerError", "An internal error occurred."),
    (503, "ServiceUnavailable", "The service is unavailable."),
    (400, "ThrottlingException", "Rate exceeded"),
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


@dataclass
class Faults:
    """Shares of requests: answered with an error, held past ``delay`` seconds, dropped
    after, cut short (half the answer's body sent)."""

    error: float = 0.0
    slow: float = 0.0
    drop_after: float = 0.0
    cut: float = 0.0
    delay: float = 1.5
    # (first, count): requests number first.. first+count-1 all answered 503 (an outage;
    # ``error`` draws throttles too, which a client answers by slowing down instead).
    outage: tuple[int, int] | None = None
    # (requests per second, burst): a token bucket in front of everything else.
    rate_limit: tuple[float, float] | None = None


class Bucket:
    """A token bucket: ``rate`` tokens a second, holding at most ``burst``; starts full."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self) -> bool:
        """Take a token if there is one (the caller holds the proxy's lock)."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults, *, seed: int) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = faults
        self.counts: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._bucket = Bucket(*faults.rate_limit) if faults.rate_limit else None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def draw(self) -> str:
        with self._lock:
            if self._bucket is not None and not self._bucket.take():
                self.counts["throttled"] += 1
                return "throttled"
            roll = self._rng.random()
            f = self.faults
            number = sum(self.counts.values())
            outage = f.outage is not None and f.outage[0] <= number < sum(f.outage)
            if outage:
                fate = "outage"
            elif roll < f.error:
                fate = "error"
            elif roll < f.error + f.slow:
                fate = "slow"
            elif roll < f.error + f.slow + f.drop_after:
                fate = "drop_after"
            elif roll < f.error + f.slow + f.drop_after + f.cut:
                fate = "cut"
            else:
                fate = "pass"
            self.counts[fate] += 1
            return fate

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        fate = self.draw()
        json_protocol = "X-Amz-Target" in request.headers
        if fate == "throttled":
            if json_protocol:
                self._answer_error(request, *_JSON_ERRORS[2], json=True)
            else:
                self._answer_error(request, *_ERRORS[2], json=False)
            return
        if fate == "outage":
            error = _JSON_ERRORS[1] if json_protocol else _ERRORS[1]
            self._answer_error(request, *error, json=json_protocol)
            return
        if fate == "error":
            with self._lock:
                errors = _JSON_ERRORS if json_protocol else _ERRORS
                status, code, message = self._rng.choice(errors)
            self._answer_error(request, status, code, message, json=json_protocol)
            return
        if fate == "slow":
            time.sleep(self.faults.delay)  # the client has given up; the request still lands
        status, headers, answer = self._forward(request, body)
        if fate == "drop_after":
            request.close_connection = True
            request.connection.close()
            return
        try:
            request.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    request.send_header(name, value)
            request.send_header("Content-Length", str(len(answer)))
            request.end_headers()
            if fate == "cut":
                request.wfile.write(answer[: len(answer) // 2])
                request.wfile.flush()
                request.close_connection = True
                request.connection.close()
            elif request.command != "HEAD":
                request.wfile.write(answer)
        except OSError:
            request.close_connection = True  # the client went away (timed out)

    @staticmethod
    def _answer_error(
        request: BaseHTTPRequestHandler, status: int, code: str, message: str, *, json: bool
    ) -> None:
        """An error answer in the request's protocol (JSON for SSM and Secrets Manager)."""
        if json:
            kind = "application/x-amz-json-1.1"
            payload = f'{{"__type":"{code}","message":"{message}"}}'.encode()
        else:
            kind = "application/xml"
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>"
            ).encode()
        request.send_response(status)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)

    def _forward(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.upstream.hostname or "127.0.0.1", self.upstream.port or 80
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(request.command, request.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            return response.status, response.getheaders(), answer
        finally:
            connection.close()

    @contextmanager
    def running(self) -> Iterator[FaultProxy]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
