"""Micro-benchmark: parsing one response head, our strict codec against h11.

Pure CPU, one process, interleaved rounds, medians. Two heads: an InvokeEndpointAsync 202
and an S3 GetObject 200 (the two the client parses most). ``--before PATH`` adds another
``_parse_head``-style function, loaded from a file (e.g. an older ``_transport.py``), for a
before/after ratio measured in the same run.

    .venv/bin/python bench/head_parse_micro.py [--number 20000] [--rounds 5] [--before PATH]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import sys
import timeit
from collections.abc import Callable

import h11

from sagemaker_async._io.http11.codec import head_end, parse_head

HEADS = {
    "invoke-202": (
        b"HTTP/1.1 202 Accepted\r\n"
        b"x-amzn-RequestId: 6a2f1c1e-0000-4000-8000-000000000000\r\n"
        b"X-Amzn-SageMaker-OutputLocation: s3://bucket/out/00000000.out\r\n"
        b"X-Amzn-SageMaker-FailureLocation: s3://bucket/failures/00000000.out\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 99\r\n"
        b"Date: Thu, 26 Nov 2026 08:00:00 GMT\r\n\r\n"
    ),
    "s3-get-200": (
        b"HTTP/1.1 200 OK\r\n"
        b"x-amz-id-2: ef8yU9AS1ed4OpIszj7UDNEHGran\r\n"
        b"x-amz-request-id: 318BC8BC143432E5\r\n"
        b"Date: Thu, 26 Nov 2026 08:00:00 GMT\r\n"
        b"Last-Modified: Thu, 26 Nov 2026 07:59:00 GMT\r\n"
        b'ETag: "fba9dede5f27731c9771645a39863328"\r\n'
        b"Accept-Ranges: bytes\r\n"
        b"Content-Type: application/json\r\n"
        b"Server: AmazonS3\r\n"
        b"Content-Length: 434234\r\n\r\n"
    ),
}


def ours(head: bytes) -> object:
    return parse_head(head[: head_end(head)])


def with_h11(head: bytes) -> object:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(head)
    return conn.next_event()


def h11_connection_only() -> object:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    return conn.send(h11.EndOfMessage())


def load_before(path: str) -> Callable[[bytes], object]:
    spec = importlib.util.spec_from_file_location("before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    parse = module._parse_head
    return lambda head: parse(head[: head.find(b"\r\n\r\n")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", help="a file defining _parse_head(head without blank line)")
    args = parser.parse_args()
    parsers: dict[str, Callable[[bytes], object]] = {"ours": ours, "h11": with_h11}
    if args.before:
        parsers["before"] = load_before(args.before)
    for name, head in HEADS.items():
        times: dict[str, list[float]] = {key: [] for key in parsers}
        for _ in range(args.rounds):
            for key, parse in parsers.items():
                seconds = timeit.timeit(functools.partial(parse, head), number=args.number)
                times[key].append(seconds / args.number * 1e6)
        medians = {key: statistics.median(values) for key, values in times.items()}
        line = ", ".join(f"{key} {value:.2f} µs" for key, value in medians.items())
        print(f"{name}: {line}")
        if "before" in medians:
            print(f"  ours/before = {medians['ours'] / medians['before']:.2f}")
        print(f"  h11/ours = {medians['h11'] / medians['ours']:.1f}")


if __name__ == "__main__":
    main()
