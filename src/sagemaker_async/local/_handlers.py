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
import contextlib
import importlib
import inspect
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import httpx

from ._worker_main import signature_problem, wants_attributes

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


def single_type(accept: str | None) -> str | None:
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
            result.encode("utf-8"), content_type or single_type(accept) or DEFAULT_TEXT_TYPE
        )
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Output(bytes(result), content_type or single_type(accept) or DEFAULT_BINARY_TYPE)
    raise HandlerError(
        f"Handler returned {type(result).__name__}: "
        "return bytes, str, or (bytes or str, content_type str)."
    )


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class CallableRunner:
    """A Python callable run in the server process: the explicit, in-process choice.

    Sync callables run on a daemon thread each, so they never block the loop; anything a
    handler raises, ``BaseException`` included, becomes a failure. What it cannot contain:
    ``os._exit``, a crash of the interpreter, a thread that never returns (it is abandoned
    at the timeout, and keeps its CPU). Worker processes (``ProcessRunner``) contain those.
    """

    def __init__(self, fn: Handler) -> None:
        problem = signature_problem(fn)
        if problem is not None:
            raise TypeError(f"handler {getattr(fn, '__qualname__', fn)!r} {problem}")
        self._fn = fn
        self._with_attributes = wants_attributes(fn)
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
            result: Any = await _contained(cast(Awaitable[Any], self._fn(*args)))
        else:
            result = await _in_thread(self._fn, args)
            if inspect.isawaitable(result):
                result = await _contained(result)
        return to_output(result, attributes.accept)


def _base_exception_failure(exc: BaseException) -> HandlerError:
    return HandlerError(f"Model error: the handler raised {type(exc).__name__}({exc}).")


async def _contained(awaitable: Awaitable[Any]) -> Any:
    """Await a handler's coroutine so that nothing it raises reaches the event loop.

    asyncio re-raises ``SystemExit`` and ``KeyboardInterrupt`` out of a task, which would
    stop the whole server; caught here, in the awaiting frame, they become a failure.
    """
    try:
        return await awaitable
    except asyncio.CancelledError:
        raise
    except Exception:
        raise
    except BaseException as exc:
        raise _base_exception_failure(exc) from None


async def _in_thread(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Run a sync handler on a daemon thread of its own.

    Not a pool: a hung handler cannot be stopped, so it must hold no shared capacity (the
    other calls and endpoints go on) and must not keep the interpreter from exiting.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return  # timed out and abandoned
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            value: Any = fn(*args)
            ok = True
        except Exception as exc:
            value, ok = exc, False
        except BaseException as exc:
            value, ok = _base_exception_failure(exc), False
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(deliver, ok, value)

    threading.Thread(target=run, name="sagemaker-async-local-handler", daemon=True).start()
    return await future


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
            response.content, content_type or single_type(attributes.accept) or DEFAULT_BINARY_TYPE
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
    problem = signature_problem(target)
    if problem is not None:
        raise ValueError(f"handler {spec!r} {problem}")
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


ISOLATIONS = ("auto", "process", "in-process")


def process_spec(fn: Callable[..., Any]) -> str:
    """The ``module:qualname`` a worker process can import ``fn`` by, or ValueError."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ValueError(
            f"handler {qualname or fn!r} cannot run in a worker process: only a function "
            "importable as package.module:function can (not a lambda, a closure or a "
            "function of __main__); pass isolation='in-process' to run it in this process"
        )
    return f"{module}:{qualname}"


def make_runner(
    handler: Handler | str,
    *,
    client: httpx.AsyncClient,
    concurrency: int,
    isolation: str = "auto",
) -> Runner:
    """A runner for a callable, a ``module:function`` string, or a model server URL.

    ``isolation``: ``"auto"`` runs strings in worker processes and callables in process
    (a closure cannot be sent to another process); ``"process"`` sends callables too, by
    their importable name; ``"in-process"`` imports strings here and calls them here.
    """
    from ._workers import ProcessRunner

    if isinstance(handler, str):
        if is_url(handler):
            return ModelServerRunner(handler, client)
        if isolation == "in-process":
            return CallableRunner(load_handler(handler))
        return ProcessRunner(handler, size=concurrency)
    if not callable(handler):
        raise TypeError(
            f"an endpoint's handler must be a callable or a model server URL, not "
            f"{type(handler).__name__}"
        )
    if isolation == "process":
        return ProcessRunner(process_spec(handler), size=concurrency)
    return CallableRunner(handler)
