"""HEADs of keys that are not there yet, answered without moto's web stack.

A client polling for results sends mostly HEADs of objects not yet written: at 10,000 waits
on the local endpoint that was over a thousand a second, and moto answered each through
Flask, werkzeug and its request parsing at about 0.7 ms of the server's CPU, on a thread of
the S3 pool. The server fell seconds behind, so polling clients measured the local endpoint,
not their own schedule (``make bench-notify``'s HEAD row).

The answer to such a HEAD is decided here, on the event loop, from moto's own store, only
where it is certain to be moto's: a path-style ``HEAD /bucket/key`` with no query string,
whose bucket exists in the backend moto would pick for the request (account from the access
key as moto maps it, partition from the signing region) and holds no version of the key,
with moto's IAM checks off. Its answer is the one moto gives then: 404, no body, the same
headers. Everything else — an existing key, a delete marker, a missing bucket, a versioned
or partial read, a percent-encoded key, a virtual-hosted or account-pinned request — goes to
moto unchanged, as does a request with a header outside a short list that cannot change
the answer (an ``Origin``, say, which moto answers with CORS headers of its own). A test
compares both answers request by request, and a hypothesis test varies every part.

Reads of moto's dicts from the loop thread while the S3 pool writes are single dictionary
lookups, atomic in CPython; a key being written at that moment is either seen (moto answers)
or not yet (404), as with any HEAD racing a PUT. ``check_seam`` fails loudly if a moto
release moves these internals; the endpoint then sends every HEAD to moto.
"""

from __future__ import annotations

import math
import os
import random
import re
import string
from typing import Any

from ._http import Request, Response

__all__ = ["MissingKeyHeads", "SeamMissing", "check_seam"]

# Keys and bucket names that need no decoding: moto would read them as sent.
_PLAIN_PATH = re.compile(rb"/([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/([A-Za-z0-9\-._~/]+)")
# Hosts moto reads path-style: an IPv4 literal, a bracketed IPv6 literal, or localhost.
_PATH_STYLE_HOST = re.compile(rb"(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\])(:\d+)?")
# Segments a URL parser might resolve or merge: moto's reading of them is its own.
_ODD_SEGMENTS = frozenset({b"", b".", b".."})
# Request headers that cannot change moto's answer to a HEAD of a missing key (the
# conditions and the checksum mode are read only once a key is found). Any other header
# (``Origin``, which moto's CORS answers with its own headers; ``x-moto-account-id``; ...)
# leaves the request to moto.
_NEUTRAL_HEADERS = frozenset(
    {
        b"host", b"authorization", b"x-amz-date", b"x-amz-content-sha256",
        b"x-amz-security-token", b"user-agent", b"x-amz-user-agent", b"amz-sdk-invocation-id",
        b"amz-sdk-request", b"accept", b"accept-encoding", b"connection", b"content-length",
        b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since",
        b"x-amz-checksum-mode",
    }
)  # fmt: skip
_ACCESS_KEY = re.compile(rb"Credential=([^/,\s]+)/")
_REQUEST_ID_ALPHABET = string.ascii_letters + string.digits
_REQUEST_ID_LENGTH = 52  # moto's x-amzn-requestid
_ANONYMOUS_KEY = "AKIAEXAMPLE"  # the access key moto assumes without one


class SeamMissing(RuntimeError):
    """moto no longer has the internals this module relies on."""


def check_seam() -> dict[str, Any]:
    """moto's functions and store that the missing-key answer needs; ``SeamMissing`` if not."""
    try:
        from moto import settings
        from moto.core.utils import extract_region_from_aws_authorization
        from moto.iam.models import get_account_id_from
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition
    except ImportError as exc:
        raise SeamMissing(f"moto's S3 internals cannot be imported: {exc}") from exc
    backend = s3_backends["123456789012"]["aws"]
    if not isinstance(getattr(backend, "buckets", None), dict):
        raise SeamMissing("moto's S3 backend has no `buckets` dictionary")
    return {
        "settings": settings,
        "region_of": extract_region_from_aws_authorization,
        "account_of": get_account_id_from,
        "backends": s3_backends,
        "partition_of": get_partition,
    }


class MissingKeyHeads:
    """Answers a HEAD of a missing key as moto would, or says it is moto's to answer."""

    def __init__(self, seam: dict[str, Any]) -> None:
        self._settings = seam["settings"]
        self._region_of = seam["region_of"]
        self._account_of = seam["account_of"]
        self._backends = seam["backends"]
        self._partition_of = seam["partition_of"]
        self.answered = 0  # how many HEADs it answered itself (tests and the bench read it)

    def answer(self, request: Request) -> Response | None:
        """The 404 for a HEAD of a key that certainly is not there, else None (ask moto)."""
        if request.method != "HEAD" or b"?" in request.target:
            return None
        match = _PLAIN_PATH.fullmatch(request.target)
        if match is None or any(part in _ODD_SEGMENTS for part in match.group(2).split(b"/")):
            return None
        host = request.header("host")
        if host is None or _PATH_STYLE_HOST.fullmatch(host) is None:
            return None
        if any(name not in _NEUTRAL_HEADERS for name, _ in request.headers):
            return None
        if "MOTO_ACCOUNT_ID" in os.environ:
            return None
        if math.inf > self._settings.INITIAL_NO_AUTH_ACTION_COUNT:
            return None  # moto's IAM checks are on: they decide, not the store
        raw_authorization = request.header("authorization") or b""
        found = _ACCESS_KEY.search(raw_authorization)
        access_key = found.group(1).decode("latin-1") if found else _ANONYMOUS_KEY
        authorization = raw_authorization.decode("latin-1")
        region = self._region_of(authorization) or "us-east-1"
        account = self._account_of(access_key)
        if account not in self._backends:
            return None
        backend = self._backends[account][self._partition_of(region)]
        bucket = backend.buckets.get(match.group(1).decode("ascii"))
        if bucket is None or match.group(2).decode("ascii") in bucket.keys:
            return None
        self.answered += 1
        return Response(
            404,
            [
                ("x-amzn-requestid", _request_id()),
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", "0"),
                ("Access-Control-Allow-Origin", "*"),
            ],
            b"",
        )


def _request_id() -> str:
    return "".join(random.choices(_REQUEST_ID_ALPHABET, k=_REQUEST_ID_LENGTH))
