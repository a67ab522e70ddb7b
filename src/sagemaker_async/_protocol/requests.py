"""Requests as values: what to send, built by pure functions from validated parameters.

A ``Request`` holds everything the signed sender needs and nothing it must work out again:
the URL as sent, the host, the path and query exactly as signed, the headers to sign and
send (besides host, date and token, which belong to each attempt), and the payload hash.
``invoke_request`` builds InvokeEndpointAsync's; ``.s3`` builds the S3 ones. No client
state, no clock, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from .invoke import invoke_headers, invoke_path
from .params import InvokeParams
from .sigv4 import EMPTY_SHA256

__all__ = ["Request", "RuntimeEndpoint", "invoke_request"]

_TARGETS = 1024


class Request(NamedTuple):
    """One operation's request parts, ready to sign and send (a tuple: built per call)."""

    operation: str
    method: str
    url: str  # the whole URL, as sent
    host: str  # host[:port], as signed and sent
    headers: Sequence[tuple[str, str]]  # signed and sent, in this order, after Host
    payload_hash: str
    path: str  # the raw (percent-encoded) path, as signed
    query: str = ""  # the raw query string, as signed


class RuntimeEndpoint:
    """Where InvokeEndpointAsync goes: the SageMaker Runtime URL, split once.

    It remembers each endpoint name's URL and path (percent-encoding is the costly part
    of building a request), at most 1024 of them.
    """

    __slots__ = ("_targets", "host", "prefix", "scheme")

    def __init__(self, scheme: str, host: str, prefix: str) -> None:
        self.scheme = scheme
        self.host = host
        self.prefix = prefix  # the URL's own raw path, no trailing slash ("" for AWS)
        self._targets: dict[str, tuple[str, str]] = {}

    def target(self, endpoint_name: str) -> tuple[str, str]:
        """(URL, path) of an endpoint's invocations."""
        found = self._targets.get(endpoint_name)
        if found is None:
            if len(self._targets) >= _TARGETS:
                self._targets.clear()
            path = self.prefix + invoke_path(endpoint_name)
            found = self._targets[endpoint_name] = (f"{self.scheme}://{self.host}{path}", path)
        return found


def invoke_request(endpoint: RuntimeEndpoint, params: InvokeParams) -> Request:
    """InvokeEndpointAsync: botocore's headers, in botocore's order; the body is the caller's."""
    name = params.endpoint_name
    url, path = endpoint._targets.get(name) or endpoint.target(name)
    body = params.body
    return Request(
        "InvokeEndpointAsync",
        "POST",
        url,
        endpoint.host,
        invoke_headers(params),
        hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
        path,
    )
