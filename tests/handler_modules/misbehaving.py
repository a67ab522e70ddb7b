"""Handlers that misbehave in every way a model can, for the isolation tests and the soak.

Imported by worker processes (by name), never by the server process.
"""

from __future__ import annotations

import os
import threading
import time

from sagemaker_async.local import InvocationAttributes


def echo(payload: bytes) -> bytes:
    return payload


def upper(payload: bytes) -> bytes:
    return payload.upper()


def raises(payload: bytes) -> bytes:
    raise ValueError("bad input")


def system_exit(payload: bytes) -> bytes:
    raise SystemExit(3)


async def async_keyboard_interrupt(payload: bytes) -> bytes:
    raise KeyboardInterrupt


def exits(payload: bytes) -> bytes:
    os._exit(7)


def hangs(payload: bytes) -> bytes:
    threading.Event().wait()  # forever: only a kill ends it
    return b""


def three_parameters(payload: bytes, attributes: object, extra: object) -> bytes:
    return payload


def pid(payload: bytes) -> bytes:
    return str(os.getpid()).encode()


def by_payload(payload: bytes, attributes: InvocationAttributes) -> bytes:
    """What the soak sends: the payload says how to misbehave."""
    kind = payload[:4]
    if kind == b"hang":
        threading.Event().wait()
    if kind == b"rais":
        raise RuntimeError("asked to raise")
    if kind == b"exit":
        os._exit(1)
    if kind == b"slow":
        time.sleep(0.01)
    return attributes.inference_id.encode() + b":" + payload
