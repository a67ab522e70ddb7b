"""What a batch submits: items from a manifest (or an S3 listing), all checked up front.

A manifest is JSON lines. Each line is an object with ``input`` (a local file, relative to
the manifest's folder, or an S3 URI) and optional per-item options, a JSON string, or a
bare path; blank lines and ``#`` comments are skipped::

    {"input": "reviews/1.json", "content_type": "application/json"}
    {"input": "s3://my-bucket/reviews/2.json", "inference_id": "review-2"}
    reviews/3.json

Every line is checked before anything is sent (options, S3 URIs, files present, large
files only with an upload prefix), so a typo on line 9,000 costs nothing. Each item gets a
key that stays the same between runs of the same manifest — its line number and input —
which is what the record file remembers to make a batch resumable.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..options import OPTION_FIELDS
from ._errors import UsageError

__all__ = ["ITEM_OPTIONS", "Item", "items_from_uris", "load_manifest", "upload_uri"]

# Per-item options: the invoke's keyword arguments a manifest line may set.
_ITEM_FIELDS = tuple(option for option in OPTION_FIELDS if option.manifest)
ITEM_OPTIONS = frozenset(option.name for option in _ITEM_FIELDS)
_S3_SCHEMES = ("s3://", "https://")


@dataclass(frozen=True, slots=True)
class Item:
    """One inference to submit; ``key`` identifies it across runs."""

    key: str
    input: str  # as written: what the record shows
    line: int | None = None
    path: Path | None = None  # a local payload
    size: int | None = None  # its size when it is a regular file
    s3_uri: str | None = None  # an input already in S3
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)


def upload_uri(prefix: str, item: Item) -> str:
    """Where a local file too large to go inline is uploaded: the same key every run."""
    assert item.path is not None
    return f"{prefix.rstrip('/')}/{item.line or 0:06d}-{item.path.name}"


def _is_s3(text: str) -> bool:
    return text.lower().startswith(_S3_SCHEMES)


def _fail(where: str, message: str) -> UsageError:
    return UsageError(f"{where}: {message}")


def _options(where: str, document: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(document) - ITEM_OPTIONS - {"input"})
    if unknown:
        known = ", ".join(sorted(ITEM_OPTIONS))
        raise _fail(where, f"unknown key {unknown[0]!r}; a line may set input and {known}")
    options: dict[str, Any] = {}
    for option in _ITEM_FIELDS:
        value = document.get(option.name)
        if value is None:
            continue
        if option.wire_type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(where, f"{option.name} must be a whole number")
        elif not isinstance(value, str):
            raise _fail(where, f"{option.name} must be a string")
        options[option.name] = value
    return options


def _parse_line(where: str, text: str) -> tuple[str, dict[str, Any]]:
    """(input, options) of one non-blank manifest line."""
    if text[0] not in '{["':
        return text, {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(where, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(document, str):
        document = {"input": document}
    if not isinstance(document, dict):
        raise _fail(where, 'expected an object such as {"input": "data/1.json"}')
    source = document.get("input")
    if not isinstance(source, str) or not source.strip():
        raise _fail(where, 'no "input": give a file path or an S3 URI')
    return source.strip(), _options(where, document)


def _local_file(where: str, base: Path, source: str) -> tuple[Path, int | None]:
    path = base / os.path.expanduser(source)
    try:
        info = path.stat()
    except OSError as exc:
        raise _fail(where, f"cannot read {source}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise _fail(where, f"{source} is a folder, not a file")
    # A pipe or device has no size to check: it is read (at most the inline limit) later.
    return path, info.st_size if stat.S_ISREG(info.st_mode) else None


def _check_item(
    where: str,
    endpoint_name: str,
    item: Item,
    *,
    upload_prefix: str | None,
    inline_limit: int,
) -> None:
    """What the client would refuse, refused now, before the first request of the batch."""
    from .. import ParamValidationError, parse_s3_uri
    from ..options import validate_invoke

    try:
        if item.s3_uri is not None:
            parse_s3_uri(item.s3_uri, param="input")
            validate_invoke(endpoint_name, item.s3_uri, **item.options)
        else:
            validate_invoke(endpoint_name, body=b"", **item.options)
            if item.size is not None and item.size > inline_limit:
                if upload_prefix is None:
                    raise _fail(
                        where,
                        f"{item.input} is {item.size:,} bytes, more than the {inline_limit:,} "
                        "that can go inline: give --input-location-prefix s3://bucket/prefix/ "
                        "to upload it",
                    )
                parse_s3_uri(upload_uri(upload_prefix, item), param="--input-location-prefix")
    except ParamValidationError as exc:
        raise _fail(where, str(exc)) from None


def _check_collisions(items: Iterable[Item]) -> None:
    """Two items with the same filename (and extension) would overwrite one output."""
    seen: dict[tuple[str | None, str], str] = {}
    for item in items:
        filename = item.options.get("filename")
        if filename is None:
            continue
        slot = (item.options.get("s3_output_path_extension"), filename)
        where = f"line {item.line}" if item.line is not None else item.input
        if slot in seen:
            raise UsageError(
                f"{where} and {seen[slot]} both write their output to filename {filename!r}: "
                "one would overwrite the other"
            )
        seen[slot] = where


def load_manifest(
    manifest: str,
    *,
    endpoint_name: str,
    defaults: Mapping[str, Any],
    upload_prefix: str | None,
    inline_limit: int,
) -> list[Item]:
    """Read and check every line; ``defaults`` are the command line's item options."""
    path = Path(manifest)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read --manifest {manifest}: {detail or exc}") from None
    base = path.parent
    items: list[Item] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{manifest} line {number}"
        source, own = _parse_line(where, stripped)
        options = {**defaults, **own}
        if _is_s3(source):
            item = Item(f"{number}:{source}", source, number, s3_uri=source, options=options)
        else:
            file, size = _local_file(where, base, source)
            item = Item(f"{number}:{source}", source, number, file, size, options=options)
        _check_item(
            where, endpoint_name, item, upload_prefix=upload_prefix, inline_limit=inline_limit
        )
        items.append(item)
    if not items:
        raise UsageError(f"--manifest {manifest} lists no inputs")
    _check_collisions(items)
    return items


def items_from_uris(
    uris: Iterable[str], *, endpoint_name: str, defaults: Mapping[str, Any]
) -> list[Item]:
    """One item per S3 object of a listing; the URI is the key (listings are ordered)."""
    items = [Item(uri, uri, s3_uri=uri, options=dict(defaults)) for uri in uris]
    for item in items:
        _check_item(item.input, endpoint_name, item, upload_prefix=None, inline_limit=0)
    return items
