"""The pytest plugin (``sagemaker_async.pytest_plugin``), run as users run it: in an inner
pytest session (``pytester``) with its own configuration, under pytest-asyncio in strict and
in auto mode, and under anyio's plugin — the fixtures must run on each runner's loop.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from test_local_support import warm_moto

__all__ = ["warm_moto"]  # the fixture, imported so pytest finds it here

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("warm_moto")

_HANDLERS = """
import pytest

from sagemaker_async import InferenceFailedError


def upper(payload: bytes) -> bytes:
    return payload.upper()


def broken(payload: bytes) -> bytes:
    raise ValueError("no good")
"""

_ROUND_TRIP = """
@pytest.mark.sagemaker_endpoint("shout", upper, concurrency=2)
@pytest.mark.sagemaker_endpoint("broken", broken)
{mark}
async def test_round_trip(sagemaker_client, local_endpoint):
    invocation = await sagemaker_client.invoke_endpoint_async("shout", body=b"hi")
    result = await sagemaker_client.wait_for_result(invocation, timeout=10, poll_interval=0.01)
    assert result.body == b"HI"
    failing = await sagemaker_client.invoke_endpoint_async("broken", body=b"x")
    with pytest.raises(InferenceFailedError, match="no good"):
        await sagemaker_client.wait_for_result(failing, timeout=10, poll_interval=0.01)
    assert local_endpoint.invocation_count("shout") == 1
    assert local_endpoint.stats("broken")["failed"] == 1
    await local_endpoint.wait_idle(5)
"""


@pytest.fixture(autouse=True)
def _no_plugin_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner sessions load what a user's would, not every plugin of this venv (that
    costs half a second a run): see ``_run``."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def _run(pytester: pytest.Pytester, *args: str, asyncio: bool = True) -> pytest.RunResult:
    """An inner pytest run with our plugin and anyio's, and pytest-asyncio unless not wanted."""
    plugins = ["-p", "sagemaker_async.pytest_plugin", "-p", "anyio.pytest_plugin"]
    if asyncio:
        plugins += ["-p", "pytest_asyncio.plugin"]
    return pytester.runpytest_inprocess("-q", *plugins, *args)


def _ini(pytester: pytest.Pytester, mode: str | None) -> None:
    lines = ["[pytest]", "filterwarnings = error"]
    if mode is not None:
        lines += [f"asyncio_mode = {mode}", "asyncio_default_fixture_loop_scope = function"]
    pytester.makeini("\n".join(lines) + "\n")


def _test_module(*marks: str) -> str:
    return _HANDLERS + "".join(
        _ROUND_TRIP.replace("test_round_trip", f"test_{i}").format(mark=mark)
        for i, mark in enumerate(marks)
    )


def test_under_pytest_asyncio_strict_mode(pytester: pytest.Pytester) -> None:
    _ini(pytester, "strict")
    pytester.makepyfile(_test_module("@pytest.mark.asyncio"))
    _run(pytester).assert_outcomes(passed=1)


def test_under_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    _ini(pytester, "auto")
    pytester.makepyfile(_test_module(""))
    _run(pytester).assert_outcomes(passed=1)


def test_under_anyio_without_pytest_asyncio(pytester: pytest.Pytester) -> None:
    _ini(pytester, None)
    pytester.makepyfile(_test_module("@pytest.mark.anyio"))
    result = _run(pytester, asyncio=False)
    result.assert_outcomes(passed=1)


def test_anyio_and_strict_pytest_asyncio_tests_side_by_side(pytester: pytest.Pytester) -> None:
    _ini(pytester, "strict")
    pytester.makepyfile(_test_module("@pytest.mark.anyio", "@pytest.mark.asyncio"))
    _run(pytester).assert_outcomes(passed=2)


def test_a_trio_backend_is_skipped_with_the_reason(pytester: pytest.Pytester) -> None:
    _ini(pytester, None)
    pytester.makepyfile(
        _HANDLERS
        + textwrap.dedent(
            """
            @pytest.fixture
            def anyio_backend():
                return "trio"

            @pytest.mark.anyio
            @pytest.mark.sagemaker_endpoint("shout", upper)
            async def test_needs_asyncio(local_endpoint):
                raise AssertionError("not reached")
            """
        )
    )
    result = _run(pytester, "-rs", asyncio=False)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*runs on asyncio, not trio*"])


def test_endpoints_and_options_from_overridden_fixtures(pytester: pytest.Pytester) -> None:
    # Overriding fixtures instead of markers; `credentials` makes the endpoint check
    # signatures, and the client fixture signs with them.
    _ini(pytester, "auto")
    pytester.makeconftest(
        _HANDLERS
        + textwrap.dedent(
            """
            @pytest.fixture
            def sagemaker_endpoints():
                return {"shout": upper}

            @pytest.fixture
            def local_endpoint_options():
                return {"credentials": "AKIDPLUGIN:plugin-secret", "concurrency": 3}
            """
        )
    )
    pytester.makepyfile(
        textwrap.dedent(
            """
            from sagemaker_async import AccessDeniedError, AsyncInferenceClient
            import pytest

            async def test_signed(sagemaker_client, local_endpoint):
                invocation = await sagemaker_client.invoke_endpoint_async("shout", body=b"a")
                result = await sagemaker_client.wait_for_result(
                    invocation, timeout=10, poll_interval=0.01
                )
                assert result.body == b"A"
                async with AsyncInferenceClient(
                    "us-east-1",
                    endpoint_url=local_endpoint.endpoint_url,
                    aws_access_key_id="AKIDOTHER",
                    aws_secret_access_key="other",
                    max_attempts=1,
                ) as stranger:
                    with pytest.raises(AccessDeniedError):
                        await stranger.invoke_endpoint_async("shout", body=b"a")
            """
        )
    )
    _run(pytester).assert_outcomes(passed=1)


def test_no_endpoint_declared_is_an_error_that_says_how(pytester: pytest.Pytester) -> None:
    _ini(pytester, "auto")
    pytester.makepyfile(
        """
        async def test_forgot(local_endpoint):
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.sagemaker_endpoint*"])


def test_the_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    _ini(pytester, "strict")
    result = _run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.sagemaker_endpoint(name, handler*"])


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, sagemaker_async.pytest_plugin; "
        "heavy = [m for m in ('moto', 'sagemaker_async.local', 'boto3', 'botocore') "
        "if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
