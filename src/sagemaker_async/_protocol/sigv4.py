"""AWS Signature Version 4, written for the hot path.

botocore's ``SigV4Auth.add_auth`` re-derives the signing key (four HMACs) and walks generic
request objects on every call: about 50 µs a request, more than a loopback round trip. Here
the signing key is derived once per (secret, date), canonical URIs are remembered per path,
headers are read from httpx's raw list (its decoded views re-guess the encoding per header)
and the canonical request is assembled from plain strings. Pure: no clock (the caller passes
``amz_date``), no I/O. Tests check it byte for byte against botocore's ``SigV4Auth`` /
``S3SigV4Auth`` and AWS's public SigV4 test suite.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

import httpx

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "FrozenCredentials",
    "SigV4Signer",
    "canonical_query",
    "canonical_uri",
    "format_amz_date",
]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_ALGORITHM = "AWS4-HMAC-SHA256"

# Headers botocore leaves out of the signature (hop-by-hop, tracing, the user agent), plus
# those it only adds after signing (Content-Length, the retry headers): a signature must
# cover exactly what botocore's covers, or the two could not be compared byte for byte.
# Bytes, because they are matched against httpx's raw (undecoded) header names.
_UNSIGNED_HEADERS = frozenset(
    {
        b"baggage",
        b"connection",
        b"expect",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"traceparent",
        b"tracestate",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"user-agent",
        b"x-amzn-trace-id",
        b"content-length",
        b"amz-sdk-invocation-id",
        b"amz-sdk-request",
        b"authorization",
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
    # hmac.digest is the one-shot C path: no HMAC object, no Python-level copy of the key.
    return hmac.digest(key, msg.encode("utf-8"), "sha256")


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


@lru_cache(maxsize=256)
def _canonical_uri_normalized(raw_path: str) -> str:
    # A client sends the same few paths over and over (one per endpoint), so normalizing
    # and re-encoding each of them once is enough; the bound keeps odd traffic harmless.
    return quote(_normalize_path(raw_path), safe="/~")


def canonical_uri(raw_path: str, *, s3: bool) -> str:
    """The canonical URI of a request path exactly as it goes on the wire.

    Every service but S3 normalizes the path and encodes it a second time (so ``%20`` on
    the wire is signed as ``%2520``, and a raw ``ሴ`` as ``%E1%88%B4``); S3 signs the path
    exactly as sent, so S3 paths must already be fully percent-encoded.
    """
    if s3:
        return raw_path or "/"
    return _canonical_uri_normalized(raw_path)


def _uri_encode_component(raw: str) -> str:
    # Decode to bytes (not str) so a percent-escape that is not UTF-8, like %FF, survives
    # as the same byte instead of turning into U+FFFD; '+' in a query means a space
    # (form encoding, which is what httpx's ``params=`` produces and what AWS decodes).
    return quote(unquote_to_bytes(raw.replace("+", " ")), safe="-_.~")


def canonical_query(raw_query: str) -> str:
    """Sorted, uniformly encoded ``key=value`` pairs of a raw query string.

    Each name and value is decoded and re-encoded with SigV4's rules (only ``A-Za-z0-9-_.~``
    left bare, upper-case hex, ``%20`` for a space whether it arrived as ``%20`` or ``+``),
    then the pairs are sorted by encoded name, then value: the same string botocore signs
    for the same parameters, whatever encoding the HTTP client chose for the wire.
    """
    if not raw_query:
        return ""
    pairs = []
    for item in raw_query.split("&"):
        key, _, value = item.partition("=")
        pairs.append((_uri_encode_component(key), _uri_encode_component(value)))
    pairs.sort()
    return "&".join([f"{k}={v}" for k, v in pairs])


class SigV4Signer:
    """Signs requests for one service in one region, caching the derived signing key."""

    __slots__ = ("_key_cache", "_region", "_s3", "_scope_tail", "_service")

    def __init__(self, region: str, service: str) -> None:
        self._region = region
        self._service = service
        self._s3 = service == "s3"
        self._scope_tail = f"/{region}/{service}/aws4_request"
        # (secret, datestamp, key) in one tuple, replaced in one assignment: two threads
        # sharing a signer can never pair one secret's key with another secret.
        self._key_cache: tuple[str, str, bytes] | None = None

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
        cached = self._key_cache
        if cached is not None and cached[1] == datestamp and cached[0] == secret_key:
            return cached[2]
        k_date = _hmac(("AWS4" + secret_key).encode("utf-8"), datestamp)
        k_region = _hmac(k_date, self._region)
        k_service = _hmac(k_region, self._service)
        key = _hmac(k_service, "aws4_request")
        self._key_cache = (secret_key, datestamp, key)
        return key

    def canonical_request(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        payload_hash: str,
    ) -> tuple[str, str]:
        """The canonical request and the ``SignedHeaders`` list, for the given headers.

        ``path`` and ``query`` are as they go on the wire (a path is normally
        percent-encoded; raw UTF-8 is encoded once); ``headers`` are exactly those to sign,
        any case, repeated names allowed (their values join with commas, in order).
        """
        return self._canonical_request(method, path, query, headers, payload_hash)

    def _canonical_request(
        self,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        payload_hash: str,
    ) -> tuple[str, str]:
        merged: dict[str, str] = {}
        for name, value in headers:
            lname = name.lower()
            folded = " ".join(value.split())
            if lname in merged:
                merged[lname] = f"{merged[lname]},{folded}"
            else:
                merged[lname] = folded
        names = sorted(merged)
        signed_headers = ";".join(names)
        canonical_headers = "".join([f"{n}:{merged[n]}\n" for n in names])
        uri = (path or "/") if self._s3 else _canonical_uri_normalized(path)
        query_part = canonical_query(query) if query else ""
        return (
            f"{method.upper()}\n{uri}\n{query_part}\n"
            f"{canonical_headers}\n{signed_headers}\n{payload_hash}",
            signed_headers,
        )

    def _string_to_sign(self, canonical_request: str, amz_date: str) -> str:
        # surrogateescape: header bytes httpx held undecodable go back out as those bytes.
        digest = hashlib.sha256(canonical_request.encode("utf-8", "surrogateescape")).hexdigest()
        return f"{_ALGORITHM}\n{amz_date}\n{amz_date[:8]}{self._scope_tail}\n{digest}"

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
        """The string to sign and the ``SignedHeaders`` list (see ``canonical_request``)."""
        canonical, signed_headers = self._canonical_request(
            method, path, query, headers, payload_hash
        )
        return self._string_to_sign(canonical, amz_date), signed_headers

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
        return self._authorization(
            method, path, query, headers, payload_hash, credentials, amz_date
        )

    def _authorization(
        self,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        payload_hash: str,
        credentials: FrozenCredentials,
        amz_date: str,
    ) -> str:
        canonical, signed_headers = self._canonical_request(
            method, path, query, headers, payload_hash
        )
        to_sign = self._string_to_sign(canonical, amz_date)
        datestamp = amz_date[:8]
        key = self.signing_key(credentials.secret_key, datestamp)
        signature = hmac.digest(key, to_sign.encode("utf-8"), "sha256").hex()
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
        """Add ``X-Amz-Date``, the session token, the content hash and ``Authorization``.

        Signs every header already on the request except those botocore never signs, so a
        request built like botocore's is signed like botocore's. ``X-Amz-Content-SHA256``
        is sent for S3 (which requires it) and with ``UNSIGNED_PAYLOAD`` (without it the
        service would hash the body itself and reject the signature). Edits the request
        in place and returns it.
        """
        headers = request.headers
        headers["X-Amz-Date"] = amz_date
        if self._s3 or payload_hash == UNSIGNED_PAYLOAD:
            headers["X-Amz-Content-SHA256"] = payload_hash
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        # The raw byte pairs: httpx's str views re-guess the encoding for every header read.
        to_sign = [
            (lname.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            for name, value in headers.raw
            if (lname := name.lower()) not in _UNSIGNED_HEADERS
        ]
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        headers["Authorization"] = self._authorization(
            request.method, path, query, to_sign, payload_hash, credentials, amz_date
        )
        return request
