"""``serve``: the long-running form of the local endpoint, for the command line.

It prints the ``export`` lines first — the same URL for SageMaker Runtime and for S3, a
region and, if needed, dummy keys — so that our client, boto3 and the AWS CLI in another
shell all reach it once they are pasted,
then serves until cancelled (Ctrl-C), and stops cleanly on the way out.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence

from ._endpoint import DEFAULT_CONCURRENCY, LocalEndpoint
from ._handlers import Handler, check_http_url, is_url

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_REGION",
    "banner",
    "parse_endpoint_specs",
    "run_until_signalled",
    "serve",
]

# The command line serves one process-wide S3 world, so a fixed, guessable bucket is best.
DEFAULT_BUCKET = "sagemaker-async-local"
# The region served when none is given (signatures must be scoped to it).
DEFAULT_REGION = "us-east-1"
# What the banner suggests when the environment has no credentials: signatures are not
# checked, so these are as good as any, and they are what moto's own docs use.
DUMMY_KEY = "test"

# Flush each line: whoever reads the exports is usually on the other end of a pipe.
_print_flushed = functools.partial(builtins.print, flush=True)


def parse_endpoint_specs(specs: Sequence[str]) -> dict[str, str]:
    """``["NAME=package.module:function", "NAME=http://host:port"]`` to ``{NAME: target}``.

    Only the form is checked here: the server process never imports a handler. Its worker
    processes do, at start, and a handler that cannot load stops the start with one line
    (``HandlerLoadError``, a ``ValueError``). Raises ``ValueError`` on any bad spec.
    """
    if not specs:
        raise ValueError("give at least one endpoint: --endpoint NAME=package.module:function")
    endpoints: dict[str, str] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            raise ValueError(
                f"endpoint {spec!r} is not NAME=package.module:function or NAME=http://URL"
            )
        if name in endpoints:
            raise ValueError(f"endpoint {name!r} is given twice")
        if is_url(target):
            check_http_url(f"endpoint {name}: model server", target)
        else:
            module_name, colon, attr_path = target.partition(":")
            if not colon or not module_name or not attr_path:
                raise ValueError(
                    f"handler {target!r} is not of the form package.module:function "
                    "(or an http:// URL)"
                )
        endpoints[name] = target
    return endpoints


# Each unit of concurrency of a ``module:function`` endpoint is a worker process: past this
# many, a typo (``--concurrency 10000``) would fork the machine to its knees before the first
# request. Many slow async handlers at once are what ``isolation="in-process"`` is for.
MAX_WORKER_PROCESSES = 256


def check_worker_count(handlers: Mapping[str, object], concurrency: int, isolation: str) -> None:
    """Refuse, before anything starts, more worker processes than a machine should fork."""
    if isolation == "in-process":
        return
    modules = sum(
        1 for target in handlers.values() if isinstance(target, str) and not is_url(target)
    )
    if modules * concurrency > MAX_WORKER_PROCESSES:
        raise ValueError(
            f"--concurrency {concurrency} would start {modules * concurrency} worker processes "
            f"(at most {MAX_WORKER_PROCESSES}): lower it, or run async handlers in the server "
            "process with --isolation in-process"
        )


async def serve(
    endpoints: Sequence[str],
    port: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    output_path: str | None = None,
    failure_path: str | None = None,
    credentials: str | None = None,
    print: Callable[[str], object] = _print_flushed,
    *,
    s3_endpoint_url: str | None = None,
    region: str | None = None,
    notify: bool = False,
    include_response: bool = False,
    isolation: str = "auto",
    environ: Mapping[str, str] | None = None,
) -> None:
    """Serve the named endpoints on 127.0.0.1 until cancelled.

    ``endpoints`` are ``NAME=package.module:function`` or ``NAME=http://model-server``;
    ``port`` None picks a free one. Bad arguments raise ``ValueError`` before anything
    starts. The ``export`` lines come first (see ``banner``); ``environ`` (default
    ``os.environ``) is what they are judged against.
    """
    handlers: dict[str, Handler | str] = dict(parse_endpoint_specs(endpoints))
    check_worker_count(handlers, concurrency, isolation)
    # As ``python -m`` does: a handler module next to you imports (workers get our sys.path).
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    local = LocalEndpoint(
        handlers,
        concurrency=concurrency,
        output_path=output_path,
        failure_path=failure_path,
        s3_endpoint_url=s3_endpoint_url,
        credentials=credentials,
        port=port or 0,
        bucket=DEFAULT_BUCKET,
        region=region or DEFAULT_REGION,
        notify=notify,
        include_response=include_response,
        isolation=isolation,
    )
    async with local:
        for line in banner(
            local,
            signed=credentials is not None,
            environ=os.environ if environ is None else environ,
        ):
            print(line)
        await asyncio.Event().wait()


def banner(local: LocalEndpoint, *, signed: bool, environ: Mapping[str, str]) -> list[str]:
    """What ``serve`` prints first: every ``export`` line an SDK in another shell needs.

    The endpoint variables always (and the queue's, with notifications); the served
    region as ``AWS_DEFAULT_REGION`` (the AWS CLI v1 and boto3 read only that one) unless
    it is set to it already, and as ``AWS_REGION`` too when that names another (our client
    and the AWS CLI v2 read it first); dummy keys only when the environment names no
    credentials and signatures are not checked. Then comments, so that a paste of
    everything is harmless.
    """
    lines = [
        f"export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={local.endpoint_url}",
        f"export AWS_ENDPOINT_URL_S3={local.s3_endpoint_url}",
    ]
    if local.queue_url is not None:
        lines.append(f"export AWS_ENDPOINT_URL_SQS={local.sqs_endpoint_url}")
        lines.append(f"export SAGEMAKER_ASYNC_QUEUE_URL={local.queue_url}")
    region = local.region
    if environ.get("AWS_DEFAULT_REGION") != region:
        lines.append(f"export AWS_DEFAULT_REGION={region}")
    if environ.get("AWS_REGION") not in (None, "", region):
        lines.append(f"export AWS_REGION={region}")
    has_credentials = any(environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"))
    if not signed and not has_credentials:
        lines.append(f"export AWS_ACCESS_KEY_ID={DUMMY_KEY} AWS_SECRET_ACCESS_KEY={DUMMY_KEY}")
    if local.queue_url is not None:
        lines.append(
            "# notifications go to that queue, SNS-wrapped: "
            'sagemaker-async wait --queue-url "$SAGEMAKER_ASYNC_QUEUE_URL" ...'
        )
    lines.append(f"# sagemaker-async local endpoint: {', '.join(local.endpoint_names)}")
    lines.append(f"# outputs in {local.output_path}, failures in {local.failure_path}")
    if signed:
        lines.append(
            "# every request (SageMaker Runtime and S3) must be signed with the "
            f"--credentials key, for region {region}"
        )
    elif has_credentials:
        lines.append("# any credentials are accepted (signatures are not checked): yours will do")
    else:
        lines.append("# any credentials are accepted (signatures are not checked)")
    lines.append("# Ctrl-C to stop")
    return lines


async def run_until_signalled(work: Awaitable[None]) -> int:
    """Run ``work`` (``serve(...)``) until SIGINT or SIGTERM; the exit status to use.

    Both signals cancel the running task, so serving stops between two steps and cleans
    up. Letting KeyboardInterrupt fly instead matters before Python 3.11, whose
    ``asyncio.run`` raises it wherever the loop happens to be (mid-write, say). Ctrl-C
    gives 130, SIGTERM (a requested stop) 0.
    """
    task = asyncio.current_task()
    assert task is not None
    received: list[signal.Signals] = []

    def stop(signum: signal.Signals) -> None:
        received.append(signum)
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(signum, stop, signum)
    try:
        await work
    except asyncio.CancelledError:
        if not received:
            raise
        return 130 if received[0] == signal.SIGINT else 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    return 0
