"""The asyncio client: a thin loop of I/O around the pure request and response code.

Everything that can be done once is done in the constructor (settings, endpoint, signer,
user agent, timeouts); a call validates, signs with a cached key, sends through one seam
(the transport) and parses. The retry loop is shared by every operation, runtime and S3.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ._config import resolve_settings
from ._credentials import CredentialProvider, make_provider
from ._endpoints import (
    SQS_ENDPOINT_ENV_VAR,
    check_custom_endpoint_flags,
    configured_endpoint_url,
    resolve_runtime_url,
)
from ._http11.routing import OwnedSenders
from ._models import AsyncInvocation, DownloadedResult, InferenceResult
from ._multipart import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PART_SIZE,
    DEFAULT_THRESHOLD,
    open_source,
    upload_multipart,
)
from ._objects import S3Objects
from ._params import InvokeParams, validate_invoke
from ._protocol import invoke_headers, invoke_path, parse_error, parse_invoke_response
from ._results import DEFAULT_POLL_INTERVAL, ResultWaiter
from ._retry import RetryPolicy, retry_after_seconds
from ._s3 import S3Location, check_content_type, literal_dot_segments, parse_s3_uri
from ._signing import EMPTY_SHA256, FrozenCredentials, SigV4Signer, format_amz_date
from ._streams import (
    MAX_BUFFERED_BODY,
    ResultStream,
    StreamContext,
    check_download_path,
    check_max_bytes,
    write_file,
)
from ._threads import run_to_end
from ._uploads import Payload, prepare_upload, read_small
from ._version import __version__
from .errors import ParamValidationError, SageMakerAsyncError, ServiceError, TransportError

if TYPE_CHECKING:
    from ._listener import Listener

__all__ = ["AsyncInferenceClient"]

logger = logging.getLogger("sagemaker_async")

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

# A request body: bytes, or a factory of a fresh async stream for each attempt (an upload
# from a file must be re-read from the start when it is retried).
Content = bytes | Callable[[], AsyncIterable[bytes]]


class AsyncInferenceClient:
    """An asyncio client for SageMaker Asynchronous Inference (and the S3 around it)."""

    def __init__(
        self,
        region_name: str | None = None,
        *,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        profile_name: str | None = None,
        credentials: Any = None,
        endpoint_url: str | None = None,
        s3_endpoint_url: str | None = None,
        use_fips_endpoint: bool = False,
        use_dualstack_endpoint: bool = False,
        timeout: float = 60.0,
        max_attempts: int | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        env: Mapping[str, str] = os.environ
        if http_client is not None and transport is not None:
            raise ParamValidationError("pass http_client or transport, not both", param="transport")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ParamValidationError(
                f"timeout must be a positive number of seconds, got {timeout!r}", param="timeout"
            )
        settings = resolve_settings(
            region_name=region_name,
            profile_name=profile_name,
            max_attempts=max_attempts,
            use_fips_endpoint=use_fips_endpoint,
            use_dualstack_endpoint=use_dualstack_endpoint,
            env=env,
        )
        self._region = settings.region
        self._use_fips = settings.use_fips
        self._use_dualstack = settings.use_dualstack

        runtime_url = configured_endpoint_url(
            endpoint_url, env, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"
        )
        # Asking for FIPS or dual-stack in the call and for a custom endpoint is a
        # contradiction; flags from the environment or the profile simply do not apply to a
        # custom endpoint (as in botocore), so a global AWS_USE_FIPS_ENDPOINT does not stop
        # a client pointed at a local endpoint.
        check_custom_endpoint_flags(
            runtime_url,
            use_fips=use_fips_endpoint,
            use_dualstack=use_dualstack_endpoint,
            param="endpoint_url",
        )
        if runtime_url is None:
            runtime_url = resolve_runtime_url(
                self._region, use_fips=self._use_fips, use_dualstack=self._use_dualstack
            )
        self._runtime_base = httpx.URL(runtime_url)
        self._runtime_prefix = self._runtime_base.raw_path.decode("ascii").rstrip("/")
        self._runtime_host = self._runtime_base.netloc.decode("ascii")
        self._s3_endpoint_url = configured_endpoint_url(
            s3_endpoint_url, env, "AWS_ENDPOINT_URL_S3", param="s3_endpoint_url"
        )
        check_custom_endpoint_flags(
            self._s3_endpoint_url,
            use_fips=use_fips_endpoint,
            use_dualstack=use_dualstack_endpoint,
            param="s3_endpoint_url",
        )

        # SQS is resolved by listen(), as botocore resolves it when an SQS client is made: a
        # client that never listens is not refused for an SQS setting it would not use.
        self._env = env
        self._explicit_flags = (use_fips_endpoint, use_dualstack_endpoint)

        self._credentials: CredentialProvider = make_provider(
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            credentials=credentials,
            profile_name=profile_name,
            env=env,
        )
        self._signer = SigV4Signer(self._region, "sagemaker")
        self._retry = RetryPolicy(settings.max_attempts)
        self._timeout = httpx.Timeout(timeout)
        self._extensions: dict[str, Any] = {"timeout": self._timeout.as_dict()}
        python = ".".join(map(str, sys.version_info[:3]))
        self._user_agent = (
            f"sagemaker-async/{__version__} python/{python} httpx/{httpx.__version__}"
        )
        self._user_agent_bytes = self._user_agent.encode("ascii")
        self._url_cache: dict[str, httpx.URL] = {}
        self._amz_date_second = -1
        self._amz_date_text = ""

        self._http_client = http_client
        self._transport = transport
        self._senders = OwnedSenders(self._timeout, env.get("AWS_CA_BUNDLE") or None)
        self._closed = False
        # Seams for tests: the wall clock used in signatures, and the backoff sleep.
        self._clock: Callable[[], float] = time.time
        self._sleep: Callable[[float], Any] = asyncio.sleep

    # -- lifecycle -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"AsyncInferenceClient(region_name={self._region!r}, "
            f"endpoint_url={str(self._runtime_base)!r}, credentials={self._credentials.source!r})"
        )

    @property
    def region_name(self) -> str:
        return self._region

    @property
    def endpoint_url(self) -> str:
        return str(self._runtime_base)

    @property
    def max_attempts(self) -> int:
        return self._retry.max_attempts

    async def __aenter__(self) -> AsyncInferenceClient:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections this client opened; a shared http_client is left open."""
        self._closed = True
        await self._senders.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(
                "This AsyncInferenceClient is closed; create a new one to send more requests.",
                attempts=0,
            )

    # -- sending ----------------------------------------------------------------------------

    def _default_transport(self, url: httpx.URL) -> httpx.AsyncBaseTransport | httpx.AsyncClient:
        """The pool this client owns for ``url``'s origin (see ``_http11.routing``)."""
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
            sender = self._transport or self._default_transport(request.url)
            if isinstance(sender, httpx.AsyncClient):
                response = await sender.send(request, stream=True)
            else:
                response = await sender.handle_async_request(request)
        if not stream:
            await read_whole(response, body_limit)
        return response

    def _invoke_url(self, endpoint_name: str) -> httpx.URL:
        """The endpoint's invocation URL, built once per endpoint name (parsing is costly)."""
        url = self._url_cache.get(endpoint_name)
        if url is None:
            if len(self._url_cache) >= _URL_CACHE_SIZE:
                self._url_cache.clear()
            path = self._runtime_prefix + invoke_path(endpoint_name)
            url = self._runtime_base.copy_with(raw_path=path.encode("ascii"))
            self._url_cache[endpoint_name] = url
        return url

    def _amz_date(self) -> str:
        """``X-Amz-Date`` for now, formatted once per second rather than once per request."""
        second = int(self._clock())
        if second != self._amz_date_second:
            self._amz_date_second = second
            self._amz_date_text = format_amz_date(second)
        return self._amz_date_text

    async def _send(
        self,
        *,
        operation: str,
        method: str,
        url: httpx.URL,
        host: str,
        headers: Iterable[tuple[str, str]],
        content: Content,
        payload_hash: str,
        signer: SigV4Signer,
        parse_failure: Callable[[httpx.Response], ServiceError],
        accept: Callable[[int], bool] = lambda status: 200 <= status < 300,
        log_fields: str = "",
        stream: bool = False,
        retries: bool = True,
    ) -> httpx.Response:
        """Sign and send one operation, with standard-mode retries.

        Returns the first response whose status ``accept``s; raises the parsed
        ``ServiceError`` or a ``TransportError`` once retries are exhausted. With ``stream``
        the accepted response's body is left unread (the caller closes it). With
        ``retries=False`` one attempt is made and the retry quota is neither spent nor
        refilled: polling has its own schedule and must not drain what invokes need.
        """
        self._check_open()
        headers = list(headers)
        # The request target as it goes on the wire and is signed: S3 keys' dot segments
        # literal, as botocore sends them (the URL holds them escaped; see encode_key).
        raw_path = url.raw_path
        target = literal_dot_segments(raw_path)
        extensions = self._extensions
        if target is not raw_path:
            extensions = {**extensions, "target": target}
        path = target.decode("ascii").partition("?")[0]
        query = url.query.decode("ascii")
        credentials = await self._credentials.get()
        invocation_id = str(uuid.uuid4())
        retry = self._retry
        max_attempts = retry.max_attempts if retries else 1
        spent = 0
        refreshed = False
        attempt = 1
        debug = logger.isEnabledFor(logging.DEBUG)
        while True:
            request = self._signed_request(
                method,
                url,
                host,
                path,
                query,
                headers,
                content,
                payload_hash,
                signer,
                credentials,
                invocation_id,
                attempt,
                max_attempts,
                extensions,
            )
            started = time.perf_counter()
            try:
                response = await self._send_once(request, stream)
                if stream and not accept(response.status_code):
                    # an error answer is small: read it whole (as stored) to parse it
                    await read_whole(response)
            except SageMakerAsyncError:
                raise
            except _FOREIGN_ERRORS as exc:
                # Not a network failure worth another attempt, and not ours to let escape:
                # a closed or misused transport, an httpx error outside TransportError.
                raise TransportError(
                    f"{operation} to {url.host} failed after {attempt} "
                    f"{'attempt' if attempt == 1 else 'attempts'}: "
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
                        f"{operation} to {url.host} failed after {attempt} "
                        f"{'attempt' if attempt == 1 else 'attempts'}: "
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
                fresh = await self._credentials.refresh(credentials)
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
        method: str,
        url: httpx.URL,
        host: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        content: Content,
        payload_hash: str,
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
        request = httpx.Request(
            method, url, headers=wire, stream=httpx.ByteStream(content), extensions=extensions
        )
        request.read()  # the body is bytes already: make request.content available
        return request

    # -- InvokeEndpointAsync ----------------------------------------------------------------

    async def invoke_endpoint_async(
        self,
        endpoint_name: str,
        input_location: str | None = None,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        s3_output_path_extension: str | None = None,
        filename: str | None = None,
        request_ttl_seconds: int | None = None,
        invocation_timeout_seconds: int | None = None,
    ) -> AsyncInvocation:
        """Queue one inference; returns where its output or failure will appear in S3.

        Exactly one of ``input_location`` (an S3 URI) and ``body`` (inline bytes, at most
        128,000) carries the payload. Every argument is validated before anything is sent.
        """
        self._check_open()
        params = validate_invoke(
            endpoint_name,
            input_location,
            body=body,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            inference_id=inference_id,
            s3_output_path_extension=s3_output_path_extension,
            filename=filename,
            request_ttl_seconds=request_ttl_seconds,
            invocation_timeout_seconds=invocation_timeout_seconds,
        )
        return await self._invoke(params)

    async def _invoke(self, params: InvokeParams) -> AsyncInvocation:
        body = params.body if params.body is not None else b""
        response = await self._send(
            operation="InvokeEndpointAsync",
            method="POST",
            url=self._invoke_url(params.endpoint_name),
            host=self._runtime_host,
            headers=invoke_headers(params),
            content=body,
            payload_hash=hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
            signer=self._signer,
            parse_failure=_parse_runtime_failure,
            log_fields=f" endpoint={params.endpoint_name} inference_id={params.inference_id}"
            if logger.isEnabledFor(logging.DEBUG)
            else "",
        )
        # One pass over the headers into a dict (lower-cased names) beats several
        # case-insensitive scans of httpx.Headers.
        invocation = parse_invoke_response(
            response.status_code, dict(response.headers.items()), response.content
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "InvokeEndpointAsync endpoint=%s queued inference_id=%s request_id=%s",
                params.endpoint_name,
                invocation.inference_id,
                invocation.request_id,
            )
        return invocation

    # == S3 and results: upload_input, submit, wait_for_result, poll_result, get_result ==
    # The S3 operations live in _objects.S3Objects and the polling in _results.ResultWaiter;
    # these methods validate and delegate. Both are built on first use, so a client that
    # only invokes never resolves an S3 host. Tests replace the waiter's seams:
    # ``client._results.clock`` (monotonic), ``.sleep`` and ``.random``.

    _s3_objects: S3Objects | None = None
    _result_waiter: ResultWaiter | None = None

    @property
    def _s3(self) -> S3Objects:
        objects = self._s3_objects
        if objects is None:
            objects = self._s3_objects = S3Objects(
                self._send,
                region=self._region,
                endpoint_url=self._s3_endpoint_url,
                use_fips=self._use_fips,
                use_dualstack=self._use_dualstack,
            )
        return objects

    @property
    def _results(self) -> ResultWaiter:
        waiter = self._result_waiter
        if waiter is None:
            waiter = self._result_waiter = ResultWaiter(self._s3)
        return waiter

    async def upload_input(
        self, data: Payload, s3_uri: str, *, content_type: str | None = None
    ) -> str:
        """PutObject ``data`` at ``s3_uri``; returns the ``s3://`` URI for ``input_location``.

        ``data`` is ``bytes``, a file path (``str`` or ``os.PathLike``) or a binary file
        object (read from its current position; it must be seekable and is not closed).
        Files are streamed in 1 MiB chunks, never held whole in memory; their SHA-256 (S3
        checks it, and stores it as the object's checksum) is computed in a worker thread;
        a retry re-reads from the start. Above 64 MiB the upload is a multipart upload:
        8 MiB parts sent concurrently, each checksummed and retried on its own, aborted on
        any failure or cancellation. A file that changes while it is uploaded is an error
        naming it, and nothing is stored. ``content_type`` is stored with the object.
        """
        self._check_open()
        location = parse_s3_uri(s3_uri, param="s3_uri")
        if content_type is not None:
            check_content_type(content_type)
        if await self._upload_in_parts(data, location, content_type):
            return location.uri
        body = await prepare_upload(data)
        await self._s3.put_object(
            location,
            body.content,
            payload_hash=body.payload_hash,
            # httpx sets it for bytes; a stream needs it explicitly or goes out chunked.
            content_length=None if isinstance(body.content, bytes) else body.length,
            content_type=content_type,
        )
        return location.uri

    # Multipart settings: tests and benchmarks adjust them on an instance.
    _multipart_threshold = DEFAULT_THRESHOLD
    _part_size = DEFAULT_PART_SIZE
    _part_concurrency = DEFAULT_CONCURRENCY

    async def _upload_in_parts(
        self, data: Payload, location: S3Location, content_type: str | None
    ) -> bool:
        """Upload ``data`` in parts if it is above the threshold; False: it is not."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            if len(data) <= self._multipart_threshold:
                return False
            source = open_source(data)
        else:
            source = await run_to_end(open_source, data)
        if source is None:
            return False
        try:
            if source.size <= self._multipart_threshold:
                return False
            await upload_multipart(
                self._s3,
                location,
                source,
                content_type=content_type,
                part_size=self._part_size,
                concurrency=self._part_concurrency,
            )
            return True
        finally:
            source.close()

    async def submit(
        self,
        endpoint_name: str,
        data: Payload,
        *,
        input_location: str | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        s3_output_path_extension: str | None = None,
        filename: str | None = None,
        request_ttl_seconds: int | None = None,
        invocation_timeout_seconds: int | None = None,
    ) -> AsyncInvocation:
        """The payload and the invocation in one call.

        With ``input_location`` (an S3 URI), ``data`` is uploaded there (with
        ``content_type``) and then invoked by location. Without it, ``data`` goes inline in
        the request: at most 128,000 bytes, else ``ParamValidationError`` before anything is
        sent (a path is measured before it is read). Every argument is checked before the
        upload, so a bad one never leaves an orphaned object behind. The other keyword
        arguments are ``invoke_endpoint_async``'s.
        """
        self._check_open()
        options: dict[str, Any] = {
            "content_type": content_type,
            "accept": accept,
            "custom_attributes": custom_attributes,
            "inference_id": inference_id,
            "s3_output_path_extension": s3_output_path_extension,
            "filename": filename,
            "request_ttl_seconds": request_ttl_seconds,
            "invocation_timeout_seconds": invocation_timeout_seconds,
        }
        if input_location is None:
            validate_invoke(endpoint_name, body=b"", **options)  # all but the payload
            body = await read_small(data)
            return await self._invoke(validate_invoke(endpoint_name, body=body, **options))
        location = parse_s3_uri(input_location, param="input_location")
        params = validate_invoke(endpoint_name, location.uri, **options)
        await self.upload_input(data, location.uri, content_type=content_type)
        return await self._invoke(params)

    async def wait_for_result(
        self,
        invocation: AsyncInvocation,
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_bytes: int | None = None,
    ) -> InferenceResult:
        """Wait until the output or the failure object of ``invocation`` exists.

        ``invocation`` is the ``AsyncInvocation`` from ``invoke_endpoint_async`` or
        ``submit`` (to read an output by location, use ``get_result``). Polls with HEAD,
        the output and failure objects together, every ``poll_interval`` seconds at first
        and up to 30 s apart (with jitter); ``timeout=None`` waits forever. Objects older
        than ``invocation.submitted_at`` (a previous run's, at a reused key) are ignored;
        if both objects are fresh, the later one wins.

        Returns the output as ``InferenceResult``; raises ``InferenceFailedError`` with the
        failure object's text, ``WaitTimeoutError`` once ``timeout`` seconds pass,
        ``ResultTooLargeError`` (before the body is read) for an output over
        ``max_bytes``, and ``AccessDeniedError`` (or any other 4xx) at once. 5xx answers,
        throttling and connection failures only delay the wait. Cancelling it cancels the
        requests in flight and leaves nothing running.
        """
        self._check_open()
        check_max_bytes(max_bytes)
        return await self._results.wait(
            invocation, timeout=timeout, poll_interval=poll_interval, max_bytes=max_bytes
        )

    async def poll_result(self, invocation: AsyncInvocation) -> InferenceResult | None:
        """One look, no waiting: the result, ``None`` while pending, or the failure raised.

        For services that check on their own schedule (a periodic job, a queue consumer).
        The same freshness rule as ``wait_for_result``.
        """
        self._check_open()
        return await self._results.poll(invocation)

    async def get_result(
        self, output_location: str, *, max_bytes: int | None = None
    ) -> InferenceResult:
        """GetObject of an output by its S3 URI (e.g. a stored ``output_location``).

        The body is exactly the stored bytes (a ``Content-Encoding`` is reported in
        ``content_encoding``, not decoded). Larger than ``max_bytes``:
        ``ResultTooLargeError``, decided from the response head before the body is read.
        """
        self._check_open()
        location = parse_s3_uri(output_location, param="output_location")
        check_max_bytes(max_bytes)
        return await self._results.get(location, output_location, max_bytes)

    def stream_result(self, output_location: str) -> StreamContext:
        """``async with client.stream_result(uri) as stream: async for chunk in stream``.

        The object is read as it arrives, in bounded memory; a connection lost mid-body
        raises ``TransportError`` from the iteration, never a short body.
        """
        self._check_open()
        location = parse_s3_uri(output_location, param="output_location")

        async def open_stream() -> ResultStream:
            self._check_open()
            return ResultStream(await self._s3.open_object(location), output_location)

        return StreamContext(open_stream)

    async def download_result(
        self,
        invocation: AsyncInvocation,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> DownloadedResult:
        """Wait as ``wait_for_result`` does, then stream the output into the file ``path``.

        The bytes go to a temporary file beside ``path``, renamed over it at the end:
        ``path`` is never half-written, and nothing is left behind on an error or a
        cancellation. A directory or an unwritable path is refused before any request.
        """
        self._check_open()
        target = check_download_path(path)
        await self._results.wait_for_output(
            invocation, timeout=timeout, poll_interval=poll_interval
        )
        uri = invocation.output_location
        assert uri is not None  # wait_for_output checked it
        async with self.stream_result(uri) as stream:
            size = await write_file(stream, target)
            content_type = stream.content_type
        return DownloadedResult(path=target, location=uri, content_type=content_type, size=size)

    # == Notifications: listen ==

    def listen(self, queue_url: str, *, fallback_poll_interval: float = 60.0) -> Listener:
        """Wait on the endpoint's SNS → SQS notifications: ``async with client.listen(url)``.

        ``queue_url`` is an SQS queue subscribed to the endpoint's ``SuccessTopic`` and
        ``ErrorTopic``. Entering checks the queue (``GetQueueAttributes``: a missing queue or
        a missing permission is raised there, typed); then one long poll at a time serves
        every ``listener.wait(invocation)`` and ``async for event in listener``. S3 is still
        checked every ``fallback_poll_interval`` seconds per wait. SQS requests go to
        ``AWS_ENDPOINT_URL_SQS`` (then ``AWS_ENDPOINT_URL``) when set, else to the client's
        region's SQS endpoint, signed and retried like every other call.
        """
        from ._listener import Listener, SqsQueue, check_queue_url  # only for who listens

        self._check_open()
        queue_url = check_queue_url(queue_url)
        endpoint_url = configured_endpoint_url(
            None, self._env, SQS_ENDPOINT_ENV_VAR, param=SQS_ENDPOINT_ENV_VAR
        )
        use_fips, use_dualstack = self._explicit_flags
        check_custom_endpoint_flags(
            endpoint_url, use_fips=use_fips, use_dualstack=use_dualstack, param=SQS_ENDPOINT_ENV_VAR
        )
        queue = SqsQueue(
            self._send,
            queue_url,
            region=self._region,
            endpoint_url=endpoint_url,
            use_fips=self._use_fips,
            use_dualstack=self._use_dualstack,
        )
        # A long poll must end well within the HTTP read timeout.
        read_timeout = self._timeout.read if self._timeout.read is not None else 60.0
        wait_seconds = max(1, min(20, int(read_timeout) - 5))
        return Listener(
            queue,
            self._results,
            fallback_poll_interval=fallback_poll_interval,
            wait_seconds=wait_seconds,
            check_open=self._check_open,
        )


def _parse_runtime_failure(response: httpx.Response) -> ServiceError:
    return parse_error(response.status_code, response.headers, response.content)


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
        body_limit = MAX_BUFFERED_BODY
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
