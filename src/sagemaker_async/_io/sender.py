"""The one signed sender: every request, runtime and S3, is signed, retried, logged and
sent here, through the one seam (a shared ``httpx.AsyncClient``, a given transport, or the
client's own pool).

It takes a ``Request`` value (built by the pure layer) and gives back the first response
whose status is acceptable, or raises the typed error once standard-mode retries are
spent. What can be done once is: the user agent is encoded at construction, ``httpx.URL``
objects are parsed once per URL (bounded cache), ``X-Amz-Date`` is formatted once a second,
and headers reach httpx already encoded.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterable, Callable
from typing import Any

import httpx

from .._protocol.requests import Request
from .._protocol.retry import RetryPolicy, retry_after_seconds
from .._protocol.s3 import literal_dot_segments
from .._protocol.sigv4 import FrozenCredentials, SigV4Signer, format_amz_date
from .._version import __version__
from ..errors import SageMakerAsyncError, ServiceError, TransportError
from . import streams
from .credentials import CredentialProvider
from .http11.routing import OwnedSenders
from .http11.transport import LeanTransport
from .runtime import Runtime

__all__ = ["Content", "SignedSender", "read_whole"]

logger = logging.getLogger("sagemaker_async")

# A request body: bytes, or a factory of a fresh async stream for each attempt (an upload
# from a file must be re-read from the start when it is retried).
Content = bytes | Callable[[], AsyncIterable[bytes]]

_EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
_URL_CACHE_SIZE = 1024
_LENGTH_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Errors a transport may raise that are not network failures: wrapped, never retried.
_FOREIGN_ERRORS = (
    httpx.DecodingError,
    httpx.TooManyRedirects,
    httpx.StreamError,
    httpx.InvalidURL,
    RuntimeError,
    OSError,
)


def _ok(status: int) -> bool:
    return 200 <= status < 300


class SignedSender:
    """Signs, sends with retries, logs; owns the connection pool it opened."""

    def __init__(
        self,
        *,
        credentials: CredentialProvider,
        max_attempts: int,
        timeout: httpx.Timeout,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_bundle: str | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        runtime = runtime or Runtime()
        self.credentials = credentials
        self.retry = RetryPolicy(max_attempts, rng=runtime.random)
        self._clock = runtime.clock
        self._sleep = runtime.sleep or asyncio.sleep
        self._timeout = timeout
        self._extensions: dict[str, Any] = {"timeout": timeout.as_dict()}
        python = ".".join(map(str, sys.version_info[:3]))
        self.user_agent = f"sagemaker-async/{__version__} python/{python} httpx/{httpx.__version__}"
        self._user_agent_bytes = self.user_agent.encode("ascii")
        self._urls: dict[str, httpx.URL] = {}
        self._amz_date_second = -1
        self._amz_date_text = ""
        self._http_client = http_client
        self._transport = transport
        self._senders = OwnedSenders(timeout, ca_bundle)
        self.closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections opened here; a shared http_client is left open."""
        self.closed = True
        await self._senders.aclose()

    def check_open(self) -> None:
        if self.closed:
            raise TransportError(
                "This AsyncInferenceClient is closed; create a new one to send more requests.",
                attempts=0,
            )

    @property
    def owned_pools(self) -> tuple[LeanTransport | None, httpx.AsyncClient | None]:
        """The lean pool and the proxy-honouring client opened so far (None: not yet)."""
        return self._senders.lean, self._senders.proxy_client

    # -- the seam --------------------------------------------------------------------------

    def default_transport(self, url: httpx.URL) -> httpx.AsyncBaseTransport | httpx.AsyncClient:
        """The pool opened here for ``url``'s origin (see ``.http11.routing``)."""
        return self._senders.for_url(url)

    async def _send_once(
        self, request: httpx.Request, stream: bool = False, body_limit: int | None = None
    ) -> httpx.Response:
        """Send through the one seam; read the whole body, as stored, unless ``stream``.

        A read ``response.content`` is the bytes that came over the wire, whatever the
        ``Content-Encoding`` says (a result's encoding is metadata, not ours to undo). A
        streamed response is httpx's own streaming shape (``client.send(..., stream=True)``
        or a transport's unread response): the caller reads it with ``aiter_raw`` and must
        ``aclose`` it.
        """
        if self._http_client is not None:
            response = await self._http_client.send(request, stream=True)
        else:
            sender = self._transport or self.default_transport(request.url)
            if isinstance(sender, httpx.AsyncClient):
                response = await sender.send(request, stream=True)
            else:
                response = await sender.handle_async_request(request)
        if not stream:
            await read_whole(response, body_limit)
        return response

    def _url(self, url: str) -> httpx.URL:
        """``httpx.URL`` of ``url``, parsed once (parsing costs more than signing)."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    def _amz_date(self) -> str:
        """``X-Amz-Date`` for now, formatted once per second rather than once per request."""
        second = int(self._clock())
        if second != self._amz_date_second:
            self._amz_date_second = second
            self._amz_date_text = format_amz_date(second)
        return self._amz_date_text

    # -- sending ----------------------------------------------------------------------------

    async def send(
        self,
        request: Request,
        *,
        signer: SigV4Signer,
        parse_failure: Callable[[httpx.Response], ServiceError],
        content: Content = b"",
        accept: Callable[[int], bool] = _ok,
        log_fields: str = "",
        stream: bool = False,
        retries: bool = True,
    ) -> httpx.Response:
        """Sign and send ``request``, with standard-mode retries.

        Returns the first response whose status ``accept``s; raises the parsed
        ``ServiceError`` or a ``TransportError`` once retries are exhausted. With ``stream``
        the accepted response's body is left unread (the caller closes it). With
        ``retries=False`` one attempt is made and the retry quota is neither spent nor
        refilled: polling has its own schedule and must not drain what invokes need.
        """
        if self.closed:
            self.check_open()
        operation = request.operation
        url = self._urls.get(request.url) or self._url(request.url)
        # The request target as it goes on the wire and is signed: S3 keys' dot segments
        # literal, as botocore sends them (the URL holds them escaped; see encode_key).
        extensions = self._extensions
        raw_path = url.raw_path
        target = literal_dot_segments(raw_path)
        if target is not raw_path:
            extensions = {**extensions, "target": target}
            request = request._replace(path=target.decode("ascii").partition("?")[0])
        credentials = await self.credentials.get()
        invocation_id = str(uuid.uuid4())
        retry = self.retry
        max_attempts = retry.max_attempts if retries else 1
        spent = 0
        refreshed = False
        attempt = 1
        debug = logger.isEnabledFor(logging.DEBUG)
        while True:
            prepared = self._signed_request(
                request,
                url,
                content,
                signer,
                credentials,
                invocation_id,
                attempt,
                max_attempts,
                extensions,
            )
            started = time.perf_counter()
            try:
                response = await self._send_once(prepared, stream)
                if stream and not accept(response.status_code):
                    # an error answer is small: read it whole (as stored) to parse it
                    await read_whole(response)
            except SageMakerAsyncError:
                raise
            except _FOREIGN_ERRORS as exc:
                # Not a network failure worth another attempt, and not ours to let escape:
                # a closed or misused transport, an httpx error outside TransportError.
                raise TransportError(
                    f"{operation} to {url.host} failed after {_attempts(attempt)}: "
                    f"{type(exc).__name__}: {_safe_detail(exc)}",
                    attempts=attempt,
                ) from exc
            except httpx.TransportError as exc:
                decision = retry.classify_exception(exc)
                if debug:
                    logger.debug(
                        "%s%s attempt=%d/%d error=%s elapsed=%.1fms",
                        operation,
                        log_fields,
                        attempt,
                        max_attempts,
                        type(exc).__name__,
                        (time.perf_counter() - started) * 1000,
                    )
                cost = (
                    retry.quota.acquire(timeout=decision.timeout)
                    if (decision.retry and attempt < max_attempts)
                    else 0
                )
                if not cost:
                    raise TransportError(
                        f"{operation} to {url.host} failed after {_attempts(attempt)}: "
                        f"{type(exc).__name__}: {_safe_detail(exc)}",
                        attempts=attempt,
                    ) from exc
                spent += cost
                await self._sleep(retry.backoff(attempt, throttled=False))
                attempt += 1
                continue
            status = response.status_code
            if debug:
                logger.debug(
                    "%s%s attempt=%d/%d status=%d request_id=%s elapsed=%.1fms",
                    operation,
                    log_fields,
                    attempt,
                    max_attempts,
                    status,
                    response.headers.get("x-amzn-requestid")
                    or response.headers.get("x-amz-request-id"),
                    (time.perf_counter() - started) * 1000,
                )
            if accept(status):
                if retries:
                    retry.quota.on_success(spent)
                return response
            error = parse_failure(response)
            if error.code in _EXPIRED_CODES and not refreshed:
                # One refresh and one more try, outside the retry budget: the credentials,
                # not the service, were at fault.
                refreshed = True
                fresh = await self.credentials.refresh(credentials)
                if fresh is not None:
                    credentials = fresh
                    continue
            decision = retry.classify_error(error)
            cost = (
                retry.quota.acquire(timeout=False)
                if (decision.retry and attempt < max_attempts)
                else 0
            )
            if not cost:
                raise error
            spent += cost
            await self._sleep(
                retry.backoff(
                    attempt,
                    throttled=decision.throttled,
                    retry_after=retry_after_seconds(response.headers),
                )
            )
            attempt += 1

    def _signed_request(
        self,
        request: Request,
        url: httpx.URL,
        content: Content,
        signer: SigV4Signer,
        credentials: FrozenCredentials,
        invocation_id: str,
        attempt: int,
        max_attempts: int,
        extensions: dict[str, Any] | None = None,
    ) -> httpx.Request:
        """One attempt's request: botocore's headers, in botocore's order, freshly signed."""
        if extensions is None:
            extensions = self._extensions
        amz_date = self._amz_date()
        token = credentials.token
        _, method, _, host, headers, payload_hash, path, query = request  # one unpacking
        signed = [("host", host), ("x-amz-date", amz_date), *headers]
        if token:
            signed.append(("x-amz-security-token", token))
        authorization = signer.authorization(
            method=method,
            path=path,
            query=query,
            headers=signed,
            payload_hash=payload_hash,
            credentials=credentials,
            amz_date=amz_date,
        )
        # Headers go to httpx already encoded (values as UTF-8, as botocore sends a non-ASCII
        # S3 key in InputLocation, and signs the same bytes), Host first as httpx would put it.
        wire = [(b"Host", host.encode("ascii"))]
        wire += [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]
        wire.append((b"User-Agent", self._user_agent_bytes))
        wire.append((b"X-Amz-Date", amz_date.encode("ascii")))
        if token:
            wire.append((b"X-Amz-Security-Token", token.encode("utf-8")))
        wire.append((b"Authorization", authorization.encode("ascii")))
        wire.append((b"amz-sdk-invocation-id", invocation_id.encode("ascii")))
        wire.append((b"amz-sdk-request", b"attempt=%d; max=%d" % (attempt, max_attempts)))
        if not isinstance(content, bytes):
            return httpx.Request(
                method, url, headers=wire, content=content(), extensions=extensions
            )
        # Where httpx would send Content-Length (a body, or any POST/PUT/PATCH), send it last,
        # as botocore does. Passing the body as a ready ByteStream skips httpx's content
        # encoding and header rebuilding, about half of a Request's cost.
        if (content or method in _LENGTH_METHODS) and not any(
            name.lower() == "content-length" for name, _ in headers
        ):
            wire.append((b"Content-Length", b"%d" % len(content)))
        prepared = httpx.Request(
            method, url, headers=wire, stream=httpx.ByteStream(content), extensions=extensions
        )
        prepared.read()  # the body is bytes already: make request.content available
        return prepared


