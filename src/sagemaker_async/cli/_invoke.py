"""``invoke-endpoint-async``, ``wait`` and ``get``: one invocation at a time.

``invoke-endpoint-async`` is the AWS CLI's command (same options, same JSON) plus what the
AWS CLI cannot do: ``--wait`` for the result. ``wait`` and ``get`` pick up an invocation
made earlier, by its locations or by the JSON the invoke printed, so a shell script can
submit now and collect later.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..options import OPTION_FIELDS
from ._common import (
    Streams,
    check_outfile,
    invocation_json,
    listen_options,
    load_body,
    make_client,
    write_body,
    write_json,
)
from ._errors import CliError, UsageError
from ._parser import PROG

if TYPE_CHECKING:
    from .. import AsyncInvocation

__all__ = ["run_get", "run_invoke", "run_wait"]


def _check_wait_options(args: argparse.Namespace) -> None:
    given = [
        option
        for option, value in (
            ("--timeout", args.timeout),
            ("--poll-interval", args.poll_interval),
            ("--outfile", args.outfile),
        )
        if value is not None
    ]
    if given and not args.wait:
        verb = "is" if len(given) == 1 else "are"
        raise UsageError(f"{', '.join(given)} {verb} only valid with --wait")


async def run_invoke(args: argparse.Namespace, streams: Streams) -> int:
    """Queue the inference; print the AWS CLI's JSON, or with ``--wait`` the result."""
    from .. import DEFAULT_POLL_INTERVAL

    _check_wait_options(args)
    if args.wait:
        check_outfile(args.outfile)  # before anything is sent, not after the whole wait
    body = None if args.body is None else load_body(args.body, args.cli_binary_format)
    async with make_client(args) as client:
        invocation = await client.invoke_endpoint_async(
            args.endpoint_name,
            args.input_location,
            body=body,
            **{option.name: getattr(args, option.name) for option in OPTION_FIELDS},
        )
        if not args.wait or args.outfile not in (None, "-"):
            # Without --wait, or with the body going to a file, standard output gets the
            # AWS CLI's JSON (as the AWS CLI's invoke-endpoint does with its outfile).
            write_json(streams.stdout, invocation_json(invocation))
        if not args.wait:
            return 0
        # Said at once, on stderr: an interrupted or failed wait must not lose the id, and
        # ``sagemaker-async wait`` can pick the invocation up again from these locations.
        streams.stderr.write(_queued_line(invocation))
        streams.stderr.flush()
        result = await client.wait_for_result(
            invocation,
            timeout=args.timeout,
            poll_interval=args.poll_interval or DEFAULT_POLL_INTERVAL,
        )
    write_body(result.body, args.outfile, streams.stdout)
    return 0


def _queued_line(invocation: AsyncInvocation) -> str:
    return (
        f"{PROG}: queued inference {invocation.inference_id}; "
        f"waiting for {invocation.output_location}\n"
    )


def _read_invocation(source: str) -> dict[str, object]:
    """The JSON object invoke-endpoint-async printed, from a file or standard input."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --invocation {source}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("OutputLocation"), str):
        raise UsageError(
            f"--invocation {source} is not the JSON printed by invoke-endpoint-async "
            '(an object with "OutputLocation")'
        )
    return document


def _invocation(args: argparse.Namespace) -> tuple[str, str, str | None]:
    """(inference id, output location, failure location) from the options."""
    output, failure = args.output_location, args.failure_location
    inference_id = ""
    if args.invocation is not None:
        document = _read_invocation(args.invocation)
        output = str(document["OutputLocation"])
        stored_failure = document.get("FailureLocation")
        if failure is None and isinstance(stored_failure, str):
            failure = stored_failure
        inference_id = str(document.get("InferenceId") or "")
    if not inference_id:
        # Only messages use it; the object's name is the best stand-in.
        inference_id = output.rstrip("/").rpartition("/")[2]
    return inference_id, output, failure


async def run_wait(args: argparse.Namespace, streams: Streams) -> int:
    """Wait for the output (or the failure) of an earlier invocation; write the body."""
    from .. import DEFAULT_POLL_INTERVAL, AsyncInvocation

    inference_id, output, failure = _invocation(args)
    check_outfile(args.outfile)
    invocation = AsyncInvocation(inference_id, output, failure, submitted_at=args.not_before)
    async with make_client(args) as client:
        if args.queue_url is not None:
            async with client.listen(args.queue_url, **listen_options(args)) as listener:
                result = await listener.wait(invocation, timeout=args.timeout)
        else:
            result = await client.wait_for_result(
                invocation,
                timeout=args.timeout,
                poll_interval=args.poll_interval or DEFAULT_POLL_INTERVAL,
            )
    write_body(result.body, args.outfile, streams.stdout)
    return 0


async def run_get(args: argparse.Namespace, streams: Streams) -> int:
    """One look: write the body, or say the inference failed or is not finished yet."""
    from .. import AsyncInvocation

    inference_id, output, failure = _invocation(args)
    check_outfile(args.outfile)
    async with make_client(args) as client:
        result = await client.poll_result(
            AsyncInvocation(inference_id, output, failure, submitted_at=args.not_before)
        )
    if result is None:
        where = output if failure is None else f"{output} (nor at {failure})"
        if args.not_before is not None:
            where += f" written at or after {args.not_before:%Y-%m-%dT%H:%M:%SZ}"
        raise CliError(
            f"no result yet at {where}: the inference may still be queued or running; "
            "use 'sagemaker-async wait' to wait for it"
        )
    write_body(result.body, args.outfile, streams.stdout)
    return 0
