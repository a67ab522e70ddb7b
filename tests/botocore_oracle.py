"""botocore as the oracle for S3 requests: boto3 builds and signs, and sends nothing.

A boto3 S3 client whose ``before-send`` handler raises with the prepared request, so the
tests can compare our URL and ``Authorization`` with botocore's own for the same call.
Checksums are set to "when_required" so botocore adds none (we send none either).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


class Captured(Exception):
    """Raised at before-send: the request was built and signed, and goes nowhere."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _capture(request: Any, **_: Any) -> None:
    raise Captured(request)


def add_content_length(request: Any, *, length: int, **_: Any) -> None:
    # What we do for a streamed upload: Content-Length is set before signing, so signed.
    request.headers["Content-Length"] = str(length)


_BOTO3_CLIENTS: dict[tuple[str, str | None, str], Any] = {}


def boto3_s3(region: str, *, token: str | None = None, **config: Any) -> Any:
    """A boto3 S3 client that builds and signs, then stops at before-send."""
    cache_key = (region, token, repr(sorted(config.items())))
    client = _BOTO3_CLIENTS.get(cache_key)
    if client is None:
        endpoint_url = config.pop("endpoint_url", None)
        client = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            aws_session_token=token,
            config=Config(
                signature_version="s3v4",
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 1, "mode": "standard"},
                **config,
            ),
        )
        client.meta.events.register("before-send", _capture)
        _BOTO3_CLIENTS[cache_key] = client
    return client


def botocore_request(client: Any, operation: str, **params: Any) -> Any:
    with pytest.raises(Captured) as caught:
        getattr(client, operation)(**params)
    return caught.value.request


def header(request: Any, name: str) -> str:
    value = request.headers[name]
    return value.decode() if isinstance(value, bytes) else str(value)
