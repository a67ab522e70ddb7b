"""The S3 half of the one port: every request that is not InvokeEndpointAsync goes here.

Two backends behind one method (``handle``):

- ``MotoBackend`` (the default): moto's S3, the same WSGI application moto's own server
  (``ThreadedMotoServer``) runs, called in-process on a small thread pool. Compared with
  starting moto's server on a second port and proxying to it, this has no second listening
  socket, no extra hop, and no server thread that takes half a second to shut down, while
  moto sees exactly the WSGI environ its server would build. moto keeps its state
  per process, so every ``LocalEndpoint`` in a process shares one S3 world (which is why
  each one defaults to its own bucket).
- ``ProxyBackend``: any S3 endpoint URL the user names (MinIO, LocalStack, a moto server);
  requests are forwarded as they came, ``Host`` included, so signatures still verify there.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import ssl
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Protocol
from urllib.parse import unquote, unquote_to_bytes

import httpx

from . import _fast_head, _moto_complete, _moto_stream
from ._http import Request, Response
from ._responses import s3_error

logger = logging.getLogger("sagemaker_async.local")


def _chunks(file: IO[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := file.read(size):
        yield chunk


__all__ = ["MotoBackend", "ProxyBackend", "S3Backend"]

# Hop-by-hop headers (RFC 9110 §7.6.1), plus Expect, which the local server already
# answered: none of them describe the message itself, so none is forwarded either way.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)

_MOTO_MISSING = (
    "the local endpoint keeps its objects in moto's S3 by default, and moto is not "
    "installed: pip install 'sagemaker-async[local]' (or pass an s3_endpoint_url)"
)


class S3Backend(Protocol):
    async def start(self) -> None: ...

    async def handle(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


_moto_app: Any = None
_moto_lock = threading.Lock()


def _load_moto_app() -> Any:
    """moto's dispatcher application, built once per process (its state is global anyway)."""
    global _moto_app
    with _moto_lock:
        if _moto_app is None:
            try:
                from moto.moto_server.werkzeug_app import (
                    DomainDispatcherApplication,
                    create_backend_app,
                )
            except ImportError as exc:
                raise RuntimeError(_MOTO_MISSING) from exc
            _moto_app = DomainDispatcherApplication(create_backend_app)
        return _moto_app


def _dance(text: str) -> str:
    # PEP 3333: environ strings carry bytes as latin-1. werkzeug's server reads the request
    # line as latin-1 and then applies this "encoding dance"; moto expects its result.
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


# Query parameters an object upload (PutObject, UploadPart, presigned or not) may carry;
# any other one names a subresource (?tagging, ?acl, ...), which is not streamed.
_UPLOAD_PARAMS = frozenset({b"uploadId", b"partNumber", b"x-id", b"AWSAccessKeyId", b"Signature",
                            b"Expires"})  # fmt: skip


def _is_large_upload(request: Request) -> bool:
    """A PutObject or UploadPart whose body the server spooled: streamed into moto's key."""
    if request.body_file is None or request.method != "PUT":
        return False
    if request.header("x-amz-copy-source") is not None:
        return False
    raw_path, _, query = request.target.partition(b"?")
    bucket, _, key = raw_path.lstrip(b"/").partition(b"/")
    if not bucket or not key:
        return False
    for item in query.split(b"&"):
        name = item.partition(b"=")[0]
        if name and name not in _UPLOAD_PARAMS and not name.lower().startswith(b"x-amz-"):
            return False
    return True


def _is_completion(request: Request) -> bool:
    """A CompleteMultipartUpload: ``POST /bucket/key?uploadId=...``."""
    if request.method != "POST":
        return False
    raw_path, _, query = request.target.partition(b"?")
    bucket, _, key = raw_path.lstrip(b"/").partition(b"/")
    return bool(bucket and key) and any(
        item.partition(b"=")[0] == b"uploadId" for item in query.split(b"&")
    )


