"""A stand-in SSM Parameter Store for the memory benchmark's key-store case.

It answers the one call plan makes of a key store, DescribeParameters with a
name filter (and the fingerprint label as a tag filter), as a store holding
every parameter asked for would: each named parameter at version 1, labelled
with ``fingerprint``. moto would do, but it scans every parameter (and its
tags) per call; at 100,000 parameters the seeding and 2,000 calls would take
longer than the plan measured. Memory is what is measured here, not SSM.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET = "AmazonSSM.DescribeParameters"


def answer(request: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    names: list[str] = []
    for item in request.get("ParameterFilters", []):
        values = item.get("Values", [])
        if item.get("Key") == "Name":
            names = values
        elif str(item.get("Key", "")).startswith("tag:") and fingerprint not in values:
            return {"Parameters": []}
    return {
        "Parameters": [
            {"Name": name, "Type": "SecureString", "Version": 1, "DataType": "text"}
            for name in names
        ]
    }


@contextmanager
def serve(fingerprint: str) -> Iterator[str]:
    """The stub on a free loopback port, for the block; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("X-Amz-Target") == TARGET:
                status, data = 200, answer(json.loads(body or b"{}"), fingerprint)
            else:
                status, data = 400, {"__type": "InvalidAction", "message": "not in this stub"}
            out = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
