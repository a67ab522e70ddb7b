"""``local serve``: the local endpoint from the command line — the one implementation,
behind both ``sagemaker-async local serve`` and ``python -m sagemaker_async.local serve``.

The endpoint lives in the optional ``local`` extra (it brings moto's S3); without it the
command says how to install it instead of failing on an import deep inside.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging

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
    from ..local import (
        DEFAULT_CONCURRENCY,
        ModelServerUnavailable,
        StorageError,
        run_until_signalled,
        serve,
    )

    if not args.quiet:
        handler = logging.StreamHandler(streams.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        local_logger = logging.getLogger("sagemaker_async.local")
        local_logger.addHandler(handler)
        local_logger.setLevel(logging.INFO)

    def emit(line: str) -> None:
        streams.stdout.write(line.encode("utf-8") + b"\n")
        streams.stdout.flush()

    try:
        return await run_until_signalled(
            serve(
                args.endpoint,
                port=args.port,
                concurrency=args.concurrency or DEFAULT_CONCURRENCY,
                output_path=args.output_path,
                failure_path=args.failure_path,
                credentials=args.credentials,
                print=emit,
                s3_endpoint_url=s3_endpoint_url,
                region=getattr(args, "region", None),
                notify=args.notify,
                include_response=args.include_response,
                isolation=args.isolation,
            )
        )
    except ValueError as exc:  # a bad --endpoint, path, port or credentials: nothing started
        raise UsageError(str(exc)) from None
    except (ModelServerUnavailable, StorageError) as exc:
        # --endpoint NAME=http://... is not up, or the S3 refuses to create the buckets
        raise CliError(f"cannot serve: {exc}") from None
    except OSError as exc:  # the port is taken, ...
        raise CliError(f"cannot serve: {exc}") from None
