"""SigV4 verification, the server's half: rebuild the signature from what was received.

Deliberately independent of the client's signer (``sagemaker_async._protocol.sigv4``): a bug shared
by the code that signs and the code that checks would pass unseen. This side follows the
SigV4 specification from the receiving end — it works on the raw bytes of the request line
and headers, re-derives the canonical request the way AWS does (normalize and re-encode the
path, decode and re-encode the query, trim and join header values, hash the body it actually
got), checks the credential scope and the clock, and compares signatures in constant time.
Failures are raised as ``AuthError`` carrying the code and wording AWS services use.

Pure: the caller passes the current time, so skew rules are testable without waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

__all__ = ["AuthError", "SigV4Verifier", "canonical_request"]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = b"UNSIGNED-PAYLOAD"
MAX_SKEW_SECONDS = 15 * 60

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_PARAM = re.compile(r"\s*([A-Za-z]+)=([^,\s]*)\s*")


class AuthError(Exception):
    """The request is not authentic; ``code`` and ``message`` are the service's."""

    def __init__(self, code: str, message: str, *, status: int = 403) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class _Authorization:
    access_key: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def _parse_authorization(value: str) -> _Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError(
            "IncompleteSignatureException",
            f"Unsupported AWS 'algorithm': '{algorithm}'. Only '{ALGORITHM}' is accepted.",
        )
    params: dict[str, str] = {}
    for part in rest.split(","):
        match = _PARAM.fullmatch(part)
        if match is not None:
            params[match.group(1)] = match.group(2)
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if name not in params
    ]
    if missing:
        raise AuthError("IncompleteSignatureException", " ".join(missing))
    scope = params["Credential"].split("/")
    if len(scope) != 5:
        raise AuthError(
            "IncompleteSignatureException",
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            "keyid/date/region/service/term, got '" + params["Credential"] + "'",
        )
    access_key, date, region, service, terminator = scope
    return _Authorization(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=tuple(params["SignedHeaders"].split(";")),
        signature=params["Signature"],
    )


def _normalize(path: bytes) -> bytes:
    """RFC 3986 dot-segment removal, plus AWS's folding of repeated slashes."""
    if not path:
        return b"/"
    normalized = posixpath.normpath(path)
    # posixpath keeps a leading '//' (POSIX says it may mean something); AWS folds it.
    normalized = b"/" + normalized.lstrip(b"/")
    if normalized == b"/.":
        normalized = b"/"
    if path.endswith(b"/") and not normalized.endswith(b"/"):
        normalized += b"/"
    return normalized


def _encode(raw: bytes) -> str:
    return quote(raw, safe="-_.~")


def _canonical_query(query: bytes) -> bytes:
    if not query:
        return b""
    pairs = []
    for item in query.split(b"&"):
        name, _, value = item.partition(b"=")
        # Decode as the service does ('+' is a space in a query), re-encode SigV4's way.
        pairs.append(
            (
                _encode(unquote_to_bytes(name.replace(b"+", b" "))),
                _encode(unquote_to_bytes(value.replace(b"+", b" "))),
            )
        )
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs).encode("ascii")


