"""The local endpoint end to end, driven by our own client over real sockets on 127.0.0.1.

Handlers block on events the test controls, so every state (queued, running, done, failed,
expired) is observed on purpose, never by waiting and hoping. Time only matters for the
TTL (an injected clock) and the invocation timeout (``time_scale`` shrinks a second; one
slow test uses a real one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time

import httpx
import pytest

from sagemaker_async import InferenceFailedError, ValidationError
from sagemaker_async._protocol.invoke import parse_error
from sagemaker_async.local import InvocationAttributes, LocalEndpoint
from test_local_support import S3Object, client_for, get_object, warm_moto

__all__ = ["warm_moto"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.usefixtures("warm_moto")

VALIDATE_TYPE = "ValidationError:http://internal.amazon.com/coral/com.amazon.coral.validate/"
WAIT = 5.0  # an upper bound on waits for events that are expected at once


async def wait(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), WAIT)


async def upper(payload: bytes) -> bytes:
    return payload.upper()


# -- the life of one invocation ---------------------------------------------------------------


async def test_queued_then_done_with_the_pending_state_observable() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(payload: bytes) -> tuple[bytes, str]:
        started.set()
        await release.wait()
        return payload[::-1], "text/plain"

    async with LocalEndpoint({"ep": handler}) as local, client_for(local) as client:
        inv = await client.invoke_endpoint_async("ep", body=b"abc", content_type="text/plain")
        assert inv.output_location == f"{local.output_path}/{inv.inference_id}.out"
        assert inv.failure_location == f"{local.failure_path}/{inv.inference_id}-error.out"
        assert inv.request_id

        await wait(started)
        # Running, not finished: neither object exists yet, and the client sees it pending.
        assert local.running("ep") == 1
        assert (await get_object(local, inv.output_location)).status == 404
        assert (await get_object(local, inv.failure_location)).status == 404
        assert await client.poll_result(inv) is None

        release.set()
        await local.wait_idle(WAIT)
        result = await client.wait_for_result(inv, timeout=WAIT)
        assert (result.body, result.content_type) == (b"cba", "text/plain")
        assert result.location == inv.output_location
        assert await get_object(local, inv.output_location) == S3Object(200, b"cba", "text/plain")
        assert (await get_object(local, inv.failure_location)).status == 404
        assert local.stats("ep")["succeeded"] == 1


async def test_a_request_waits_in_the_queue_behind_the_concurrency_limit() -> None:
    picked, release = asyncio.Event(), asyncio.Event()
    seen: list[bytes] = []

    async def handler(payload: bytes) -> bytes:
        seen.append(payload)
        picked.set()
        await release.wait()
        return payload

    async with LocalEndpoint({"ep": handler}, concurrency=1) as local, client_for(local) as client:
        first = await client.invoke_endpoint_async("ep", body=b"1")
        second = await client.invoke_endpoint_async("ep", body=b"2")
        assert local.invocation_count("ep") == 2
        await wait(picked)  # the first is picked up at once; the second stays queued
        assert local.queued("ep") == 1
        assert seen == [b"1"]
        assert (await get_object(local, second.output_location)).status == 404
        release.set()
        await local.wait_idle(WAIT)
        assert seen == [b"1", b"2"]
        assert (await get_object(local, first.output_location)).body == b"1"
        assert (await get_object(local, second.output_location)).body == b"2"


async def test_payload_from_input_location_and_the_attributes_reach_the_handler() -> None:
    received: list[tuple[bytes, InvocationAttributes]] = []

    def handler(payload: bytes, attributes: InvocationAttributes) -> str:
        received.append((payload, attributes))
        return json.dumps({"n": len(payload)})

    async with LocalEndpoint({"ep": handler}) as local, client_for(local) as client:
        source = await client.upload_input(
            b'{"x": 1}', f"s3://{local.bucket}/inputs/req 1.json", content_type="application/json"
        )
        inv = await client.invoke_endpoint_async(
            "ep",
            source,
            content_type="application/json",
            accept="application/json",
            custom_attributes="trace=abc",
            inference_id="inf-0001",
        )
        assert inv.inference_id == "inf-0001"
        await local.wait_idle(WAIT)

    payload, attributes = received[0]
    assert payload == b'{"x": 1}'
    assert attributes == InvocationAttributes(
        content_type="application/json",
        accept="application/json",
        custom_attributes="trace=abc",
        inference_id="inf-0001",
        endpoint_name="ep",
    )
    assert "trace=abc" not in repr(attributes)  # sensitive: never in a repr


async def test_output_content_types() -> None:
    outputs = {
        "text": lambda payload: "héllo",
        "raw": lambda payload: b"\x00\x01",
        "typed": lambda payload: (b"<a/>", "application/xml"),
    }
    async with LocalEndpoint(outputs) as local, client_for(local) as client:  # type: ignore[arg-type]
        text = await client.invoke_endpoint_async("text", body=b"x")
        raw = await client.invoke_endpoint_async("raw", body=b"x")
        accept = await client.invoke_endpoint_async("raw", body=b"x", accept="image/png")
        typed = await client.invoke_endpoint_async("typed", body=b"x", accept="text/csv")
        await local.wait_idle(WAIT)
        assert await get_object(local, text.output_location) == S3Object(
            200, "héllo".encode(), "text/plain; charset=utf-8"
        )
        assert (await get_object(local, raw.output_location)).content_type == (
            "application/octet-stream"
        )
        # Without a content type of its own, the output takes the one type Accept named.
        assert (await get_object(local, accept.output_location)).content_type == "image/png"
        assert (await get_object(local, typed.output_location)).content_type == "application/xml"


async def test_log_lines_name_the_inference_never_its_payload_or_attributes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sagemaker_async.local")

    def failing(payload: bytes) -> bytes:
        raise ValueError("no")

    async with LocalEndpoint({"ep": upper, "bad": failing}) as local, client_for(local) as client:
        ok = await client.invoke_endpoint_async(
            "ep", body=b"payload-secret", custom_attributes="attr-secret", inference_id="inf-1"
        )
        bad = await client.invoke_endpoint_async("bad", body=b"x", inference_id="inf-2")
        await local.wait_idle(WAIT)
    text = caplog.text
    assert "ep: inf-1 queued (" in text
    assert f"ep: inf-1 done -> {ok.output_location}" in text
    assert f"bad: inf-2 failed -> {bad.failure_location} (Model error: ValueError: no)" in text
    for secret in ("payload-secret", "PAYLOAD-SECRET", "attr-secret"):
        assert secret not in text


# -- failures --------------------------------------------------------------------------------


async def test_a_raising_handler_writes_the_failure_object() -> None:
    def handler(payload: bytes) -> bytes:
        raise ValueError("cannot score this input")

    async with LocalEndpoint({"ep": handler}) as local, client_for(local) as client:
        inv = await client.invoke_endpoint_async("ep", body=b"x")
        await local.wait_idle(WAIT)
        with pytest.raises(InferenceFailedError) as caught:
            await client.wait_for_result(inv, timeout=WAIT)
        assert caught.value.message == "Model error: ValueError: cannot score this input"
        assert caught.value.failure_location == inv.failure_location
        failure = await get_object(local, inv.failure_location)
        assert failure.status == 200
        assert failure.content_type == "text/plain; charset=utf-8"
        assert failure.body == b"Model error: ValueError: cannot score this input"
        assert (await get_object(local, inv.output_location)).status == 404
        assert local.stats("ep")["failed"] == 1


async def test_a_handler_returning_the_wrong_type_fails_with_a_reason() -> None:
    bad = {"ep": lambda payload: 42}  # not a body: the handler is at fault
    async with LocalEndpoint(bad) as local, client_for(local) as client:  # type: ignore[arg-type]
        inv = await client.invoke_endpoint_async("ep", body=b"x")
        await local.wait_idle(WAIT)
        failure = await get_object(local, inv.failure_location)
        assert failure.body.startswith(b"Handler returned int")


async def test_a_missing_input_object_fails_the_inference() -> None:
    async with LocalEndpoint({"ep": upper}) as local, client_for(local) as client:
        inv = await client.invoke_endpoint_async("ep", f"s3://{local.bucket}/no/such.json")
        await local.wait_idle(WAIT)
        failure = await get_object(local, inv.failure_location)
        assert b"Could not read the input" in failure.body
        assert b"NoSuchKey" in failure.body


async def test_invocation_timeout_async_and_sync_handlers() -> None:
    never = asyncio.Event()
    unblock = threading.Event()

    async def stuck_async(payload: bytes) -> bytes:
        await never.wait()
        return payload

    def stuck_sync(payload: bytes) -> bytes:
        unblock.wait(WAIT)
        return payload

    # time_scale shrinks the service's one-second unit to a millisecond.
    local = LocalEndpoint({"a": stuck_async, "s": stuck_sync}, time_scale=0.001)
    try:
        async with local, client_for(local) as client:
            a = await client.invoke_endpoint_async("a", body=b"x", invocation_timeout_seconds=1)
            s = await client.invoke_endpoint_async("s", body=b"x", invocation_timeout_seconds=2)
            await local.wait_idle(WAIT)
            for inv, seconds in ((a, 1), (s, 2)):
                failure = await get_object(local, inv.failure_location)
                assert failure.body == (
                    b"Inference timed out: the model did not answer within the "
                    b"InvocationTimeoutSeconds of %d." % seconds
                )
                assert (await get_object(local, inv.output_location)).status == 404
    finally:
        unblock.set()  # the abandoned thread finishes; nothing is left running


@pytest.mark.slow
async def test_invocation_timeout_of_one_real_second() -> None:
    never = asyncio.Event()

    async def stuck(payload: bytes) -> bytes:
        await never.wait()
        return payload

    async with LocalEndpoint({"ep": stuck}) as local, client_for(local) as client:
        started = time.monotonic()
        inv = await client.invoke_endpoint_async("ep", body=b"x", invocation_timeout_seconds=1)
        await local.wait_idle(WAIT)
        assert time.monotonic() - started >= 1.0
        assert b"timed out" in (await get_object(local, inv.failure_location)).body


async def test_requests_older_than_their_ttl_expire_in_the_queue() -> None:
    now = [1000.0]
    release = asyncio.Event()
    ran: list[bytes] = []

    async def handler(payload: bytes) -> bytes:
        ran.append(payload)
        await release.wait()
        return payload

    local = LocalEndpoint({"ep": handler}, concurrency=1, clock=lambda: now[0])
    async with local, client_for(local) as client:
        first = await client.invoke_endpoint_async("ep", body=b"first")
        short = await client.invoke_endpoint_async("ep", body=b"short", request_ttl_seconds=60)
        default = await client.invoke_endpoint_async("ep", body=b"default")
        now[0] += 61  # the queued requests are now 61 s old: past 60, within 21600
        release.set()
        await local.wait_idle(WAIT)

        assert ran == [b"first", b"default"]
        expired = await get_object(local, short.failure_location)
        assert expired.body == (
            b"Request expired: it waited 61 seconds in the queue, longer than its "
            b"RequestTTLSeconds of 60."
        )
        assert (await get_object(local, short.output_location)).status == 404
        assert (await get_object(local, first.output_location)).body == b"first"
        assert (await get_object(local, default.output_location)).body == b"default"
        assert local.stats("ep")["expired"] == 1


# -- naming ----------------------------------------------------------------------------------


async def test_filename_and_s3_output_path_extension() -> None:
    async with LocalEndpoint({"ep": upper}) as local, client_for(local) as client:
        inv = await client.invoke_endpoint_async(
            "ep",
            body=b"abc",
            filename="result.json",
            s3_output_path_extension="batch-7/part_1",
            inference_id="id-1",
        )
        assert inv.output_location == f"{local.output_path}/batch-7/part_1/result.json"
        assert inv.failure_location == f"{local.failure_path}/batch-7/part_1/id-1-error.out"
        await local.wait_idle(WAIT)
        result = await client.wait_for_result(inv, timeout=WAIT)
        assert (result.body, result.location) == (b"ABC", inv.output_location)

        only_ext = await client.invoke_endpoint_async(
            "ep", body=b"x", s3_output_path_extension="daily", inference_id="id-2"
        )
        assert only_ext.output_location == f"{local.output_path}/daily/id-2.out"


async def test_configured_paths_get_their_buckets_created() -> None:
    local = LocalEndpoint(
        {"ep": lambda payload: 1},  # type: ignore[dict-item,return-value]  # not bytes: fails
        output_path="s3://local-outputs-test/prefix/",
        failure_path="s3://local-failures-test/errors",
    )
    async with local, client_for(local) as client:
        assert local.output_path == "s3://local-outputs-test/prefix"
        inv = await client.invoke_endpoint_async("ep", body=b"x", inference_id="n")
        assert inv.output_location == "s3://local-outputs-test/prefix/n.out"
        assert inv.failure_location == "s3://local-failures-test/errors/n-error.out"
        await local.wait_idle(WAIT)
        assert (await get_object(local, inv.failure_location)).status == 200


# -- validation, in the service's shape ------------------------------------------------------


def _headers(**extra: str) -> dict[str, str]:
    return {f"X-Amzn-SageMaker-{name.replace('_', '-')}": value for name, value in extra.items()}


BAD_REQUESTS = [
    pytest.param(
        "nope",
        {},
        b"x",
        "Endpoint nope of account 123456789012 not found.",
        id="unknown-endpoint",
    ),
    pytest.param(
        "ep",
        {"X-Amzn-SageMaker-InputLocation": "s3://b/k"},
        b"x",
        "InputLocation and Body are mutually exclusive: send the payload inline as the "
        "request body or name it in InputLocation, not both.",
        id="both",
    ),
    pytest.param(
        "ep",
        {},
        b"",
        "Either InputLocation or Body must be provided: send the payload inline as the "
        "request body or name its S3 URI in InputLocation.",
        id="neither",
    ),
    pytest.param(
        "ep",
        {},
        b"x" * 128_001,
        "1 validation error detected: Value at 'body' failed to satisfy constraint: "
        "Member must have length less than or equal to 128000",
        id="body-too-large",
    ),
    pytest.param(
        "ep",
        {"X-Amzn-SageMaker-RequestTTLSeconds": "59"},
        b"x",
        "1 validation error detected: Value '59' at 'requestTTLSeconds' failed to satisfy "
        "constraint: Member must have value greater than or equal to 60",
        id="ttl-low",
    ),
    pytest.param(
        "ep",
        {"X-Amzn-SageMaker-RequestTTLSeconds": "21601"},
        b"x",
        "1 validation error detected: Value '21601' at 'requestTTLSeconds' failed to satisfy "
        "constraint: Member must have value less than or equal to 21600",
        id="ttl-high",
    ),
    pytest.param(
        "ep",
        {"X-Amzn-SageMaker-InvocationTimeoutSeconds": "0"},
        b"x",
        "1 validation error detected: Value '0' at 'invocationTimeoutSeconds' failed to "
        "satisfy constraint: Member must have value greater than or equal to 1",
        id="timeout-low",
    ),
    pytest.param(
        "ep",
        {"X-Amzn-SageMaker-InvocationTimeoutSeconds": "3601"},
        b"x",
        "1 validation error detected: Value '3601' at 'invocationTimeoutSeconds' failed to "
        "satisfy constraint: Member must have value less than or equal to 3600",
        id="timeout-high",
    ),
    pytest.param(
        "ep",
        {"X-Amzn-SageMaker-Filename": "a.b.c", "X-Amzn-SageMaker-RequestTTLSeconds": "1"},
        b"x",
        "2 validation errors detected: Value 'a.b.c' at 'filename' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*$; Value '1' at 'requestTTLSeconds' failed "
        "to satisfy constraint: Member must have value greater than or equal to 60",
        id="two-errors",
    ),
]


@pytest.mark.parametrize(("endpoint", "headers", "body", "message"), BAD_REQUESTS)
async def test_invalid_requests_get_the_service_error_shape(
    endpoint: str, headers: dict[str, str], body: bytes, message: str
) -> None:
    async with LocalEndpoint({"ep": upper}) as local, httpx.AsyncClient() as http:
        response = await http.post(
            f"{local.endpoint_url}/endpoints/{endpoint}/async-invocations",
            headers=headers,
            content=body,
        )
        assert local.invocation_count("ep") == 0
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == VALIDATE_TYPE
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-amzn-requestid"]
    assert response.json() == {"message": message}
    # And our client's parser reads it as the service's ValidationError.
    error = parse_error(response.status_code, response.headers, response.content)
    assert isinstance(error, ValidationError)
    assert (error.code, error.message) == ("ValidationError", message)


async def test_our_client_sees_an_unknown_endpoint_as_a_validation_error() -> None:
    async with LocalEndpoint({"ep": upper}) as local, client_for(local) as client:
        with pytest.raises(ValidationError) as caught:
            await client.invoke_endpoint_async("other", body=b"x")
    assert caught.value.status_code == 400
    assert caught.value.message == "Endpoint other of account 123456789012 not found."
    assert caught.value.request_id


# -- concurrency -----------------------------------------------------------------------------


@pytest.mark.slow  # ~1-2 s: moto stores 100 objects, a few ms each
async def test_100_concurrent_invocations_honour_the_concurrency_limit() -> None:
    limit, total = 8, 100
    running = 0
    peak = 0
    full, release = asyncio.Event(), asyncio.Event()

    async def handler(payload: bytes) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == limit:
            full.set()
        await release.wait()
        running -= 1
        return payload.upper()

    async with (
        LocalEndpoint({"ep": handler}, concurrency=limit) as local,
        client_for(local) as client,
    ):
        invocations = await asyncio.gather(
            *(client.invoke_endpoint_async("ep", body=b"item-%d" % i) for i in range(total))
        )
        assert local.invocation_count("ep") == total
        await wait(full)
        # Every request is accepted, the limit's worth run, the rest wait their turn.
        assert local.running("ep") == limit
        assert local.queued("ep") == total - limit
        release.set()
        await local.wait_idle(WAIT)
        assert peak == limit
        assert local.peak_concurrency("ep") == limit
        assert local.stats("ep")["succeeded"] == total
        assert len({inv.inference_id for inv in invocations}) == total
        last = await get_object(local, invocations[-1].output_location)
        assert last.body == b"ITEM-%d" % (total - 1)


async def test_each_endpoint_has_its_own_limit() -> None:
    async with LocalEndpoint({"a": upper, "b": upper}, concurrency={"a": 1, "b": 3}) as local:
        assert [q.concurrency for q in local._queues.values()] == [1, 3]


# -- lifecycle -------------------------------------------------------------------------------


async def test_stop_is_clean_even_with_work_in_flight() -> None:
    started = asyncio.Event()

    async def handler(payload: bytes) -> bytes:
        started.set()
        await asyncio.Event().wait()
        return payload

    before = asyncio.all_tasks()
    local = LocalEndpoint({"ep": handler})
    async with local, client_for(local) as client:
        url = local.endpoint_url
        await client.invoke_endpoint_async("ep", body=b"x")
        await client.invoke_endpoint_async("ep", body=b"y")
        await wait(started)
    assert asyncio.all_tasks() == before
    for thread in threading.enumerate():
        if thread.name.startswith("sagemaker-async-local"):
            thread.join(WAIT)
            assert not thread.is_alive(), thread.name
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


async def test_a_failed_start_releases_everything() -> None:
    before = asyncio.all_tasks()
    local = LocalEndpoint({"ep": "http://127.0.0.1:9/model"})  # nothing listens on port 9
    with pytest.raises(RuntimeError, match=r"model server http://127\.0\.0\.1:9/model"):
        await local.start()
    assert asyncio.all_tasks() == before


async def test_urls_and_defaults() -> None:
    local = LocalEndpoint({"ep": upper})
    with pytest.raises(RuntimeError, match="not started"):
        _ = local.endpoint_url
    assert local.bucket.startswith("sagemaker-async-local-")
    assert local.output_path == f"s3://{local.bucket}/output"
    assert local.failure_path == f"s3://{local.bucket}/failure"
    async with local:
        assert local.endpoint_url == local.s3_endpoint_url
        assert local.endpoint_url == f"http://127.0.0.1:{local.port}"
    # Each LocalEndpoint gets its own bucket, so tests in one process never share objects.
    assert LocalEndpoint({"ep": upper}).bucket != local.bucket


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoints": {}}, "at least one endpoint"),
        ({"endpoints": {"bad_name": upper}}, "not valid on SageMaker"),
        ({"endpoints": {"ep": upper}, "concurrency": 0}, "positive int"),
        ({"endpoints": {"ep": upper}, "output_path": "/tmp/out"}, "s3:// URI"),
        ({"endpoints": {"ep": upper}, "credentials": "nocolon"}, "ACCESS_KEY_ID:SECRET"),
    ],
)
def test_bad_configuration_is_refused_at_once(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalEndpoint(**kwargs)  # type: ignore[arg-type]


def test_the_core_client_never_imports_the_local_endpoint() -> None:
    code = (
        "import sys, sagemaker_async\n"
        "loaded = [m for m in sys.modules if m.startswith(('sagemaker_async.local', 'moto'))]\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
