"""Waits over real sockets: paced polls leave the pool to other calls; storms only delay.

A real server on 127.0.0.1 holds every HEAD unanswered (a slow S3) and answers invokes at
once. Without pacing, 200 waits would open 400 HEADs and take every one of the default
pool's 256 connections: the invoke would wait for a slot until its pool timeout. With
pacing, polls use at most half the pool and the invoke goes straight through. A second
server resets connections and answers 503 before it serves the object: the wait sees it.
"""

from __future__ import annotations

import asyncio
import contextlib

from sagemaker_async import AsyncInferenceClient, AsyncInvocation, WaitTimeoutError
from sagemaker_async._io.runtime import Runtime
from sagemaker_async._io.schedule import MAX_LOOKS_IN_FLIGHT

WAITS = 200  # 400 HEADs: more than the pool's 256 connections


class SlowS3:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.full = asyncio.Event()  # set when the paced HEADs have all arrived
        self.heads_open = 0
        self.most_heads_open = 0
        self.invokes = 0
        self.handlers: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop every connection handler and wait for it: nothing outlives the test."""
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method = head.split(b" ", 1)[0]
                if method == b"HEAD":
                    self.heads_open += 1
                    self.most_heads_open = max(self.most_heads_open, self.heads_open)
                    if self.heads_open >= 2 * MAX_LOOKS_IN_FLIGHT:
                        self.full.set()
                    await self.release.wait()
                    self.heads_open -= 1
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                else:
                    self.invokes += 1
                    body = b'{"InferenceId": "fresh"}'
                    writer.write(
                        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                        b"X-Amzn-SageMaker-OutputLocation: s3://bucket/out/fresh.out\r\n"
                        b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
                    )
                await writer.drain()


async def test_waits_are_paced_and_an_invoke_is_not_starved() -> None:
    s3 = SlowS3()
    # A backlog for 256 connections at once: past the default 100, connects are dropped and
    # retried a second later.
    server = await asyncio.start_server(s3.handle, "127.0.0.1", 0, backlog=1024)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = AsyncInferenceClient(
        "us-east-1",
        endpoint_url=url,
        s3_endpoint_url=url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )
    async with client:
        waits = [
            asyncio.ensure_future(
                client.wait_for_result(
                    AsyncInvocation(f"i{n}", f"s3://bucket/out/{n}.out", f"s3://bucket/f/{n}"),
                    timeout=30,
                )
            )
            for n in range(WAITS)
        ]
        await asyncio.wait_for(s3.full.wait(), 5)
        for _ in range(50):
            await asyncio.sleep(0)  # a chance for any unpaced HEAD to show up too
        invocation = await asyncio.wait_for(client.invoke_endpoint_async("ep", body=b"x"), 5)
        assert invocation.inference_id == "fresh"
        assert s3.most_heads_open == 2 * MAX_LOOKS_IN_FLIGHT
        for wait in waits:
            wait.cancel()
        s3.release.set()
        results = await asyncio.gather(*waits, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert not any(isinstance(r, WaitTimeoutError) for r in results)
    server.close()
    await s3.close()
    await server.wait_closed()


class Stormy:
    """Resets the first connections, answers 503 to the next HEADs, then serves the object."""

    def __init__(self, resets: int, unavailable: int) -> None:
        self.resets = resets
        self.unavailable = unavailable
        self.heads = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.resets:
                self.resets -= 1
                writer.transport.abort()  # a reset, before any answer
                return
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    if head.startswith(b"HEAD"):
                        self.heads += 1
                        if self.unavailable:
                            self.unavailable -= 1
                            writer.write(b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n")
                        elif b"/out/" in head.split(b"\r\n", 1)[0]:
                            writer.write(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                b"Last-Modified: Thu, 26 Nov 2099 00:00:00 GMT\r\n\r\n"
                            )
                        else:
                            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    else:
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
                    await writer.drain()
        finally:
            writer.close()


async def test_resets_and_503s_on_real_sockets_only_delay_a_wait() -> None:
    stormy = Stormy(resets=4, unavailable=5)
    server = await asyncio.start_server(stormy.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    delays: list[float] = []

    async def no_wait(delay: float) -> None:
        delays.append(delay)

    client = AsyncInferenceClient(
        "us-east-1",
        s3_endpoint_url=url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        _runtime=Runtime(poll_sleep=no_wait),
    )
    quota = client._sender.retry.quota.available
    async with client:
        result = await client.wait_for_result(
            AsyncInvocation("i", "s3://bucket/out/1.out", "s3://bucket/failures/1.out"),
            timeout=3600,
        )
    assert result.body == b"fresh"
    assert len(delays) >= 5  # each storm answer cost one poll delay, not the wait
    assert client._sender.retry.quota.available == quota
    server.close()
    await server.wait_closed()
