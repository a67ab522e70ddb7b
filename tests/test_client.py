"""The client as a caller sees it: seams, lifecycle, settings, concurrency, logs, secrets.

Requests go through ``transport=httpx.MockTransport(router.async_handler)`` or a caller's
``http_client``; one test at the end uses a real socket on 127.0.0.1 through the client's
own default transport.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import (
    ACCESS_KEY,
    ENDPOINT,
    INPUT,
    INVOKE_URL,
    RUNTIME_URL,
    SECRET_KEY,
    SESSION_TOKEN,
    accepted,
    make_client,
    new_router,
    service_error,
    use_config_file,
)
from sagemaker_async import (
    AsyncInferenceClient,
    AsyncInvocation,
    ParamValidationError,
    ServiceError,
    TransportError,
    ValidationError,
    __version__,
)

# -- the seams -------------------------------------------------------------------------------


async def test_invoke_through_the_transport_seam() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    async with client:
        invocation = await client.invoke_endpoint_async(
            ENDPOINT, INPUT, content_type="application/json"
        )
    assert invocation == AsyncInvocation(
        inference_id="inf-1",
        output_location="s3://my-bucket/out/inf-1.out",
        failure_location="s3://my-bucket/failures/inf-1-error.out",
        request_id="req-1",
    )
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["x-amzn-sagemaker-inputlocation"] == INPUT
    assert request.headers["content-length"] == "0"
    assert request.content == b""
    router.assert_all_called()


async def test_inline_body_is_sent_as_is_without_content_type() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    payload = b'{"inputs": [1, 2, 3]}'
    async with client:
        await client.invoke_endpoint_async(ENDPOINT, body=payload, content_type="application/json")
    request = route.calls.last.request
    assert request.content == payload
    assert request.headers["content-length"] == str(len(payload))
    assert "content-type" not in request.headers
    assert request.headers["x-amzn-sagemaker-content-type"] == "application/json"
    assert "x-amzn-sagemaker-inputlocation" not in request.headers


async def test_a_shared_http_client_is_used_and_left_open() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as shared:
        client, _ = make_client(http_client=shared)
        async with client:
            await client.invoke_endpoint_async(ENDPOINT, INPUT)
        assert not shared.is_closed
        # Still usable by its owner, and by a second client.
        other, _ = make_client(http_client=shared)
        async with other:
            await other.invoke_endpoint_async(ENDPOINT, INPUT)
    assert route.call_count == 2


def test_http_client_and_transport_are_exclusive() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    with pytest.raises(ParamValidationError):
        make_client(http_client=httpx.AsyncClient(transport=transport), transport=transport)


async def test_requests_carry_the_timeout() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, timeout=7.5)
    async with client:
        await client.invoke_endpoint_async(ENDPOINT, INPUT)
    extensions = route.calls.last.request.extensions
    assert extensions["timeout"] == httpx.Timeout(7.5).as_dict()


@pytest.mark.parametrize("timeout", [0, -1, True, "60"])
def test_bad_timeouts_are_refused(timeout: Any) -> None:
    with pytest.raises(ParamValidationError) as info:
        make_client(timeout=timeout)
    assert info.value.param == "timeout"


# -- lifecycle -------------------------------------------------------------------------------


async def test_a_closed_client_refuses_reuse() -> None:
    router = new_router()
    client, _ = make_client(router)
    async with client:
        pass
    # One error tree: a closed client is a TransportError (it used to be a RuntimeError).
    with pytest.raises(TransportError, match="closed"):
        await client.invoke_endpoint_async(ENDPOINT, INPUT)
    with pytest.raises(TransportError, match="closed"):
        async with client:
            pass
    await client.aclose()  # closing twice is harmless
    assert not router.calls


async def test_aclose_without_async_with() -> None:
    router = new_router()
    router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    await client.invoke_endpoint_async(ENDPOINT, INPUT)
    await client.aclose()
    with pytest.raises(TransportError):
        await client.invoke_endpoint_async(ENDPOINT, INPUT)


# -- settings: region and endpoint -----------------------------------------------------------


class Creds:
    access_key = "AKID"
    secret_key = "s"
    token = None


def scope_region(request: httpx.Request) -> str:
    return request.headers["authorization"].split("/")[2]


@pytest.mark.parametrize(
    ("argument", "env", "config", "expected"),
    [
        ("eu-west-1", {"AWS_REGION": "us-west-2"}, "region = ap-south-1", "eu-west-1"),
        (
            None,
            {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "ca-central-1"},
            None,
            "us-west-2",
        ),
        (None, {"AWS_DEFAULT_REGION": "ca-central-1"}, "region = ap-south-1", "ca-central-1"),
        (None, {}, "region = ap-south-1", "ap-south-1"),
        (None, {"AWS_PROFILE": "other"}, "region = ap-south-1", "sa-east-1"),
    ],
    ids=["argument", "AWS_REGION", "AWS_DEFAULT_REGION", "config-file", "AWS_PROFILE"],
)
async def test_region_sources(
    argument: str | None,
    env: dict[str, str],
    config: str | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if config is not None:
        text = f"[default]\n{config}\n[profile other]\nregion = sa-east-1\n"
        use_config_file(monkeypatch, tmp_path, text)
    router = new_router()
    url = f"https://runtime.sagemaker.{expected}.amazonaws.com/endpoints/e/async-invocations"
    route = router.post(url).mock(return_value=accepted())
    client, _ = make_client(router, region_name=argument)
    assert client.region_name == expected
    async with client:
        await client.invoke_endpoint_async("e", INPUT)
    assert scope_region(route.calls.last.request) == expected


def test_a_named_profile_region_from_the_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_config_file(
        monkeypatch, tmp_path, "[default]\nregion = us-east-2\n[profile p]\nregion = eu-central-1\n"
    )
    client = AsyncInferenceClient(profile_name="p", credentials=Creds())
    assert client.region_name == "eu-central-1"


def test_no_region_at_all_is_refused_before_any_io() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    with pytest.raises(ParamValidationError) as info:
        AsyncInferenceClient(
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            transport=httpx.MockTransport(never),
        )
    assert info.value.param == "region_name"
    assert "region" in str(info.value)


@pytest.mark.parametrize(
    ("argument", "env", "expected"),
    [
        ("http://127.0.0.1:8080", {"AWS_ENDPOINT_URL": "http://10.0.0.1"}, "http://127.0.0.1:8080"),
        (
            None,
            {
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "http://localhost:9000",
                "AWS_ENDPOINT_URL": "http://10.0.0.1",
            },
            "http://localhost:9000",
        ),
        (None, {"AWS_ENDPOINT_URL": "https://proxy.internal:8443"}, "https://proxy.internal:8443"),
        (None, {}, RUNTIME_URL),
    ],
    ids=["argument", "service-env", "global-env", "aws"],
)
async def test_endpoint_url_sources(
    argument: str | None, env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    router = new_router()
    route = router.post(f"{expected}/endpoints/e/async-invocations").mock(return_value=accepted())
    client, _ = make_client(router, endpoint_url=argument)
    assert client.endpoint_url == expected
    async with client:
        await client.invoke_endpoint_async("e", INPUT)
    request = route.calls.last.request
    assert request.headers["host"] == httpx.URL(expected).netloc.decode()
    assert scope_region(request) == "us-east-1"  # a custom endpoint keeps the region's scope


async def test_endpoint_url_with_a_path_prefix() -> None:
    router = new_router()
    route = router.post("http://127.0.0.1:8080/sm/endpoints/e/async-invocations").mock(
        return_value=accepted()
    )
    client, _ = make_client(router, endpoint_url="http://127.0.0.1:8080/sm/")
    async with client:
        await client.invoke_endpoint_async("e", INPUT)
    assert route.called


@pytest.mark.parametrize(
    ("kwargs", "env"),
    [
        ({"endpoint_url": "http://127.0.0.1:1", "use_fips_endpoint": True}, {}),
        ({"endpoint_url": "http://127.0.0.1:1", "use_dualstack_endpoint": True}, {}),
        ({"use_fips_endpoint": True}, {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "http://h:1"}),
    ],
    ids=["fips", "dualstack", "endpoint-from-env"],
)
def test_custom_endpoint_with_fips_or_dualstack_is_refused(
    kwargs: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ParamValidationError) as info:
        make_client(**kwargs)
    assert info.value.param == "endpoint_url"


@pytest.mark.parametrize("flag", ["AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"])
async def test_flags_from_the_environment_do_not_apply_to_a_custom_endpoint(
    flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in botocore: a global FIPS setting must not stop a client aimed at a local endpoint."""
    monkeypatch.setenv(flag, "true")
    router = new_router()
    route = router.post("http://127.0.0.1:8080/endpoints/e/async-invocations").mock(
        return_value=accepted()
    )
    client, _ = make_client(router, endpoint_url="http://127.0.0.1:8080")
    async with client:
        await client.invoke_endpoint_async("e", INPUT)
    assert route.called


