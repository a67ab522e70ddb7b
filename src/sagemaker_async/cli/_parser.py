"""The command line's grammar: argparse only, and nothing heavier imported here.

``--help`` and usage errors must answer at once, so besides the standard library this
module reads only the table of InvokeEndpointAsync options (pure data); the commands
import the rest when they run.

The options of ``invoke-endpoint-async`` are the AWS CLI's own names for the operation
(the model's members in kebab-case), and the AWS CLI's global options (``--region``,
``--profile``, ``--endpoint-url``, ``--debug``) are accepted before or after the command,
as there, so a command line moves over by changing only ``aws sagemaker-runtime``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import datetime, timezone

from .. import __version__
from ..options import INVOKE_FIELDS, OPTION_FIELDS

__all__ = ["PROG", "build_parser"]

INPUT_LOCATION = next(f for f in INVOKE_FIELDS if f.name == "input_location")

PROG = "sagemaker-async"

_DEFAULT_POLL_INTERVAL = 1.0
_DEFAULT_CONCURRENCY = 8
_DEFAULT_PROGRESS_INTERVAL = 10.0
_DEFAULT_MAX_ERRORS = 10


def _number(kind: str, *, minimum: float, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds with a lower bound, said plainly."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < minimum or (not inclusive and value == minimum):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            raise argparse.ArgumentTypeError(f"{kind} must be {bound}, got {text!r}")
        return value

    parse.__name__ = kind  # argparse names the type in some messages
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _timestamp(text: str) -> datetime:
    """``--not-before``: ISO 8601 (no zone means UTC), or seconds since the epoch."""
    try:
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), tz=timezone.utc)
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give ISO 8601 (2026-11-26T00:18:21Z) or epoch seconds"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


_timestamp.__name__ = "time"

_seconds = _number("seconds", minimum=0.0, inclusive=True)
_interval = _number("interval", minimum=0.0, inclusive=False)


def _global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The AWS CLI's global options, accepted before and after the command.

    The copy on each command uses ``SUPPRESS`` defaults, so a value given before the
    command is not overwritten by the command's default (argparse's subparser behaviour).
    """
    default = argparse.SUPPRESS if suppress else None
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options")
    group.add_argument("--region", default=default, help="AWS region (else AWS_REGION, profile)")
    group.add_argument("--profile", default=default, help="named profile of the shared config")
    group.add_argument(
        "--endpoint-url",
        default=default,
        metavar="URL",
        help="SageMaker Runtime endpoint URL (else AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME)",
    )
    group.add_argument(
        "--s3-endpoint-url",
        default=default,
        metavar="URL",
        help="S3 endpoint URL (else AWS_ENDPOINT_URL_S3)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="log requests to stderr and show tracebacks",
    )
    return parent


def _wait_options(parser: argparse._ActionsContainer, *, outfile: bool = True) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="give up after S seconds (default: wait as long as it takes)",
    )
    parser.add_argument(
        "--poll-interval",
        type=_interval,
        default=None,
        metavar="S",
        help=(
            f"first delay between polls, growing to 30 s (default: {_DEFAULT_POLL_INTERVAL:g}); "
            "with --queue-url, how often S3 is still checked (default: 60)"
        ),
    )
    if outfile:
        parser.add_argument(
            "--outfile",
            metavar="PATH",
            help="write the result body here (default: standard output)",
        )


def _queue_url_option(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--queue-url",
        metavar="URL",
        help=(
            "wait on the endpoint's notifications on this SQS queue (subscribed to its "
            "SuccessTopic and ErrorTopic) instead of polling S3; S3 is still checked every "
            "--poll-interval seconds (default: 60), in case a notification is lost. "
            "AWS_ENDPOINT_URL_SQS overrides the SQS endpoint"
        ),
    )


