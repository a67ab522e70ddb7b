"""Standard-mode retries: the pure policy, then the client's loop around it.

The client's loop is driven through the respx seam with side-effect lists; its sleep is a
recorder (no test waits) and its random source is fixed, so every backoff is exact.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from respx.models import CallList

from helpers import (
    INPUT,
    INVOKE_URL,
    accepted,
    make_client,
    new_router,
    service_error,
    use_config_file,
)
from sagemaker_async import (
    AccessDeniedError,
    InternalFailure,
    ParamValidationError,
    ServiceError,
    ServiceUnavailable,
    ThrottlingError,
    TransportError,
    ValidationError,
)
from sagemaker_async._protocol.invoke import THROTTLING_CODES, TRANSIENT_CODES
from sagemaker_async._protocol.retry import (
    DEFAULT_MAX_ATTEMPTS,
    RetryDecision,
    RetryPolicy,
    RetryQuota,
    retry_after_seconds,
)
from sagemaker_async._protocol.sigv4 import FrozenCredentials

# -- the quota -------------------------------------------------------------------------------


def test_quota_costs_are_standard_modes() -> None:
    quota = RetryQuota()
    assert quota.available == quota.capacity == 500
    assert quota.acquire(timeout=False) == 5
    assert quota.acquire(timeout=True) == 10
    assert quota.available == 485


def test_exhausted_quota_pays_for_nothing() -> None:
    quota = RetryQuota(12)
    assert quota.acquire(timeout=True) == 10
    assert quota.acquire(timeout=True) == 0  # 2 left: a timeout retry costs 10
    assert quota.acquire(timeout=False) == 0  # ... and a retry 5
    assert quota.available == 2


def test_success_refunds_what_it_spent_or_adds_one() -> None:
    quota = RetryQuota()
    spent = quota.acquire(timeout=False) + quota.acquire(timeout=True)
    quota.on_success(spent)
    assert quota.available == 500
    quota.available = 100
    quota.on_success(0)  # a first-try success
    assert quota.available == 101
    quota.available = 500
    quota.on_success(0)
    assert quota.available == 500  # never above capacity


# -- the policy ------------------------------------------------------------------------------


def error(status: int, code: str) -> ServiceError:
    return ServiceError("m", code=code, status_code=status)


@pytest.mark.parametrize("code", sorted(THROTTLING_CODES))
def test_throttling_codes_are_retried_as_throttling(code: str) -> None:
    assert RetryPolicy.classify_error(error(400, code)) == RetryDecision(True, throttled=True)


@pytest.mark.parametrize(
    ("status", "code", "decision"),
    [
        (429, "Whatever", RetryDecision(True, throttled=True)),
        (500, "InternalFailure", RetryDecision(True)),
        (502, "502", RetryDecision(True)),
        (503, "ServiceUnavailable", RetryDecision(True)),
        (504, "504", RetryDecision(True)),
        *((400, code, RetryDecision(True)) for code in sorted(TRANSIENT_CODES - THROTTLING_CODES)),
        (400, "ValidationError", RetryDecision(False)),
        (400, "400", RetryDecision(False)),
        (403, "AccessDeniedException", RetryDecision(False)),
        (403, "InvalidSignatureException", RetryDecision(False)),
        (404, "NotFound", RetryDecision(False)),
        (501, "NotImplemented", RetryDecision(False)),
    ],
)
def test_error_classification(status: int, code: str, decision: RetryDecision) -> None:
    assert RetryPolicy.classify_error(error(status, code)) == decision


@pytest.mark.parametrize(
    ("exc", "decision"),
    [
        (httpx.ConnectError("refused"), RetryDecision(True)),
        (httpx.ReadError("reset"), RetryDecision(True)),
        (httpx.WriteError("broken pipe"), RetryDecision(True)),
        (httpx.RemoteProtocolError("peer closed"), RetryDecision(True)),
        (httpx.ConnectTimeout("slow"), RetryDecision(True, timeout=True)),
        (httpx.ReadTimeout("slow"), RetryDecision(True, timeout=True)),
        (httpx.PoolTimeout("busy"), RetryDecision(True, timeout=True)),
        (httpx.LocalProtocolError("Illegal header value"), RetryDecision(False)),
        (httpx.UnsupportedProtocol("ftp://"), RetryDecision(False)),
        (ValueError("not a network error"), RetryDecision(False)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "",
)
def test_exception_classification(exc: BaseException, decision: RetryDecision) -> None:
    assert RetryPolicy.classify_exception(exc) == decision


@pytest.mark.parametrize(
    ("throttled", "expected"),
    [
        (False, [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 20.0, 20.0]),
        (True, [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]),
    ],
    ids=["transient-50ms-base", "throttling-1s-base"],
)
def test_backoff_is_exponential_capped_at_20s(throttled: bool, expected: list[float]) -> None:
    top = RetryPolicy(rng=lambda: 1.0)  # the jitter's upper bound
    delays = [top.backoff(n, throttled=throttled) for n in range(1, len(expected) + 1)]
    assert delays == pytest.approx(expected)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.999])
def test_backoff_is_full_jitter(fraction: float) -> None:
    policy = RetryPolicy(rng=lambda: fraction)
    assert policy.backoff(3, throttled=False) == pytest.approx(fraction * 0.2)
    assert policy.backoff(2, throttled=True) == pytest.approx(fraction * 2.0)
    assert policy.backoff(40, throttled=True) == pytest.approx(fraction * 20.0)


def test_retry_after_overrides_the_jitter_within_the_cap() -> None:
    policy = RetryPolicy(rng=lambda: 1.0)
    assert policy.backoff(1, throttled=True, retry_after=0.25) == 0.25
    assert policy.backoff(1, throttled=False, retry_after=0.0) == 0.0
    assert policy.backoff(1, throttled=False, retry_after=120.0) == 20.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1500", 1.5), ("0", 0.0), ("-5", None), ("soon", None), ("1.5", None)],
)
def test_retry_after_header(value: str, seconds: float | None) -> None:
    assert retry_after_seconds(httpx.Headers({"X-Amz-Retry-After": value})) == seconds
    assert retry_after_seconds(httpx.Headers({})) is None


def test_default_attempts() -> None:
    assert DEFAULT_MAX_ATTEMPTS == RetryPolicy().max_attempts == 3


# -- the client's loop -----------------------------------------------------------------------


def attempt_headers(calls: CallList) -> list[str]:
    return [call.request.headers["amz-sdk-request"] for call in calls]


async def test_faults_then_success_is_three_attempts_with_one_invocation_id() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(
        side_effect=[service_error(500, "InternalFailure"), httpx.Response(502), accepted()]
    )
    client, sleeps = make_client(router, random=lambda: 1.0)
    async with client:
        invocation = await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert invocation.inference_id == "inf-1"
    assert attempt_headers(route.calls) == [
        "attempt=1; max=3",
        "attempt=2; max=3",
        "attempt=3; max=3",
    ]
    ids = {call.request.headers["amz-sdk-invocation-id"] for call in route.calls}
    assert len(ids) == 1
    assert uuid.UUID(ids.pop()).version == 4
    assert sleeps.delays == pytest.approx([0.05, 0.1])
    router.assert_all_called()


async def test_each_call_has_its_own_invocation_id() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    async with client:
        for _ in range(3):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    ids = [call.request.headers["amz-sdk-invocation-id"] for call in route.calls]
    assert len(set(ids)) == 3


async def test_every_attempt_is_signed_afresh() -> None:
    """A retry a second later carries its own date and signature, not the first attempt's."""
    router = new_router()
    route = router.post(INVOKE_URL).mock(side_effect=[httpx.Response(503), accepted()])
    times = iter([1_000_000.0, 1_000_001.0])
    client, _ = make_client(router, clock=lambda: next(times))
    async with client:
        await client.invoke_endpoint_async("my-endpoint", INPUT)
    first, second = (call.request.headers for call in route.calls)
    assert first["x-amz-date"] != second["x-amz-date"]
    assert first["authorization"] != second["authorization"]