def _safe_detail(exc: BaseException) -> str:
    # h11 and httpx quote an offending header value, which may be a session token.
    if isinstance(exc, httpx.LocalProtocolError):
        return "a header value cannot be sent as given"
    return str(exc)


async def _read_raw(stream: httpx.AsyncByteStream | httpx.SyncByteStream, limit: int) -> bytes:
    """A body as it came over the wire, stopping once it is longer than ``limit``."""
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("an async transport returned a synchronous response stream")
    parts: list[bytes] = []
    size = 0
    async for chunk in stream:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(parts)


async def read_whole(response: httpx.Response, body_limit: int | None = None) -> None:
    """Read a response's body as it came over the wire (never content-decoded) into
    ``response.content``, and close it. A body longer than ``body_limit`` (default
    ``MAX_BUFFERED_BODY``: without a bound, a server that never ends a body would grow the
    process until it dies) is an error, not a bigger buffer: that is what bounds an endless
    body, and the hook for a caller's own size limit."""
    if body_limit is None:
        body_limit = streams.MAX_BUFFERED_BODY  # read late: tests lower it
    stream = response.stream
    try:
        if isinstance(stream, httpx.ByteStream):  # read already (ours, or a mock's)
            content = b"".join(stream)
        elif hasattr(response, "_content"):
            # A custom transport read it already (its stream is spent): what it read is
            # all there is.
            content = response.content
        else:
            content = await _read_raw(stream, body_limit)
    finally:
        await response.aclose()
    if len(content) > body_limit:
        raise TransportError(
            f"the response body is larger than {body_limit} bytes; not read", attempts=1
        )
    # httpx keeps a read body here; ours is the raw one, so no decoder ever runs.
    response._content = content


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"
