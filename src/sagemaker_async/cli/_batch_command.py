"""``batch``: the command around the engine — items, record, client, progress, signals.

The first Ctrl-C (or SIGTERM) stops the batch gracefully: no new item starts, the
invocations in flight are awaited and recorded, and the run exits 130 (143); the same
command resumes it. A second Ctrl-C cancels what is in flight and says how many requests
may have been sent without being recorded.

Standard output gets a JSON summary at the end (counts and the record's path); progress
and messages go to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

from ._batch import INLINE_LIMIT, Batch, BatchSettings
from ._common import Streams, listen_options, make_client, write_json
from ._errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, UsageError
from ._manifest import ITEM_OPTIONS, Item, items_from_uris, load_manifest
from ._progress import Counters, Progress
from ._record import RecordFile

__all__ = ["run_batch"]


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The item options given on the command line (a manifest line may override them)."""
    return {
        name: getattr(args, name)
        for name in sorted(ITEM_OPTIONS)
        if getattr(args, name, None) is not None
    }


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _check_options(args: argparse.Namespace) -> None:
    if not args.wait and (args.timeout is not None or args.poll_interval is not None):
        raise UsageError("--timeout and --poll-interval only make sense with --wait")
    if not args.wait and args.queue_url is not None:
        raise UsageError("--queue-url only makes sense with --wait")
    if args.input_location_prefix is not None:
        if not args.input_location_prefix.lower().startswith("s3://"):
            raise UsageError(
                f"--input-location-prefix {args.input_location_prefix!r} is not an "
                "s3://bucket/prefix/ URI"
            )
        if args.input_prefix is not None:
            raise UsageError("--input-location-prefix is for local files of a --manifest")


@contextlib.contextmanager
def _graceful_signals(batch: Batch, progress: Progress) -> Iterator[list[int]]:
    """First signal: stop gracefully. Second: cancel the run. Yields the signals received."""
    received: list[int] = []
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            progress.message(_stopping_message(batch.in_flight))
            batch.stop("interrupted")
        elif task is not None:
            batch.hard_stopped_in_flight = batch.in_flight
            task.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # Windows: KeyboardInterrupt as usual
            pass
    try:
        yield received
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def run_batch(args: argparse.Namespace, streams: Streams) -> int:
    from .. import DEFAULT_POLL_INTERVAL
    from ._s3list import list_uris

    _check_options(args)
    defaults = _defaults(args)
    streams.redact.add(args.custom_attributes)
    record = RecordFile(args.record, endpoint_name=args.endpoint_name)
    record.check_writable()  # before --input-prefix is listed, or anything is sent
    async with make_client(args) as client:
        items: list[Item]
        if args.manifest is not None:
            items = load_manifest(
                args.manifest,
                endpoint_name=args.endpoint_name,
                defaults=defaults,
                upload_prefix=args.input_location_prefix,
                inline_limit=INLINE_LIMIT,
            )
        else:
            uris = await list_uris(client, args.input_prefix)
            if not uris:
                raise UsageError(f"--input-prefix {args.input_prefix} holds no objects")
            items = items_from_uris(uris, endpoint_name=args.endpoint_name, defaults=defaults)
        for item in items:
            streams.redact.add(item.options.get("custom_attributes"))
        progress = Progress(
            streams.stderr,
            Counters(),
            interactive=_is_terminal(streams.stderr),
            interval=args.progress_interval,
            enabled=not args.quiet,
        )
        async with contextlib.AsyncExitStack() as stack:
            batch_client: Any = client
            if args.queue_url is not None:
                # One listener, one long poll, serves every wait of the batch.
                listener = await stack.enter_async_context(
                    client.listen(args.queue_url, **listen_options(args))
                )
                batch_client = _ListeningClient(client, listener)
            batch = Batch(
                batch_client,
                items,
                record,
                BatchSettings(
                    endpoint_name=args.endpoint_name,
                    concurrency=args.concurrency,
                    wait=args.wait,
                    timeout=args.timeout,
                    poll_interval=args.poll_interval or DEFAULT_POLL_INTERVAL,
                    upload_prefix=args.input_location_prefix,
                    max_errors=args.max_errors,
                ),
                progress,
                redact=streams.redact,
            )
            with _graceful_signals(batch, progress) as received:
                try:
                    counters = await batch.run()
                except asyncio.CancelledError:
                    if not received:
                        raise
                    lost = batch.hard_stopped_in_flight
                    raise Interrupted(
                        f"aborted with {_requests(lost)} in flight: they may have been "
                        f"submitted without being recorded in {args.record}, and a rerun "
                        "would send them again"
                        if lost
                        else f"aborted; {args.record} holds every submission"
                    ) from None
    write_json(streams.stdout, _summary(counters, args))
    if received:
        streams.stderr.write(
            f"sagemaker-async: interrupted; run the same command again to resume "
            f"({args.record} holds what was submitted)\n"
        )
        return EXIT_TERMINATED if received[0] == signal.SIGTERM else EXIT_INTERRUPTED
    if batch.stop_reason is not None:
        # The counts are the summary's, taken after the last invocation in flight ended.
        streams.stderr.write(
            f"sagemaker-async: error: stopped: {batch.stop_reason}; errors in all: "
            f"{counters.errors} (as in the summary); the last error: {batch.last_error}\n"
        )
        return EXIT_FAILURE
    unfinished = counters.errors + counters.failed + counters.timeouts
    return EXIT_FAILURE if unfinished else 0


def _requests(count: int) -> str:
    return "1 request" if count == 1 else f"{count} requests"


def _stopping_message(in_flight: int) -> str:
    if not in_flight:
        return "sagemaker-async: stopping: no request in flight; finishing"
    return (
        f"sagemaker-async: stopping: waiting for the {_requests(in_flight)} in flight to be "
        "recorded (Ctrl-C again to abort them)"
    )


class _ListeningClient:
    """The client as a batch sees it, its waits served by a notification listener."""

    def __init__(self, client: Any, listener: Any) -> None:
        self._client = client
        self._listener = listener
        self.invoke_endpoint_async = client.invoke_endpoint_async
        self.upload_input = client.upload_input

    async def wait_for_result(
        self, invocation: Any, *, timeout: float | None, poll_interval: float
    ) -> Any:
        return await self._listener.wait(invocation, timeout=timeout)


def _summary(counters: Counters, args: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "total": counters.total,
        "skipped": counters.skipped,
        "submitted": counters.submitted,
        "errors": counters.errors,
        "throttled": counters.throttled,
    }
    if counters.waiting:
        summary.update(
            succeeded=counters.succeeded, failed=counters.failed, timeout=counters.timeouts
        )
    summary["record"] = args.record
    return summary
