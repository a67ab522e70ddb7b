"""What an S3 upload's body must be, checked as it streams in: the server's side.

The head declares the payload (``x-amz-content-sha256``) and its checksums; this module
holds one request's body to that, byte by byte, before anything is stored:

- a SHA-256 (hex) is compared with the body's (``XAmzContentSHA256Mismatch``);
  ``UNSIGNED-PAYLOAD`` is taken as it comes;
- ``aws-chunked`` bodies are decoded: ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` (every chunk
  signature verified, chained from the seed), ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (bare
  chunks, then a trailer carrying the checksum ``x-amz-trailer`` named) and
  ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` (signed chunks, then the trailer and its
  own signature, chained from the final chunk's); the decoded length must be
  ``x-amz-decoded-content-length``;
- a checksum in a header (``x-amz-checksum-crc32`` and friends, ``Content-MD5``) or in the
  trailer is compared with the decoded body's (``BadDigest``).

``feed`` returns the decoded bytes, so the caller can store those and never the framing.
Errors are ``AuthError`` with S3's codes and wording. Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._checksums import ALGORITHMS, Checksum, new_checksum
from ._sigv4_verify import AuthError

__all__ = [
    "CHUNKED",
    "STREAMING",
    "STREAMING_TRAILER",
    "UNSIGNED",
    "UNSIGNED_TRAILER",
    "PayloadCheck",
    "decoded_headers",
    "describes_body",
    "payload_check",
]

UNSIGNED = b"UNSIGNED-PAYLOAD"
STREAMING = b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
CHUNKED = frozenset({STREAMING, STREAMING_TRAILER, UNSIGNED_TRAILER})
SIGNED_CHUNKS = frozenset({STREAMING, STREAMING_TRAILER})

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_MAX_CHUNK_HEAD = 4096
_MAX_TRAILER = 4096
_CHECKSUM_PREFIX = "x-amz-checksum-"
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
_MALFORMED_TRAILER = (
    "The request contained trailing data that was not well-formed or did not conform to "
    "our published schema."
)


def _incomplete(why: str) -> AuthError:
    return AuthError(
        "IncompleteBody", f"The request body is not valid aws-chunked: {why}.", status=400
    )


def _malformed_trailer() -> AuthError:
    return AuthError("MalformedTrailerError", _MALFORMED_TRAILER, status=400)


def _bad_digest(name: str) -> AuthError:
    return AuthError(
        "BadDigest", f"The {name} you specified did not match the calculated checksum.", status=400
    )


@dataclass
class PayloadCheck:
    """Checks (and decodes) one body against its head; feed it every byte in order."""

    declared: bytes
    signing_key: bytes = field(repr=False, default=b"")
    seed_signature: str = ""
    amz_date: str = ""
    scope: str = ""
    decoded_length: int | None = None
    verify_signatures: bool = True
    """False without credentials: chunks are decoded, their signatures not checked."""
    checksums: tuple[tuple[str, str], ...] = ()
    """(algorithm, expected base64) from ``x-amz-checksum-*`` headers."""
    content_md5: str | None = None
    trailer: str | None = None
    """The ``x-amz-checksum-*`` name ``x-amz-trailer`` announced."""

    def __post_init__(self) -> None:
        self._hash = hashlib.sha256() if self._hashes_body else None
        self._buffer = b""
        self._previous = self.seed_signature
        self._state = "header"  # header -> data -> crlf -> header ... -> trailer -> done
        self._remaining = 0
        self._chunk = hashlib.sha256()
        self._chunk_signature = ""
        self._decoded = 0
        self._trailers: list[tuple[str, str]] = []
        self._trailer_bytes = 0
        self._sums: dict[str, Checksum] = {name: new_checksum(name) for name, _ in self.checksums}
        if self.trailer is not None:
            algorithm = self.trailer[len(_CHECKSUM_PREFIX) :]
            self._sums.setdefault(algorithm, new_checksum(algorithm))
        self._md5 = hashlib.md5(usedforsecurity=False) if self.content_md5 is not None else None

    @property
    def _hashes_body(self) -> bool:
        return self.declared not in CHUNKED and self.declared != UNSIGNED

    @property
    def chunked(self) -> bool:
        """Whether the body is aws-chunked (``feed`` then returns less than it gets)."""
        return self.declared in CHUNKED

    @property
    def trailers(self) -> list[tuple[str, str]]:
        """The trailer lines received (names lower-case), a signed trailer's signature
        excluded (in an unsigned one it is just another, unexpected, line)."""
        if self.declared != STREAMING_TRAILER:
            return list(self._trailers)
        return [(n, v) for n, v in self._trailers if n != "x-amz-trailer-signature"]

    def _decoded_data(self, data: bytes) -> None:
        for checksum in self._sums.values():
            checksum.update(data)
        if self._md5 is not None:
            self._md5.update(data)

    def feed(self, data: bytes) -> bytes:
        """Check the next body bytes; returns them decoded (the framing removed)."""
        if not self.chunked:
            if self._hash is not None:
                self._hash.update(data)
            self._decoded_data(data)
            return data
        out: list[bytes] = []
        self._buffer += data
        while self._buffer:
            state = self._state
            if state == "done":
                raise _incomplete("data after the final chunk")
            if state == "header":
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    if len(self._buffer) > _MAX_CHUNK_HEAD:
                        raise _incomplete("a chunk header is too long")
                    break
                line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
                self._start_chunk(line)
            elif state == "data":
                take = self._buffer[: self._remaining]
                self._buffer = self._buffer[len(take) :]
                if self.declared in SIGNED_CHUNKS:
                    self._chunk.update(take)
                self._decoded_data(take)
                out.append(take)
                self._decoded += len(take)
                self._remaining -= len(take)
                if self._remaining == 0:
                    self._state = "crlf"
            elif state == "trailer":
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    if len(self._buffer) + self._trailer_bytes > _MAX_TRAILER:
                        raise _malformed_trailer()
                    break
                line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
                self._trailer_bytes += len(line) + 2
                if self._trailer_bytes > _MAX_TRAILER:
                    raise _malformed_trailer()
                self._trailer_line(line)
            else:  # "crlf" after a chunk's data, or "final-crlf" after the empty chunk
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise _incomplete("a chunk does not end with CRLF")
                self._buffer = self._buffer[2:]
                if state == "crlf":
                    if self.declared in SIGNED_CHUNKS:
                        self._verify_chunk()
                    self._state = "header"
                else:
                    self._state = "done"
        return b"".join(out)

    def _start_chunk(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        size_text = size_text.strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise _incomplete("a chunk size is not hexadecimal")
        size = int(size_text, 16)
        if self.declared in SIGNED_CHUNKS:
            name, _, signature = extension.partition(b"=")
            if name.strip() != b"chunk-signature":
                raise _incomplete("a chunk has no chunk-signature")
            self._chunk_signature = signature.strip().decode("latin-1")
        elif extension:
            raise _incomplete("an unsigned chunk carries an extension")
        if self.decoded_length is not None and self._decoded + size > self.decoded_length:
            raise _incomplete("the chunks are longer than x-amz-decoded-content-length")
        self._remaining = size
        self._chunk = hashlib.sha256()
        if size:
            self._state = "data"
            return
        if self.declared in SIGNED_CHUNKS:
            self._verify_chunk()
        self._state = "trailer" if self.declared != STREAMING else "final-crlf"

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._state = "done"
            return
        name, sep, value = line.partition(b":")
        if not sep:
            raise _malformed_trailer()
        text = name.strip().lower().decode("latin-1")
        self._trailers.append((text, value.strip().decode("latin-1")))
        if text == "x-amz-trailer-signature" and self.declared == STREAMING_TRAILER:
            self._verify_trailer_signature()

    def _sign(self, kind: str, digest: str) -> str:
        string_to_sign = "\n".join(
            [kind, self.amz_date, self.scope, self._previous, *(
                [_EMPTY_SHA256] if kind.endswith("PAYLOAD") else []
            ), digest]
        )  # fmt: skip
        return hmac.new(
            self.signing_key, string_to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()

    def _verify_chunk(self) -> None:
        expected = self._sign("AWS4-HMAC-SHA256-PAYLOAD", self._chunk.hexdigest())
        if self.verify_signatures and not hmac.compare_digest(
            expected.encode(), self._chunk_signature.encode("latin-1")
        ):
            raise AuthError("SignatureDoesNotMatch", _MISMATCH)
        self._previous = self._chunk_signature if not self.verify_signatures else expected

    def _verify_trailer_signature(self) -> None:
        """The trailer's own signature: over its lines, chained from the final chunk's."""
        *lines, (_, signature) = self._trailers
        canonical = "".join(f"{n}:{v}\n" for n, v in lines)
        expected = self._sign(
            "AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(canonical.encode("latin-1")).hexdigest()
        )
        if self.verify_signatures and not hmac.compare_digest(
            expected.encode(), signature.encode("latin-1")
        ):
            raise AuthError("SignatureDoesNotMatch", _MISMATCH)

    def finish(self) -> None:
        """The body ended: raise unless it is what was declared, signed and checksummed."""
        if not self.chunked:
            if self._hash is not None and not hmac.compare_digest(
                self._hash.hexdigest().encode(), self.declared
            ):
                raise AuthError(
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    status=400,
                )
        else:
            if self._state != "done" or self._buffer:
                raise _incomplete("the body ended before its final (empty) chunk")
            if self.decoded_length is not None and self._decoded != self.decoded_length:
                raise _incomplete("x-amz-decoded-content-length does not match the chunks")
        expected = list(self.checksums)
        if self.declared in (STREAMING_TRAILER, UNSIGNED_TRAILER):
            expected += self._expected_from_trailer()
        for algorithm, value in expected:
            computed = self._sums[algorithm].b64digest().encode("ascii")
            if not hmac.compare_digest(computed, value.encode("latin-1")):
                raise _bad_digest(algorithm.upper())
        if self._md5 is not None and self.content_md5 is not None:
            digest = base64.b64encode(self._md5.digest())
            if not hmac.compare_digest(digest, self.content_md5.encode("latin-1")):
                raise AuthError(
                    "BadDigest",
                    "The Content-MD5 you specified did not match what we received.",
                    status=400,
                )

    def _expected_from_trailer(self) -> list[tuple[str, str]]:
        """The checksum the trailer carries: exactly the one ``x-amz-trailer`` named."""
        received = self.trailers
        if self.trailer is None:
            if received:
                raise _malformed_trailer()  # a trailer nobody announced
            return []
        if self.declared == STREAMING_TRAILER and not any(
            n == "x-amz-trailer-signature" for n, _ in self._trailers
        ):
            raise _malformed_trailer()
        if len(received) != 1 or received[0][0] != self.trailer:
            raise _malformed_trailer()
        return [(self.trailer[len(_CHECKSUM_PREFIX) :], received[0][1])]


def describes_body(method: str, target: bytes) -> bool:
    """Whether ``x-amz-checksum-*`` headers are the body's (CompleteMultipartUpload's are the
    assembled object's)."""
    query = target.partition(b"?")[2]
    return not (method == "POST" and b"uploadId=" in query)