async def test_validation_error_is_never_retried() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(
        return_value=service_error(400, "ValidationError", "Endpoint my-endpoint not found.")
    )
    client, sleeps = make_client(router, max_attempts=5)
    async with client:
        with pytest.raises(ValidationError) as info:
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert route.call_count == 1
    assert sleeps.delays == []
    assert info.value.message == "Endpoint my-endpoint not found."
    assert (info.value.status_code, info.value.request_id) == (400, "req-err")
    assert client._sender.retry.quota.available == 500


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (service_error(400, "ThrottlingException", "Rate exceeded"), ThrottlingError),
        (httpx.Response(429), ThrottlingError),
        (service_error(500, "InternalFailure"), InternalFailure),
        (service_error(503, "ServiceUnavailable"), ServiceUnavailable),
        (httpx.Response(504, text="<html>timeout</html>"), ServiceError),
    ],
    ids=["throttling-400", "429", "500", "503", "504"],
)
async def test_retryable_errors_raise_after_max_attempts(
    answer: httpx.Response, cls: type[ServiceError]
) -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=answer)
    client, sleeps = make_client(router, random=lambda: 1.0)
    async with client:
        with pytest.raises(cls):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert route.call_count == 3
    throttled = cls is ThrottlingError
    assert sleeps.delays == pytest.approx([1.0, 2.0] if throttled else [0.05, 0.1])
    assert client._sender.retry.quota.available == 500 - 2 * 5


