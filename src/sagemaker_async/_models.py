"""The values the client hands back: frozen, so results can be shared between tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

__all__ = ["AsyncInvocation", "DownloadedResult", "InferenceResult"]


@dataclass(frozen=True, slots=True)
class AsyncInvocation:
    """A queued inference: where its output, or its failure, will appear in S3."""

    inference_id: str
    output_location: str | None
    failure_location: str | None
    request_id: str | None = None
    # The service's Date on the 202 (aware UTC): objects older than it are a previous run's.
    submitted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """The output object of a finished inference."""

    body: bytes = field(repr=False)
    location: str
    content_type: str | None = None
    # Reported, never decoded: the body is exactly the stored object.
    content_encoding: str | None = None

    def __repr__(self) -> str:
        # The body may be large or sensitive: show its size, not its bytes.
        return (
            f"InferenceResult(location={self.location!r}, content_type={self.content_type!r}, "
            f"content_encoding={self.content_encoding!r}, body=<{len(self.body)} bytes>)"
        )


@dataclass(frozen=True, slots=True)
class DownloadedResult:
    """An output written to a local file by ``download_result``."""

    path: Path
    location: str
    content_type: str | None
    size: int
