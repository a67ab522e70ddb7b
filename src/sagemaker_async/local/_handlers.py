"""What runs an inference: a Python callable, or a model server behind SageMaker's contract.

Both kinds sit behind one small interface (``Runner``) so the queue does not care which it
has. A callable may be sync (run in a worker thread, so a CPU-bound model never stalls the
event loop that also serves S3) or async (awaited); it takes the payload and, if it accepts a
second positional parameter, the ``InvocationAttributes``. A model server is any HTTP server
answering ``POST /invocations`` and ``GET /ping`` — the container contract SageMaker itself
uses — so a real inference container can be tested locally unchanged.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import httpx

__all__ = [
    "DEFAULT_BINARY_TYPE",
    "DEFAULT_TEXT_TYPE",
    "CallableRunner",
    "Handler",
    "HandlerError",
    "InvocationAttributes",
    "ModelServerRunner",
    "ModelServerUnavailable",
    "Output",
    "Runner",
    "check_http_url",
    "load_handler",
    "make_runner",
]

DEFAULT_BINARY_TYPE = "application/octet-stream"
DEFAULT_TEXT_TYPE = "text/plain; charset=utf-8"
_ERROR_TEXT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class InvocationAttributes:
    """What the caller said about a request, besides its payload."""

    content_type: str | None
    accept: str | None
    custom_attributes: str | None = field(repr=False)  # sensitive: never in a repr
    inference_id: str
    endpoint_name: str = ""


HandlerResult = bytes | bytearray | memoryview | str | tuple[bytes | str, str]
Handler = Callable[..., HandlerResult | Awaitable[HandlerResult]]
"""``handler(payload)`` or ``handler(payload, attributes)``; sync or async."""


@dataclass(frozen=True, slots=True)
class Output:
    """A handler's answer, ready to be stored."""

    body: bytes = field(repr=False)
    content_type: str


