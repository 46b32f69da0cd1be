"""Helpers for emulator tests: raw HTTP requests that boto3 would refuse to send.

boto3 validates its input and always signs correctly, so malformed bodies,
missing members, bad signatures and unknown targets are sent here with
``http.client``, signed (when asked) by botocore's own SigV4 signer.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.conftest import ACCESS_KEY, SECRET_KEY

TARGET_PREFIX = "Lightsail_20161128."
JSON_11 = "application/x-amz-json-1.1"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def client(url: str, region: str = "us-east-1", *, attempts: int = 1, **config: Any) -> Any:
    """A boto3 Lightsail client making exactly ``attempts`` attempts per call.

    botocore's ``retries={"max_attempts": N}`` counts retries, not attempts;
    fault tests need to see every single response.
    """
    return boto3.client(
        "lightsail",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}, **config),
    )


def live_fingerprints(url: str, region: str = "us-east-1") -> dict[str, str]:
    """Every key pair live in ``region`` (default key excluded): name to fingerprint."""
    out: dict[str, str] = {}
    for page in client(url, region).get_paginator("get_key_pairs").paginate():
        out.update({kp["name"]: kp["fingerprint"] for kp in page["keyPairs"]})
    return out


def signed_headers(
    url: str,
    target: str,
    body: bytes,
    *,
    region: str = "us-east-1",
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    service: str = "lightsail",
) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=body,
        headers={"Content-Type": JSON_11, "X-Amz-Target": target},
    )
    SigV4Auth(Credentials(access_key, secret_key), service, region).add_auth(request)
    return dict(request.headers.items())


def send(url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> RawResponse:
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, "/", body=body, headers=headers)
        response = connection.getresponse()
        return RawResponse(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def call(url: str, operation: str, payload: Any = None, **signing: Any) -> RawResponse:
    """A correctly signed request to ``operation`` with ``payload`` (bytes or JSON)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload or {}).encode()
    target = operation if "." in operation else TARGET_PREFIX + operation
    return send(url, body, signed_headers(url, target, body, **signing))


def raw_exchange(url: str, data: bytes, *, timeout: float = 10) -> bytes:
    """Write ``data`` on a fresh socket and return everything read until close or timeout."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def error(exc: ClientError) -> tuple[str, str | None, str, int]:
    """(``__type``, Lightsail ``code``, message, HTTP status) of a botocore ClientError."""
    response: Any = exc.response
    return (
        response["Error"]["Code"],
        response.get("code"),
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def ed25519_openssh(comment: str = "") -> str:
    """A fresh ed25519 public key as an OpenSSH line (cheap, unlike RSA)."""
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{line} {comment}".strip()
