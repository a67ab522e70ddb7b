"""What the commands share: the client from the global options, payloads and outputs."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from ._errors import CliError, Redactor, UsageError

if TYPE_CHECKING:
    from .. import AsyncInferenceClient, AsyncInvocation

__all__ = [
    "Streams",
    "check_outfile",
    "invocation_json",
    "listen_options",
    "load_body",
    "make_client",
    "write_body",
    "write_json",
]


@dataclass
class Streams:
    """Where a command writes: the real ones in ``main``, buffers in in-process tests."""

    stdout: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    redact: Redactor = field(default_factory=Redactor)


def listen_options(args: argparse.Namespace) -> dict[str, Any]:
    """``client.listen``'s keywords from ``--poll-interval``, given with ``--queue-url``.

    Waiting on notifications there is no polling schedule to start, but S3 is still looked
    at in case a notification is lost: the option sets how often (the listener's
    ``fallback_poll_interval``), and without it the listener's own 60 s apply.
    """
    if args.poll_interval is None:
        return {}
    return {"fallback_poll_interval": args.poll_interval}


def make_client(args: argparse.Namespace, **kwargs: Any) -> AsyncInferenceClient:
    """A client configured like the AWS CLI: options first, then the environment/profile."""
    from .. import AsyncInferenceClient

    return AsyncInferenceClient(
        region_name=getattr(args, "region", None),
        profile_name=getattr(args, "profile", None),
        endpoint_url=getattr(args, "endpoint_url", None),
        s3_endpoint_url=getattr(args, "s3_endpoint_url", None),
        **kwargs,
    )


def load_body(value: str, binary_format: str = "raw-in-base64-out") -> bytes:
    """``--body`` as the AWS CLI reads a blob: ``fileb://PATH``, ``file://PATH`` or text.

    With ``--cli-binary-format base64`` (the AWS CLI v2 default) text is base64; with
    ``raw-in-base64-out`` (ours, and the form the AWS docs use) it is sent as UTF-8.
    """
    for prefix in ("fileb://", "file://"):
        if value.startswith(prefix):
            path = os.path.expanduser(value[len(prefix) :])
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read --body {value}: {exc.strerror or exc}") from None
    if binary_format == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise UsageError(
                "--body is not valid base64 (--cli-binary-format base64); give the text with "
                "--cli-binary-format raw-in-base64-out, or a file with fileb://PATH"
            ) from None
    return value.encode("utf-8")


def invocation_json(invocation: AsyncInvocation) -> dict[str, str]:
    """The AWS CLI's output for InvokeEndpointAsync: members it got, in the model's order."""
    out = {"InferenceId": invocation.inference_id}
    if invocation.output_location is not None:
        out["OutputLocation"] = invocation.output_location
    if invocation.failure_location is not None:
        out["FailureLocation"] = invocation.failure_location
    return out


def write_json(stream: BinaryIO, document: object) -> None:
    """The AWS CLI's JSON: four-space indent, non-ASCII as is, a final newline."""
    text = json.dumps(document, indent=4, ensure_ascii=False) + "\n"
    stream.write(text.encode("utf-8"))
    stream.flush()


def check_outfile(outfile: str | None) -> None:
    """Fail before anything is sent when ``--outfile`` cannot be written.

    Nothing is created or truncated here: a wait that fails leaves an existing file as it was.
    """
    if outfile is None or outfile == "-":
        return
    path = Path(outfile)
    if path.is_dir():
        raise UsageError(f"cannot write --outfile {outfile}: it is a directory")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise UsageError(f"cannot write --outfile {outfile}: permission denied")
        return
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write --outfile {outfile}: no folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write --outfile {outfile}: folder {folder} is not writable")


def write_body(body: bytes, outfile: str | None, stdout: BinaryIO) -> None:
    """A result body to ``--outfile`` (``-`` or none: standard output), as bytes."""
    if outfile is None or outfile == "-":
        stdout.write(body)
        stdout.flush()
        return
    try:
        Path(outfile).write_bytes(body)
    except OSError as exc:
        raise CliError(f"cannot write --outfile {outfile}: {exc.strerror or exc}") from None
