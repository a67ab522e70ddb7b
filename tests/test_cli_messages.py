"""The command line's messages, in-process: what is masked and where, what is said when.

Each test is one rough edge a newcomer met (issue 14): secrets masked inside innocent
names, the ``--debug`` hint given to someone already using it, help that promised what the
command does not do, and wording.
"""

from __future__ import annotations

import io

import pytest

from sagemaker_async import ValidationError
from sagemaker_async.cli._batch_command import _stopping_message
from sagemaker_async.cli._common import Streams
from sagemaker_async.cli._errors import Redactor, describe, report
from sagemaker_async.cli._main import run
from sagemaker_async.cli._parser import _DEFAULT_SERVE_CONCURRENCY, build_parser
from sagemaker_async.local._endpoint import DEFAULT_CONCURRENCY


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.StringIO()
    status = run(list(argv), streams=Streams(stdout=out, stderr=err))
    return status, out.getvalue().decode(), err.getvalue()


@pytest.mark.parametrize(
    ("secret", "text"),
    [
        ("test", "endpoint latest-model, outfile contest.out, s3://b/test-inputs/x, testing"),
        ("local", "bucket sagemaker-async-local, key local.json, s3://b/localhost/x"),
        ("s3cr", "s3cr3t and xs3cr and s3cr.txt"),
    ],
)
def test_a_secret_inside_a_longer_name_is_left_alone(secret: str, text: str) -> None:
    assert Redactor([secret])(text) == text


def test_a_secret_standing_alone_is_masked_and_a_long_one_anywhere() -> None:
    long_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    redact = Redactor(["test", long_secret])
    assert redact(f"key test, env AWS_SECRET_ACCESS_KEY={long_secret}x") == (
        "key ****, env AWS_SECRET_ACCESS_KEY=****x"
    )
    assert redact("'test' test=1 a/test") == "'****' ****=1 a/****"


def test_library_and_cli_messages_are_printed_as_they_are() -> None:
    # The library never puts a secret in a message; masking it could only garble it.
    error = ValidationError(
        "Endpoint test of account 123456789012 not found.", code="ValidationError", status_code=400
    )
    assert "Endpoint test of account" in describe(error, Redactor(["test"]))


def test_an_unexpected_error_is_masked_and_hints_at_debug_only_without_it() -> None:
    redact = Redactor(["hunter22"])
    plain = describe(RuntimeError("password hunter22 leaked"), redact)
    assert plain == (
        "unexpected RuntimeError: password **** leaked (run again with --debug for a traceback)"
    )
    debugging = describe(RuntimeError("boom"), redact, debug=True)
    assert debugging == "unexpected RuntimeError: boom"
    err = io.StringIO()
    report(RuntimeError("boom"), prog="p", stderr=err, redact=redact, debug=True)
    assert err.getvalue().splitlines()[-1] == "p: error: unexpected RuntimeError: boom"
    assert "--debug" not in err.getvalue()


def test_options_that_need_wait_are_named_in_good_english() -> None:
    one = _run("invoke-endpoint-async", "--endpoint-name", "e", "--body", "x", "--timeout", "5")
    assert one[0] == 2
    assert "--timeout is only valid with --wait" in one[2]
    two = _run(
        "invoke-endpoint-async", "--endpoint-name", "e", "--body", "x",
        "--timeout", "5", "--outfile", "o",
    )  # fmt: skip
    assert "--timeout, --outfile are only valid with --wait" in two[2]


def test_the_stopping_message_counts_requests_properly() -> None:
    assert _stopping_message(0) == "sagemaker-async: stopping: no request in flight; finishing"
    assert "waiting for the 1 request in flight" in _stopping_message(1)
    assert "waiting for the 3 requests in flight" in _stopping_message(3)


def test_local_serve_help_says_its_defaults_and_reads_no_s3_variable() -> None:
    status, out, _ = _run_help("local", "serve")
    assert status == 0
    assert f"(default: {DEFAULT_CONCURRENCY})" in out
    assert _DEFAULT_SERVE_CONCURRENCY == DEFAULT_CONCURRENCY
    assert "else AWS_ENDPOINT_URL_S3" not in out
    assert "AWS_ENDPOINT_URL_S3 is not read" in " ".join(out.split())


def test_batch_help_says_the_concurrency_default() -> None:
    status, out, _ = _run_help("batch")
    assert status == 0
    assert "--concurrency N" in out
    assert "(default: 8)" in " ".join(out.split())


def _run_help(*command: str) -> tuple[int, str, str]:
    import contextlib

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status, _, err = _run(*command, "--help")
    return status, buffer.getvalue(), err


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--endpoint", "m=http://localhost:99999"], "a port is 1 to 65535, got 99999"),
        (["--s3-endpoint-url", "notaurl"], "is not an http:// or https:// URL"),
        (["--output-path", "s3://ab/out"], "bucket 'ab' is not a valid S3 bucket name"),
    ],
)
def test_local_serve_refuses_impossible_values_before_starting(
    options: list[str], needle: str
) -> None:
    endpoint = ["--endpoint", "e=sagemaker_async.local.demo_models:echo_upper"]
    status, out, err = _run("local", "serve", *endpoint, *options, "--quiet")
    assert status == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("sagemaker-async: error: ")
    assert needle in line
    assert "unexpected" not in line


def test_local_serve_with_an_unreachable_s3_says_it_cannot_serve() -> None:
    status, _, err = _run(
        "local", "serve", "--endpoint", "e=sagemaker_async.local.demo_models:echo_upper",
        "--s3-endpoint-url", "http://127.0.0.1:9", "--quiet",  # discard: nothing listens
    )  # fmt: skip
    assert status == 1
    [line] = err.splitlines()
    assert line.startswith("sagemaker-async: error: cannot serve: CreateBucket")


def test_local_serve_still_accepts_every_global_option_after_the_command() -> None:
    args = build_parser().parse_args(
        ["local", "serve", "--endpoint", "e=m:f", "--region", "eu-west-1", "--profile", "p",
         "--endpoint-url", "http://x", "--s3-endpoint-url", "http://127.0.0.1:9", "--debug"]
    )  # fmt: skip
    assert (args.region, args.profile, args.debug) == ("eu-west-1", "p", True)
    assert args.s3_endpoint_url == "http://127.0.0.1:9"