def _environ(request: Request, server_port: int, *, body: bool = True) -> dict[str, Any]:
    """The environ werkzeug's development server would build for this request (with an
    empty body if not ``body``)."""
    target = request.target.decode("latin-1")
    raw_path, _, query = target.partition("?")
    stream: IO[bytes] = (request.body_file or io.BytesIO(request.body)) if body else io.BytesIO()
    environ: dict[str, Any] = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": _dance(unquote(raw_path)),
        "QUERY_STRING": _dance(query),
        "REQUEST_URI": _dance(target),
        "RAW_URI": _dance(target),
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(
            0 if not body else len(request.body) if request.body_file is None else request.body_size
        ),
    }
    for name, value in request.headers:
        key = name.decode("latin-1")
        if "_" in key or key in _HOP_BY_HOP or key == "content-length":
            continue
        wsgi_key = key.upper().replace("-", "_")
        text = value.decode("latin-1")
        if wsgi_key != "CONTENT_TYPE":
            wsgi_key = f"HTTP_{wsgi_key}"
            if wsgi_key in environ:
                text = f"{environ[wsgi_key]},{text}"
        environ[wsgi_key] = text
    return environ


_CREDENTIAL = re.compile(rb"Credential=[^/,\s]*/[^/]*/[^/]*/([^/,\s]+)/aws4_request")


def _kind_of(request: Request) -> str | None:
    """ "sqs" or "s3" for the requests the local endpoint routes to moto, None for others.

    SQS's JSON protocol names its operation in ``X-Amz-Target``; an S3 request is signed
    for ``s3`` (header or presigned query), by the legacy query signature, or anonymous,
    and is not an S3 Control request. Anything else is left to moto's dispatcher.
    """
    target = request.header("x-amz-target")
    if target is not None:
        return "sqs" if target.startswith(b"AmazonSQS.") else None
    if request.target.startswith(b"/v20180820"):
        return None
    authorization = request.header("authorization")
    if authorization is not None:
        match = _CREDENTIAL.search(authorization)
        return "s3" if match is not None and match.group(1) == b"s3" else None
    _, _, query = request.target.partition(b"?")
    for item in query.split(b"&"):
        name, _, value = item.partition(b"=")
        if name == b"X-Amz-Credential":
            scope = unquote_to_bytes(value).split(b"/")
            return "s3" if len(scope) == 5 and scope[3] == b"s3" else None
    return "s3"  # anonymous, or the legacy query signature (S3's alone)


