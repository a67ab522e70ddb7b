"""``wait``/``get --not-before``: the freshness rule for invocations named by location.

Parsing first, then the commands in-process against a local endpoint, where the previous
run's output is made an hour old in the local endpoint's in-process S3.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest

from sagemaker_async import WaitTimeoutError
from sagemaker_async.cli._common import Streams
from sagemaker_async.cli._errors import CliError
from sagemaker_async.cli._invoke import run_get, run_wait
from sagemaker_async.cli._parser import build_parser
from sagemaker_async.local import LocalEndpoint
from test_local_support import KEY, REGION, SECRET, client_for, warm_moto
from test_reused_ids_local import age

__all__ = ["warm_moto"]

MOMENT = datetime(2026, 11, 26, 0, 18, 21, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T00:18:21Z",
        "2026-11-26T01:18:21+01:00",
        "2026-11-26T00:18:21",  # no zone: UTC
        "2026-11-26 00:18:21z",
        str(int(MOMENT.timestamp())),
    ],
)
def test_not_before_parses(text: str) -> None:
    for command in ("wait", "get"):
        args = build_parser().parse_args(
            [command, "--output-location", "s3://b/k", "--not-before", text]
        )
        assert args.not_before == MOMENT


def test_not_before_is_optional_and_bad_times_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["get", "--output-location", "s3://b/k"])
    assert args.not_before is None
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["wait", "--output-location", "s3://b/k", "--not-before", "x"])
    assert caught.value.code == 2
    assert "ISO 8601" in capsys.readouterr().err


@pytest.mark.usefixtures("warm_moto")
async def test_get_and_wait_ignore_an_older_output(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handler(payload: bytes) -> bytes:
        return payload.upper()

    async with LocalEndpoint({"ep": handler}) as local, client_for(local) as client:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        inv = await client.invoke_endpoint_async("ep", body=b"old run", inference_id="same")
        await client.wait_for_result(inv, timeout=5, poll_interval=0.02)
        age(inv.output_location)
        common = [
            "--region", REGION,
            "--endpoint-url", local.endpoint_url,
            "--s3-endpoint-url", local.s3_endpoint_url,
            "--output-location", inv.output_location,
        ]  # fmt: skip
        now = datetime.now(timezone.utc).isoformat()

        out = io.BytesIO()
        assert await run_get(build_parser().parse_args(["get", *common]), Streams(out)) == 0
        assert out.getvalue() == b"OLD RUN"  # without the rule: any object counts

        with pytest.raises(CliError, match=r"no result yet .* written at or after"):
            await run_get(
                build_parser().parse_args(["get", *common, "--not-before", now]), Streams()
            )
        with pytest.raises(WaitTimeoutError, match="no result for inference"):
            await run_wait(
                build_parser().parse_args(
                    ["wait", *common, "--not-before", now, "--timeout", "0.05"]
                ),
                Streams(),
            )
