"""The command line's parts in-process: parsing, payloads, errors, manifest, record, AIMD,
progress, the S3 listing, and the batch engine driven by a fake client (no sockets, no
sleeping: the engine's sleep and random source are injected)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sagemaker_async import (
    AsyncInvocation,
    InferenceFailedError,
    InferenceResult,
    NoCredentialsError,
    ParamValidationError,
    ServiceUnavailable,
    ThrottlingError,
    ValidationError,
    WaitTimeoutError,
)
from sagemaker_async._protocol import s3 as _s3
from sagemaker_async.cli import _main, _s3list, main
from sagemaker_async.cli._aimd import AdaptiveLimit
from sagemaker_async.cli._batch import INLINE_LIMIT, Batch, BatchSettings
from sagemaker_async.cli._common import Streams, invocation_json, load_body, write_json
from sagemaker_async.cli._errors import (
    CliError,
    Redactor,
    UsageError,
    describe,
    exit_status,
)
from sagemaker_async.cli._manifest import Item, load_manifest
from sagemaker_async.cli._parser import build_parser
from sagemaker_async.cli._progress import Counters, Progress, format_duration, render
from sagemaker_async.cli._record import RecordFile
from sagemaker_async.cli._s3list import split_prefix
from sagemaker_async.local import LocalEndpoint
from test_local_support import client_for, warm_moto

__all__ = ["warm_moto"]  # the fixture, imported so pytest finds it here

# -- parsing ----------------------------------------------------------------------------------


def test_global_options_are_accepted_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(
        ["--region", "eu-west-1", "--debug", "wait", "--output-location", "s3://b/k"]
    )
    assert (before.region, before.debug, before.profile) == ("eu-west-1", True, None)
    after = parser.parse_args(
        ["wait", "--output-location", "s3://b/k", "--region", "eu-west-1", "--profile", "p"]
    )
    assert (after.region, after.profile, after.debug) == ("eu-west-1", "p", False)
    # A value before the command is not reset by the command's own (absent) option.
    kept = parser.parse_args(["--endpoint-url", "http://x", "get", "--output-location", "s3://b/k"])
    assert kept.endpoint_url == "http://x"


def test_the_aws_cli_options_of_invoke_endpoint_async_parse_to_the_client_arguments() -> None:
    args = build_parser().parse_args(
        [
            "invoke-endpoint-async", "--endpoint-name", "ep", "--input-location", "s3://b/k",
            "--content-type", "a/b", "--accept", "c/d", "--custom-attributes", "x=1",
            "--inference-id", "id", "--s3-output-path-extension", "ext", "--filename", "f.out",
            "--request-ttl-seconds", "60", "--invocation-timeout-seconds", "10",
            "--cli-binary-format", "raw-in-base64-out", "--output", "json", "--no-cli-pager",
        ]
    )  # fmt: skip
    assert args.command == "invoke-endpoint-async"
    assert (args.endpoint_name, args.input_location, args.body) == ("ep", "s3://b/k", None)
    assert (args.request_ttl_seconds, args.invocation_timeout_seconds) == (60, 10)
    assert (args.wait, args.timeout, args.outfile) == (False, None, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invoke-endpoint-async", "--endpoint-name", "e"], "one of the arguments"),
        (["invoke-endpoint-async", "--endpoint-name", "e", "--body", "x", "--input-location", "y"],
         "not allowed with argument"),
        (["wait", "--output-location", "s3://b/k", "--timeout", "-1"], "must be >= 0"),
        (["wait", "--output-location", "s3://b/k", "--poll-interval", "0"], "must be > 0"),
        (["batch", "--endpoint-name", "e", "--manifest", "m", "--record", "r", "--concurrency",
          "0"], "must be at least 1"),
        (["local", "serve"], "--endpoint"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_argparse_s_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_load_body_reads_fileb_file_text_and_base64(tmp_path: Path) -> None:
    path = tmp_path / "b.bin"
    path.write_bytes(b"\x00\x01")
    assert load_body(f"fileb://{path}") == b"\x00\x01"
    assert load_body(f"file://{path}") == b"\x00\x01"
    assert load_body("héllo") == "héllo".encode()
    assert load_body("aGk=", "base64") == b"hi"
    with pytest.raises(UsageError, match="not valid base64"):
        load_body("not base64!", "base64")
    with pytest.raises(UsageError, match="cannot read --body fileb://"):
        load_body(f"fileb://{tmp_path / 'missing'}")


def test_the_aws_cli_json_leaves_out_what_the_service_did_not_return() -> None:
    stream = io.BytesIO()
    write_json(stream, invocation_json(AsyncInvocation("id", "s3://b/o", None)))
    assert (
        stream.getvalue() == b'{\n    "InferenceId": "id",\n    "OutputLocation": "s3://b/o"\n}\n'
    )


# -- errors -----------------------------------------------------------------------------------


def test_describe_and_exit_status_by_who_is_at_fault() -> None:
    service = ValidationError("Endpoint x not found.", code="ValidationError", status_code=400)
    assert describe(service) == "ValidationError (HTTP 400): Endpoint x not found."
    assert exit_status(service) == 1
    param = ParamValidationError("Invalid parameter body: too big", param="body")
    assert describe(param) == "ParamValidationError: Invalid parameter body: too big"
    assert exit_status(param) == 2
    failed = InferenceFailedError(
        "Traceback:\n  line 1\nValueError: no", failure_location="s3://b/f"
    )
    assert describe(failed) == (
        "InferenceFailedError: inference failed (s3://b/f): Traceback: | line 1 | ValueError: no"
    )
    assert exit_status(failed) == 1
    assert exit_status(NoCredentialsError()) == 1
    assert exit_status(UsageError("x")) == 2
    assert exit_status(KeyboardInterrupt()) == 130
    assert describe(RuntimeError("boom")).startswith("unexpected RuntimeError: boom")
    assert len(describe(CliError("x" * 5000))) == 2000


def test_the_redactor_masks_every_known_secret_longest_first() -> None:
    redact = Redactor(["secret-value", "secret-value-longer", None, "abc"])
    redact.add_environment({"AWS_SESSION_TOKEN": "tok3n-value", "AWS_REGION": "us-east-1"})
    assert redact("secret-value-longer secret-value tok3n-value abc us-east-1") == (
        "**** **** **** abc us-east-1"
    )


def test_a_missing_local_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a)
    )
    stderr = io.StringIO()
    assert _main.run(["demo"], streams=Streams(io.BytesIO(), stderr, Redactor())) == 1
    assert stderr.getvalue() == (
        "sagemaker-async: error: the local endpoint needs the 'local' extra (moto's S3): "
        "pip install 'sagemaker-async[local]'\n"
    )


# -- manifest ---------------------------------------------------------------------------------


def _manifest(tmp_path: Path, text: str, **kwargs: Any) -> list[Item]:
    path = tmp_path / "m.jsonl"
    path.write_text(text)
    options: dict[str, Any] = {
        "endpoint_name": "ep",
        "defaults": {},
        "upload_prefix": None,
        "inline_limit": INLINE_LIMIT,
    }
    options.update(kwargs)
    return load_manifest(str(path), **options)


def test_manifest_lines_paths_relative_to_the_manifest_and_stable_keys(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    items = _manifest(
        tmp_path,
        '# comment\n\n{"input": "d/a.txt", "accept": "x/y"}\n"d/a.txt"\nd/a.txt\n'
        '{"input": "s3://bucket/key", "request_ttl_seconds": 120}\n',
        defaults={"content_type": "text/plain", "accept": "a/b"},
    )
    assert [item.key for item in items] == [
        "3:d/a.txt", "4:d/a.txt", "5:d/a.txt", "6:s3://bucket/key"
    ]  # fmt: skip
    assert items[0].path == tmp_path / "d" / "a.txt"
    assert items[0].size == 1
    assert items[0].options == {"content_type": "text/plain", "accept": "x/y"}
    assert items[1].options == {"content_type": "text/plain", "accept": "a/b"}
    assert items[3].s3_uri == "s3://bucket/key"
    assert items[3].options["request_ttl_seconds"] == 120


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"input": "a.txt", "filename": "same.out"}\n{"input": "a.txt", "filename": "same.out"}',
         "both write their output to filename 'same.out'"),
        ('{"input": "a.txt", "request_ttl_seconds": "60"}', "line 1: request_ttl_seconds must be"),
        ('{"input": "a.txt", "content_type": "é"}', "line 1: Invalid parameter content_type"),
        ("[1, 2]", 'line 1: expected an object such as {"input"'),
        ('{"inputs": "a.txt"}', 'line 1: no "input"'),
        ("d", "line 1: d is a folder"),
        ("# nothing but a comment", "lists no inputs"),
    ],
)  # fmt: skip
def test_manifest_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError) as caught:
        _manifest(tmp_path, text)
    assert message in str(caught.value)


def test_large_files_need_an_upload_prefix(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (INLINE_LIMIT + 1))
    with pytest.raises(UsageError, match="128,001 bytes"):
        _manifest(tmp_path, "big")
    [item] = _manifest(tmp_path, "big", upload_prefix="s3://bucket/up/")
    assert item.size == INLINE_LIMIT + 1


# -- record -----------------------------------------------------------------------------------


def test_the_record_folds_lines_and_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        {"endpoint": "ep", "key": "1:a", "submitted": True, "inference_id": "i1",
         "output_location": "s3://b/o1", "failure_location": "s3://b/f1"},
        {"endpoint": "ep", "key": "2:b", "submitted": False, "error": "x"},
        {"endpoint": "ep", "key": "1:a", "submitted": True, "outcome": "succeeded"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"key": "3:c", "sub')
    record = RecordFile(path, endpoint_name="ep")
    states = record.load()
    assert states["1:a"].submitted
    assert states["1:a"].outcome == "succeeded"
    assert states["1:a"].output_location == "s3://b/o1"
    assert not states["2:b"].submitted
    assert "3:c" not in states
    assert path.read_text().endswith("}\n")  # the torn line is gone
    record.open()
    record.append({"key": "3:c", "submitted": True})
    record.close()
    assert json.loads(path.read_text().splitlines()[-1])["key"] == "3:c"


def test_a_record_line_without_its_newline_gets_one_before_the_next(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "1:a", "submitted": true}')
    record = RecordFile(path, endpoint_name="ep")
    assert record.load()["1:a"].submitted
    record.open()
    record.append({"key": "2:b", "submitted": True})
    record.close()
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["1:a", "2:b"]


def test_a_foreign_or_broken_record_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"endpoint": "other", "key": "1:a", "submitted": true}\n')
    with pytest.raises(UsageError, match="is for endpoint 'other', not 'ep'"):
        RecordFile(path, endpoint_name="ep").load()
    path.write_text('not json\n{"key": "1:a"}\n')
    with pytest.raises(UsageError, match="line 1 is not a batch record line"):
        RecordFile(path, endpoint_name="ep").load()


# -- AIMD -------------------------------------------------------------------------------------


async def test_the_limit_halves_once_per_epoch_and_grows_back_additively() -> None:
    limit = AdaptiveLimit(8)
    slots = [await limit.acquire() for _ in range(8)]
    assert limit.in_flight == 8
    # Eight requests sent under the old limit are throttled together: one decrease.
    assert [limit.on_throttle(slot) for slot in slots] == [True] + [False] * 7
    assert limit.limit == 4
    for _ in range(8):
        limit.release()
    later = await limit.acquire()
    assert limit.on_throttle(later)  # a request sent after the decrease counts again
    assert limit.limit == 2
    limit.release()
    for _ in range(3):
        before = limit.limit
        assert limit.on_throttle(await limit.acquire()) is (before > 1)
        limit.release()
    assert limit.limit == 1  # never below one
    successes = 0
    while limit.limit < 8:
        limit.on_success()
        successes += 1
    assert 20 < successes < 40  # about 1 + 2 + ... + 7: one slot per round at each size
    limit.on_success()
    assert limit.limit == 8  # never above the maximum


async def test_acquire_waits_for_a_free_slot() -> None:
    limit = AdaptiveLimit(1)
    await limit.acquire()
    waiting = asyncio.ensure_future(limit.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    limit.release()
    await asyncio.wait_for(waiting, 1)
    assert limit.in_flight == 1


# -- progress ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_render_shows_done_rate_errors_concurrency_and_eta() -> None:
    counters = Counters(total=100, skipped=10, submitted=30, errors=2, concurrency=4)
    assert render(counters, 10.0) == (
        "batch: 40/100 submitted | 3.0/s | errors 2 | concurrency 4 | ETA 0:20"
    )
    counters = Counters(total=10, submitted=10, succeeded=9, failed=1, throttled=3, waiting=True)
    assert render(counters, 4000.0).startswith(
        "batch: 10/10 done | submitted 10 | failed 1, timeout 0 | 0.0/s | errors 0 | "
        "throttled 3 | concurrency 0 | took 1:06:40"
    )
    assert render(Counters(total=5), 1.0).endswith("ETA --")
    assert format_duration(59.6) == "1:00"


def test_plain_progress_lines_come_at_most_every_interval() -> None:
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(stream, Counters(total=3), interactive=False, interval=10, clock=clock)
    progress.update()  # the first one at once
    progress.counters.submitted = 1
    clock.now += 5
    progress.update()  # too soon
    clock.now += 5
    progress.update()
    progress.counters.submitted = 3
    clock.now += 1
    progress.update()  # too soon, but close() shows the end
    progress.close()
    progress.close()  # nothing new: no repeated line
    lines = stream.getvalue().splitlines()
    assert [line.split(" | ")[0] for line in lines] == [
        "batch: 0/3 submitted", "batch: 1/3 submitted", "batch: 3/3 submitted"
    ]  # fmt: skip


def test_terminal_progress_redraws_one_line_and_ends_it() -> None:
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(stream, Counters(total=2), interactive=True, interval=10, clock=clock)
    progress.update()
    clock.now += 0.2
    progress.counters.submitted = 1
    progress.update()
    progress.message("a warning")
    progress.counters.submitted = 2
    progress.close()
    text = stream.getvalue()
    assert text.startswith("\rbatch: 0/2 submitted")
    assert "\x1b[K\rbatch: 1/2 submitted" in text
    assert "\r\x1b[Ka warning\n\rbatch: 2/2 submitted" in text
    assert text.endswith("\x1b[K\n")


def test_disabled_progress_writes_nothing() -> None:
    stream = io.StringIO()
    progress = Progress(stream, Counters(total=1), interactive=False, interval=0, enabled=False)
    progress.update()
    progress.close()
    assert stream.getvalue() == ""


# -- the S3 listing ---------------------------------------------------------------------------


def test_split_prefix() -> None:
    assert split_prefix("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert split_prefix("s3://bucket") == ("bucket", "")
    with pytest.raises(UsageError, match="is not an s3://"):
        split_prefix("https://bucket/a")
    with pytest.raises(UsageError, match="Invalid bucket name"):
        split_prefix("s3://b/a")


# -- the batch engine, with a fake client -----------------------------------------------------


class FakeClient:
    """Invokes succeed at once unless told otherwise; waits follow ``outcomes``."""

    def __init__(self) -> None:
        self.invoked: list[tuple[str | None, bytes | None, dict[str, Any]]] = []
        self.uploaded: list[tuple[Any, str, str | None]] = []
        self.throttle: int = 0  # throttle this many calls first
        self.errors: dict[bytes, Exception] = {}
        self.outcomes: dict[str, Exception] = {}
        self.gates: dict[bytes, asyncio.Event] = {}
        self.in_flight = 0
        self.peak = 0
        self.busy = asyncio.Event()  # set once ``busy_at`` calls are in flight together
        self.busy_at = 0
        self.waited: list[str] = []

    async def invoke_endpoint_async(
        self, endpoint_name: str, input_location: str | None = None, **kwargs: Any
    ) -> AsyncInvocation:
        body = kwargs.pop("body")
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.busy_at and self.in_flight >= self.busy_at:
            self.busy.set()
        try:
            await asyncio.sleep(0)
            gate = self.gates.get(body or b"")
            if gate is not None:
                await gate.wait()
            if self.throttle:
                self.throttle -= 1
                raise ThrottlingError("Rate exceeded", code="ThrottlingException", status_code=400)
            if body in self.errors:
                raise self.errors[body]
            number = len(self.invoked) + 1
            self.invoked.append((input_location, body, kwargs))
            return AsyncInvocation(f"inf-{number}", f"s3://b/o/{number}", f"s3://b/f/{number}")
        finally:
            self.in_flight -= 1

    async def upload_input(self, data: Any, s3_uri: str, *, content_type: str | None = None) -> str:
        self.uploaded.append((data, s3_uri, content_type))
        return s3_uri

    async def wait_for_result(
        self, invocation: AsyncInvocation, *, timeout: float | None, poll_interval: float
    ) -> InferenceResult:
        assert invocation.output_location is not None
        self.waited.append(invocation.inference_id)
        error = self.outcomes.get(invocation.inference_id)
        if error is not None:
            raise error
        return InferenceResult(b"ok", invocation.output_location)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _items(tmp_path: Path, payloads: list[bytes]) -> list[Item]:
    items = []
    for number, payload in enumerate(payloads, start=1):
        path = tmp_path / f"{number}.txt"
        path.write_bytes(payload)
        items.append(Item(f"{number}:{path.name}", path.name, number, path, len(payload)))
    return items


def _batch(
    client: FakeClient,
    items: list[Item],
    tmp_path: Path,
    *,
    sleeps: Callable[[float], Any] | None = None,
    **settings: Any,
) -> tuple[Batch, io.StringIO]:
    stream = io.StringIO()
    progress = Progress(stream, Counters(), interactive=False, interval=0)
    batch = Batch(
        client,
        items,
        RecordFile(tmp_path / "record.jsonl", endpoint_name="ep"),
        BatchSettings(endpoint_name="ep", **{"concurrency": 4, **settings}),
        progress,
        sleep=sleeps or Sleeps(),
        rng=lambda: 0.5,
    )
    return batch, stream


def _record(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]


async def test_every_item_is_sent_once_within_the_concurrency_and_recorded(
    tmp_path: Path,
) -> None:
    client = FakeClient()
    payloads = [f"p{n}".encode() for n in range(20)]
    held = asyncio.Event()
    client.gates = dict.fromkeys(payloads, held)
    client.busy_at = 3
    batch, _ = _batch(client, _items(tmp_path, payloads), tmp_path, concurrency=3)
    run = asyncio.ensure_future(batch.run())
    await asyncio.wait_for(client.busy.wait(), 1)
    for _ in range(20):  # give a fourth request every chance to start
        await asyncio.sleep(0)
    assert client.in_flight == 3
    held.set()
    counters = await asyncio.wait_for(run, 1)
    assert (counters.submitted, counters.errors, counters.skipped) == (20, 0, 0)
    assert sorted(body or b"" for _, body, _ in client.invoked) == sorted(payloads)
    assert client.peak == 3
    entries = _record(tmp_path)
    assert sorted(entry["key"] for entry in entries) == sorted(f"{n}:{n}.txt" for n in range(1, 21))
    assert all(entry["submitted"] and entry["inference_id"].startswith("inf-") for entry in entries)


async def test_a_rerun_skips_what_was_submitted_and_retries_what_failed(tmp_path: Path) -> None:
    items = _items(tmp_path, [b"a", b"b", b"c"])
    first = FakeClient()
    first.errors[b"b"] = ServiceUnavailable("busy", code="ServiceUnavailable", status_code=503)
    batch, _ = _batch(first, items, tmp_path)
    counters = await batch.run()
    assert (counters.submitted, counters.errors) == (2, 1)

    second = FakeClient()
    batch, _ = _batch(second, items, tmp_path)
    counters = await batch.run()
    assert (counters.skipped, counters.submitted) == (2, 1)
    assert [body for _, body, _ in second.invoked] == [b"b"]


async def test_throttling_backs_off_lowers_concurrency_and_sends_everything(
    tmp_path: Path,
) -> None:
    client = FakeClient()
    client.throttle = 6
    sleeps = Sleeps()
    batch, _ = _batch(client, _items(tmp_path, [b"x"] * 12), tmp_path, sleeps=sleeps, concurrency=8)
    counters = await batch.run()
    assert (counters.submitted, counters.errors, counters.throttled) == (12, 0, 6)
    assert batch.limit.decreases >= 1
    assert len(sleeps.delays) == 6
    assert all(0 <= delay <= 20 for delay in sleeps.delays)  # full jitter, capped


async def test_an_item_throttled_too_often_is_recorded_as_an_error(tmp_path: Path) -> None:
    client = FakeClient()
    client.throttle = 1000
    batch, _ = _batch(client, _items(tmp_path, [b"x"]), tmp_path)
    counters = await batch.run()
    assert (counters.submitted, counters.errors) == (0, 1)
    [entry] = _record(tmp_path)
    assert entry["submitted"] is False
    assert entry["error"].startswith("ThrottlingException (HTTP 400)")


async def test_too_many_errors_stop_the_batch(tmp_path: Path) -> None:
    client = FakeClient()
    error = ValidationError("Endpoint ep not found.", code="ValidationError", status_code=400)
    client.errors = {b"x": error}
    batch, _ = _batch(client, _items(tmp_path, [b"x"] * 50), tmp_path, concurrency=1, max_errors=3)
    counters = await batch.run()
    assert counters.errors == 4
    assert batch.stop_reason is not None
    assert "(--max-errors 3)" in batch.stop_reason
    assert batch.last_error == "ValidationError (HTTP 400): Endpoint ep not found."


async def test_missing_credentials_stop_the_batch_and_are_raised(tmp_path: Path) -> None:
    client = FakeClient()
    client.errors = {b"x": NoCredentialsError()}
    batch, _ = _batch(client, _items(tmp_path, [b"x"] * 5), tmp_path, concurrency=1)
    with pytest.raises(NoCredentialsError):
        await batch.run()
    assert len(_record(tmp_path)) == 1


async def test_stopping_lets_requests_in_flight_finish_and_be_recorded(tmp_path: Path) -> None:
    client = FakeClient()
    gates = [client.gates.setdefault(body, asyncio.Event()) for body in (b"a", b"b")]
    items = _items(tmp_path, [b"a", b"b", b"c", b"d"])
    batch, _ = _batch(client, items, tmp_path, concurrency=2)
    run = asyncio.ensure_future(batch.run())
    client.busy_at = 2
    await asyncio.wait_for(client.busy.wait(), 1)  # both held at their gates
    batch.stop("interrupted")  # "a" and "b" are in flight; "c" and "d" must not start
    for gate in gates:
        gate.set()
    counters = await asyncio.wait_for(run, 1)
    assert sorted(body or b"" for _, body, _ in client.invoked) == [b"a", b"b"]
    assert counters.submitted == 2
    assert sorted(entry["key"] for entry in _record(tmp_path)) == ["1:1.txt", "2:2.txt"]


async def test_wait_records_outcomes_and_a_rerun_waits_without_resubmitting(
    tmp_path: Path,
) -> None:
    client = FakeClient()
    client.outcomes = {
        "inf-2": InferenceFailedError("model said no", failure_location="s3://b/f/2"),
        "inf-3": WaitTimeoutError("not yet", timeout=1.0),
    }
    items = _items(tmp_path, [b"a", b"b", b"c"])
    batch, _ = _batch(client, items, tmp_path, concurrency=1, wait=True)
    counters = await batch.run()
    assert (counters.succeeded, counters.failed, counters.timeouts) == (1, 1, 1)
    outcomes = {e["key"]: e for e in _record(tmp_path) if "outcome" in e}
    assert outcomes["1:1.txt"]["result_location"] == "s3://b/o/1"
    assert outcomes["2:2.txt"]["error"] == "model said no"
    assert outcomes["3:3.txt"]["outcome"] == "timeout"

    again = FakeClient()
    batch, _ = _batch(again, items, tmp_path, concurrency=1, wait=True)
    counters = await batch.run()
    assert again.invoked == []  # nothing sent twice
    assert again.waited == ["inf-3"]  # only the unfinished one is waited for again
    assert (counters.skipped, counters.carried, counters.succeeded) == (2, 1, 1)


async def test_a_large_file_is_uploaded_under_a_stable_key_then_invoked_by_location(
    tmp_path: Path,
) -> None:
    client = FakeClient()
    items = _items(tmp_path, [b"x" * (INLINE_LIMIT + 1), b"small"])
    batch, _ = _batch(client, items, tmp_path, upload_prefix="s3://bucket/up")
    await batch.run()
    assert client.uploaded == [(items[0].path, "s3://bucket/up/000001-1.txt", None)]
    by_location = {location: body for location, body, _ in client.invoked}
    assert by_location == {"s3://bucket/up/000001-1.txt": None, None: b"small"}
    [entry] = [e for e in _record(tmp_path) if e["key"] == "1:1.txt"]
    assert entry["input_location"] == "s3://bucket/up/000001-1.txt"


async def test_a_failing_record_write_stops_the_batch(tmp_path: Path) -> None:
    client = FakeClient()
    batch, _ = _batch(client, _items(tmp_path, [b"a", b"b"]), tmp_path, concurrency=1)

    def broken(entry: object) -> None:
        raise CliError("cannot write --record r: No space left on device")

    batch._record.append = broken  # type: ignore[method-assign]
    with pytest.raises(CliError, match="No space left"):
        await batch.run()
    assert len(client.invoked) == 1


@pytest.mark.usefixtures("warm_moto")
async def test_list_uris_pages_through_a_real_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_s3, "_LIST_PAGE_SIZE", 2)
    async with LocalEndpoint({"ep": lambda p: p}) as local, client_for(local) as client:
        names = ["a", "b c", "d/é", "d/", "e", "f"]
        for name in names:
            await client.upload_input(b"x", f"s3://{local.bucket}/in/{name}")
        uris = await _s3list.list_uris(client, f"s3://{local.bucket}/in/")
    assert uris == [f"s3://{local.bucket}/in/{name}" for name in sorted(names) if name != "d/"]


def test_the_library_does_not_import_the_cli() -> None:
    code = "import sys, sagemaker_async; print([m for m in sys.modules if 'async.cli' in m])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
