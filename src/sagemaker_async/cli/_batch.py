"""The batch engine: submit items with an adaptive limit, record each one, optionally wait.

The order of events per item is what makes a batch resumable without duplicates:

1. the payload is prepared (read if small, uploaded under a deterministic key if large);
2. InvokeEndpointAsync is sent;
3. the moment it returns, the record line is written and flushed — before anything else.

A run first reads the record and skips every item it says was submitted. Stopping
(Ctrl-C, SIGTERM, too many errors) never abandons a request in flight: no new item
starts, the invocations already sent are awaited and recorded, then the run ends. Only a
second Ctrl-C cancels requests mid-flight, and says so.

Every request is retried by the client's sender first (``max_attempts``, its backoff).
Throttling that outlasts those retries is still not an item error: the item backs off and
goes again, and the limit of requests in flight is halved (``AdaptiveLimit``). That round
sits above the sender's retries for what one request cannot know: the sender's backoff
starts afresh with each call and sees one request, while the batch lowers its concurrency
for every item and keeps a throttled item alive, with a pause that grows from round to
round, through a burst longer than one request's retries.

Why not ``client.submit``: it goes from payload to request in one call, and a batch needs
the moment in between. A stop (Ctrl-C) that comes while a file is read or uploaded must
not be followed by a new InvokeEndpointAsync — the item was never accepted, so the next
run sends it, and the stop sends nothing more (a slow read, a FIFO, a 1 GB upload can
take long). So ``_prepare`` makes the payload with the client's public ``upload_input``
(or a bounded read), the stop is checked, and ``invoke_endpoint_async`` sends it; the size
rule is the manifest's, checked before the first request and again on the bytes read.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..options import MAX_INLINE_BODY
from ._aimd import AdaptiveLimit, Slot
from ._errors import CliError, Redactor, describe
from ._manifest import Item, upload_uri
from ._progress import Counters, Progress
from ._record import FINAL_OUTCOMES, ItemState, RecordFile

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .. import AsyncInvocation, InferenceResult
    from ..options import InvokeOptions

__all__ = ["Batch", "BatchClient", "BatchSettings"]

INLINE_LIMIT = MAX_INLINE_BODY  # what can go inline: the model's limit, from the table
MAX_THROTTLE_ROUNDS = 10
THROTTLE_BASE_DELAY = 1.0
THROTTLE_MAX_DELAY = 20.0
MAX_WAITERS = 256  # results waited for at once (each polls S3 with HEAD, backing off)
_MAX_ERROR_TEXT = 1000


class BatchClient(Protocol):
    """What a batch needs of ``AsyncInferenceClient`` (fakes stand in for it in tests)."""

    async def invoke_endpoint_async(
        self,
        endpoint_name: str,
        input_location: str | None = None,
        *,
        body: bytes | None = None,
        **options: Unpack[InvokeOptions],
    ) -> AsyncInvocation: ...

    async def upload_input(
        self, data: Any, s3_uri: str, *, content_type: str | None = None
    ) -> str: ...

    async def wait_for_result(
        self, invocation: AsyncInvocation, *, timeout: float | None, poll_interval: float
    ) -> InferenceResult: ...


@dataclass(frozen=True, slots=True)
class BatchSettings:
    endpoint_name: str
    concurrency: int
    wait: bool = False
    timeout: float | None = None
    poll_interval: float = 1.0
    upload_prefix: str | None = None
    max_errors: int = 10


@dataclass(frozen=True, slots=True)
class _Payload:
    body: bytes | None = None
    input_location: str | None = None
    uploaded: bool = False


def _read_at_most(path: Path, limit: int) -> bytes:
    with path.open("rb") as stream:
        return stream.read(limit)


def _short(text: str) -> str:
    text = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."


class Batch:
    """One run of a batch over ``items``; ``run`` returns the counters at the end."""

    def __init__(
        self,
        client: BatchClient,
        items: Sequence[Item],
        record: RecordFile,
        settings: BatchSettings,
        progress: Progress,
        *,
        redact: Redactor | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._items = items
        self._record = record
        self._settings = settings
        self._progress = progress
        self.counters = progress.counters
        self._redact = redact or Redactor()
        self._sleep = sleep
        self._random = rng
        self.limit = AdaptiveLimit(settings.concurrency)
        self._stop = asyncio.Event()
        self.stop_reason: str | None = None
        self.fatal: BaseException | None = None
        self._submissions: set[asyncio.Task[None]] = set()
        self._waiters: set[asyncio.Task[None]] = set()
        self._wait_slots = asyncio.Semaphore(MAX_WAITERS)
        self.last_error: str | None = None
        self.hard_stopped_in_flight = 0  # set by whoever cancels the run mid-flight

    # -- control ------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def in_flight(self) -> int:
        """Submissions started and not yet recorded."""
        return sum(not task.done() for task in self._submissions)

    def stop(self, reason: str) -> None:
        """Start no new item; let the invocations in flight finish and be recorded.

        Waits for results are cancelled: their items are recorded as submitted, and the
        next run with ``--wait`` waits for them again.
        """
        if self.stopping:
            return
        self.stop_reason = reason
        self._stop.set()
        for task in self._waiters:
            task.cancel()

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> Counters:
        states = self._record.load()
        counters = self.counters
        counters.total = len(self._items)
        counters.waiting = self._settings.wait
        counters.concurrency = self.limit.limit
        to_submit: list[Item] = []
        to_wait: list[tuple[Item, AsyncInvocation]] = []
        for item in self._items:
            state = states.get(item.key)
            if state is None or not state.submitted:
                to_submit.append(item)
            elif (
                self._settings.wait
                and state.outcome not in FINAL_OUTCOMES
                and state.output_location is not None
            ):
                to_wait.append((item, self._invocation(state)))
            else:
                counters.skipped += 1
        counters.carried = len(to_wait)
        self._record.open()
        try:
            self._progress.update()
            for item, invocation in to_wait:
                self._spawn(self._waiters, self._wait(item, invocation))
            for item in to_submit:
                if self.stopping:
                    break
                slot = await self._acquire()
                if slot is None:
                    break
                self._spawn(self._submissions, self._submit(item, slot))
            await self._settle(self._submissions)
            await self._settle(self._waiters)
        finally:
            # Only a hard stop (cancellation) gets here with tasks still running.
            for task in self._submissions | self._waiters:
                task.cancel()
            await asyncio.gather(*self._submissions, *self._waiters, return_exceptions=True)
            self._record.close()
            counters.concurrency = self.limit.limit
            self._progress.close()
        if self.fatal is not None:
            raise self.fatal
        return counters

    @staticmethod
    def _invocation(state: ItemState) -> AsyncInvocation:
        from .. import AsyncInvocation

        return AsyncInvocation(
            state.inference_id or "", state.output_location, state.failure_location
        )

    def _spawn(self, tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        tasks.add(task)

    async def _settle(self, tasks: set[asyncio.Task[None]]) -> None:
        """Wait for every task of the set, including those added while waiting."""
        while any(not task.done() for task in tasks):
            await asyncio.wait([task for task in tasks if not task.done()])

    async def _acquire(self) -> Slot | None:
        """A slot, or None once the batch is stopping (even while waiting for one)."""
        if self.stopping:
            return None
        acquire = asyncio.ensure_future(self.limit.acquire())
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            acquire.cancel()  # a no-op once it has its slot
            await asyncio.gather(acquire, stopped, return_exceptions=True)
        if acquire.cancelled() or acquire.exception() is not None:
            return None
        slot = acquire.result()
        if self.stopping:
            self.limit.release()
            return None
        return slot

    async def _pause(self, seconds: float) -> None:
        """A backoff that a stop cuts short."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sleeper, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopped.cancel()
            await asyncio.gather(sleeper, stopped, return_exceptions=True)

    # -- one item -------------------------------------------------------------------------

    def _entry(self, item: Item, **fields: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"key": item.key}
        if item.line is not None:
            entry["line"] = item.line
        entry["input"] = item.input
        entry.update(fields)
        return entry

    def _fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stop(f"stopped by {type(exc).__name__}")

    async def _prepare(self, item: Item) -> _Payload:
        """Inline bytes, an S3 URI as given, or a large file uploaded (same key every run).

        Not ``client.submit``: the caller checks for a stop between this and the invoke
        (see the module docstring).
        """
        if item.s3_uri is not None:
            return _Payload(input_location=item.s3_uri)
        assert item.path is not None
        prefix = self._settings.upload_prefix
        if item.size is not None and item.size > INLINE_LIMIT and prefix is not None:
            location = upload_uri(prefix, item)
            await self._client.upload_input(
                item.path, location, content_type=item.options.get("content_type")
            )
            return _Payload(input_location=location, uploaded=True)
        body = await asyncio.to_thread(_read_at_most, item.path, INLINE_LIMIT + 1)
        if len(body) > INLINE_LIMIT:
            from ..errors import ParamValidationError

            raise ParamValidationError(
                f"{item.input} grew past the {INLINE_LIMIT:,} bytes that can go inline "
                "(or is not a regular file, which cannot be uploaded)",
                param="input",
            )
        return _Payload(body=body)

    async def _submit(self, item: Item, slot: Slot) -> None:
        from ..errors import (
            AccessDeniedError,
            NoCredentialsError,
            SageMakerAsyncError,
            ThrottlingError,
        )

        holding = True
        try:
            payload = await self._prepare(item)
            if self.stopping:
                return  # prepared (perhaps uploaded) but not sent: the next run sends it
            throttles = 0
            while True:
                try:
                    invocation = await self._client.invoke_endpoint_async(
                        self._settings.endpoint_name,
                        payload.input_location,
                        body=payload.body,
                        **item.options,
                    )
                except ThrottlingError:
                    holding = False
                    self.limit.on_throttle(slot)
                    self.limit.release()
                    self.counters.throttled += 1
                    self.counters.concurrency = self.limit.limit
                    self._progress.update()
                    throttles += 1
                    if throttles > MAX_THROTTLE_ROUNDS:
                        raise
                    await self._pause(self._backoff(throttles))
                    next_slot = await self._acquire()
                    if next_slot is None:
                        return  # stopping: this item was never accepted; the next run sends it
                    slot, holding = next_slot, True
                    continue
                break
            # Recorded before anything else can fail or be cancelled: this line is what
            # keeps the next run from sending the item again.
            fields: dict[str, Any] = {}
            if payload.uploaded:
                fields["input_location"] = payload.input_location
            self._record.append(
                self._entry(
                    item,
                    submitted=True,
                    inference_id=invocation.inference_id,
                    output_location=invocation.output_location,
                    failure_location=invocation.failure_location,
                    **fields,
                )
            )
            self.limit.on_success()
            self.counters.submitted += 1
            if self._settings.wait and not self.stopping:
                self._spawn(self._waiters, self._wait(item, invocation))
        except CliError as exc:  # the record cannot be written: nothing is safe to send
            self._fail(exc)
        except (NoCredentialsError, AccessDeniedError) as exc:
            # Every other item would fail the same way.
            self._record_error(item, exc)
            self._fail(exc)
        except (SageMakerAsyncError, OSError) as exc:
            self._record_error(item, exc)
            if self.counters.errors > self._settings.max_errors:
                # No count here: the invocations still in flight may add errors, and the
                # final message and the summary count them all.
                self.stop(
                    f"more than {self._settings.max_errors} items could not be submitted "
                    f"(--max-errors {self._settings.max_errors})"
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not an item's problem: stop the batch
            self._fail(exc)
        finally:
            if holding:
                self.limit.release()
            self.counters.concurrency = self.limit.limit
            self._progress.update()

    def _record_error(self, item: Item, exc: BaseException) -> None:
        self.counters.errors += 1
        self.last_error = describe(exc, self._redact)
        try:
            self._record.append(self._entry(item, submitted=False, error=self.last_error))
        except CliError as write_error:
            self._fail(write_error)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, base * 2^(attempt-1)], capped."""
        ceiling = min(THROTTLE_MAX_DELAY, THROTTLE_BASE_DELAY * 2.0 ** (attempt - 1))
        return self._random() * ceiling

    async def _wait(self, item: Item, invocation: AsyncInvocation) -> None:
        from ..errors import InferenceFailedError, SageMakerAsyncError, WaitTimeoutError

        fields: dict[str, Any]
        async with self._wait_slots:
            if self.stopping:
                return
            try:
                result = await self._client.wait_for_result(
                    invocation,
                    timeout=self._settings.timeout,
                    poll_interval=self._settings.poll_interval,
                )
            except InferenceFailedError as exc:
                self.counters.failed += 1
                fields = {"outcome": "failed", "error": self._redact(_short(exc.message))}
            except WaitTimeoutError:
                self.counters.timeouts += 1
                fields = {"outcome": "timeout"}
            except (SageMakerAsyncError, OSError) as exc:
                self.counters.errors += 1
                self.last_error = describe(exc, self._redact)
                fields = {"outcome": "error", "error": self.last_error}
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(exc)
                return
            else:
                self.counters.succeeded += 1
                fields = {"outcome": "succeeded", "result_location": result.location}
        try:
            self._record.append(
                self._entry(
                    item,
                    submitted=True,
                    inference_id=invocation.inference_id,
                    output_location=invocation.output_location,
                    failure_location=invocation.failure_location,
                    **fields,
                )
            )
        except CliError as exc:
            self._fail(exc)
        self._progress.update()
