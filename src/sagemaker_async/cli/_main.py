"""Parse, run one command on a fresh event loop, and turn any failure into one line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._common import Streams
from ._errors import Redactor, install_debug_logging, report
from ._parser import PROG, build_parser

__all__ = ["run"]

Command = Callable[[argparse.Namespace, Streams], Coroutine[Any, Any, int]]


def _command(name: str) -> Command:
    """The coroutine function of a command, imported only when that command runs."""
    if name == "invoke-endpoint-async":
        from ._invoke import run_invoke

        return run_invoke
    if name == "wait":
        from ._invoke import run_wait

        return run_wait
    if name == "get":
        from ._invoke import run_get

        return run_get
    if name == "batch":
        from ._batch_command import run_batch

        return run_batch
    if name == "demo":
        from ._demo import run_demo

        return run_demo
    if name == "local serve":
        from ._local import run_local_serve

        return run_local_serve
    raise AssertionError(f"unknown command {name!r}")  # pragma: no cover


def _secrets_of(args: argparse.Namespace, redact: Redactor) -> None:
    """Everything on this command line that must never be shown."""
    redact.add(getattr(args, "custom_attributes", None))
    credentials = getattr(args, "credentials", None)
    if credentials:
        redact.add(credentials)
        redact.add(credentials.partition(":")[2])


def run(
    argv: Sequence[str] | None = None,
    *,
    streams: Streams | None = None,
) -> int:
    """``main`` with injectable streams, for in-process tests."""
    streams = streams or Streams()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help(streams.stderr)
        return 2
    redact = streams.redact
    _secrets_of(args, redact)
    redact.add_environment()
    debug = bool(args.debug)
    logger = logging.getLogger("sagemaker_async")
    level = logger.level
    handler = install_debug_logging(streams.stderr, redact) if debug else None
    try:
        return asyncio.run(_command(args.command)(args, streams))
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as Unix tools do, and keep
        # Python from complaining again when it flushes standard output at exit.
        if streams.stdout is sys.stdout.buffer:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc, prog=PROG, stderr=streams.stderr, redact=redact, debug=debug)
    finally:
        if handler is not None:  # leave the logger as it was (in-process callers, tests)
            logger.removeHandler(handler)
            logger.setLevel(level)
