"""``LocalEndpoint``: SageMaker async inference and S3 on one local port.

One HTTP server answers both APIs, the way one set of environment variables
(``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` and ``AWS_ENDPOINT_URL_S3``, the same URL) points
every SDK at it: ``POST /endpoints/{name}/async-invocations`` is InvokeEndpointAsync, and
everything else is an S3 request (path-style, ``/bucket/key``) passed to the S3 backend.
With ``notify=True``, SQS requests (``X-Amz-Target: AmazonSQS.*``) go to moto's SQS on the
same port, and each output or failure object is announced on a queue (``_notify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import secrets
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from urllib.parse import unquote

import certifi
import httpx

from ..options import MAX_INLINE_BODY
from ..signing import FrozenCredentials
from . import _responses
from ._handlers import (
    ISOLATIONS,
    Handler,
    InvocationAttributes,
    Runner,
    check_http_url,
    is_url,
    make_runner,
)
from ._http import Admission, BodyRejected, Head, HttpServer, Limits, Request, Response
from ._notify import Notifier, NotifyingStorage, is_long_poll, is_sqs
from ._queue import (
    DEFAULT_INVOCATION_TIMEOUT_SECONDS,
    DEFAULT_REQUEST_TTL_SECONDS,
    EndpointQueue,
    Job,
)
from ._s3_auth import S3Verifier, unverified_payload
from ._s3_payload import decoded_headers
from ._s3backend import MotoBackend, ProxyBackend, S3Backend
from ._sigv4_verify import AuthError, SigV4Verifier
from ._storage import BackendStorage, ClientStorage, Storage, parse_s3_uri
from ._validation import INVOKE_PATH, InvalidRequest, parse_invocation

__all__ = ["DEFAULT_ACCOUNT_ID", "LocalEndpoint"]

logger = logging.getLogger("sagemaker_async.local")

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's, so ARNs and messages agree with it
DEFAULT_CONCURRENCY = 4
MAX_S3_PUT_BYTES = 5 * 1024**3  # S3's limit for one PutObject or UploadPart
MAX_S3_OTHER_BYTES = 20 * 1024 * 1024  # CompleteMultipartUpload of 10,000 parts fits
_STOP_WRITE_SECONDS = 3.0  # of the 5 s a stop may take, for "endpoint stopped" objects
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_S3_PATH = re.compile(r"(s3|https)://[^/]+(/.*)?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Any credentials work against moto; these are what the local endpoint signs its own S3
# requests with when it was given none.
_MOTO_CREDENTIALS = FrozenCredentials("test", "test")


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs ~20-100 ms, too
    much to pay on every start of an endpoint that tests create by the dozen."""
    return ssl.create_default_context(cafile=certifi.where())


def _parse_credentials(credentials: str | tuple[str, str] | None) -> FrozenCredentials | None:
    if credentials is None:
        return None
    if isinstance(credentials, str):
        key, sep, secret = credentials.partition(":")
        if not sep:
            raise ValueError("credentials must be 'ACCESS_KEY_ID:SECRET_ACCESS_KEY'")
    else:
        key, secret = credentials
    if not key or not secret:
        raise ValueError("credentials need both an access key id and a secret access key")
    return FrozenCredentials(key, secret)


def _check_path(name: str, value: str) -> str:
    if _S3_PATH.fullmatch(value) is None:
        raise ValueError(f"{name} must be an s3:// URI such as s3://bucket/prefix, got {value!r}")
    if value.startswith("s3://"):
        _check_bucket(f"{name} {value!r}", value[len("s3://") :].partition("/")[0])
    return value.rstrip("/")


def _check_bucket(what: str, bucket: str) -> None:
    """S3's naming rules, checked at once rather than as a failed CreateBucket at start."""
    if _BUCKET.fullmatch(bucket) is None:
        raise ValueError(
            f"{what}: bucket {bucket!r} is not a valid S3 bucket name (3 to 63 lowercase "
            "letters, digits, dots and hyphens, starting and ending with a letter or digit)"
        )