def payload_check(
    declared: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    signing_key: bytes = b"",
    seed_signature: str = "",
    amz_date: str = "",
    scope: str = "",
    verify_signatures: bool = True,
    header_checksums: bool = True,
) -> PayloadCheck:
    """The check for a body with this head; what is wrong with the head is raised now.

    ``header_checksums``: whether ``x-amz-checksum-*`` headers describe this body (not on
    CompleteMultipartUpload, where they are the whole object's).
    """
    checksums: list[tuple[str, str]] = []
    content_md5: str | None = None
    trailer: str | None = None
    decoded: bytes | None = None
    for name, value in headers:
        if name.startswith(b"x-amz-checksum-") and header_checksums:
            algorithm = name[len(b"x-amz-checksum-") :].decode("latin-1")
            if algorithm in ALGORITHMS:
                checksums.append((algorithm, value.strip().decode("latin-1")))
        elif name == b"content-md5":
            content_md5 = value.strip().decode("latin-1")
        elif name == b"x-amz-trailer":
            trailer = value.strip().lower().decode("latin-1")
        elif name == b"x-amz-decoded-content-length":
            decoded = value.strip()
    decoded_length: int | None = None
    if declared in CHUNKED:
        if decoded is None or not decoded.isdigit():
            raise AuthError(
                "MissingContentLength",
                "You must provide the x-amz-decoded-content-length header.",
                status=411,
            )
        decoded_length = int(decoded)
    if declared in (STREAMING_TRAILER, UNSIGNED_TRAILER):
        if trailer is not None and (
            not trailer.startswith(_CHECKSUM_PREFIX)
            or trailer[len(_CHECKSUM_PREFIX) :] not in ALGORITHMS
        ):
            raise AuthError(
                "InvalidRequest",
                "The value specified in the x-amz-trailer header is not supported",
                status=400,
            )
    else:
        trailer = None
    return PayloadCheck(
        declared,
        signing_key=signing_key,
        seed_signature=seed_signature,
        amz_date=amz_date,
        scope=scope,
        decoded_length=decoded_length,
        verify_signatures=verify_signatures,
        checksums=tuple(checksums),
        content_md5=content_md5,
        trailer=trailer,
    )


_FRAMING = frozenset(
    {b"x-amz-decoded-content-length", b"x-amz-trailer", b"content-length", b"x-amz-content-sha256"}
)


def decoded_headers(
    headers: Sequence[tuple[bytes, bytes]], check: PayloadCheck
) -> tuple[tuple[bytes, bytes], ...]:
    """The head of an aws-chunked request as it reads once its body is decoded: a plain
    upload (``UNSIGNED-PAYLOAD``, no ``aws-chunked`` coding), the trailer's checksum as the
    header it stands for."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name in _FRAMING:
            continue
        if name == b"content-encoding":
            codings = [c.strip() for c in value.split(b",") if c.strip().lower() != b"aws-chunked"]
            if not codings:
                continue
            value = b",".join(codings)
        out.append((name, value))
    out.append((b"x-amz-content-sha256", UNSIGNED))
    present = {name for name, _ in out}
    for trailer_name, trailer_value in check.trailers:
        raw = trailer_name.encode("latin-1")
        if raw.startswith(b"x-amz-checksum-") and raw not in present:
            out.append((raw, trailer_value.encode("latin-1")))
    return tuple(out)
