"""Handlers in worker processes, as SageMaker runs a model in its own container.

``ProcessRunner`` keeps a pool of ``size`` worker processes (the endpoint's concurrency) for
one ``module:function`` handler. The server process never imports or calls the handler:
each worker (``_worker_main.py``, run as a script with the server's ``sys.path``) imports
it, checks its signature, says ready, then runs one request at a time. Whatever the handler
does costs at most its worker:

- raises an ``Exception``: the worker reports it and stays;
- raises ``SystemExit``, ``KeyboardInterrupt`` or any other ``BaseException``: reported, and
  the worker is replaced;
- exits (``os._exit``), crashes or is killed: the request fails with the exit status, the
  worker is replaced;
- hangs past InvocationTimeoutSeconds: the queue cancels the call, the worker is killed and
  replaced, and the capacity comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import pickle
import signal
import struct
import sys
from pathlib import Path
from typing import Any

from ._handlers import (
    DEFAULT_BINARY_TYPE,
    DEFAULT_TEXT_TYPE,
    HandlerError,
    InvocationAttributes,
    Output,
    single_type,
)

__all__ = ["HandlerLoadError", "ProcessRunner"]

logger = logging.getLogger("sagemaker_async.local")

_HEADER = struct.Struct(">I")
_SCRIPT = str(Path(__file__).with_name("_worker_main.py"))
_READY_TIMEOUT = 60.0  # importing a big model can take a while; a hung import cannot


class HandlerLoadError(ValueError):
    """A handler cannot be loaded (import error, not a callable, wrong signature)."""


def _describe_exit(status: int | None) -> str:
    if status is None:
        return "ended"
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None
        assert process.stdout is not None
        self._in = process.stdin
        self._out = process.stdout

    async def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._in.write(_HEADER.pack(len(data)) + data)
        await self._in.drain()

    async def receive(self) -> Any:
        (size,) = _HEADER.unpack(await self._out.readexactly(_HEADER.size))
        return pickle.loads(await self._out.readexactly(size))  # noqa: S301 - our child

    async def exit_status(self) -> int | None:
        try:
            return await asyncio.wait_for(self.process.wait(), 2.0)
        except asyncio.TimeoutError:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL, unless asyncio has already seen the process exit.

        Not ``Process.kill()``: ``Popen.send_signal`` first polls, and that ``waitpid`` can
        reap a worker that just exited on its own (one that could not load its handler)
        before asyncio's child watcher does, which then logs "Unknown child process pid
        …, will report returncode 255" (seen on Python 3.10, on the one-line error of a
        ``local serve`` whose handler cannot load). A signal to a zombie does nothing.
        """
        if self.process.returncode is not None:
            return
        sigkill = getattr(signal, "SIGKILL", None)  # POSIX; Windows terminates instead
        with contextlib.suppress(ProcessLookupError):
            if sigkill is None:
                self.process.kill()
            else:
                os.kill(self.process.pid, sigkill)

    async def close(self) -> None:
        self.kill()
        with contextlib.suppress(Exception):
            self._in.close()
        with contextlib.suppress(Exception):
            await self.process.wait()


class ProcessRunner:
    """A pool of worker processes for one ``package.module:function`` handler."""

    def __init__(self, spec: str, *, size: int, sys_path: list[str] | None = None) -> None:
        self.spec = spec
        self._size = size
        self._sys_path = list(sys.path if sys_path is None else sys_path)
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._broken: str | None = None
        self._closed = False
        self.replaced = 0

    def __repr__(self) -> str:
        return f"ProcessRunner({self.spec!r}, size={self._size})"

    async def _spawn(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            _SCRIPT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=os.getcwd(),
        )
        worker = _Worker(process)
        self._all.add(worker)
        try:
            await worker.send((self.spec, self._sys_path))
            reply = await asyncio.wait_for(worker.receive(), _READY_TIMEOUT)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
            status = await worker.exit_status()
            await self._discard(worker)
            raise HandlerLoadError(
                f"handler {self.spec!r}: its worker process {_describe_exit(status)} "
                "while importing it"
            ) from None
        except BaseException:
            await self._discard(worker)
            raise
        if reply[0] != "ready":
            await self._discard(worker)
            raise HandlerLoadError(reply[1])
        return worker

    async def _discard(self, worker: _Worker) -> None:
        self._all.discard(worker)
        await worker.close()

    async def start(self) -> None:
        """Start every worker; the first that cannot load the handler stops the start."""
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self._size)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                await self.aclose()
                raise result
        for result in results:
            assert isinstance(result, _Worker)
            self._idle.put_nowait(result)

    async def aclose(self) -> None:
        self._closed = True
        for task in self._spawning:
            task.cancel()
        await asyncio.gather(*self._spawning, return_exceptions=True)
        workers = list(self._all)
        self._all.clear()
        await asyncio.gather(*(worker.close() for worker in workers), return_exceptions=True)

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` and start another in the background; capacity comes back."""
        self.replaced += 1
        task = asyncio.create_task(self._replace_now(worker))
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _replace_now(self, worker: _Worker) -> None:
        await self._discard(worker)
        if self._closed:
            return
        try:
            fresh = await self._spawn()
        except HandlerLoadError as exc:  # the module changed on disk, say
            logger.error("%s", exc)
            self._broken = str(exc)
            self._idle.put_nowait(_BROKEN)
            return
        if self._closed:
            await self._discard(fresh)
            return
        self._idle.put_nowait(fresh)

    async def reserve(self) -> None:
        """Hold an idle worker for the calling queue task's next request.

        The queue calls this before it takes a request, so the time a replacement worker
        takes to start is never counted against a request's InvocationTimeoutSeconds.
        """
        holder = _LEASE.get(None)
        if holder is None:
            holder = []
            _LEASE.set(holder)
        if not holder:
            holder.append(await self._idle.get())

    async def __call__(self, payload: bytes, attributes: InvocationAttributes) -> Output:
        holder = _LEASE.get(None)  # the run task inherits the queue task's context
        worker = holder.pop() if holder else await self._idle.get()
        if worker is _BROKEN:
            self._idle.put_nowait(worker)
            raise HandlerError(f"Model error: the handler cannot be loaded: {self._broken}")
        healthy = False
        try:
            await worker.send(
                (
                    payload,
                    attributes.content_type,
                    attributes.accept,
                    attributes.custom_attributes,
                    attributes.inference_id,
                    attributes.endpoint_name,
                )
            )
            reply = await worker.receive()
        except (asyncio.IncompleteReadError, ConnectionError):
            status = await worker.exit_status()
            raise HandlerError(
                f"Model error: the worker process {_describe_exit(status)} while handling "
                "the request; it was replaced."
            ) from None
        else:
            kind = reply[0]
            if kind == "ok":
                healthy = True
                _, body, content_type, is_text = reply
                default = DEFAULT_TEXT_TYPE if is_text else DEFAULT_BINARY_TYPE
                return Output(body, content_type or single_type(attributes.accept) or default)
            _, message, fatal = reply
            healthy = not fatal
            raise HandlerError(message)
        finally:
            # Cancelled (the invocation timed out, or we are stopping) or broken: the worker
            # goes, a new one comes.
            if healthy:
                self._idle.put_nowait(worker)
            else:
                self._replace(worker)


_BROKEN: Any = object()
_LEASE: contextvars.ContextVar[list[_Worker]] = contextvars.ContextVar("sagemaker_async_lease")
