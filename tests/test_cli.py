"""The command line as a user runs it: a subprocess against a local endpoint.

Each test starts a ``LocalEndpoint`` in its own event loop (models it controls: one that
records what it was sent, one that fails, one held back by an event) and runs
``python -m sagemaker_async`` with an environment built from nothing. What is checked is
what a user sees: standard output byte for byte, one error line on standard error, the
exit status, and what the endpoint actually received.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cli_support import (
    SECRET_KEY,
    SESSION_TOKEN,
    assert_one_error_line,
    cli_env,
    finish,
    interrupt,
    queued_then,
    read_line_containing,
    run_cli,
    start_cli,
)
from sagemaker_async import __version__
from sagemaker_async.local import InvocationAttributes, LocalEndpoint
from test_local_support import client_for, warm_moto

__all__ = ["warm_moto"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.usefixtures("warm_moto")


@dataclass
class Local:
    endpoint: LocalEndpoint
    env: dict[str, str]
    gate: asyncio.Event
    received: list[tuple[bytes, InvocationAttributes]] = field(default_factory=list)


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Local]:
    gate = asyncio.Event()
    received: list[tuple[bytes, InvocationAttributes]] = []

    async def echo(payload: bytes, attributes: InvocationAttributes) -> tuple[bytes, str]:
        received.append((payload, attributes))
        return payload.upper(), "text/plain"

    def fails(payload: bytes) -> bytes:
        raise ValueError("the model cannot read this")

    async def gated(payload: bytes) -> bytes:
        await gate.wait()
        return payload[::-1]

    async with LocalEndpoint({"echo": echo, "fails": fails, "gated": gated}) as endpoint:
        yield Local(endpoint, cli_env(endpoint, tmp_path), gate, received)
        gate.set()


# -- invoke-endpoint-async ------------------------------------------------------------------


async def test_invoke_prints_the_aws_cli_json_and_sends_every_option(local: Local) -> None:
    result = await run_cli(
        "invoke-endpoint-async",
        "--endpoint-name", "echo",
        "--body", "hello world",
        "--content-type", "text/plain",
        "--accept", "text/plain",
        "--custom-attributes", "trace=1",
        "--inference-id", "inf-1",
        "--s3-output-path-extension", "ext",
        "--filename", "out.txt",
        "--request-ttl-seconds", "600",
        "--invocation-timeout-seconds", "30",
        env=local.env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    expected = {
        "InferenceId": "inf-1",
        "OutputLocation": f"{local.endpoint.output_path}/ext/out.txt",
        "FailureLocation": f"{local.endpoint.failure_path}/ext/inf-1-error.out",
    }
    # The AWS CLI's JSON: four-space indent, the model's member order, a final newline.
    assert result.text == json.dumps(expected, indent=4) + "\n"
    assert local.endpoint.invocation_count("echo") == 1
    await local.endpoint.wait_idle(5)
    [(payload, attributes)] = local.received
    assert payload == b"hello world"
    assert attributes.content_type == "text/plain"
    assert attributes.accept == "text/plain"
    assert attributes.custom_attributes == "trace=1"
    assert attributes.inference_id == "inf-1"


@pytest.mark.slow  # several runs of the CLI
async def test_global_options_work_before_and_after_the_command(
    local: Local, tmp_path: Path
) -> None:
    env = cli_env(None, tmp_path)
    del env["AWS_REGION"]
    url = local.endpoint.endpoint_url
    before = await run_cli(
        "--region", "us-east-1", "--endpoint-url", url, "--s3-endpoint-url", url,
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "a",
        env=env,
    )  # fmt: skip
    after = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "b",
        "--region", "us-east-1", "--endpoint-url", url, "--wait", "--poll-interval", "0.02",
        "--s3-endpoint-url", url,
        env=env,
    )  # fmt: skip
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["OutputLocation"].startswith(local.endpoint.output_path)
    assert after.returncode == 0, after.stderr
    assert after.stdout == b"B"
    assert local.endpoint.invocation_count("echo") == 2


@pytest.mark.slow  # several runs of the CLI
async def test_body_from_fileb_and_input_location_with_wait(local: Local, tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"binary \x00\xff payload")
    from_file = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", f"fileb://{payload}",
        "--wait", "--poll-interval", "0.02",
        env=local.env,
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout == b"BINARY \x00\xff PAYLOAD"  # bytes out exactly as stored

    uri = f"s3://{local.endpoint.bucket}/inputs/in.txt"
    async with client_for(local.endpoint) as client:
        await client.upload_input(b"from s3", uri)
    from_s3 = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--input-location", uri,
        "--wait", "--poll-interval", "0.02",
        env=local.env,
    )  # fmt: skip
    assert from_s3.returncode == 0, from_s3.stderr
    assert from_s3.stdout == b"FROM S3"


async def test_wait_with_outfile_writes_the_body_and_prints_the_json(
    local: Local, tmp_path: Path
) -> None:
    outfile = tmp_path / "result.txt"
    result = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "to a file",
        "--inference-id", "to-file", "--wait", "--poll-interval", "0.02",
        "--outfile", str(outfile),
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert outfile.read_bytes() == b"TO A FILE"
    assert json.loads(result.stdout)["InferenceId"] == "to-file"


async def test_a_failed_inference_is_one_line_and_exit_1(local: Local) -> None:
    result = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "fails", "--body", "x",
        "--wait", "--poll-interval", "0.02",
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == b""
    assert_one_error_line(
        queued_then(result.stderr),
        "InferenceFailedError",
        local.endpoint.failure_path,
        "cannot read this",
    )


# -- wait and get ----------------------------------------------------------------------------


@pytest.mark.slow  # several runs of the CLI
async def test_get_before_the_result_then_wait_and_get_after(local: Local, tmp_path: Path) -> None:
    invoked = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "gated", "--body", "later", env=local.env
    )  # fmt: skip
    assert invoked.returncode == 0, invoked.stderr
    locations = json.loads(invoked.stdout)

    early = await run_cli("get", "--invocation", "-", env=local.env, stdin=invoked.stdout)
    assert early.returncode == 1
    assert_one_error_line(early.stderr, "no result yet", locations["OutputLocation"])

    local.gate.set()
    waited = await run_cli(
        "wait", "--invocation", "-", "--poll-interval", "0.02", env=local.env, stdin=invoked.stdout
    )
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout == b"retal"

    outfile = tmp_path / "got.txt"
    got = await run_cli(
        "get", "--output-location", locations["OutputLocation"], "--outfile", str(outfile),
        env=local.env,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert (got.stdout, outfile.read_bytes()) == (b"", b"retal")


@pytest.mark.slow  # several runs of the CLI
async def test_wait_by_locations_reports_a_failure_or_times_out(local: Local) -> None:
    invoked = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "fails", "--body", "x", env=local.env
    )
    locations = json.loads(invoked.stdout)
    await local.endpoint.wait_idle(5)

    failed = await run_cli(
        "wait",
        "--output-location", locations["OutputLocation"],
        "--failure-location", locations["FailureLocation"],
        "--poll-interval", "0.02",
        env=local.env,
    )  # fmt: skip
    assert failed.returncode == 1
    assert_one_error_line(failed.stderr, "InferenceFailedError", "cannot read this")

    # Without the failure location, nothing ever appears at the output: the deadline ends it.
    timed_out = await run_cli(
        "wait", "--output-location", locations["OutputLocation"],
        "--timeout", "0.1", "--poll-interval", "0.02",
        env=local.env,
    )  # fmt: skip
    assert timed_out.returncode == 1
    assert_one_error_line(timed_out.stderr, "WaitTimeoutError", locations["OutputLocation"])


# -- errors and exit statuses ----------------------------------------------------------------


async def test_a_service_error_is_one_readable_line_and_exit_1(local: Local) -> None:
    result = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "no-such-endpoint", "--body", "x",
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == b""
    line = assert_one_error_line(result.stderr, "ValidationError (HTTP 400)", "no-such-endpoint")
    assert line.startswith("sagemaker-async: error: ValidationError (HTTP 400): Endpoint ")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--body", "x", "--content-type", "a\tb\u00e9"], ["ParamValidationError", "content_type"]),
        (["--input-location", "http://bucket/key"], ["ParamValidationError", "input_location"]),
        (["--body", "x", "--request-ttl-seconds", "1"], ["request_ttl_seconds", "60"]),
        (["--body", "x", "--timeout", "5"], ["--timeout", "--wait"]),
        (["--body", "fileb:///no/such/file"], ["cannot read --body", "No such file"]),
    ],
)
async def test_bad_parameters_exit_2_before_sending(
    local: Local, args: list[str], needles: list[str]
) -> None:
    result = await run_cli("invoke-endpoint-async", "--endpoint-name", "echo", *args, env=local.env)
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr, *needles)
    assert local.endpoint.invocation_count("echo") == 0


@pytest.mark.slow  # several runs of the CLI
async def test_usage_errors_exit_2_with_the_usage(local: Local) -> None:
    missing = await run_cli("invoke-endpoint-async", "--endpoint-name", "echo", env=local.env)
    assert missing.returncode == 2
    assert missing.stderr.startswith("usage: sagemaker-async invoke-endpoint-async")
    assert "one of the arguments --input-location --body is required" in missing.stderr

    not_a_number = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "x",
        "--request-ttl-seconds", "soon",
        env=local.env,
    )  # fmt: skip
    assert not_a_number.returncode == 2
    assert "--request-ttl-seconds: invalid int value: 'soon'" in not_a_number.stderr

    nothing = await run_cli(env=local.env)
    assert nothing.returncode == 2
    assert "usage: sagemaker-async" in nothing.stderr


@pytest.mark.slow  # several runs of the CLI
async def test_no_region_is_exit_2_and_no_credentials_exit_1(local: Local) -> None:
    no_region = dict(local.env)
    del no_region["AWS_REGION"]
    result = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "x", env=no_region
    )
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "ParamValidationError", "region")

    no_keys = dict(local.env)
    del no_keys["AWS_ACCESS_KEY_ID"], no_keys["AWS_SECRET_ACCESS_KEY"]
    result = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "x", env=no_keys
    )
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "NoCredentialsError")


async def test_a_transport_error_is_exit_1(local: Local, tmp_path: Path) -> None:
    env = cli_env(None, tmp_path, {"AWS_MAX_ATTEMPTS": "1"})
    result = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "x",
        "--endpoint-url", "http://127.0.0.1:9",  # discard: nothing listens there
        env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "TransportError", "127.0.0.1")


@pytest.mark.slow  # several runs of the CLI
async def test_secrets_are_never_printed_even_with_debug(local: Local) -> None:
    attributes = "customer-secret-attribute-42"
    env = {**local.env, "AWS_SESSION_TOKEN": SESSION_TOKEN}
    invoke = ["invoke-endpoint-async", "--body", "x", "--custom-attributes"]
    waiting = ["--wait", "--poll-interval", "0.02"]
    runs = [
        await run_cli(
            "--debug", *invoke, attributes, "--endpoint-name", endpoint, *waiting, env=env
        )
        for endpoint in ("echo", "fails", "no-such-endpoint")
    ]
    # An invalid value is refused without being quoted back, too.
    runs.append(await run_cli(*invoke, attributes + "\u00e9", "--endpoint-name", "x", env=env))
    assert [run.returncode for run in runs] == [0, 1, 1, 2]
    assert "DEBUG" in runs[0].stderr
    assert "Traceback" in runs[2].stderr
    for run in runs:
        shown = run.stdout.decode("utf-8", errors="replace") + run.stderr
        for secret in (SECRET_KEY, SESSION_TOKEN, attributes):
            assert secret not in shown


@pytest.mark.slow  # several runs of the CLI
async def test_debug_adds_log_lines_and_a_traceback_only_when_asked(local: Local) -> None:
    args = ["invoke-endpoint-async", "--endpoint-name", "no-such-endpoint", "--body", "x"]
    plain = await run_cli(*args, env=local.env)
    debug = await run_cli(*args, "--debug", env=local.env)
    assert "Traceback" not in plain.stderr
    assert "DEBUG" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert "sagemaker_async DEBUG InvokeEndpointAsync" in debug.stderr
    expected = "sagemaker-async: error: ValidationError (HTTP 400): Endpoint no-such-endpoint"
    assert plain.stderr.startswith(expected)
    assert debug.stderr.splitlines()[-1].startswith(expected)
    assert (plain.returncode, debug.returncode) == (1, 1)


async def test_ctrl_c_while_waiting_exits_130_without_a_traceback(local: Local) -> None:
    invoked = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "gated", "--body", "x", env=local.env
    )
    output = json.loads(invoked.stdout)["OutputLocation"]
    process = await start_cli(
        "--debug", "wait", "--output-location", output, "--poll-interval", "0.02", env=local.env
    )
    assert process.stderr is not None
    seen: list[str] = []
    await read_line_containing(process.stderr, "HeadObject", seen)  # it is polling now
    interrupt(process)
    result = await finish(process)
    assert result.returncode == 130
    assert result.stderr.splitlines()[-1] == "sagemaker-async: interrupted"
    assert "Traceback" not in "".join(seen) + result.stderr


@pytest.mark.slow  # several runs of the CLI
async def test_help_and_version(local: Local) -> None:
    version = await run_cli("--version", env=local.env)
    assert (version.returncode, version.text) == (0, f"sagemaker-async {__version__}\n")
    helped = await run_cli("invoke-endpoint-async", "--help", env=local.env)
    assert helped.returncode == 0
    for option in ("--endpoint-name", "--s3-output-path-extension", "--wait", "--outfile"):
        assert option in helped.text


# -- local serve -----------------------------------------------------------------------------


@pytest.mark.slow
async def test_local_serve_prints_exports_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = cli_env(None, tmp_path)
    server = await start_cli(
        "local", "serve",
        "--endpoint", "up=sagemaker_async.local.demo_models:echo_upper",
        "--credentials", "AKIDLOCAL:local-secret-never-shown",
        "--port", "0",
        env=env,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        said: list[str] = []
        await read_line_containing(server.stdout, "Ctrl-C", said)
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in said
            if line.startswith("export ")
        )
        # Signatures are checked (--credentials): no dummy keys are suggested.
        assert set(exports) == {
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
            "AWS_ENDPOINT_URL_S3",
            "AWS_DEFAULT_REGION",
        }
        client_env = {
            **env,
            **exports,
            "AWS_ACCESS_KEY_ID": "AKIDLOCAL",
            "AWS_SECRET_ACCESS_KEY": "local-secret-never-shown",
        }
        result = await run_cli(
            "invoke-endpoint-async", "--endpoint-name", "up", "--body", "served",
            "--wait", "--poll-interval", "0.02",
            env=client_env,
        )  # fmt: skip
        assert (result.returncode, result.stdout) == (0, b"SERVED"), result.stderr
        wrong_key = await run_cli(
            "invoke-endpoint-async", "--endpoint-name", "up", "--body", "x", env=env | exports
        )
        assert wrong_key.returncode == 1
    finally:
        server.terminate()
        stopped = await finish(server)
    assert stopped.returncode == 0, stopped.stderr
    assert "local-secret-never-shown" not in "".join(said) + stopped.stderr


@pytest.mark.slow
async def test_local_serve_stops_on_ctrl_c_with_130_and_no_traceback(tmp_path: Path) -> None:
    server = await start_cli(
        "local", "serve", "--endpoint", "up=sagemaker_async.local.demo_models:echo_upper",
        "--port", "0", env=cli_env(None, tmp_path),
    )  # fmt: skip
    assert server.stdout is not None
    try:
        await read_line_containing(server.stdout, "Ctrl-C", [])
    finally:
        server.send_signal(signal.SIGINT)
        stopped = await finish(server)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr


async def test_local_serve_with_a_bad_endpoint_is_exit_2(local: Local) -> None:
    result = await run_cli("local", "serve", "--endpoint", "no-equals-sign", env=local.env)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "no-equals-sign")


# -- demo --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_demo_runs_end_to_end_with_no_aws_environment(tmp_path: Path) -> None:
    env = {"PATH": cli_env(None, tmp_path)["PATH"], "HOME": str(tmp_path)}
    result = await run_cli("demo", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.text
    assert "#1 inline body" in text
    assert "#2 through S3" in text
    assert "uploaded the input to s3://" in text
    assert text.count("queued -> done") == 3  # two polled, one notified
    assert text.count("queued -> failed") == 1
    assert '"label": "positive"' in text
    assert '"label": "negative"' in text
    assert "sentiment needs a non-empty text" in text
    assert "4 requests: 3 done, 1 failed (as expected)." in text  # all four that ran
    assert "#4 notified     queued -> done" in text  # waited on the SNS -> SQS notification
    assert "no S3 polling" in text
    assert result.stderr == ""


# -- the first hour: what a newcomer hit (issue 14) ------------------------------------------


async def test_wait_says_the_inference_id_as_soon_as_it_is_queued(local: Local) -> None:
    # The model is held: the id must be on stderr while the wait is still going, so an
    # interrupted or failed wait never loses it.
    process = await start_cli(
        "invoke-endpoint-async", "--endpoint-name", "gated", "--body", "abc",
        "--inference-id", "held-1", "--wait", "--poll-interval", "0.02",
        env=local.env,
    )  # fmt: skip
    assert process.stderr is not None
    line = await read_line_containing(process.stderr, "queued inference")
    assert f"queued inference held-1; waiting for {local.endpoint.output_path}/held-1.out" in line
    local.gate.set()
    result = await finish(process)
    assert (result.returncode, result.stdout) == (0, b"cba"), result.stderr


async def test_a_bad_outfile_is_refused_before_anything_is_sent(
    local: Local, tmp_path: Path
) -> None:
    missing_folder = tmp_path / "no-such-folder" / "result.json"
    result = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "x",
        "--wait", "--outfile", str(missing_folder),
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "cannot write --outfile", "no folder")
    assert local.endpoint.invocation_count("echo") == 0
    a_folder = await run_cli(
        "wait", "--output-location", f"{local.endpoint.output_path}/never.out",
        "--outfile", str(tmp_path),
        env=local.env,
    )  # fmt: skip
    assert a_folder.returncode == 2
    assert_one_error_line(a_folder.stderr, "cannot write --outfile", "is a directory")


async def test_the_dummy_secret_never_garbles_names_in_messages(local: Local) -> None:
    # With the secret key `test` (as the local endpoint suggests) and `local` in a custom
    # attribute, names containing them are printed as they are.
    env = {**local.env, "AWS_SECRET_ACCESS_KEY": "test"}
    result = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "latest-model", "--body", "x",
        "--custom-attributes", "local",
        env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "Endpoint latest-model of account")
    assert "****" not in result.stderr


async def test_local_serve_out_of_range_port_is_a_usage_error(tmp_path: Path) -> None:
    result = await run_cli(
        "local", "serve", "--endpoint", "e=sagemaker_async.local.demo_models:echo_upper",
        "--port", "99999",
        env=cli_env(None, tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert "a port is 0 to 65535, got 99999" in result.stderr
    assert "unexpected" not in result.stderr


async def test_local_serve_with_an_unreachable_model_server_says_so(tmp_path: Path) -> None:
    for debug in ([], ["--debug"]):
        result = await run_cli(
            "local", "serve", "--endpoint", "m=http://127.0.0.1:9", *debug,  # discard port
            env=cli_env(None, tmp_path),
        )  # fmt: skip
        assert result.returncode == 1
        last = result.stderr.splitlines()[-1]
        assert last.startswith("sagemaker-async: error: cannot serve: model server"), last
        assert "is not reachable" in last
        assert "unexpected" not in result.stderr
        assert "--debug" not in result.stderr
