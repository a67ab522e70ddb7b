"""Reused InferenceIds and Filenames end to end against the local endpoint.

A reused id (or file name) points the new invocation at the previous run's objects. The
previous run is made an hour old by moving its objects' Last-Modified back in moto (the
local endpoint's S3 is moto in this process): the rule is about age, and no test may wait
for a wall-clock second to pass.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sagemaker_async import InferenceFailedError
from sagemaker_async.local import LocalEndpoint
from test_local_support import client_for, warm_moto

__all__ = ["warm_moto"]

pytestmark = pytest.mark.usefixtures("warm_moto")

WAIT = 5.0


def age(uri: str, hours: float = 1.0) -> None:
    """Make the object at ``uri`` look as if S3 wrote it ``hours`` ago."""
    from moto.s3.models import s3_backends

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    for account in s3_backends.values():
        for backend in account.values():
            stored = backend.buckets.get(bucket)
            if stored is not None and key in stored.keys:
                obj = stored.keys[key]
                obj.last_modified = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(
                    hours=hours
                )
                return
    raise AssertionError(f"no object at {uri}")


class Gate:
    """A handler whose answers the test releases one at a time."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[Any] = asyncio.Queue()

    async def __call__(self, payload: bytes) -> bytes:
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        return bytes(answer)


@pytest.mark.parametrize("reuse", ["inference_id", "filename"])
async def test_a_reused_key_never_returns_the_previous_output(reuse: str) -> None:
    gate = Gate()
    kwargs = {reuse: "fixed-name.json" if reuse == "filename" else "idempotent-1"}
    async with LocalEndpoint({"ep": gate}) as local, client_for(local) as client:
        first = await client.invoke_endpoint_async("ep", body=b"1", **kwargs)
        gate.answers.put_nowait(b"first run")
        assert (
            await client.wait_for_result(first, timeout=WAIT, poll_interval=0.02)
        ).body == b"first run"
        age(first.output_location)

        second = await client.invoke_endpoint_async("ep", body=b"2", **kwargs)
        assert second.output_location == first.output_location
        assert second.submitted_at is not None
        # The old output is still there, and it is not the answer.
        assert await client.poll_result(second) is None
        waiter = asyncio.ensure_future(
            client.wait_for_result(second, timeout=WAIT, poll_interval=0.02)
        )
        await asyncio.sleep(0)
        assert not waiter.done()
        gate.answers.put_nowait(b"second run")
        assert (await waiter).body == b"second run"


async def test_a_new_failure_is_not_hidden_behind_the_old_output() -> None:
    gate = Gate()
    async with LocalEndpoint({"ep": gate}) as local, client_for(local) as client:
        first = await client.invoke_endpoint_async("ep", body=b"1", inference_id="same")
        gate.answers.put_nowait(b"old output")
        await client.wait_for_result(first, timeout=WAIT, poll_interval=0.02)
        age(first.output_location)

        second = await client.invoke_endpoint_async("ep", body=b"2", inference_id="same")
        gate.answers.put_nowait(RuntimeError("the second run failed"))
        with pytest.raises(InferenceFailedError, match="the second run failed"):
            await client.wait_for_result(second, timeout=WAIT, poll_interval=0.05)
