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
import os
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterable, Callable
from typing import Any

import httpx

from ._credentials import CredentialProvider
from ._requests import Request
from ._retry import RetryPolicy, retry_after_seconds
from ._runtime import Runtime
from ._signing import FrozenCredentials, SigV4Signer, format_amz_date
from ._transport import LeanTransport, proxy_configured
from ._version import __version__
from .errors import ParamValidationError, ServiceError, TransportError

__all__ = ["Content", "SignedSender"]

logger = logging.getLogger("sagemaker_async")

# A request body: bytes, or a factory of a fresh async stream for each attempt (an upload
# from a file must be re-read from the start when it is retried).
Content = bytes | Callable[[], AsyncIterable[bytes]]

_EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
_URL_CACHE_SIZE = 1024
_LENGTH_METHODS = frozenset({"POST", "PUT", "PATCH"})


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
        self._owned: LeanTransport | None = None
        self._owned_proxy_client: httpx.AsyncClient | None = None
        self._proxied: dict[tuple[str, bytes], bool] = {}
        self._ca_bundle = ca_bundle
        self.closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections opened here; a shared http_client is left open."""
        self.closed = True
        owned, self._owned = self._owned, None
        proxy_client, self._owned_proxy_client = self._owned_proxy_client, None
        if owned is not None:
            await owned.aclose()
        if proxy_client is not None:
            await proxy_client.aclose()

    def check_open(self) -> None:
        if self.closed:
            raise RuntimeError(
                "This AsyncInferenceClient is closed; create a new one to send more requests."
            )

    @property
    def owned_pools(self) -> tuple[LeanTransport | None, httpx.AsyncClient | None]:
        """The lean pool and the proxy-honouring client opened so far (None: not yet)."""
        return self._owned, self._owned_proxy_client

    # -- the seam --------------------------------------------------------------------------

    def default_transport(self, url: httpx.URL) -> httpx.AsyncBaseTransport | httpx.AsyncClient:
        """The pool opened here for ``url``'s origin, built on first use.

        Our lean HTTP/1.1 transport, except for origins that the environment routes through
        a proxy (``HTTPS_PROXY`` and friends), which go through an ``httpx.AsyncClient``
        that honours them. Decided once per origin.
        """
        origin = (url.scheme, url.netloc)
        proxied = self._proxied.get(origin)
        if proxied is None:
            proxied = self._proxied[origin] = proxy_configured(url, os.environ)
        if proxied:
            if self._owned_proxy_client is None:
                self._owned_proxy_client = httpx.AsyncClient(
                    trust_env=True,
                    timeout=self._timeout,
                    limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
                    verify=self._ssl_context() or True,
                )
            return self._owned_proxy_client
        if self._owned is None:
            self._owned = LeanTransport(
                ssl_context=self._ssl_context(),
                max_connections=256,
                max_keepalive_connections=256,
                connect_timeout=self._timeout.connect,
                read_timeout=self._timeout.read,
                write_timeout=self._timeout.write,
                pool_timeout=self._timeout.pool,
            )
        return self._owned

    def _ssl_context(self) -> ssl.SSLContext | None:
        """A context trusting ``AWS_CA_BUNDLE``, as botocore honours it; None: the default.

        Built once per client, and only when a pool of ours is first needed.
        """
        if self._ca_bundle is None:
            return None
        try:
            context = ssl.create_default_context(cafile=self._ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ParamValidationError(
                f"AWS_CA_BUNDLE {self._ca_bundle!r} cannot be loaded: {exc}", param="AWS_CA_BUNDLE"
            ) from None
        context.set_alpn_protocols(["http/1.1"])
        return context

    async def _send_once(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        """Send through the one seam; read the whole body unless ``stream``.

        A streamed response is httpx's own streaming shape (``client.send(..., stream=True)``
        or a transport's unread response): the caller reads it with ``aiter_raw`` and must
        ``aclose`` it.
        """
        if self._http_client is not None:
            return await self._http_client.send(request, stream=stream)
        sender = self._transport or self.default_transport(request.url)
        if isinstance(sender, httpx.AsyncClient):
            return await sender.send(request, stream=stream)
        response = await sender.handle_async_request(request)
        if stream:
            return response
        try:
            await response.aread()
        finally:
            await response.aclose()
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
                request, url, content, signer, credentials, invocation_id, attempt, max_attempts
            )
            started = time.perf_counter()
            try:
                response = await self._send_once(prepared, stream)
                if stream and not accept(response.status_code):
                    try:  # an error answer is small: read it whole to parse it
                        await response.aread()
                    finally:
                        await response.aclose()
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
                    # h11 quotes the offending header value, which may be a session token.
                    detail = (
                        "a header value cannot be sent as given"
                        if isinstance(exc, httpx.LocalProtocolError)
                        else str(exc)
                    )
                    raise TransportError(
                        f"{operation} to {url.host} failed after {attempt} attempt(s): "
                        f"{type(exc).__name__}: {detail}",
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
    ) -> httpx.Request:
        """One attempt's request: botocore's headers, in botocore's order, freshly signed."""
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
                method, url, headers=wire, content=content(), extensions=self._extensions
            )
        # Where httpx would send Content-Length (a body, or any POST/PUT/PATCH), send it last,
        # as botocore does. Passing the body as a ready ByteStream skips httpx's content
        # encoding and header rebuilding, about half of a Request's cost.
        if (content or method in _LENGTH_METHODS) and not any(
            name.lower() == "content-length" for name, _ in headers
        ):
            wire.append((b"Content-Length", b"%d" % len(content)))
        prepared = httpx.Request(
            method, url, headers=wire, stream=httpx.ByteStream(content), extensions=self._extensions
        )
        prepared.read()  # the body is bytes already: make request.content available
        return prepared