async def test_x_amz_retry_after_is_honoured() -> None:
    router = new_router()
    router.post(INVOKE_URL).mock(
        side_effect=[
            service_error(503, "ServiceUnavailable", headers={"x-amz-retry-after": "1500"}),
            service_error(400, "ThrottlingException", headers={"x-amz-retry-after": "10"}),
            accepted(),
        ]
    )
    client, sleeps = make_client(router, random=lambda: 1.0)
    async with client:
        await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert sleeps.delays == [1.5, 0.01]


@pytest.mark.parametrize(
    ("kwargs", "env", "config", "expected"),
    [
        ({}, {}, None, 3),
        ({"max_attempts": 5}, {}, None, 5),
        ({"max_attempts": 1}, {"AWS_MAX_ATTEMPTS": "4"}, "max_attempts = 2", 1),
        ({}, {"AWS_MAX_ATTEMPTS": "4"}, "max_attempts = 2", 4),
        ({}, {}, "max_attempts = 2", 2),
        ({"profile_name": "other"}, {}, "max_attempts = 2", 6),
    ],
    ids=["default", "argument", "argument-wins", "env-wins-over-file", "file", "profile"],
)
async def test_max_attempts_sources(
    kwargs: dict[str, object],
    env: dict[str, str],
    config: str | None,
    expected: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if config is not None:
        text = f"[default]\n{config}\n\n[profile other]\nregion = us-east-1\nmax_attempts = 6\n"
        use_config_file(monkeypatch, tmp_path, text)
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=httpx.Response(500))
    credentials = FrozenCredentials("AKIDEXAMPLE", "secret")
    client, _ = make_client(router, credentials=credentials, **kwargs)
    assert client.max_attempts == expected
    async with client:
        with pytest.raises(InternalFailure):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert route.call_count == expected
    assert attempt_headers(route.calls)[-1] == f"attempt={expected}; max={expected}"


@pytest.mark.parametrize(
    ("kwargs", "env"),
    [
        ({"max_attempts": 0}, {}),
        ({"max_attempts": True}, {}),
        ({}, {"AWS_MAX_ATTEMPTS": "three"}),
        ({}, {"AWS_MAX_ATTEMPTS": "0"}),
    ],
)
def test_bad_max_attempts_are_refused(
    kwargs: dict[str, object], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ParamValidationError) as info:
        make_client(**kwargs)
    assert info.value.param == "max_attempts"


async def test_an_empty_quota_stops_retries() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=httpx.Response(500))
    client, sleeps = make_client(router, max_attempts=10)
    client._sender.retry.quota.available = 12  # two retries' worth
    async with client:
        with pytest.raises(InternalFailure):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert route.call_count == 3
    assert len(sleeps.delays) == 2
    assert client._sender.retry.quota.available == 2


async def test_a_storm_drains_the_quota_shared_by_all_calls() -> None:
    """500 tokens pay for 100 retries: a client's 51st failing call is tried only once."""
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=httpx.Response(503))
    client, _ = make_client(router)
    async with client:
        for _ in range(50):
            with pytest.raises(ServiceUnavailable):
                await client.invoke_endpoint_async("my-endpoint", INPUT)
        assert client._sender.retry.quota.available == 0
        assert route.call_count == 150
        with pytest.raises(ServiceUnavailable):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
        assert route.call_count == 151
        # A success does not need the quota, and gives a token back.
        route.mock(return_value=accepted())
        await client.invoke_endpoint_async("my-endpoint", INPUT)
        assert client._sender.retry.quota.available == 1


async def test_success_after_retries_refunds_the_quota() -> None:
    router = new_router()
    router.post(INVOKE_URL).mock(side_effect=[httpx.ReadTimeout, httpx.Response(500), accepted()])
    client, _ = make_client(router)
    client._sender.retry.quota.available = 400
    async with client:
        await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert client._sender.retry.quota.available == 400