@pytest.mark.parametrize(
    ("kwargs", "env", "host"),
    [
        ({"use_fips_endpoint": True}, {}, "runtime-fips.sagemaker.us-east-1.amazonaws.com"),
        ({}, {"AWS_USE_FIPS_ENDPOINT": "true"}, "runtime-fips.sagemaker.us-east-1.amazonaws.com"),
        ({"use_dualstack_endpoint": True}, {}, "runtime.sagemaker.us-east-1.api.aws"),
    ],
)
async def test_endpoint_flags_reach_the_request(
    kwargs: dict[str, Any], env: dict[str, str], host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    router = new_router()
    route = router.post(f"https://{host}/endpoints/e/async-invocations").mock(
        return_value=accepted()
    )
    client, _ = make_client(router, **kwargs)
    async with client:
        await client.invoke_endpoint_async("e", INPUT)
    assert route.calls.last.request.headers["host"] == host


# -- concurrency -----------------------------------------------------------------------------


async def test_1000_concurrent_calls_through_one_client() -> None:
    """Each answer belongs to its own call: the service echoes the inference id it got."""

    async def echo(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # let the other calls interleave
        inference_id = request.headers["x-amzn-sagemaker-inference-id"]
        return httpx.Response(
            202,
            headers={
                "x-amzn-RequestId": f"req-{inference_id}",
                "X-Amzn-SageMaker-OutputLocation": f"s3://b/out/{inference_id}.out",
            },
            json={"InferenceId": inference_id},
        )

    router = new_router()
    route = router.post(INVOKE_URL).mock(side_effect=echo)
    client, _ = make_client(router)
    async with client:
        results = await asyncio.gather(
            *(
                client.invoke_endpoint_async(ENDPOINT, f"s3://b/in/{n}", inference_id=f"id-{n}")
                for n in range(1000)
            )
        )
    assert route.call_count == 1000
    for n, invocation in enumerate(results):
        assert invocation.inference_id == f"id-{n}"
        assert invocation.output_location == f"s3://b/out/id-{n}.out"
        assert invocation.request_id == f"req-id-{n}"
    sent = {call.request.headers["x-amzn-sagemaker-inputlocation"] for call in route.calls}
    assert len(sent) == 1000
    assert len({call.request.headers["amz-sdk-invocation-id"] for call in route.calls}) == 1000


# -- observability ---------------------------------------------------------------------------


async def test_user_agent_names_the_library_and_its_version() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    async with client:
        await client.invoke_endpoint_async(ENDPOINT, INPUT)
    agent = route.calls.last.request.headers["user-agent"]
    assert re.match(rf"sagemaker-async/{re.escape(__version__)} python/\d+\.\d+", agent)


async def test_one_debug_line_per_attempt(caplog: pytest.LogCaptureFixture) -> None:
    router = new_router()
    router.post(INVOKE_URL).mock(
        side_effect=[
            service_error(503, "ServiceUnavailable", request_id="rid-a"),
            httpx.ConnectError,
            accepted(request_id="rid-c"),
        ]
    )
    client, _ = make_client(router)
    caplog.set_level(logging.DEBUG, logger="sagemaker_async")
    async with client:
        await client.invoke_endpoint_async(ENDPOINT, INPUT, inference_id="my-inf")
    lines = [r.getMessage() for r in caplog.records if r.name == "sagemaker_async"]
    attempts = [line for line in lines if "attempt=" in line]
    assert len(attempts) == 3
    for number, line in enumerate(attempts, start=1):
        assert f"endpoint={ENDPOINT}" in line
        assert "inference_id=my-inf" in line
        assert f"attempt={number}/3" in line
        assert re.search(r"elapsed=\d+\.\d+ms", line)
    assert "status=503" in attempts[0]
    assert "request_id=rid-a" in attempts[0]
    assert "ConnectError" in attempts[1]
    assert "status=202" in attempts[2]
    assert "request_id=rid-c" in attempts[2]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "sagemaker_async")


async def test_nothing_is_logged_above_debug_on_success(caplog: pytest.LogCaptureFixture) -> None:
    router = new_router()
    router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    caplog.set_level(logging.INFO)
    async with client:
        await client.invoke_endpoint_async(ENDPOINT, INPUT)
    assert not [r for r in caplog.records if r.name.startswith("sagemaker_async")]


# -- secrets ---------------------------------------------------------------------------------

SECRET_ATTRS = "session=SeCrEtAtTrIbUtE-42"
SECRET_BODY = b'{"patient": "SeCrEtBoDy-42"}'
SECRETS = [SECRET_KEY, SESSION_TOKEN, "SeCrEtAtTrIbUtE", "SeCrEtBoDy"]


async def exercise_every_path(client: AsyncInferenceClient) -> list[object]:
    """Success, retries, service errors, network errors and bad input: what they left."""
    leftovers: list[object] = [client]
    leftovers.append(
        await client.invoke_endpoint_async(ENDPOINT, INPUT, custom_attributes=SECRET_ATTRS)
    )
    leftovers.append(
        await client.invoke_endpoint_async(
            ENDPOINT, body=SECRET_BODY, custom_attributes=SECRET_ATTRS
        )
    )
    for kwargs in (
        {"custom_attributes": SECRET_ATTRS},  # ValidationError from the service
        {"custom_attributes": SECRET_ATTRS, "body": SECRET_BODY},  # network faults
        {"custom_attributes": SECRET_ATTRS + "\n"},  # refused before sending
        {"custom_attributes": SECRET_ATTRS, "body": SECRET_BODY * 10_000},  # body too large
    ):
        location = None if "body" in kwargs else INPUT
        try:
            await client.invoke_endpoint_async(ENDPOINT, location, **kwargs)
        except (ServiceError, TransportError, ParamValidationError) as exc:
            leftovers.extend([exc, exc.__cause__])
        else:  # pragma: no cover - every call above must fail
            pytest.fail(f"{kwargs} did not fail")
    return leftovers


async def test_secrets_never_appear_in_messages_reprs_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = new_router()
    router.post(INVOKE_URL).mock(
        side_effect=[
            service_error(500, "InternalFailure"),
            accepted(),
            accepted(),
            service_error(400, "ValidationError", "Endpoint my-endpoint not found"),
            httpx.ConnectError("connection refused"),
            httpx.ReadTimeout("timed out"),
            httpx.RemoteProtocolError("peer closed"),
        ]
    )
    client, _ = make_client(router, aws_session_token=SESSION_TOKEN)
    caplog.set_level(logging.DEBUG)  # every logger, every level
    async with client:
        leftovers = await exercise_every_path(client)
    assert router.calls.call_count == 7
    assert len(caplog.records) >= 7
    texts = [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    texts += [repr(obj) for obj in leftovers] + [str(obj) for obj in leftovers]
    texts += [repr(client._sender.credentials), repr(client._signer)]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_reprs_show_where_not_what() -> None:
    client, _ = make_client(aws_session_token=SESSION_TOKEN)
    text = repr(client)
    assert text.startswith("AsyncInferenceClient(")
    assert "us-east-1" in text
    assert SECRET_KEY not in text
    assert SESSION_TOKEN not in text


# -- a real socket ---------------------------------------------------------------------------


class TinyRuntime:
    """A one-route HTTP/1.1 server on 127.0.0.1 that records the raw requests it gets."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                self.requests.append(head + await reader.readexactly(length))
                body = json.dumps({"InferenceId": f"inf-{len(self.requests)}"}).encode()
                writer.write(
                    b"HTTP/1.1 202 Accepted\r\nx-amzn-RequestId: r\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_the_default_transport_on_a_real_socket() -> None:
    """What the mock seam cannot show: h11 takes what we send, UTF-8 keys and spaces too."""
    server = TinyRuntime()
    async with server as url:
        client, _ = make_client(endpoint_url=url)
        async with client:
            first = await client.invoke_endpoint_async(
                ENDPOINT, "s3://b/ключ", custom_attributes=" a=b\t", inference_id="x "
            )
            second = await client.invoke_endpoint_async(ENDPOINT, body=b"\x00\x01 inline")
    assert (first.inference_id, second.inference_id) == ("inf-1", "inf-2")
    raw, raw_inline = server.requests
    assert raw.startswith(b"POST /endpoints/my-endpoint/async-invocations HTTP/1.1\r\n")
    assert b"\r\nX-Amzn-SageMaker-InputLocation: s3://b/\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\r\n" in raw
    assert b"\r\nX-Amzn-SageMaker-Custom-Attributes: a=b\r\n" in raw
    assert b"\r\nX-Amzn-SageMaker-Inference-Id: x\r\n" in raw
    assert b"\r\nContent-Length: 0\r\n" in raw
    assert raw_inline.endswith(b"\r\n\r\n\x00\x01 inline")


async def test_a_refused_connection_is_retried_then_a_transport_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client, sleeps = make_client(endpoint_url=f"http://127.0.0.1:{port}")
    async with client:
        with pytest.raises(TransportError) as info:
            await client.invoke_endpoint_async(ENDPOINT, INPUT)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert info.value.attempts == 3
    assert len(sleeps.delays) == 2


async def test_validation_error_message_keeps_the_services_words() -> None:
    router = new_router()
    router.post(INVOKE_URL).mock(
        return_value=service_error(
            400, "ValidationError", "Endpoint my-endpoint of account 1 not found.", request_id="x1"
        )
    )
    client, _ = make_client(router)
    async with client:
        with pytest.raises(ValidationError) as info:
            await client.invoke_endpoint_async(ENDPOINT, INPUT)
    assert str(info.value) == (
        "ValidationError (HTTP 400): Endpoint my-endpoint of account 1 not found. [request id x1]"
    )