class MotoBackend:
    """moto's S3, called in-process through WSGI on a private thread pool."""

    def __init__(self, *, max_threads: int = 16) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix="sagemaker-async-local-s3"
        )
        # SQS on a thread of its own: a ReceiveMessage must never queue behind thousands of
        # S3 reads (at 10,000 results a long poll waited seconds for a thread).
        self._sqs_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sagemaker-async-local-sqs"
        )
        self._app: Any = None
        self._stream_uploads = False
        self._stream_completions = False
        self.missing_key_heads: _fast_head.MissingKeyHeads | None = None
        # moto's dispatcher picks an application per request under one lock, matching the
        # URL patterns of every moto service; the S3 and SQS requests we route are
        # recognised here and sent to the application it picked for the first of each kind.
        self._apps: dict[str, Any] = {}
        self.server_port = 0  # what SERVER_PORT says; set by the endpoint once it listens

    async def start(self) -> None:
        # Importing moto and building its S3 app takes a moment: not on the event loop.
        loop = asyncio.get_running_loop()
        self._app = await loop.run_in_executor(self._executor, _load_moto_app)
        try:
            await loop.run_in_executor(self._executor, _moto_stream.install)
            self._stream_uploads = True
        except _moto_stream.SeamMissing as exc:
            logger.warning(
                "local endpoint: large uploads are held in memory by moto (%s); "
                "install the moto version sagemaker-async supports to stream them",
                exc,
            )
        try:
            await loop.run_in_executor(self._executor, _moto_complete.install)
            self._stream_completions = True
        except _moto_complete.SeamMissing as exc:
            logger.warning("local endpoint: moto assembles multipart uploads in memory (%s)", exc)
        try:
            seam = await loop.run_in_executor(self._executor, _fast_head.check_seam)
            self.missing_key_heads = _fast_head.MissingKeyHeads(seam)
        except _fast_head.SeamMissing as exc:
            logger.warning("local endpoint: every HEAD goes through moto's web stack (%s)", exc)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._executor.shutdown, True)
        await loop.run_in_executor(None, self._sqs_executor.shutdown, True)

    def _app_for(self, request: Request, environ: dict[str, Any]) -> Any:
        """moto's application for this request: the dispatcher's choice, remembered by kind."""
        kind = _kind_of(request)
        app = None if kind is None else self._apps.get(kind)
        if app is None:
            app = self._app.get_application(environ)
            if kind is not None:
                self._apps[kind] = app
        return app

    def _call(self, request: Request) -> Response:
        if self._stream_uploads and _is_large_upload(request):
            assert request.body_file is not None
            with _moto_stream.streamed_into_moto(request.body_file, request.body_size) as pending:
                response = self._call_moto(request, _environ(request, self.server_port, body=False))
            if response.status == 200 and not pending.taken:
                # moto answered without storing the body we hold: never an empty object.
                logger.error("local endpoint: moto did not take the body of %s", request.path)
                return s3_error(500, "InternalError", "The local S3 could not store the upload.")
            return response
        if self._stream_completions and _is_completion(request):
            with _moto_complete.completion_streamed() as completion:
                response = self._call_moto(request, _environ(request, self.server_port))
            if response.status == 200 and completion.assembled_but_not_stored:
                logger.error("local endpoint: moto did not store the upload of %s", request.path)
                return s3_error(500, "InternalError", "The local S3 could not store the upload.")
            return response
        return self._call_moto(request, _environ(request, self.server_port))

    def _call_moto(self, request: Request, environ: dict[str, Any]) -> Response:
        captured: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            captured[:] = [status, headers]
            return lambda data: None

        try:
            result: Iterable[bytes] = self._app_for(request, environ)(environ, start_response)
        except Exception as exc:  # moto could not make sense of the request
            logger.debug("moto failed on %s %s", request.method, request.path, exc_info=True)
            message = f"The request is not valid: {type(exc).__name__}"
            return s3_error(400, "InvalidRequest", message)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status_line, headers = captured
        status = int(status_line.split(" ", 1)[0])
        if status >= 500 and b"<Code>" not in body:
            # moto's answer to a request it has no route for: a client mistake, not a 500
            # (SDKs retry those).
            return s3_error(400, "InvalidRequest", "The local S3 does not support this request.")
        return Response(
            status,
            [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP],
            body,
        )

    async def handle(self, request: Request) -> Response:
        if request.method == "HEAD" and self.missing_key_heads is not None:
            answer = self.missing_key_heads.answer(request)
            if answer is not None:
                return answer  # a key not there yet: moto's 404, without a thread or Flask
        loop = asyncio.get_running_loop()
        executor = self._sqs_executor if _kind_of(request) == "sqs" else self._executor
        return await loop.run_in_executor(executor, self._call, request)


class ProxyBackend:
    """Forward to an S3 endpoint URL, keeping the request (and its Host) as it came."""

    def __init__(self, endpoint_url: str, *, verify: ssl.SSLContext | bool = True) -> None:
        self._base = httpx.URL(endpoint_url)
        self._prefix = self._base.raw_path.rstrip(b"/")
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(60.0), verify=verify)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def handle(self, request: Request) -> Response:
        url = self._base.copy_with(raw_path=self._prefix + request.target)
        headers = [
            (name, value)
            for name, value in request.headers
            if name.decode("latin-1") not in _HOP_BY_HOP and name != b"content-length"
        ]
        content: bytes | Iterator[bytes] = request.body
        if request.body_file is not None:  # large: streamed on, never read whole
            headers.append((b"content-length", str(request.body_size).encode("ascii")))
            content = _chunks(request.body_file)
        upstream = self._client.build_request(request.method, url, headers=headers, content=content)
        try:
            response = await self._client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            message = f"S3 endpoint {self._base} is unreachable: {type(exc).__name__}"
            return Response(502, [("Content-Type", "text/plain")], message.encode())
        try:
            # Raw bytes: a gzip-encoded object must reach the caller still encoded.
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        return Response(
            response.status_code,
            [
                (name.decode("latin-1"), value)
                for name, value in response.headers.raw
                if name.decode("latin-1").lower() not in _HOP_BY_HOP
            ],
            body,
        )