@pytest.mark.parametrize(
    ("fault", "cost"),
    [(httpx.ConnectError, 5), (httpx.ReadError, 5), (httpx.ReadTimeout, 10)],
    ids=["connect", "reset", "read-timeout"],
)
async def test_network_faults_are_retried_then_raised_as_transport_error(
    fault: type[httpx.TransportError], cost: int
) -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(side_effect=fault)
    client, sleeps = make_client(router, random=lambda: 1.0)
    async with client:
        with pytest.raises(TransportError) as info:
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert route.call_count == 3
    assert isinstance(info.value.__cause__, fault)
    assert info.value.attempts == 3
    assert "3 attempt" in str(info.value)
    assert sleeps.delays == pytest.approx([0.05, 0.1])
    assert client._sender.retry.quota.available == 500 - 2 * cost


async def test_a_request_the_http_stack_refuses_is_not_retried() -> None:
    """h11 quotes the refused header value, which may be a token: our message must not."""
    router = new_router()
    route = router.post(INVOKE_URL).mock(
        side_effect=httpx.LocalProtocolError("Illegal header value b'SeCrEtToKeN\\n'")
    )
    client, sleeps = make_client(router)
    async with client:
        with pytest.raises(TransportError) as info:
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert route.call_count == 1
    assert sleeps.delays == []
    assert "SeCrEtToKeN" not in str(info.value)
    assert isinstance(info.value.__cause__, httpx.LocalProtocolError)


async def test_network_faults_then_success() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(
        side_effect=[httpx.ConnectError, httpx.ReadTimeout, accepted()]
    )
    client, _ = make_client(router)
    async with client:
        invocation = await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert invocation.inference_id == "inf-1"
    assert route.call_count == 3


# -- expired credentials ---------------------------------------------------------------------


class RotatingProvider:
    """A credential source whose refresh hands out the next key, counting refreshes."""

    source = "test"

    def __init__(self, *, rotates: bool = True) -> None:
        self.current = FrozenCredentials("AKIDOLD", "old-secret", "old-token")
        self.rotates = rotates
        self.refreshes = 0

    async def get(self) -> FrozenCredentials:
        return self.current

    async def refresh(self, stale: FrozenCredentials) -> FrozenCredentials | None:
        self.refreshes += 1
        if not self.rotates:
            return None
        self.current = FrozenCredentials("AKIDNEW", "new-secret", "new-token")
        return self.current


async def test_expired_token_refreshes_once_and_retries_once() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(
        side_effect=[service_error(400, "ExpiredTokenException", "expired"), accepted()]
    )
    client, sleeps = make_client(router)
    provider = RotatingProvider()
    client._sender.credentials = provider  # a fake source: the loop is under test
    async with client:
        invocation = await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert invocation.inference_id == "inf-1"
    assert provider.refreshes == 1
    first, second = (call.request.headers for call in route.calls)
    assert first["x-amz-security-token"] == "old-token"
    assert second["x-amz-security-token"] == "new-token"
    assert "Credential=AKIDNEW/" in second["authorization"]
    assert sleeps.delays == []  # nothing to wait for: the credentials were at fault


async def test_expired_token_twice_is_an_error() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(
        return_value=service_error(403, "ExpiredTokenException", "expired")
    )
    client, _ = make_client(router)
    provider = RotatingProvider()
    client._sender.credentials = provider  # a fake source: the loop is under test
    async with client:
        with pytest.raises(AccessDeniedError) as info:
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert info.value.code == "ExpiredTokenException"
    assert provider.refreshes == 1
    assert route.call_count == 2


async def test_expired_token_without_newer_credentials_is_an_error() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(
        return_value=service_error(400, "ExpiredTokenException", "expired")
    )
    client, _ = make_client(router)
    provider = RotatingProvider(rotates=False)
    client._sender.credentials = provider  # a fake source: the loop is under test
    async with client:
        with pytest.raises(AccessDeniedError):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert provider.refreshes == 1
    assert route.call_count == 1


async def test_expired_token_with_a_rotated_credentials_object() -> None:
    """The real provider for ``credentials=``: the owner rotated the keys in the meantime."""

    class Holder:
        access_key = "AKIDOLD"
        secret_key = "old-secret"
        token: str | None = "old-token"

    holder = Holder()

    def expire_and_rotate(request: httpx.Request) -> httpx.Response:
        holder.access_key, holder.token = "AKIDNEW", "new-token"
        return service_error(400, "ExpiredTokenException")

    router = new_router()
    route = router.post(INVOKE_URL).mock(side_effect=[expire_and_rotate, accepted()])
    client, _ = make_client(router, credentials=holder)
    async with client:
        await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert [c.request.headers["x-amz-security-token"] for c in route.calls] == [
        "old-token",
        "new-token",
    ]
