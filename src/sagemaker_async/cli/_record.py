"""The batch record: an append-only JSON-lines file that makes a batch resumable.

A line is appended, and flushed, the moment something is known about an item: right after
its InvokeEndpointAsync returns (``"submitted": true`` with the inference id and the
output and failure locations), when it could not be submitted (``"submitted": false`` and
the ``error``; such items are tried again by the next run), and with ``--wait`` when its
outcome is known (``"outcome"``: ``succeeded`` with the ``result_location``, ``failed`` with
the model's ``error``, ``timeout``, or ``error`` when the wait itself failed). The last line
of an item is its state.

Nothing is ever rewritten, so a crash leaves at worst a torn last line, which the next run
drops. Reading the file back tells a run what not to submit again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._errors import CliError, UsageError

__all__ = ["FINAL_OUTCOMES", "ItemState", "RecordFile"]

# Outcomes a later run keeps; "timeout" and "error" are waited for again.
FINAL_OUTCOMES = frozenset({"succeeded", "failed"})


@dataclass(slots=True)
class ItemState:
    """What the record says about one item (its lines folded together)."""

    submitted: bool = False
    inference_id: str | None = None
    output_location: str | None = None
    failure_location: str | None = None
    outcome: str | None = None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class RecordFile:
    """Reads the existing record, then appends one flushed line per event."""

    def __init__(self, path: str | os.PathLike[str], *, endpoint_name: str) -> None:
        self.path = Path(path)
        self.endpoint_name = endpoint_name
        self._stream: IO[str] | None = None

    def load(self) -> dict[str, ItemState]:
        """The state of every item recorded so far; a torn last line is cut off."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise UsageError(f"cannot read --record {self.path}: {exc.strerror or exc}") from None
        states: dict[str, ItemState] = {}
        offset = 0
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            last = number == len(lines)
            start, offset = offset, offset + len(raw) + 1
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                    raise ValueError("not a record line")
            except ValueError:
                if last:  # a write cut short by a crash: drop it, it recorded nothing
                    self._truncate(start)
                    break
                raise UsageError(
                    f"--record {self.path} line {number} is not a batch record line; "
                    "give a new file, or the record of this batch"
                ) from None
            self._fold(states, entry, number)
        return states

    def _fold(self, states: dict[str, ItemState], entry: Mapping[str, Any], number: int) -> None:
        endpoint = entry.get("endpoint")
        if endpoint is not None and endpoint != self.endpoint_name:
            raise UsageError(
                f"--record {self.path} line {number} is for endpoint {endpoint!r}, not "
                f"{self.endpoint_name!r}: give the record of this batch, or a new file"
            )
        state = states.setdefault(entry["key"], ItemState())
        if entry.get("submitted") is True:
            state.submitted = True
            state.inference_id = entry.get("inference_id", state.inference_id)
            state.output_location = entry.get("output_location", state.output_location)
            state.failure_location = entry.get("failure_location", state.failure_location)
        outcome = entry.get("outcome")
        if isinstance(outcome, str):
            state.outcome = outcome

    def _truncate(self, size: int) -> None:
        with self.path.open("r+b") as stream:
            stream.truncate(size)

    def check_writable(self) -> None:
        """Refuse, before any request, a record that ``open`` could not create or append to.

        Nothing is created here (``open`` makes missing folders later): the path must be a
        writable file, or the nearest folder that exists must let one be made under it.
        """
        path = self.path.absolute()
        if path.is_dir():
            raise UsageError(f"cannot write --record {self.path}: it is a folder")
        if path.exists():
            if not os.access(path, os.W_OK):
                raise UsageError(f"cannot write --record {self.path}: permission denied")
            return
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise UsageError(f"cannot write --record {self.path}: {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write --record {self.path}: permission denied in {folder}")

    def open(self) -> None:
        """Open for appending (creating it); a last line without its newline gets one."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            needs_newline = False
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open("rb") as stream:
                    stream.seek(-1, os.SEEK_END)
                    needs_newline = stream.read(1) != b"\n"
            self._stream = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write --record {self.path}: {exc.strerror or exc}") from None
        if needs_newline:
            self._stream.write("\n")

    def append(self, entry: Mapping[str, Any]) -> None:
        """One line, written whole and flushed before the caller goes on."""
        assert self._stream is not None, "open() the record first"
        line = {"endpoint": self.endpoint_name, **entry, "time": _now()}
        try:
            self._stream.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._stream.flush()
        except OSError as exc:
            raise CliError(f"cannot write --record {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
