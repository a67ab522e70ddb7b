"""The model-server handler: the local endpoint calls a server speaking SageMaker's container
contract (``GET /ping``, ``POST /invocations``), as SageMaker calls an inference container.

The model server is a tiny one started in the test on 127.0.0.1; it records what it got.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._http import HttpServer, Request, Response
from test_local_support import S3Object, client_for, get_object, put_object, warm_moto

__all__ = ["warm_moto"]

pytestmark = pytest.mark.usefixtures("warm_moto")


class ModelServer:
    """Answers /ping with ``ping_status``; /invocations echoes what it was sent, as JSON."""

    def __init__(self, ping_status: int = 200) -> None:
        self.ping_status = ping_status
        self.pings = 0
        self.invocations: list[Request] = []
        self.server = HttpServer(self.handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/ping":
            self.pings += 1
            return Response(self.ping_status)
        if request.method == "POST" and request.path == "/invocations":
            self.invocations.append(request)
            if request.body == b"crash":
                return Response(500, [("Content-Type", "text/plain")], b"model exploded")
            if request.body == b"reject":
                return Response(400, [("Content-Type", "text/plain")], b"bad input shape")
            seen = {
                "body": request.body.decode(),
                "content_type": (request.header("content-type") or b"").decode(),
                "accept": (request.header("accept") or b"").decode(),
                "custom": (request.header("x-amzn-sagemaker-custom-attributes") or b"").decode(),
            }
            return Response(200, [("Content-Type", "application/json")], json.dumps(seen).encode())
        return Response(404)


@pytest.fixture
async def model() -> AsyncIterator[ModelServer]:
    server = ModelServer()
    await server.server.start()
    yield server
    await server.server.aclose()


async def test_invocations_are_posted_to_the_model_server(model: ModelServer) -> None:
    async with LocalEndpoint({"ep": model.url}) as local, client_for(local) as client:
        assert model.pings == 1  # checked once at start, as SageMaker does
        source = f"s3://{local.bucket}/in.csv"
        await put_object(local, source, b"1,2,3")
        inv = await client.invoke_endpoint_async(
            "ep",
            source,
            content_type="text/csv",
            accept="application/json",
            custom_attributes="session=42",
        )
        await local.wait_idle(5)
        output = await get_object(local, inv.output_location)
    assert output.content_type == "application/json"
    assert json.loads(output.body) == {
        "body": "1,2,3",
        "content_type": "text/csv",
        "accept": "application/json",
        "custom": "session=42",
    }


async def test_without_a_content_type_the_container_gets_octet_stream(model: ModelServer) -> None:
    async with LocalEndpoint({"ep": model.url + "/"}) as local, client_for(local) as client:
        await client.invoke_endpoint_async("ep", body=b"raw")
        await local.wait_idle(5)
    sent = model.invocations[0]
    assert sent.header("content-type") == b"application/octet-stream"
    assert sent.header("accept") == b"*/*"  # anything, when the caller named nothing
    assert sent.header("x-amzn-sagemaker-custom-attributes") is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"crash", b'Received server error (500) from model with message "model exploded".'),
        (b"reject", b'Received client error (400) from model with message "bad input shape".'),
    ],
)
async def test_model_server_errors_become_failure_objects(
    model: ModelServer, payload: bytes, message: bytes
) -> None:
    async with LocalEndpoint({"ep": model.url}) as local, client_for(local) as client:
        inv = await client.invoke_endpoint_async("ep", body=payload)
        await local.wait_idle(5)
        assert await get_object(local, inv.failure_location) == S3Object(
            200, message, "text/plain; charset=utf-8"
        )
        assert (await get_object(local, inv.output_location)).status == 404


async def test_an_unhealthy_model_server_stops_the_start() -> None:
    sick = ModelServer(ping_status=503)
    await sick.server.start()
    try:
        with pytest.raises(RuntimeError, match="failed its health check"):
            async with LocalEndpoint({"ep": sick.url}):
                pass
    finally:
        await sick.server.aclose()


async def test_a_model_server_that_went_away_fails_the_inference(model: ModelServer) -> None:
    url = model.url
    async with LocalEndpoint({"ep": url}) as local, client_for(local) as client:
        await model.server.aclose()
        inv = await client.invoke_endpoint_async("ep", body=b"x")
        await local.wait_idle(5)
        failure = await get_object(local, inv.failure_location)
    assert failure.body.startswith(b"Could not reach the model server at " + url.encode())
