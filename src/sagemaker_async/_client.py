"""The asyncio client: a facade over the pure request code and the one signed sender.

The constructor resolves settings, endpoints and credentials once and builds the
``SignedSender`` (sign, retry, log, send); a call validates, builds its ``Request`` with a
pure function, hands it to the sender and parses the answer. S3 operations
(``S3Objects``) and result waiting (``ResultWaiter``) receive the same sender.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ._io.config import resolve_settings
from ._io.credentials import make_provider
from ._io.multipart_upload import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PART_SIZE,
    DEFAULT_THRESHOLD,
    open_source,
    upload_multipart,
)
from ._io.payloads import Payload, prepare_upload, read_small
from ._io.results import DEFAULT_POLL_INTERVAL, ResultWaiter
from ._io.runtime import Runtime
from ._io.s3_objects import S3Objects
from ._io.sender import SignedSender
from ._io.streams import (
    ResultStream,
    StreamContext,
    check_download_path,
    check_max_bytes,
    write_file,
)
from ._io.threads import run_to_end
from ._models import AsyncInvocation, DownloadedResult, InferenceResult
from ._protocol.endpoints import (
    SQS_ENDPOINT_ENV_VAR,
    check_custom_endpoint_flags,
    configured_endpoint_url,
    resolve_runtime_url,
)
from ._protocol.invoke import parse_error, parse_invoke_response
from ._protocol.params import OPTION_FIELDS, InvokeOptions, InvokeParams, validate_invoke
from ._protocol.requests import RuntimeEndpoint, invoke_request
from ._protocol.s3 import S3Location, check_content_type, parse_s3_prefix, parse_s3_uri
from ._protocol.sigv4 import SigV4Signer
from .errors import ParamValidationError, ServiceError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._io.listener import Listener

__all__ = ["AsyncInferenceClient"]

logger = logging.getLogger("sagemaker_async")


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
        _runtime: Runtime | None = None,
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
        self._runtime_endpoint = RuntimeEndpoint(
            self._runtime_base.scheme,
            self._runtime_base.netloc.decode("ascii"),
            self._runtime_base.raw_path.decode("ascii").rstrip("/"),
        )
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
        self._timeout = httpx.Timeout(timeout)
        self._runtime = _runtime or Runtime()
        self._signer = SigV4Signer(self._region, "sagemaker")
        self._sender = SignedSender(
            credentials=make_provider(
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
                credentials=credentials,
                profile_name=profile_name,
                env=env,
                clock=self._runtime.monotonic,
            ),
            max_attempts=settings.max_attempts,
            timeout=self._timeout,
            http_client=http_client,
            transport=transport,
            ca_bundle=env.get("AWS_CA_BUNDLE") or None,
            runtime=self._runtime,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"AsyncInferenceClient(region_name={self._region!r}, "
            f"endpoint_url={str(self._runtime_base)!r}, "
            f"credentials={self._sender.credentials.source!r})"
        )

    @property
    def region_name(self) -> str:
        return self._region

    @property
    def endpoint_url(self) -> str:
        return str(self._runtime_base)

    @property
    def max_attempts(self) -> int:
        return self._sender.retry.max_attempts

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
        await self._sender.aclose()

    def _check_open(self) -> None:
        if self._sender.closed:
            self._sender.check_open()  # raises

    # -- InvokeEndpointAsync ----------------------------------------------------------------

    async def invoke_endpoint_async(
        self,
        endpoint_name: str,
        input_location: str | None = None,
        *,
        body: bytes | None = None,
        **options: Unpack[InvokeOptions],
    ) -> AsyncInvocation:
        """Queue one inference; returns where its output or failure will appear in S3.

        Exactly one of ``input_location`` (an S3 URI) and ``body`` (inline bytes, at most
        128,000) carries the payload; the keyword options are the model's (``content_type``,
        ``accept``, ``custom_attributes``, ``inference_id``, ``s3_output_path_extension``,
        ``filename``, ``request_ttl_seconds``, ``invocation_timeout_seconds``). Every
        argument is validated before anything is sent.
        """
        self._check_open()
        return await self._invoke(
            InvokeParams(endpoint_name, input_location, body, options)  # type: ignore[arg-type]
        )

    async def _invoke(self, params: InvokeParams) -> AsyncInvocation:
        response = await self._sender.send(
            invoke_request(self._runtime_endpoint, params),
            signer=self._signer,
            parse_failure=_parse_runtime_failure,
            content=params.body if params.body is not None else b"",
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
    # The S3 operations live in _io.s3_objects.S3Objects and the polling in
    # _io.results.ResultWaiter; these methods validate and delegate. Both are built on first
    # use, so a client that only invokes never resolves an S3 host. Both get the one signed
    # sender; the waiter's clock, sleep and random come from the client's ``Runtime``.

    _s3_objects: S3Objects | None = None
    _result_waiter: ResultWaiter | None = None

    @property
    def _s3(self) -> S3Objects:
        objects = self._s3_objects
        if objects is None:
            objects = self._s3_objects = S3Objects(
                self._sender,
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
            runtime = self._runtime
            waiter = self._result_waiter = ResultWaiter(
                self._s3,
                clock=runtime.monotonic,
                sleep=runtime.poll_sleep,
                rng=runtime.random,
                batched=self._s3,
            )
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
        await self._upload(data, location, content_type)
        return location.uri

    async def _upload(self, data: Payload, location: S3Location, content_type: str | None) -> None:
        if await self._upload_in_parts(data, location, content_type):
            return
        body = await prepare_upload(data)
        await self._s3.put_object(
            location,
            body.content,
            payload_hash=body.payload_hash,
            # httpx sets it for bytes; a stream needs it explicitly or goes out chunked.
            content_length=None if isinstance(body.content, bytes) else body.length,
            content_type=content_type,
        )

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
        **options: Unpack[InvokeOptions],
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
        if input_location is None:
            validate_invoke(endpoint_name, body=b"", **options)  # all but the payload
            body = await read_small(data)
            return await self._invoke(validate_invoke(endpoint_name, body=body, **options))
        location = parse_s3_uri(input_location, param="input_location")
        params = validate_invoke(endpoint_name, location.uri, **options)
        content_type = options.get("content_type")
        if content_type is not None:
            check_content_type(content_type)
        await self._upload(data, location, content_type)
        return await self._invoke(params)

    async def list_objects(self, s3_prefix: str) -> list[str]:
        """The ``s3://`` URI of every object under ``s3://bucket/prefix/``, in S3's
        (lexicographic) order, page after page (ListObjectsV2).

        For turning a folder of inputs into invocations (``batch --input-prefix``).
        """
        self._check_open()
        bucket, prefix = parse_s3_prefix(s3_prefix, param="s3_prefix")
        keys = await self._s3.list_objects(bucket, prefix)
        return [f"s3://{bucket}/{key}" for key in keys]

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
        and up to 30 s apart (with jitter); ``timeout=None`` waits forever. When 8 or
        more waits of the client look on one S3 prefix, it is watched instead: listed
        (ListObjectsV2) every ``poll_interval``, each listing answering every wait on it,
        due or not (the same rules; no new permission: waits need ``s3:ListBucket``). Objects older
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
        from ._io.listener import Listener, SqsQueue, check_queue_url  # only for who listens

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
            self._sender,
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


def _spell_out_options(method: Callable[..., Any]) -> None:
    """Give ``help()`` and ``inspect.signature`` the keyword options by name, from the table.

    The methods take ``**options`` (typed by ``InvokeOptions``) so the list lives in one
    place; their visible signature stays the contract's, one keyword per option.
    """
    signature = inspect.signature(method)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    params += [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation="int | None" if f.wire_type == "integer" else "str | None",
        )
        for f in OPTION_FIELDS
    ]
    method.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]


_spell_out_options(AsyncInferenceClient.invoke_endpoint_async)
_spell_out_options(AsyncInferenceClient.submit)
