"""SigV4 for the S3 half, the server's side: decided on the head, the payload checked as it
streams.

S3 signs differently from the runtime API, and SDKs use all of its forms over plain HTTP:

- the ``Authorization`` header with ``x-amz-content-sha256`` declaring the payload: its
  SHA-256 (verified against the body as it arrives, before anything is stored),
  ``UNSIGNED-PAYLOAD``, ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` (``aws-chunked``: every
  chunk carries a signature chained from the previous one — verified chunk by chunk),
  ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (what botocore sends over HTTPS: bare chunks and a
  trailing checksum, verified against the decoded body) or
  ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` (signed chunks and a signed trailer);
- presigned URLs: the same signature in the query (``X-Amz-Signature`` and friends), with
  ``X-Amz-Expires``, over ``UNSIGNED-PAYLOAD``.

The signature itself covers only the head (the payload enters it as the declared hash), so
``check_head`` decides before any body byte is read, and ``PayloadCheck`` (``_s3_payload``)
sees the body bytes. The canonical URI is the path as sent (S3 neither normalizes nor
double-encodes); a path encoded differently from the signer's is tried in its canonical
re-encoding too.
Pure: the caller passes the time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, unquote_to_bytes

from ._s3_payload import CHUNKED, UNSIGNED, PayloadCheck, describes_body, payload_check
from ._sigv4_verify import (
    ALGORITHM,
    MAX_SKEW_SECONDS,
    AuthError,
    _canonical_query,
    _parse_authorization,
)

__all__ = ["PayloadCheck", "S3Verifier", "unverified_payload"]

_MAX_EXPIRES = 7 * 24 * 3600
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise AuthError(
            "AuthorizationHeaderMalformed",
            f"X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\", got {text!r}",
            status=400,
        ) from None


@dataclass(frozen=True)
class S3Verifier:
    """Checks S3 requests against one key pair in one region."""

    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    max_skew_seconds: float = MAX_SKEW_SECONDS

    def check_head(
        self, method: str, target: bytes, headers: tuple[tuple[bytes, bytes], ...], *, now: float
    ) -> PayloadCheck:
        """Verify the signature of a request head; the returned check verifies its body."""
        raw_path, _, raw_query = target.partition(b"?")
        query_names = {item.partition(b"=")[0] for item in raw_query.split(b"&") if item}
        authorization = next((v for n, v in headers if n == b"authorization"), None)
        if b"X-Amz-Signature" in query_names or b"X-Amz-Algorithm" in query_names:
            if authorization is not None:
                raise AuthError(
                    "InvalidArgument",
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                    "parameter, Signature query string parameter or the Authorization header "
                    "should be specified",
                    status=400,
                )
            return self._check_presigned(method, raw_path, raw_query, headers, now)
        if authorization is None and b"AWSAccessKeyId" in query_names:
            return self._check_presigned_v2(method, raw_path, raw_query, headers, now)
        if authorization is None:
            raise AuthError("AccessDenied", "Access Denied")
        return self._check_header(method, raw_path, raw_query, headers, authorization, now)

    def _check_scope(
        self, access_key: str, date: str, region: str, service: str, term: str, amz_date: str
    ) -> None:
        if not hmac.compare_digest(access_key.encode(), self.access_key.encode()):
            raise AuthError(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        if service != "s3" or term != "aws4_request":
            raise AuthError(
                "AuthorizationHeaderMalformed",
                f'The authorization header is malformed; incorrect service "{service}". '
                'This endpoint belongs to "s3".',
                status=400,
            )
        if region != self.region:
            raise AuthError(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; the region '{region}' is wrong; "
                f"expecting '{self.region}'",
                status=400,
            )
        if date != amz_date[:8]:
            raise AuthError(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; Invalid credential date. Date is "
                f"not the same as X-Amz-Date: {date}.",
                status=400,
            )

    def _signing_key(self, date: str) -> bytes:
        key = _hmac(("AWS4" + self.secret_key).encode("utf-8"), date)
        for part in (self.region, "s3", "aws4_request"):
            key = _hmac(key, part)
        return key

    def _matches(
        self,
        method: str,
        raw_path: bytes,
        canonical_query: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        signed_headers: tuple[str, ...],
        payload_hash: bytes,
        amz_date: str,
        scope: str,
        key: bytes,
        signature: str,
    ) -> bool:
        lines = []
        for name in signed_headers:
            wanted = name.encode("ascii", "replace")
            values = [b" ".join(v.split()) for n, v in headers if n == wanted]
            lines.append(wanted + b":" + b",".join(values))
        tail = b"\n".join(
            [*lines, b"", ";".join(signed_headers).encode("ascii", "replace"), payload_hash]
        )
        paths = [raw_path or b"/"]
        recoded = quote(unquote_to_bytes(raw_path or b"/"), safe="/~").encode("ascii")
        if recoded != paths[0]:
            paths.append(recoded)
        for path in paths:
            canonical = b"\n".join([method.encode("ascii", "replace"), path, canonical_query, tail])
            string_to_sign = "\n".join(
                [ALGORITHM, amz_date, scope, hashlib.sha256(canonical).hexdigest()]
            )
            expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected.encode("ascii"), signature.encode("latin-1")):
                return True
        return False

    def _check_clock(self, moment: datetime, now: float) -> None:
        if abs(moment.timestamp() - now) > self.max_skew_seconds:
            raise AuthError(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            )

    def _check_header(
        self,
        method: str,
        raw_path: bytes,
        raw_query: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        authorization: bytes,
        now: float,
    ) -> PayloadCheck:
        try:
            auth = _parse_authorization(authorization.decode("latin-1"))
        except AuthError as exc:
            raise AuthError("AuthorizationHeaderMalformed", exc.message, status=400) from None
        amz = next((v for n, v in headers if n == b"x-amz-date"), None)
        if amz is None:
            raise AuthError(
                "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
            )
        amz_date = amz.decode("latin-1").strip()
        moment = _parse_time(amz_date)
        self._check_scope(
            auth.access_key, auth.date, auth.region, auth.service, auth.terminator, amz_date
        )
        self._check_clock(moment, now)
        if "host" not in auth.signed_headers:
            raise AuthError("AccessDenied", "'host' must be a signed header")
        declared = next((v for n, v in headers if n == b"x-amz-content-sha256"), None)
        if declared is None:
            raise AuthError(
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
                status=400,
            )
        declared = declared.strip()
        if (
            declared != UNSIGNED
            and declared not in CHUNKED
            and (len(declared) != 64 or declared.strip(b"0123456789abcdef"))
        ):
            raise AuthError(
                "InvalidArgument",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 value.",
                status=400,
            )
        scope = f"{auth.date}/{auth.region}/s3/aws4_request"
        key = self._signing_key(auth.date)
        if not self._matches(
            method,
            raw_path,
            _canonical_query(raw_query),
            headers,
            auth.signed_headers,
            declared,
            amz_date,
            scope,
            key,
            auth.signature,
        ):
            raise AuthError("SignatureDoesNotMatch", _MISMATCH)
        return payload_check(
            declared,
            headers,
            signing_key=key,
            seed_signature=auth.signature,
            amz_date=amz_date,
            scope=scope,
            header_checksums=describes_body(method, raw_path + b"?" + raw_query),
        )

    def _check_presigned(
        self,
        method: str,
        raw_path: bytes,
        raw_query: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        now: float,
    ) -> PayloadCheck:
        params: dict[bytes, bytes] = {}
        kept = []
        for item in raw_query.split(b"&"):
            name, _, value = item.partition(b"=")
            if name in params and name.startswith(b"X-Amz-"):
                raise AuthError(
                    "AuthorizationQueryParametersError", f"{name!r} is repeated", status=400
                )
            params[name] = unquote_to_bytes(value)
            if name != b"X-Amz-Signature":
                kept.append(item)
        required = (
            b"X-Amz-Algorithm",
            b"X-Amz-Credential",
            b"X-Amz-Date",
            b"X-Amz-Expires",
            b"X-Amz-SignedHeaders",
            b"X-Amz-Signature",
        )
        missing = [n.decode() for n in required if n not in params]
        if missing:
            raise AuthError(
                "AuthorizationQueryParametersError",
                f"Query-string authentication version 4 requires {', '.join(missing)}.",
                status=400,
            )
        if params[b"X-Amz-Algorithm"] != ALGORITHM.encode():
            raise AuthError(
                "AuthorizationQueryParametersError",
                'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
                status=400,
            )
        scope_parts = params[b"X-Amz-Credential"].decode("latin-1").split("/")
        if len(scope_parts) != 5:
            raise AuthError(
                "AuthorizationQueryParametersError",
                "X-Amz-Credential must have exactly 5 slash-delimited elements.",
                status=400,
            )
        access_key, date, region, service, term = scope_parts
        amz_date = params[b"X-Amz-Date"].decode("latin-1")
        moment = _parse_time(amz_date)
        self._check_scope(access_key, date, region, service, term, amz_date)
        expires_text = params[b"X-Amz-Expires"].decode("latin-1")
        if not expires_text.isdigit() or not 0 < int(expires_text) <= _MAX_EXPIRES:
            raise AuthError(
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be a number of seconds between 1 and 604800.",
                status=400,
            )
        if moment.timestamp() - now > self.max_skew_seconds:
            raise AuthError("AccessDenied", "Request is not valid yet")
        if now > moment.timestamp() + int(expires_text):
            raise AuthError("AccessDenied", "Request has expired")
        signed = tuple(params[b"X-Amz-SignedHeaders"].decode("latin-1").split(";"))
        if "host" not in signed:
            raise AuthError("AccessDenied", "'host' must be a signed header")
        declared = next((v for n, v in headers if n == b"x-amz-content-sha256"), None)
        payload = UNSIGNED if declared is None else declared.strip()
        scope = f"{date}/{region}/s3/aws4_request"
        key = self._signing_key(date)
        if not self._matches(
            method,
            raw_path,
            _canonical_query(b"&".join(kept)),
            headers,
            signed,
            payload,
            amz_date,
            scope,
            key,
            params[b"X-Amz-Signature"].decode("latin-1"),
        ):
            raise AuthError("SignatureDoesNotMatch", _MISMATCH)
        if payload in CHUNKED:
            raise AuthError(
                "InvalidRequest", "a presigned request cannot be aws-chunked", status=400
            )
        return payload_check(
            payload, headers, header_checksums=describes_body(method, b"?" + raw_query)
        )

    def _check_presigned_v2(
        self,
        method: str,
        raw_path: bytes,
        raw_query: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        now: float,
    ) -> PayloadCheck:
        """The legacy query form (``AWSAccessKeyId``, ``Expires``, ``Signature``) that
        boto3's ``generate_presigned_url`` still produces by default for a custom endpoint."""
        params: dict[bytes, bytes] = {}
        subresources = []
        for item in raw_query.split(b"&"):
            name, sep, value = item.partition(b"=")
            params[name] = unquote_to_bytes(value)
            if name.decode("latin-1") in _V2_SUBRESOURCES:
                decoded = unquote_to_bytes(value).decode("utf-8", "replace")
                subresources.append((name.decode("latin-1"), decoded if sep else None))
        missing = [n for n in (b"AWSAccessKeyId", b"Expires", b"Signature") if n not in params]
        if missing:
            raise AuthError(
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and "
                "AWSAccessKeyId parameters",
            )
        if not hmac.compare_digest(params[b"AWSAccessKeyId"], self.access_key.encode()):
            raise AuthError(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        expires = params[b"Expires"].decode("latin-1")
        if not expires.isdigit():
            raise AuthError("AccessDenied", "Invalid date (should be seconds since epoch)")
        if now > int(expires):
            raise AuthError("AccessDenied", "Request has expired")
        amz = sorted(
            (n.decode("latin-1"), b" ".join(v.split()).decode("latin-1"))
            for n, v in headers
            if n.startswith(b"x-amz-")
        )
        resource = unquote_to_bytes(raw_path or b"/").decode("utf-8", "surrogateescape")
        if subresources:
            resource += "?" + "&".join(
                name if value is None else f"{name}={value}" for name, value in sorted(subresources)
            )
        header = dict(headers)
        string_to_sign = "\n".join(
            [
                method,
                header.get(b"content-md5", b"").decode("latin-1"),
                header.get(b"content-type", b"").decode("latin-1"),
                expires,
                *[f"{n}:{v}" for n, v in amz],
                resource,
            ]
        )
        expected = base64.b64encode(
            hmac.new(
                self.secret_key.encode("utf-8"),
                string_to_sign.encode("utf-8", "surrogateescape"),
                hashlib.sha1,
            ).digest()
        )
        if not hmac.compare_digest(expected, params[b"Signature"]):
            raise AuthError("SignatureDoesNotMatch", _MISMATCH)
        return payload_check(
            UNSIGNED, headers, header_checksums=describes_body(method, b"?" + raw_query)
        )


_V2_SUBRESOURCES = frozenset(
    {
        "acl", "cors", "delete", "lifecycle", "location", "logging", "notification",
        "partNumber", "policy", "requestPayment", "tagging", "torrent", "uploadId", "uploads",
        "versionId", "versioning", "versions", "website", "response-cache-control",
        "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires",
    }
)  # fmt: skip


def unverified_payload(
    method: str, target: bytes, headers: tuple[tuple[bytes, bytes], ...]
) -> PayloadCheck:
    """The body check without credentials: no signature is verified, but a declared
    SHA-256, checksums and the aws-chunked framing still are (S3 checks those for anyone)."""
    declared = next((v.strip() for n, v in headers if n == b"x-amz-content-sha256"), UNSIGNED)
    if declared not in CHUNKED and (len(declared) != 64 or declared.strip(b"0123456789abcdef")):
        declared = UNSIGNED
    return payload_check(
        declared,
        headers,
        verify_signatures=False,
        header_checksums=describes_body(method, target),
    )