def canonical_request(
    method: str,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    signed_headers: Sequence[str],
    payload_hash: bytes,
) -> bytes:
    """The canonical request (bytes) for a received request and its SignedHeaders list.

    Every service but S3 signs the normalized path encoded once more (``%20`` on the wire is
    signed as ``%2520``); this verifier serves SageMaker, so it always does that.
    """
    raw_path, _, raw_query = target.partition(b"?")
    uri = quote(_normalize(raw_path), safe="/~").encode("ascii")
    lines = [method.upper().encode("ascii"), uri, _canonical_query(raw_query)]
    for name in signed_headers:
        key = name.encode("ascii", "replace")
        values = [b" ".join(value.split()) for header, value in headers if header == key]
        lines.append(key + b":" + b",".join(values))
    return b"\n".join(
        [*lines, b"", ";".join(signed_headers).encode("ascii", "replace"), payload_hash]
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _request_time(headers: Sequence[tuple[bytes, bytes]]) -> tuple[datetime, str]:
    """The signing time and its ``X-Amz-Date`` form, from X-Amz-Date or else Date."""
    amz = next((v for n, v in headers if n == b"x-amz-date"), None)
    if amz is not None:
        text = amz.decode("latin-1").strip()
        try:
            moment = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise AuthError(
                "IncompleteSignatureException",
                f"Date must be in ISO-8601 'basic format'. Got '{text}'. "
                "See http://en.wikipedia.org/wiki/ISO_8601",
            ) from None
        return moment, text
    date = next((v for n, v in headers if n == b"date"), None)
    if date is not None:
        parsed: datetime | None
        try:
            parsed = parsedate_to_datetime(date.decode("latin-1"))
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return parsed, parsed.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    raise AuthError(
        "IncompleteSignatureException",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    )


@dataclass(frozen=True)
class SigV4Verifier:
    """Checks requests against one key pair, for one signing service, in any region."""

    access_key: str
    secret_key: str = field(repr=False)
    service: str = "sagemaker"
    max_skew_seconds: float = MAX_SKEW_SECONDS
    region: str | None = None
    """The one region a scope may name; None: any."""

    def preflight(self, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """What can be checked before the body arrives: a signature by our key is there."""
        raw = next((v for n, v in headers if n == b"authorization"), None)
        if raw is None:
            raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
        auth = _parse_authorization(raw.decode("latin-1"))
        if not hmac.compare_digest(auth.access_key.encode(), self.access_key.encode()):
            raise AuthError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )

    def verify(
        self,
        method: str,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        *,
        now: float,
    ) -> None:
        """Return if the request is signed by our key; raise ``AuthError`` otherwise.

        ``headers`` are (lower-case name, raw value) pairs as received; ``now`` is the
        current POSIX time.
        """
        raw = next((v for n, v in headers if n == b"authorization"), None)
        if raw is None:
            raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
        auth = _parse_authorization(raw.decode("latin-1"))
        if not hmac.compare_digest(auth.access_key.encode(), self.access_key.encode()):
            raise AuthError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if any(n == b"x-amz-security-token" for n, _ in headers):
            # We hand out no session tokens, so any token is one we cannot recognize.
            raise AuthError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        moment, amz_date = _request_time(headers)
        if auth.terminator != "aws4_request":
            raise AuthError(
                "InvalidSignatureException",
                "Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{auth.terminator}'.",
            )
        if auth.service != self.service:
            raise AuthError(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{self.service}'. ",
            )
        if not auth.region or (self.region is not None and auth.region != self.region):
            raise AuthError(
                "InvalidSignatureException", "Credential should be scoped to a valid region."
            )
        if auth.date != amz_date[:8]:
            raise AuthError(
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{auth.date}' != '{amz_date[:8]}', from '{amz_date}'.",
            )
        self._check_clock(moment, amz_date, now)
        if "host" not in auth.signed_headers:
            raise AuthError(
                "InvalidSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            )
        body_hash = hashlib.sha256(body).hexdigest().encode("ascii")
        declared = next((v for n, v in headers if n == b"x-amz-content-sha256"), None)
        if declared is not None and declared not in (body_hash, UNSIGNED_PAYLOAD):
            raise AuthError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        payload_hash = declared if declared is not None else body_hash

        canonical = canonical_request(method, target, headers, auth.signed_headers, payload_hash)
        scope = f"{auth.date}/{auth.region}/{auth.service}/aws4_request"
        string_to_sign = "\n".join(
            [ALGORITHM, amz_date, scope, hashlib.sha256(canonical).hexdigest()]
        )
        key = _hmac(("AWS4" + self.secret_key).encode("utf-8"), auth.date)
        for part in (auth.region, auth.service, "aws4_request"):
            key = _hmac(key, part)
        expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode("ascii"), auth.signature.encode("latin-1")):
            raise AuthError("InvalidSignatureException", _SIGNATURE_MISMATCH)

    def _check_clock(self, moment: datetime, amz_date: str, now: float) -> None:
        skew = moment.timestamp() - now
        if abs(skew) <= self.max_skew_seconds:
            return
        minutes = int(self.max_skew_seconds // 60)
        current = datetime.fromtimestamp(now, timezone.utc)
        fmt = "%Y%m%dT%H%M%SZ"
        if skew < 0:
            bound = datetime.fromtimestamp(now - self.max_skew_seconds, timezone.utc)
            raise AuthError(
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier than {bound.strftime(fmt)} "
                f"({current.strftime(fmt)} - {minutes} min.)",
            )
        bound = datetime.fromtimestamp(now + self.max_skew_seconds, timezone.utc)
        raise AuthError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than {bound.strftime(fmt)} "
            f"({current.strftime(fmt)} + {minutes} min.)",
        )