class HandlerError(Exception):
    """The inference failed; ``message`` is what the failure object will say."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelServerUnavailable(RuntimeError):
    """A model server did not pass its health check at start: nothing was served.

    A RuntimeError still, as before; the command line tells it apart from a bug.
    """


class Runner(Protocol):
    """Runs one inference; ``start`` checks health first, ``aclose`` releases resources."""

    async def start(self) -> None: ...

    async def __call__(self, payload: bytes, attributes: InvocationAttributes) -> Output: ...

    async def aclose(self) -> None: ...


def _single_type(accept: str | None) -> str | None:
    """The Accept value when it names exactly one concrete type, else None."""
    if accept and "," not in accept and "*" not in accept:
        return accept.strip() or None
    return None


def to_output(result: object, accept: str | None) -> Output:
    """Normalize ``bytes | str | (bytes | str, content_type)`` into an ``Output``."""
    content_type: str | None = None
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], str):
            raise HandlerError(
                "Handler returned a tuple that is not (body, content_type): "
                "return bytes, str, or (bytes or str, content_type str)."
            )
        result, content_type = result
    if isinstance(result, str):
        return Output(
            result.encode("utf-8"), content_type or _single_type(accept) or DEFAULT_TEXT_TYPE
        )
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Output(bytes(result), content_type or _single_type(accept) or DEFAULT_BINARY_TYPE)
    raise HandlerError(
        f"Handler returned {type(result).__name__}: "
        "return bytes, str, or (bytes or str, content_type str)."
    )


def _wants_attributes(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False  # a builtin without a signature: assume the one-argument form
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    return positional >= 2


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class CallableRunner:
    """A Python callable; sync ones run on ``executor`` so they never block the loop."""

    def __init__(self, fn: Handler, executor: Executor | None) -> None:
        self._fn = fn
        self._executor = executor
        self._with_attributes = _wants_attributes(fn)
        self._async = _is_async(fn)

    def __repr__(self) -> str:
        return f"CallableRunner({getattr(self._fn, '__qualname__', self._fn)!r})"

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def __call__(self, payload: bytes, attributes: InvocationAttributes) -> Output:
        args: tuple[Any, ...] = (payload, attributes) if self._with_attributes else (payload,)
        if self._async:
            result: Any = await cast(Awaitable[Any], self._fn(*args))
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, lambda: self._fn(*args))
            if inspect.isawaitable(result):
                result = await result
        return to_output(result, attributes.accept)


class ModelServerRunner:
    """A model server speaking SageMaker's container contract at ``url``."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self._url = url.rstrip("/")
        self._client = client

    def __repr__(self) -> str:
        return f"ModelServerRunner({self._url!r})"

    async def start(self) -> None:
        """``GET /ping`` once, as SageMaker does before it sends traffic to a container."""
        try:
            response = await self._client.get(f"{self._url}/ping", timeout=10.0)
        except httpx.HTTPError as exc:
            raise ModelServerUnavailable(
                f"model server {self._url} is not reachable: GET /ping failed "
                f"({type(exc).__name__}: {exc}); start it before the local endpoint"
            ) from exc
        if response.status_code != 200:
            raise ModelServerUnavailable(
                f"model server {self._url} failed its health check: "
                f"GET /ping answered {response.status_code}, SageMaker needs 200"
            )

    async def aclose(self) -> None:
        return None  # the client belongs to the endpoint

    async def __call__(self, payload: bytes, attributes: InvocationAttributes) -> Output:
        headers = {"Content-Type": attributes.content_type or DEFAULT_BINARY_TYPE}
        if attributes.accept is not None:
            headers["Accept"] = attributes.accept
        if attributes.custom_attributes is not None:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes.custom_attributes
        try:
            response = await self._client.post(
                f"{self._url}/invocations", content=payload, headers=headers, timeout=None
            )
        except httpx.HTTPError as exc:
            raise HandlerError(
                f"Could not reach the model server at {self._url}: {type(exc).__name__}: {exc}"
            ) from exc
        if not 200 <= response.status_code < 300:
            kind = "client" if response.status_code < 500 else "server"
            text = response.content[:_ERROR_TEXT_LIMIT].decode("utf-8", "replace")
            raise HandlerError(
                f'Received {kind} error ({response.status_code}) from model with message "{text}".'
            )
        content_type = response.headers.get("content-type")
        return Output(
            response.content, content_type or _single_type(attributes.accept) or DEFAULT_BINARY_TYPE
        )


def load_handler(spec: str) -> Handler:
    """``package.module:function`` (or ``:obj.attr``) to the callable it names."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(
            f"handler {spec!r} is not of the form package.module:function (or an http:// URL)"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"handler {spec!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"handler {spec!r}: {module_name!r} has no {attr_path!r}") from None
    if not callable(target):
        raise ValueError(f"handler {spec!r} names a {type(target).__name__}, not a callable")
    handler: Handler = target
    return handler


def is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def check_http_url(what: str, url: str) -> str:
    """``url`` if it is an http(s) URL with a host and a valid port; else ``ValueError``.

    Checked before anything starts: an impossible port otherwise surfaces as an
    ``OverflowError`` deep inside a connection attempt.
    """
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ValueError(f"{what} {url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{what} {url!r} is not an http:// or https:// URL with a host")
    if port is not None and not 0 < port <= 65535:
        raise ValueError(f"{what} {url!r}: a port is 1 to 65535, got {port}")
    return url


def make_runner(
    handler: Handler | str, *, executor: Executor | None, client: httpx.AsyncClient
) -> Runner:
    """A runner for a callable, a ``module:function`` string, or a model server URL."""
    if isinstance(handler, str):
        if is_url(handler):
            return ModelServerRunner(handler, client)
        return CallableRunner(load_handler(handler), executor)
    if not callable(handler):
        raise TypeError(
            f"an endpoint's handler must be a callable or a model server URL, not "
            f"{type(handler).__name__}"
        )
    return CallableRunner(handler, executor)
