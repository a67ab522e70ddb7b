"""``python -m sagemaker_async.local serve ...``: the local endpoint without the full CLI.

The ``sagemaker-async local serve`` command calls the same ``serve``; this entry point keeps
working on its own (and in subprocess tests) whatever state the main CLI is in.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from ._endpoint import DEFAULT_CONCURRENCY
from ._serve import run_until_signalled, serve

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sagemaker_async.local",
        description="A local SageMaker async-inference endpoint with S3 on one port.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve endpoints until Ctrl-C")
    run.add_argument(
        "--endpoint",
        action="append",
        required=True,
        metavar="NAME=TARGET",
        help="NAME=package.module:function or NAME=http://model-server (repeatable)",
    )
    run.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    run.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"concurrent invocations per endpoint (default: {DEFAULT_CONCURRENCY})",
    )
    run.add_argument("--output-path", metavar="S3URI", help="s3://bucket/prefix for outputs")
    run.add_argument("--failure-path", metavar="S3URI", help="s3://bucket/prefix for failures")
    run.add_argument(
        "--credentials", metavar="KEY:SECRET", help="check SigV4 signatures against these"
    )
    run.add_argument(
        "--s3-endpoint-url", metavar="URL", help="use this S3 endpoint instead of moto's"
    )
    run.add_argument(
        "--region", default=None, help="region signatures are scoped to (default: us-east-1)"
    )
    run.add_argument(
        "--notify",
        action="store_true",
        help="also serve SQS on the port and put SageMaker's notification (SNS-wrapped) on "
        "a queue after each output or failure",
    )
    run.add_argument(
        "--include-response",
        action="store_true",
        help="with --notify: include responses of at most 128 KB in the notifications",
    )
    run.add_argument("--quiet", action="store_true", help="do not log each invocation")
    return parser


async def _serve_until_signalled(args: argparse.Namespace) -> int:
    return await run_until_signalled(
        serve(
            args.endpoint,
            port=args.port,
            concurrency=args.concurrency,
            output_path=args.output_path,
            failure_path=args.failure_path,
            credentials=args.credentials,
            s3_endpoint_url=args.s3_endpoint_url,
            region=args.region,
            notify=args.notify,
            include_response=args.include_response,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if not args.quiet:
        # Our logger only: the root logger at INFO would add every library's chatter.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        local_logger = logging.getLogger("sagemaker_async.local")
        local_logger.addHandler(handler)
        local_logger.setLevel(logging.INFO)
    try:
        return asyncio.run(_serve_until_signalled(args))
    except KeyboardInterrupt:  # where signal handlers cannot be installed
        return 130
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
