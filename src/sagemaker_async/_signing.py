"""AWS Signature Version 4, written for the hot path.

botocore's ``SigV4Auth.add_auth`` re-derives the signing key (four HMACs) and walks generic
request objects on every call: about 50 µs a request, more than a loopback round trip. Here
the signing key is derived once per (secret, date) and the canonical request is assembled
from plain strings. Pure: no clock (the caller passes ``amz_date``), no I/O. Tests check it
byte for byte against botocore's ``SigV4Auth`` and AWS's public test vectors.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

import httpx

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "FrozenCredentials",
    "SigV4Signer",
    "format_amz_date",
]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_ALGORITHM = "AWS4-HMAC-SHA256"

# Headers botocore leaves out of the signature (hop-by-hop, tracing, the user agent), plus
# those it only adds after signing (Content-Length, the retry headers): a signature must
# cover exactly what botocore's covers, or the two could not be compared byte for byte.
_UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
        "content-length",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
        "authorization",
    }
)


@dataclass(frozen=True, slots=True)
class FrozenCredentials:
    """One consistent set of keys; the secret parts never show in a repr."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


def format_amz_date(epoch_seconds: float) -> str:
    """The ``X-Amz-Date`` form of a POSIX time (the caller owns the clock)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch_seconds))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _normalize_path(path: str) -> str:
    """Remove dot segments and repeated slashes, as SigV4 does for every service but S3."""
    if not path:
        return "/"
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    normalized = "/" + "/".join(parts)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return normalized


def canonical_uri(raw_path: str, *, s3: bool) -> str:
    """The canonical URI of an already percent-encoded request path.

    Every service but S3 normalizes the path and encodes it a second time; S3 signs the
    path exactly as sent.
    """
    if s3:
        return raw_path or "/"
    return quote(_normalize_path(raw_path), safe="/~")


def canonical_query(raw_query: str) -> str:
    """Sorted, uniformly encoded ``key=value`` pairs of a raw query string."""
    if not raw_query:
        return ""
    pairs = []
    for item in raw_query.split("&"):
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


class SigV4Signer:
    """Signs requests for one service in one region, caching the derived signing key."""

    __slots__ = ("_cached_key", "_cached_key_for", "_region", "_s3", "_scope_tail", "_service")

    def __init__(self, region: str, service: str) -> None:
        self._region = region
        self._service = service
        self._s3 = service == "s3"
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._cached_key_for: tuple[str, str] | None = None
        self._cached_key = b""

    @property
    def region(self) -> str:
        return self._region

    @property
    def service(self) -> str:
        return self._service

    def __repr__(self) -> str:
        return f"SigV4Signer(region={self._region!r}, service={self._service!r})"

    def signing_key(self, secret_key: str, datestamp: str) -> bytes:
        """The day's signing key; four HMACs the first time each day, none afterwards."""
        wanted = (secret_key, datestamp)
        if self._cached_key_for != wanted:
            k_date = _hmac(("AWS4" + secret_key).encode("utf-8"), datestamp)
            k_region = _hmac(k_date, self._region)
            k_service = _hmac(k_region, self._service)
            self._cached_key = _hmac(k_service, "aws4_request")
            self._cached_key_for = wanted
        return self._cached_key

    def string_to_sign(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        payload_hash: str,
        amz_date: str,
    ) -> tuple[str, str]:
        """The string to sign and the ``SignedHeaders`` list, for the given headers.

        ``path`` and ``query`` are as sent (percent-encoded); ``headers`` are exactly those
        to sign, any case, repeated names allowed (their values join with commas, in order).
        """
        merged: dict[str, str] = {}
        for name, value in headers:
            lname = name.lower()
            folded = " ".join(value.split())
            merged[lname] = f"{merged[lname]},{folded}" if lname in merged else folded
        names = sorted(merged)
        signed_headers = ";".join(names)
        canonical_headers = "".join(f"{n}:{merged[n]}\n" for n in names)
        canonical_request = (
            f"{method}\n{canonical_uri(path, s3=self._s3)}\n{canonical_query(query)}\n"
            f"{canonical_headers}\n{signed_headers}\n{payload_hash}"
        )
        scope = amz_date[:8] + self._scope_tail
        digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
        return f"{_ALGORITHM}\n{amz_date}\n{scope}\n{digest}", signed_headers

    def authorization(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        payload_hash: str,
        credentials: FrozenCredentials,
        amz_date: str,
    ) -> str:
        """The ``Authorization`` header value for a request with exactly these signed headers."""
        to_sign, signed_headers = self.string_to_sign(
            method=method,
            path=path,
            query=query,
            headers=headers,
            payload_hash=payload_hash,
            amz_date=amz_date,
        )
        datestamp = amz_date[:8]
        key = self.signing_key(credentials.secret_key, datestamp)
        signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        return (
            f"{_ALGORITHM} Credential={credentials.access_key}/{datestamp}{self._scope_tail}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )

    def sign_request(
        self,
        request: httpx.Request,
        credentials: FrozenCredentials,
        *,
        amz_date: str,
        payload_hash: str,
    ) -> httpx.Request:
        """Add ``X-Amz-Date``, the session token, (S3) the content hash and ``Authorization``.

        Signs every header already on the request except those botocore never signs, so a
        request built like botocore's is signed like botocore's.
        """
        headers = request.headers
        headers["X-Amz-Date"] = amz_date
        if self._s3:
            headers["x-amz-content-sha256"] = payload_hash
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        to_sign = [
            (name, value)
            for name, value in headers.multi_items()
            if name.lower() not in _UNSIGNED_HEADERS
        ]
        headers["Authorization"] = self.authorization(
            method=request.method,
            path=request.url.raw_path.decode("ascii").partition("?")[0],
            query=request.url.query.decode("ascii"),
            headers=to_sign,
            payload_hash=payload_hash,
            credentials=credentials,
            amz_date=amz_date,
        )
        return request
