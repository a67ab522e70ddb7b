"""The asynchronous part: per-endpoint queues, a fixed number of workers, and the outcome.

Each endpoint gets a FIFO queue and ``concurrency`` worker tasks — the local counterpart of
``MaxConcurrentInvocationsPerInstance`` — so at most that many handlers run at once and the
rest wait, as on the service. A worker takes the oldest request and

1. expires it if it waited longer than its RequestTTLSeconds (measured on an injectable
   clock, so tests can age a request without waiting hours);
2. reads the payload (inline, or GetObject of InputLocation — at this point, not when the
   request was accepted, like the service);
3. runs the handler under InvocationTimeoutSeconds;
4. writes exactly one object: the output, or the failure text.

Nothing is written before processing ends, so the pending state is real: until then, both
the output and the failure location answer 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ._handlers import HandlerError, InvocationAttributes, Runner
from ._storage import Storage, StorageError

__all__ = [
    "DEFAULT_INVOCATION_TIMEOUT_SECONDS",
    "DEFAULT_REQUEST_TTL_SECONDS",
    "FAILURE_CONTENT_TYPE",
    "EndpointQueue",
    "Job",
]

logger = logging.getLogger("sagemaker_async.local")

# The service's defaults when a request names none.
DEFAULT_REQUEST_TTL_SECONDS = 21600
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 900
FAILURE_CONTENT_TYPE = "text/plain; charset=utf-8"
_LOG_REASON = 200  # characters of a failure's text shown in the log line


@dataclass(frozen=True, slots=True)
class Job:
    """One accepted request, as it waits in the queue."""

    attributes: InvocationAttributes
    body: bytes | None = field(repr=False)
    input_location: str | None
    output_location: str
    failure_location: str
    accepted_at: float
    request_ttl_seconds: int
    invocation_timeout_seconds: int


@dataclass
class Stats:
    """What happened on one endpoint; read by the test helpers."""

    accepted: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    running: int = 0
    peak_running: int = 0


class EndpointQueue:
    """The queue and workers of one endpoint."""

    def __init__(
        self,
        name: str,
        runner: Runner,
        *,
        concurrency: int,
        storage: Storage,
        clock: Callable[[], float],
        time_scale: float,
        on_finished: Callable[[], None],
    ) -> None:
        self.name = name
        self.runner = runner
        self.concurrency = concurrency
        self.stats = Stats()
        self._storage = storage
        self._clock = clock
        self._time_scale = time_scale
        self._on_finished = on_finished
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[int, Job | None] = {}
        self._stopped: list[Job] = []
        self._unwritten: list[str] = []
        self._closing = False
        # The one write a job ends with, once begun, by id(job): (job, is a failure, write).
        self._in_flight: dict[int, tuple[Job, bool, asyncio.Future[None]]] = {}

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(i), name=f"sagemaker-async-local:{self.name}:{i}")
            for i in range(self.concurrency)
        ]

    async def aclose(self) -> list[Job]:
        """Stop the workers; returns the jobs still queued or running, which have no object.

        A running handler is cancelled with its worker (a worker process is killed). A job
        whose final write has begun is not among them: its outcome is that write, which
        ``settle`` waits for — failing it too could leave both an output and a failure.
        """
        # The flag, not only the cancel: a cancellation can be lost in a race inside code
        # the worker awaits (Python < 3.12's wait_for is one such place), and a worker that
        # missed it must not go back to waiting on the queue forever.
        self._closing = True
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        # A slot still holding a job with no write in flight was cancelled before it wrote.
        unfinished = [
            job
            for job in self._running.values()
            if job is not None and id(job) not in self._in_flight
        ]
        self._running.clear()
        while not self._queue.empty():
            unfinished.append(self._queue.get_nowait())
        return unfinished

    async def settle(self) -> None:
        """Wait for the final writes a stop found under way; each job ends with its own.

        A write that failed (nothing stored) gets the failure object the running endpoint
        would have written.
        """
        while self._in_flight:
            key, (job, failed, write) = next(iter(self._in_flight.items()))
            try:
                await asyncio.shield(write)
            except Exception as exc:
                del self._in_flight[key]
                if failed:
                    self._unwritten.append(job.attributes.inference_id)
                    logger.warning("%s: %s: no failure object written", self.name, job)
                    continue
                try:
                    await self._fail(job, f"Could not store the output: {exc}")
                except StorageError:
                    self._unwritten.append(job.attributes.inference_id)
                    logger.warning("%s: %s: no failure object written", self.name, job)
                    continue
                self._on_finished()
                continue
            del self._in_flight[key]
            if not failed:
                self._succeeded(job)
            self._on_finished()

    def abandon(self) -> None:
        """The stop's time is up: final writes still under way are cancelled and reported."""
        for job, _, write in self._in_flight.values():
            write.cancel()
            self._unwritten.append(job.attributes.inference_id)
        self._in_flight.clear()

    async def fail_stopped(self, jobs: list[Job]) -> None:
        """Give each unfinished job its failure object: the endpoint stopped."""
        self._stopped = list(jobs)
        while self._stopped:
            job = self._stopped[0]
            try:
                await self._fail(
                    job,
                    "Endpoint stopped: the local endpoint was shut down before this request "
                    "finished.",
                )
            except StorageError:
                logger.warning("%s: %s: no failure object written", self.name, job)
                self._stopped.pop(0)
                self._unwritten.append(job.attributes.inference_id)
                continue
            self._stopped.pop(0)
            self._on_finished()

    def unwritten_stopped(self) -> list[str]:
        """Inference ids of stopped jobs whose failure object was not (or not yet) written."""
        ids = self._unwritten + [job.attributes.inference_id for job in self._stopped]
        return list(dict.fromkeys(ids))  # a stopped job's cut-off write is listed once

    def submit(self, job: Job) -> None:
        self.stats.accepted += 1
        self._queue.put_nowait(job)
        # Never the payload or the custom attributes: they may be sensitive.
        logger.info(
            "%s: %s queued (%d waiting, %d running)",
            self.name,
            job.attributes.inference_id,
            self._queue.qsize(),
            self.stats.running,
        )

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def _work(self, slot: int) -> None:
        reserve = getattr(self.runner, "reserve", None)  # worker processes: hold one first
        while not self._closing:
            if reserve is not None:
                await reserve()
            job = await self._queue.get()
            self._running[slot] = job
            try:
                await self._process(job)
            except Exception as exc:
                # Nothing vanishes: whatever went wrong, the request gets its failure object.
                logger.exception("local endpoint %s: processing %s failed", self.name, job)
                with contextlib.suppress(Exception):
                    await self._fail(job, f"Internal error of the local endpoint: {exc}")
            except asyncio.CancelledError:
                # Stopping: aclose() hands this job on (it has no object yet).
                raise
            self._running[slot] = None
            self._on_finished()

    async def write_object(self, job: Job, *, failed: bool, body: bytes, content_type: str) -> None:
        """Write the one object a request ends with: its output, or its failure.

        The single place an outcome becomes visible, so whatever must follow an outcome (a
        notification, say) belongs here.
        """
        location = job.failure_location if failed else job.output_location
        write = asyncio.ensure_future(self._storage.write(location, body, content_type))
        key = id(job)
        self._in_flight[key] = (job, failed, write)
        try:
            # Shielded: once begun, the write is the request's outcome. A stop that cancels
            # this worker leaves it running and waits for it (``settle``) instead of also
            # failing the request: the object may already be stored, the answer in flight.
            await asyncio.shield(write)
        except asyncio.CancelledError:
            raise  # still in flight: ``settle`` owns it now
        except BaseException:
            self._in_flight.pop(key, None)
            raise
        self._in_flight.pop(key, None)

    async def _fail(self, job: Job, message: str) -> None:
        self.stats.failed += 1
        await self.write_object(
            job, failed=True, body=message.encode("utf-8"), content_type=FAILURE_CONTENT_TYPE
        )
        reason = message if len(message) <= _LOG_REASON else message[: _LOG_REASON - 1] + "…"
        logger.info(
            "%s: %s failed -> %s (%s)",
            self.name,
            job.attributes.inference_id,
            job.failure_location,
            reason,
        )

    async def _process(self, job: Job) -> None:
        waited = self._clock() - job.accepted_at
        if waited > job.request_ttl_seconds:
            self.stats.expired += 1
            await self._fail(
                job,
                f"Request expired: it waited {waited:.0f} seconds in the queue, longer than its "
                f"RequestTTLSeconds of {job.request_ttl_seconds}.",
            )
            return
        if job.body is not None:
            payload = job.body
        else:
            assert job.input_location is not None
            try:
                payload = await self._storage.read(job.input_location)
            except StorageError as exc:
                await self._fail(job, f"Could not read the input: {exc}")
                return

        stats = self.stats
        failure: str | None = None
        stats.running += 1
        stats.peak_running = max(stats.peak_running, stats.running)
        # A task and asyncio.wait rather than wait_for: before Python 3.12, wait_for can
        # swallow the worker's own cancellation when the handler finishes at that moment.
        run = asyncio.ensure_future(self.runner(payload, job.attributes))
        try:
            await asyncio.wait({run}, timeout=job.invocation_timeout_seconds * self._time_scale)
            if run.done():
                output = run.result()
            else:
                # Stop waiting, as the service does. A sync handler's thread cannot be
                # stopped; it runs on and its result is dropped.
                run.cancel()
                failure = (
                    "Inference timed out: the model did not answer within the "
                    f"InvocationTimeoutSeconds of {job.invocation_timeout_seconds}."
                )
        except HandlerError as exc:
            failure = exc.message
        except Exception as exc:
            logger.debug("local endpoint %s: handler raised", self.name, exc_info=True)
            failure = f"Model error: {type(exc).__name__}: {exc}"
        finally:
            stats.running -= 1
            if not run.done():
                run.cancel()  # we are being cancelled: the handler goes with us

        if failure is not None:
            await self._fail(job, failure)
            return
        try:
            await self.write_object(
                job, failed=False, body=output.body, content_type=output.content_type
            )
        except StorageError as exc:  # e.g. a content type S3 cannot store
            await self._fail(job, f"Could not store the output: {exc}")
            return
        self._succeeded(job)

    def _succeeded(self, job: Job) -> None:
        self.stats.succeeded += 1
        logger.info(
            "%s: %s done -> %s", self.name, job.attributes.inference_id, job.output_location
        )