def _join(base: str, *parts: str | None) -> str:
    pieces = [base.rstrip("/")]
    pieces += [part.strip("/") for part in parts if part and part.strip("/")]
    return "/".join(pieces)


class LocalEndpoint:
    """SageMaker Asynchronous Inference on 127.0.0.1, with real handlers and real S3.

    ``endpoints`` maps endpoint names to handlers: a callable (``handler(payload)`` or
    ``handler(payload, attributes)``, sync or async, returning bytes, str or
    ``(body, content_type)``), a ``"package.module:function"`` string, or the URL of a model
    server speaking SageMaker's container contract. Use as ``async with``; the URLs are set
    once it has started.
    """

    def __init__(
        self,
        endpoints: Mapping[str, Handler | str],
        *,
        concurrency: int | Mapping[str, int] = DEFAULT_CONCURRENCY,
        output_path: str | None = None,
        failure_path: str | None = None,
        s3_endpoint_url: str | None = None,
        credentials: str | tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        bucket: str | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        clock: Callable[[], float] = time.monotonic,
        time_scale: float = 1.0,
        notify: bool = False,
        include_response: bool = False,
        isolation: str = "auto",
        region: str = "us-east-1",
        limits: Limits | None = None,
    ) -> None:
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
        self._isolation = isolation
        if not endpoints:
            raise ValueError("a LocalEndpoint needs at least one endpoint")
        for name in endpoints:
            if not isinstance(name, str) or len(name) > 63 or not _ENDPOINT_NAME.fullmatch(name):
                raise ValueError(
                    f"endpoint name {name!r} is not valid on SageMaker: at most 63 letters, "
                    "digits and hyphens, starting and ending with a letter or digit"
                )
        self._concurrency: dict[str, int] = {}
        for name in endpoints:
            limit = (
                concurrency.get(name, DEFAULT_CONCURRENCY)
                if isinstance(concurrency, Mapping)
                else concurrency
            )
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"concurrency must be a positive int, got {limit!r}")
            self._concurrency[name] = limit
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (a free one) to 65535, got {port!r}")
        for name, handler in endpoints.items():
            if is_url(handler):
                assert isinstance(handler, str)
                check_http_url(f"endpoint {name}: model server", handler)
        if s3_endpoint_url is not None:
            check_http_url("s3_endpoint_url", s3_endpoint_url)
        self._handlers = dict(endpoints)
        self._bucket = bucket or f"sagemaker-async-local-{secrets.token_hex(4)}"
        _check_bucket("bucket", self._bucket)
        self._output_path = _check_path("output_path", output_path or f"s3://{self._bucket}/output")
        self._failure_path = _check_path(
            "failure_path", failure_path or f"s3://{self._bucket}/failure"
        )
        self._s3_endpoint_url = s3_endpoint_url
        self._credentials = _parse_credentials(credentials)
        self._region = region
        self._limits = limits or Limits()
        self._verifier: SigV4Verifier | None = None
        self._s3_verifier: S3Verifier | None = None
        self._sqs_verifier: SigV4Verifier | None = None
        if self._credentials is not None:
            self._sqs_verifier = SigV4Verifier(
                self._credentials.access_key,
                self._credentials.secret_key,
                service="sqs",
                region=region,
            )
            self._verifier = SigV4Verifier(
                self._credentials.access_key, self._credentials.secret_key, region=region
            )
            self._s3_verifier = S3Verifier(
                self._credentials.access_key, self._credentials.secret_key, region=region
            )
        self._host = host
        self._port = port
        self._account_id = account_id
        self._clock = clock
        self._wall_clock: Callable[[], float] = time.time  # seam for signature-skew tests
        self._time_scale = time_scale

        self._server: HttpServer | None = None
        self._backend: S3Backend | None = None
        self._storage: Storage | None = None
        self._http: httpx.AsyncClient | None = None
        self._dropped: list[str] = []
        self._queues: dict[str, EndpointQueue] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._url: str | None = None
        self._state = "new"
        self._notifier: Notifier | None = None
        if include_response and not notify:
            raise ValueError("include_response needs notify=True")
        if notify:
            if s3_endpoint_url is not None:
                raise ValueError(
                    "notify=True serves moto's SQS beside moto's S3; it cannot be combined "
                    "with an s3_endpoint_url of your own"
                )
            self._notifier = Notifier(
                account_id=account_id,
                region=region,  # moto answers SQS from the region a request is signed for
                queue_name=f"sagemaker-async-local-{secrets.token_hex(4)}",
                include_response=include_response,
            )

    def __repr__(self) -> str:
        return f"LocalEndpoint(endpoints={sorted(self._handlers)!r}, url={self._url!r})"

    # -- what users read ------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The SageMaker Runtime endpoint URL (``http://127.0.0.1:PORT``)."""
        if self._url is None:
            raise RuntimeError("the LocalEndpoint is not started: use 'async with'")
        return self._url

    @property
    def s3_endpoint_url(self) -> str:
        """The S3 endpoint URL: the same port, path-style."""
        return self.endpoint_url

    @property
    def queue_url(self) -> str | None:
        """The SQS queue the notifications go to (``notify=True``), else ``None``."""
        if self._notifier is None:
            return None
        if self._notifier.queue_url is None:
            raise RuntimeError("the LocalEndpoint has not been started")
        return self._notifier.queue_url

    @property
    def sqs_endpoint_url(self) -> str:
        """The SQS endpoint URL (``notify=True``): the same port."""
        return self.endpoint_url

    @property
    def port(self) -> int:
        return int(httpx.URL(self.endpoint_url).port or 80)

    @property
    def bucket(self) -> str:
        """The bucket the default paths live in; created at start, free for test inputs."""
        return self._bucket

    @property
    def output_path(self) -> str:
        return self._output_path

    @property
    def failure_path(self) -> str:
        return self._failure_path

    @property
    def region(self) -> str:
        """The region signatures must be scoped to (when ``credentials`` are checked)."""
        return self._region

    @property
    def account_id(self) -> str:
        return self._account_id

    @property
    def endpoint_names(self) -> list[str]:
        return sorted(self._handlers)

    def invocation_count(self, endpoint_name: str) -> int:
        """How many InvokeEndpointAsync requests this endpoint accepted (answered 202)."""
        return self._queue(endpoint_name).stats.accepted

    def peak_concurrency(self, endpoint_name: str) -> int:
        """The most handler runs that were ever in progress at once on this endpoint."""
        return self._queue(endpoint_name).stats.peak_running

    def running(self, endpoint_name: str) -> int:
        """Handler runs in progress right now."""
        return self._queue(endpoint_name).stats.running

    def queued(self, endpoint_name: str) -> int:
        """Accepted requests no worker has picked up yet."""
        return self._queue(endpoint_name).queued

    def stats(self, endpoint_name: str) -> dict[str, int]:
        """Counters of one endpoint: accepted, succeeded, failed, expired, running, peak."""
        s = self._queue(endpoint_name).stats
        return {
            "accepted": s.accepted,
            "succeeded": s.succeeded,
            "failed": s.failed,
            "expired": s.expired,
            "running": s.running,
            "peak_running": s.peak_running,
        }

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every accepted request has its output or failure object written.

        Raises ``RuntimeError`` naming them if the endpoint stopped with requests that got
        neither (their object could not be written in time).
        """
        await asyncio.wait_for(self._idle.wait(), timeout)
        if self._dropped:
            raise RuntimeError(
                f"the local endpoint stopped with {len(self._dropped)} requests that got no "
                f"output or failure object: {', '.join(self._dropped[:10])}"
            )

    def _queue(self, endpoint_name: str) -> EndpointQueue:
        try:
            return self._queues[endpoint_name]
        except KeyError:
            raise KeyError(
                f"no endpoint {endpoint_name!r} (or the LocalEndpoint is not started); "
                f"endpoints: {', '.join(sorted(self._handlers))}"
            ) from None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> LocalEndpoint:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start serving; on any failure, undo what was started and raise."""
        if self._state != "new":
            raise RuntimeError("a LocalEndpoint can be started once")
        self._state = "starting"
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        self._state = "running"

    async def _start(self) -> None:
        backend: S3Backend
        if self._s3_endpoint_url is None:
            backend = MotoBackend()
        else:
            backend = ProxyBackend(self._s3_endpoint_url, verify=_tls_context())
        self._backend = backend
        await backend.start()

        server = HttpServer(
            self._handle,
            host=self._host,
            port=self._port,
            admit=self._admit,
            limits=self._limits,
            cancel_if_gone=None if self._notifier is None else is_long_poll,
        )
        await server.start()
        self._server = server
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"http://{host}:{server.port}"
        if isinstance(backend, MotoBackend):
            backend.server_port = server.port

        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0), verify=_tls_context())
        if isinstance(backend, MotoBackend):
            self._storage = BackendStorage(
                backend.handle,
                f"127.0.0.1:{server.port}",
                self._credentials or _MOTO_CREDENTIALS,
                region=self._region,
            )
        else:  # straight to the S3 that outlives us, not through our own port
            assert self._s3_endpoint_url is not None
            self._storage = ClientStorage(
                self._s3_endpoint_url,
                self._storage_credentials(),
                http=self._http,
                region=self._region,
            )
        for path in {self._output_path, self._failure_path}:
            await self._storage.ensure_bucket(parse_s3_uri(path + "/")[0])
        if self._notifier is not None:
            self._notifier.start(self._url)
            self._storage = NotifyingStorage(self._storage, self._notifier)

        runners: dict[str, Runner] = {}
        for name, handler in self._handlers.items():
            runners[name] = make_runner(
                handler,
                client=self._http,
                concurrency=self._concurrency[name],
                isolation=self._isolation,
            )
        # Worker processes start in parallel; the first handler that cannot load stops it all.
        results = await asyncio.gather(
            *(runner.start() for runner in runners.values()), return_exceptions=True
        )
        for name, runner in runners.items():
            self._queues[name] = EndpointQueue(
                name,
                runner,
                concurrency=self._concurrency[name],
                storage=self._storage,
                clock=self._clock,
                time_scale=self._time_scale,
                on_finished=self._finished,
            )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        for queue in self._queues.values():
            queue.start()

    def _storage_credentials(self) -> FrozenCredentials:
        """What the endpoint signs its requests to an S3 endpoint the user named with.

        The usual environment variables, since that endpoint may check signatures; else the
        endpoint's own credentials (the same pair on both sides), else moto's anything.
        """
        key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            return FrozenCredentials(key, secret, os.environ.get("AWS_SESSION_TOKEN"))
        if self._credentials is not None:
            return self._credentials
        return _MOTO_CREDENTIALS

    async def aclose(self) -> None:
        """Stop within seconds: no new requests; queued and running ones get a failure
        object ("endpoint stopped") while the store is still there; then the port, then S3.
        What could not be written in time is logged and reported by ``wait_idle``.
        """
        if self._state == "closed":
            return
        self._state = "closed"
        unfinished = {}
        for name, queue in self._queues.items():
            unfinished[name] = await queue.aclose()
        for queue in self._queues.values():
            await queue.runner.aclose()
        if self._storage is not None:
            # Each unfinished job gets its failure; each job whose output (or failure) was
            # being written when the stop came gets that write, never a second object.
            writes = [
                self._queues[name].fail_stopped(jobs) for name, jobs in unfinished.items() if jobs
            ]
            writes += [queue.settle() for queue in self._queues.values()]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*writes, return_exceptions=True), _STOP_WRITE_SECONDS
                )
        for queue in self._queues.values():
            queue.abandon()
        self._report_dropped()
        if self._server is not None:
            await self._server.aclose()
        if self._storage is not None:
            await self._storage.aclose()
        if self._http is not None:
            await self._http.aclose()
        if self._backend is not None:
            await self._backend.aclose()
        # Whatever was never settled is settled now, so no waiter waits for nothing.
        self._pending = 0
        self._idle.set()

    def _report_dropped(self) -> None:
        for queue in self._queues.values():
            self._dropped += queue.unwritten_stopped()
        if self._dropped:
            shown = ", ".join(self._dropped[:10]) + (" ..." if len(self._dropped) > 10 else "")
            logger.warning(
                "local endpoint stopped: %d accepted requests got no output or failure object: %s",
                len(self._dropped),
                shown,
            )

    @property
    def dropped(self) -> list[str]:
        """Inference ids of requests that ended with no object (only ever after a stop)."""
        return list(self._dropped)

    def _finished(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._idle.set()

    # -- requests -------------------------------------------------------------------------

    def _admit(self, head: Head) -> Admission | Response:
        """Decide on the head, before any body byte (and before ``100 Continue``)."""
        if head.path.startswith("/endpoints/") and not _signed_for_s3(head):
            return self._admit_runtime(head)
        if self._notifier is not None and _is_sqs(head):
            return self._admit_sqs(head)
        return self._admit_s3(head)

    def _admit_sqs(self, head: Head) -> Admission | Response:
        if self._sqs_verifier is not None:
            try:
                self._sqs_verifier.preflight(head.headers)
            except AuthError as exc:
                return _responses.json_error(exc.status, exc.code, exc.message)
        return Admission(MAX_SQS_BYTES, _SQS_TOO_LARGE)

    def _admit_runtime(self, head: Head) -> Admission | Response:
        if head.method != "POST" or INVOKE_PATH.fullmatch(head.path) is None:
            return _unknown_runtime_operation(head, self._account_id)
        if self._verifier is not None:
            # The signature covers the body, so it is checked once that is read; a request
            # with no valid key is refused now, before it can send its body.
            try:
                self._verifier.preflight(head.headers)
            except AuthError as exc:
                return _responses.error(exc.status, exc.code, exc.message)
        return Admission(MAX_INLINE_BODY, _INVOKE_TOO_LARGE)

    def _admit_s3(self, head: Head) -> Admission | Response:
        limit = MAX_S3_PUT_BYTES if head.method == "PUT" else MAX_S3_OTHER_BYTES
        too_large = _responses.s3_error(
            400,
            "EntityTooLarge",
            f"Your proposed upload exceeds the maximum allowed size of {limit} bytes.",
        )
        try:
            if self._s3_verifier is None:
                check = unverified_payload(head.method, head.target, head.headers)
            else:
                check = self._s3_verifier.check_head(
                    head.method, head.target, head.headers, now=self._wall_clock()
                )
        except AuthError as exc:
            return _responses.s3_error(exc.status, exc.code, exc.message)
        # moto gets the body decoded (it would otherwise decode it in memory); a named S3
        # endpoint gets it as it came, framing and signatures included, to check itself.
        decode = check.chunked and isinstance(self._backend, MotoBackend)

        def on_body(data: bytes) -> bytes | None:
            try:
                decoded = check.feed(data)
            except AuthError as exc:
                raise BodyRejected(_responses.s3_error(exc.status, exc.code, exc.message)) from None
            return decoded if decode else None

        def on_end() -> None:
            try:
                check.finish()
            except AuthError as exc:
                raise BodyRejected(_responses.s3_error(exc.status, exc.code, exc.message)) from None

        return Admission(
            limit,
            too_large,
            on_body=on_body,
            on_end=on_end,
            final_headers=(lambda: decoded_headers(head.headers, check)) if decode else None,
        )

    async def _handle(self, request: Request) -> Response:
        if request.path.startswith("/endpoints/") and not _signed_for_s3(request):
            match = INVOKE_PATH.fullmatch(request.path)
            if request.method != "POST" or match is None:  # admission answered it already
                return _unknown_runtime_operation(request, self._account_id)
            return self._invoke(request, match.group(1))
        assert self._backend is not None
        if self._notifier is not None and is_sqs(request):
            if self._sqs_verifier is not None:
                try:
                    self._sqs_verifier.verify(
                        request.method,
                        request.target,
                        request.headers,
                        request.read_body(),
                        now=self._wall_clock(),
                    )
                except AuthError as exc:
                    return _responses.json_error(exc.status, exc.code, exc.message)
            return await self._notifier.handle_sqs(request, self._backend)
        return await self._backend.handle(request)

    def _invoke(self, request: Request, raw_name: str) -> Response:
        if self._verifier is not None:
            try:
                self._verifier.verify(
                    request.method,
                    request.target,
                    request.headers,
                    request.body,
                    now=self._wall_clock(),
                )
            except AuthError as exc:
                return _responses.error(exc.status, exc.code, exc.message)
        try:
            invocation = parse_invocation(raw_name, request.headers, request.body)
        except InvalidRequest as exc:
            return _responses.error(
                400, "ValidationError", exc.message, namespace=_responses.VALIDATE_NAMESPACE
            )
        queue = self._queues.get(invocation.endpoint_name)
        if queue is None or self._state != "running":
            return _responses.error(
                400,
                "ValidationError",
                f"Endpoint {invocation.endpoint_name} of account {self._account_id} not found.",
                namespace=_responses.VALIDATE_NAMESPACE,
            )
        inference_id = invocation.inference_id or str(uuid.uuid4())
        extension = invocation.s3_output_path_extension
        output_location = _join(
            self._output_path, extension, invocation.filename or f"{inference_id}.out"
        )
        failure_location = _join(self._failure_path, extension, f"{inference_id}-error.out")
        if self._notifier is not None:
            self._notifier.register(
                inference_id=inference_id,
                endpoint_name=invocation.endpoint_name,
                output_location=output_location,
                failure_location=failure_location,
                content_type=invocation.content_type,
                input_location=invocation.input_location,
            )
        job = Job(
            attributes=InvocationAttributes(
                content_type=invocation.content_type,
                accept=invocation.accept,
                custom_attributes=invocation.custom_attributes,
                inference_id=inference_id,
                endpoint_name=invocation.endpoint_name,
            ),
            body=invocation.body,
            input_location=invocation.input_location,
            output_location=output_location,
            failure_location=failure_location,
            accepted_at=self._clock(),
            request_ttl_seconds=invocation.request_ttl_seconds or DEFAULT_REQUEST_TTL_SECONDS,
            invocation_timeout_seconds=invocation.invocation_timeout_seconds
            or DEFAULT_INVOCATION_TIMEOUT_SECONDS,
        )
        self._pending += 1
        self._idle.clear()
        queue.submit(job)
        return _responses.accepted(inference_id, output_location, failure_location)


def _signed_for_s3(request: Head | Request) -> bool:
    """A request signed for S3 is S3's, even at a path that looks like SageMaker's."""
    auth = request.header("authorization")
    if auth is not None:
        return b"/s3/aws4_request" in auth
    return "%2Fs3%2Faws4_request" in request.query or "/s3/aws4_request" in request.query


_INVOKE_TOO_LARGE = _responses.error(
    400,
    "ValidationError",
    "1 validation error detected: Value at 'body' failed to satisfy constraint: "
    f"Member must have length less than or equal to {MAX_INLINE_BODY}",
    namespace=_responses.VALIDATE_NAMESPACE,
)
MAX_SQS_BYTES = 1024 * 1024  # SendMessageBatch's total, the largest SQS request
_SQS_TOO_LARGE = _responses.json_error(
    400, "RequestEntityTooLarge", f"The request is larger than {MAX_SQS_BYTES} bytes."
)


def _is_sqs(head: Head) -> bool:
    target = head.header("x-amz-target")
    return target is not None and target.startswith(b"AmazonSQS.")


_SYNC_INVOKE_PATH = re.compile(r"/endpoints/([^/]*)/invocations(-response-stream)?")


def _unknown_runtime_operation(head: Head | Request, account_id: str) -> Response:
    """What the runtime API answers for paths and methods it has no operation for."""
    sync = _SYNC_INVOKE_PATH.fullmatch(head.path)
    if head.method == "POST" and sync is not None:
        # This endpoint serves asynchronous inference only, as an async endpoint does.
        return _responses.error(
            400,
            "ValidationError",
            f"Endpoint {unquote(sync.group(1))} of account {account_id} is an asynchronous "
            "inference endpoint: use InvokeEndpointAsync.",
            namespace=_responses.VALIDATE_NAMESPACE,
        )
    return _responses.error(
        404, "UnknownOperationException", f"No operation matches {head.method} {head.path}."
    )
