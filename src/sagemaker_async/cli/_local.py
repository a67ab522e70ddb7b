"""``local serve``: the local endpoint from the main command line.

The endpoint lives in the optional ``local`` extra (it brings moto's S3); without it the
command says how to install it instead of failing on an import deep inside.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import signal

from ._common import Streams
from ._errors import CliError, UsageError

__all__ = ["LOCAL_EXTRA_HINT", "require_local_extra", "run_local_serve"]

LOCAL_EXTRA_HINT = "pip install 'sagemaker-async[local]'"


class MissingExtraError(CliError):
    """An optional dependency of the command is not installed."""


def require_local_extra(*, needs_moto: bool = True) -> None:
    """Fail with the install command when the local endpoint cannot run here."""
    if needs_moto and importlib.util.find_spec("moto") is None:
        raise MissingExtraError(
            f"the local endpoint needs the 'local' extra (moto's S3): {LOCAL_EXTRA_HINT}"
        )


async def run_local_serve(args: argparse.Namespace, streams: Streams) -> int:
    """Serve until Ctrl-C (exit 130) or SIGTERM (exit 0, a requested stop).

    ``--s3-endpoint-url`` names an S3 to store objects in instead of moto's.
    """
    s3_endpoint_url = getattr(args, "s3_endpoint_url", None)
    require_local_extra(needs_moto=s3_endpoint_url is None)
    from ..local import serve
    from ..local._endpoint import DEFAULT_CONCURRENCY

    if not args.quiet:
        handler = logging.StreamHandler(streams.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        local_logger = logging.getLogger("sagemaker_async.local")
        local_logger.addHandler(handler)
        local_logger.setLevel(logging.INFO)

    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
        loop.add_signal_handler(signal.SIGTERM, terminate)

    def emit(line: str) -> None:
        streams.stdout.write(streams.redact(line).encode("utf-8") + b"\n")
        streams.stdout.flush()

    try:
        await serve(
            args.endpoint,
            port=args.port,
            concurrency=args.concurrency or DEFAULT_CONCURRENCY,
            output_path=args.output_path,
            failure_path=args.failure_path,
            credentials=args.credentials,
            print=emit,
            s3_endpoint_url=s3_endpoint_url,
        )
    except asyncio.CancelledError:
        if terminated:
            return 0  # SIGTERM: a requested, clean stop
        raise  # Ctrl-C: asyncio.run turns it into KeyboardInterrupt (exit 130)
    except ValueError as exc:  # a bad --endpoint, path or credentials: nothing started
        raise UsageError(str(exc)) from None
    except OSError as exc:  # the port is taken, ...
        raise CliError(f"cannot serve: {exc}") from None
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
    return 0
