"""The worker process of the local endpoint: one handler, one request at a time.

Run as a script (``python _worker_main.py``), not imported: it needs nothing but the
standard library, so a replacement worker starts in a few milliseconds instead of paying for
the package's imports. The server process talks to it over the worker's stdin and stdout,
in frames of a 4-byte big-endian length and a pickle of plain values (bytes, str, None,
tuples). Before the handler module is imported, those two descriptors are moved aside and
fd 0 / fd 1 become /dev/null / stderr, so a handler that reads or prints cannot corrupt the
conversation.

Messages, server to worker: ``(spec, sys_path)`` once, then
``(payload, content_type, accept, custom_attributes, inference_id, endpoint_name)``.
Worker to server: ``("ready",)`` or ``("error", one_line)`` once, then per request
``("ok", body, content_type_or_None, is_text)`` or ``("fail", message, fatal)``. A fatal
failure (the handler raised ``SystemExit``, ``KeyboardInterrupt`` or another
``BaseException``) is followed by the worker exiting: its interpreter may no longer be sound.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import struct
import sys
import traceback
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")
_RESULT_HINT = "return bytes, str, or (bytes or str, content_type str)."


def _send(out: BinaryIO, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _receive(inp: BinaryIO) -> Any:
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None  # the server closed our stdin: time to go
    (size,) = _HEADER.unpack(head)
    data = inp.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # noqa: S301 - the server process is our parent


class _Attributes:
    """Stands in for ``InvocationAttributes`` when the handler did not import the package."""

    __slots__ = ("accept", "content_type", "custom_attributes", "endpoint_name", "inference_id")

    def __init__(
        self,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
        inference_id: str,
        endpoint_name: str,
    ) -> None:
        self.content_type = content_type
        self.accept = accept
        self.custom_attributes = custom_attributes
        self.inference_id = inference_id
        self.endpoint_name = endpoint_name

    def __repr__(self) -> str:  # never the custom attributes: they may be sensitive
        return (
            f"InvocationAttributes(content_type={self.content_type!r}, accept={self.accept!r}, "
            f"inference_id={self.inference_id!r}, endpoint_name={self.endpoint_name!r})"
        )


def _import_error(spec: str, module_name: str, exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else module_name
        return f"handler {spec!r}: SyntaxError in {where}: {exc.msg}"
    if isinstance(exc, ImportError):
        return f"handler {spec!r}: cannot import {module_name!r}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"handler {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}{where}"


def signature_problem(fn: Any) -> str | None:
    """Why ``fn`` cannot be called as ``fn(payload)`` or ``fn(payload, attributes)``."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None  # a builtin without a signature: it will tell at the call
    kinds = inspect.Parameter
    positional = [
        p for p in parameters if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is p.empty]
    keyword_required = [
        p.name for p in parameters if p.kind is kinds.KEYWORD_ONLY and p.default is p.empty
    ]
    var_positional = any(p.kind is kinds.VAR_POSITIONAL for p in parameters)
    if len(required) > 2:
        return (
            f"takes {len(required)} required parameters; a handler is called as "
            "handler(payload) or handler(payload, attributes)"
        )
    if not positional and not var_positional:
        return "takes no positional parameter; a handler is called as handler(payload)"
    if keyword_required:
        return f"has required keyword-only parameters ({', '.join(keyword_required)})"
    return None


def wants_attributes(fn: Any) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = inspect.Parameter
    positional = 0
    for parameter in parameters:
        if parameter.kind is kinds.VAR_POSITIONAL:
            return True
        if parameter.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def load(spec: str) -> tuple[Any, str | None]:
    """The callable ``spec`` names, or the one line that says why there is none."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        return None, f"handler {spec!r} is not of the form package.module:function"
    try:
        target: Any = importlib.import_module(module_name)
    except BaseException as exc:
        return None, _import_error(spec, module_name, exc)
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            return None, f"handler {spec!r}: {module_name!r} has no {attr_path!r}"
    if not callable(target):
        return None, f"handler {spec!r} names a {type(target).__name__}, not a callable"
    problem = signature_problem(target)
    if problem is not None:
        return None, f"handler {spec!r} {problem}"
    return target, None


def _to_output(result: Any) -> tuple[Any, ...]:
    content_type: Any = None
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], str):
            return (
                "fail",
                f"Handler returned a tuple that is not (body, content_type): {_RESULT_HINT}",
                False,
            )
        result, content_type = result
    if isinstance(result, str):
        return ("ok", result.encode("utf-8"), content_type, True)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return ("ok", bytes(result), content_type, False)
    return ("fail", f"Handler returned {type(result).__name__}: {_RESULT_HINT}", False)


def _die_with_the_server() -> None:
    """On Linux, be killed when the server process dies, even while a handler hangs."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # then a hung worker outlives a killed server; a stopped one still ends it


def main() -> None:
    _die_with_the_server()
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    hello = _receive(inp)
    if hello is None:
        return
    spec, sys_path = hello
    sys.path[:] = list(sys_path)
    fn, error = load(spec)
    if error is not None:
        _send(out, ("error", error))
        return
    attributes_type: Any = _Attributes
    real = sys.modules.get("sagemaker_async.local._handlers")
    if real is not None:  # the handler imported the package: give it the real class
        attributes_type = real.InvocationAttributes
    with_attributes = wants_attributes(fn)
    loop: Any = None
    _send(out, ("ready",))
    while True:
        request = _receive(inp)
        if request is None:
            return
        payload, *fields = request
        args = (payload, attributes_type(*fields)) if with_attributes else (payload,)
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                if loop is None:
                    import asyncio

                    loop = asyncio.new_event_loop()
                result = loop.run_until_complete(result)
            reply = _to_output(result)
        except Exception as exc:
            reply = ("fail", f"Model error: {type(exc).__name__}: {exc}", False)
        except BaseException as exc:
            _send(
                out,
                (
                    "fail",
                    f"Model error: the handler raised {type(exc).__name__}({exc}); "
                    "its worker process was replaced.",
                    True,
                ),
            )
            os._exit(70)
        _send(out, reply)


if __name__ == "__main__":
    main()