def _add_invoke(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parent = _global_options(suppress=True)
    parser = commands.add_parser(
        "invoke-endpoint-async",
        parents=[parent],
        help="queue one inference (the AWS CLI's command), optionally wait for it",
        description=(
            "Queue one inference, with the AWS CLI's option names. Prints the AWS CLI's JSON "
            "(InferenceId, OutputLocation, FailureLocation). With --wait, waits and writes the "
            "result body to --outfile or standard output; a failed inference exits 1."
        ),
    )
    parser.add_argument("--endpoint-name", required=True, metavar="NAME")
    payload = parser.add_mutually_exclusive_group(required=True)
    payload.add_argument(
        INPUT_LOCATION.cli_flag, metavar=INPUT_LOCATION.metavar, help=INPUT_LOCATION.help
    )
    payload.add_argument(
        "--body",
        metavar="BODY",
        help="inline payload (<= 128,000 bytes): fileb://PATH, file://PATH, or the text itself",
    )
    for option in OPTION_FIELDS:
        parser.add_argument(
            option.cli_flag,
            type=int if option.wire_type == "integer" else str,
            metavar=option.metavar,
            help=option.help,
        )
    parser.add_argument(
        "--cli-binary-format",
        choices=("raw-in-base64-out", "base64"),
        default="raw-in-base64-out",
        help="how a text --body is read, as in the AWS CLI (default: raw-in-base64-out, as is)",
    )
    # Accepted so AWS CLI command lines run unchanged; JSON is the only output.
    parser.add_argument("--output", choices=("json",), default="json", help=argparse.SUPPRESS)
    parser.add_argument("--no-cli-pager", action="store_true", help=argparse.SUPPRESS)
    waiting = parser.add_argument_group("waiting for the result")
    waiting.add_argument(
        "--wait", action="store_true", help="wait for the result and write its body"
    )
    _wait_options(waiting)
    parser.set_defaults(command="invoke-endpoint-async")


def _add_wait_and_get(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, summary in (
        ("wait", "wait for an earlier invocation's result and write its body"),
        ("get", "fetch an earlier invocation's result now (exit 1 if not there yet)"),
    ):
        parser = commands.add_parser(
            name,
            parents=[_global_options(suppress=True)],
            help=summary,
            description=(
                f"{summary[0].upper()}{summary[1:]}. Name the invocation by its locations, or "
                "by the JSON that invoke-endpoint-async printed (--invocation FILE, '-' for "
                "standard input). A failed inference prints its failure text and exits 1."
            ),
        )
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--output-location", metavar="S3URI")
        where.add_argument(
            "--invocation",
            metavar="FILE",
            help="the JSON printed by invoke-endpoint-async ('-': standard input)",
        )
        parser.add_argument(
            "--failure-location",
            metavar="S3URI",
            help="where a failure would appear (so a failed inference ends the wait)",
        )
        parser.add_argument(
            "--not-before",
            type=_timestamp,
            metavar="TIME",
            help=(
                "ignore objects S3 last wrote before TIME (ISO 8601, UTC if no zone, or epoch "
                "seconds; compared to the second): a previous run's output at a reused "
                "InferenceId or Filename is not taken for this one's"
            ),
        )
        if name == "wait":
            _wait_options(parser)
            _queue_url_option(parser)
        else:
            parser.add_argument(
                "--outfile", metavar="PATH", help="write the body here (default: standard output)"
            )
        parser.set_defaults(command=name)


def _add_batch(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "batch",
        parents=[_global_options(suppress=True)],
        help="submit many inferences with bounded concurrency, progress and a resumable record",
        description=(
            "Submit one inference per manifest line (or per object under an S3 prefix), at "
            "most --concurrency at a time, halving it when throttled. Each submission is "
            "appended to the --record file at once; running the same command again skips "
            "what the record says was submitted, so an interrupted batch never sends an "
            "item twice."
        ),
    )
    parser.add_argument("--endpoint-name", required=True, metavar="NAME")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--manifest",
        metavar="FILE",
        help='JSON lines: {"input": "path/or/s3://uri", ...per-item options} (or a bare path)',
    )
    source.add_argument(
        "--input-prefix", metavar="S3URI", help="submit every object under s3://bucket/prefix/"
    )
    parser.add_argument(
        "--record",
        required=True,
        metavar="FILE",
        help="JSON-lines record of every item (appended; read back to resume)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=_DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"invocations in flight at most (default: {_DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--input-location-prefix",
        metavar="S3URI",
        help="upload local files too large to send inline (> 128,000 bytes) under this prefix",
    )
    defaults = parser.add_argument_group("defaults for every item (a manifest line may override)")
    for option in OPTION_FIELDS:
        if option.batch_default:
            defaults.add_argument(
                option.cli_flag,
                type=int if option.wire_type == "integer" else str,
                metavar=option.metavar,
                help="never printed" if option.sensitive else None,
            )
    parser.add_argument(
        "--max-errors",
        type=_non_negative_int,
        default=_DEFAULT_MAX_ERRORS,
        metavar="N",
        help=(
            "stop submitting once more than N items could not be submitted "
            f"(default: {_DEFAULT_MAX_ERRORS}); they are retried when the batch is run again"
        ),
    )
    waiting = parser.add_argument_group("waiting for the results")
    waiting.add_argument(
        "--wait",
        action="store_true",
        help="also wait for every result and record its outcome (succeeded, failed, timeout)",
    )
    _wait_options(waiting, outfile=False)
    _queue_url_option(waiting)
    shown = parser.add_argument_group("progress")
    shown.add_argument(
        "--progress-interval",
        type=_seconds,
        default=_DEFAULT_PROGRESS_INTERVAL,
        metavar="S",
        help=(
            "seconds between progress lines when standard error is not a terminal "
            f"(default: {_DEFAULT_PROGRESS_INTERVAL:g}; 0: a line per item)"
        ),
    )
    shown.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(command="batch")


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        parents=[_global_options(suppress=True)],
        help="run the whole job against a local endpoint: no AWS account needed",
        description=(
            "Start a local SageMaker async endpoint with a toy model, submit three requests "
            "(inline, through S3, and one the model fails on), show each one move from "
            "queued to done or failed, and print the results. Needs the 'local' extra."
        ),
    )
    parser.set_defaults(command="demo")


# The local endpoint's default (``local._endpoint.DEFAULT_CONCURRENCY``), not imported: the
# parser must not import the local endpoint; a test keeps the two equal.
_DEFAULT_SERVE_CONCURRENCY = 4


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


def _serve_options() -> argparse.ArgumentParser:
    """The global options as ``local serve`` shows them: only those that mean something to it.

    Its ``--s3-endpoint-url`` is where it stores objects. It does not read
    ``AWS_ENDPOINT_URL_S3``: that variable, once exported, points at this very server.
    """
    parent = argparse.ArgumentParser(add_help=False)
    # Accepted like on every command (a copied command line still parses), not shown: they
    # mean nothing to a server.
    for option in ("--profile", "--endpoint-url"):
        parent.add_argument(option, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    group = parent.add_argument_group("global options")
    group.add_argument(
        "--region",
        default=argparse.SUPPRESS,
        help="the region served: signatures must be scoped to it, buckets and the --notify "
        "queue are made in it, and the banner exports it (default: us-east-1)",
    )
    group.add_argument(
        "--s3-endpoint-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="store objects in this S3 instead of moto's, in-process (default); "
        "AWS_ENDPOINT_URL_S3 is not read",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and the library's DEBUG log",
    )
    return parent


def _add_local(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = commands.add_parser(
        "local",
        parents=[_global_options(suppress=True)],
        help="the local SageMaker async endpoint (needs the 'local' extra)",
        description="A local SageMaker async-inference endpoint, with S3, on one port.",
    )
    actions = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    serve = actions.add_parser(
        "serve",
        parents=[_serve_options()],
        help="serve endpoints on 127.0.0.1 until Ctrl-C",
        description=(
            "Serve SageMaker async inference and S3 on one port of 127.0.0.1 until Ctrl-C. "
            "The first lines printed are the export lines that point an SDK at it."
        ),
    )
    serve.add_argument(
        "--endpoint",
        action="append",
        required=True,
        metavar="NAME=TARGET",
        help="NAME=package.module:function or NAME=http://model-server (repeatable)",
    )
    serve.add_argument("--port", type=_port, default=None, help="default: a free one")
    serve.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"concurrent invocations per endpoint (default: {_DEFAULT_SERVE_CONCURRENCY})",
    )
    serve.add_argument("--output-path", metavar="S3URI", help="s3://bucket/prefix for outputs")
    serve.add_argument("--failure-path", metavar="S3URI", help="s3://bucket/prefix for failures")
    serve.add_argument(
        "--credentials",
        metavar="KEY:SECRET",
        help="accept only requests signed with these (default: any); never printed",
    )
    serve.add_argument(
        "--notify",
        action="store_true",
        help="also serve SQS on the port and put SageMaker's notification (SNS-wrapped) on "
        "a queue after each output or failure; prints the queue URL",
    )
    serve.add_argument(
        "--include-response",
        action="store_true",
        help="with --notify: include responses of at most 128 KB in the notifications",
    )
    serve.add_argument(
        "--isolation",
        choices=("auto", "process", "in-process"),
        default="auto",
        help="where module:function handlers run: a worker process per unit of concurrency "
        "(auto, process; a crash or hang costs one request) or the server's own process "
        "(in-process: for thousands of slow async handlers at once; BaseException is still "
        "contained)",
    )
    serve.add_argument("--quiet", action="store_true", help="do not log each invocation")
    serve.set_defaults(command="local serve")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each command sets ``command`` to its name."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[_global_options(suppress=False)],
        description=(
            "SageMaker Asynchronous Inference from the command line: invoke (with the AWS "
            "CLI's options), wait for and fetch results, run batches, try it all locally."
        ),
        epilog="Run 'sagemaker-async demo' to see the whole job on a local endpoint.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_invoke(commands)
    _add_wait_and_get(commands)
    _add_batch(commands)
    _add_demo(commands)
    _add_local(commands)
    return parser
