"""HEADs of missing keys answered by the local endpoint itself, exactly as moto answers them.

Oracle: moto. Every request here is answered twice by the same backend, once with the
missing-key answer on and once with every HEAD sent to moto, and the two answers must agree
(status, headers but moto's random request id, body). The cases the fast answer must leave
to moto are among them, and which of the two answered is checked too: a fast answer where
moto's would differ is the failure this guards against. A hypothesis test changes the parts
of a fast-answered HEAD at random (method, bucket, key and its encoding, query, host,
signing region and key, a pinned account, one more header) and compares every fast answer
with moto's.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from botocore_oracle import boto3_s3, botocore_request
from sagemaker_async.local import LocalEndpoint, _fast_head
from sagemaker_async.local._http import Request, Response
from sagemaker_async.local._s3backend import MotoBackend
from test_local_moto_routing import HOST, as_request
from test_local_support import backend_fixture, warm_moto  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("warm_moto")


def signed(operation: str, *, region: str = "us-east-1", **params: Any) -> Request:
    return as_request(
        botocore_request(boto3_s3(region, endpoint_url=f"http://{HOST}"), operation, **params)
    )


def with_header(request: Request, name: bytes, value: bytes) -> Request:
    return Request(request.method, request.target, (*request.headers, (name, value)), request.body)


def comparable(response: Response) -> tuple[int, dict[str, str], bytes]:
    headers = {
        name.lower(): value if isinstance(value, str) else value.decode()
        for name, value in response.headers
        if name.lower() != "x-amzn-requestid"
    }
    return response.status, headers, response.body


async def answers(backend: MotoBackend, request: Request) -> tuple[Response, Response, bool]:
    """The backend's answer, moto's own answer, and whether the first was the fast one."""
    heads = backend.missing_key_heads
    assert heads is not None
    before = heads.answered
    fast = await backend.handle(request)
    answered_fast = heads.answered > before
    backend.missing_key_heads = None
    try:
        moto = await backend.handle(request)
    finally:
        backend.missing_key_heads = heads
    return fast, moto, answered_fast


async def setup_buckets(backend: MotoBackend) -> tuple[str, str]:
    """A plain bucket with one key (and CORS rules, which moto answers an ``Origin`` with),
    and a versioned one whose key is deleted (a marker)."""
    plain, versioned = f"fast-{uuid.uuid4().hex[:12]}", f"fast-v-{uuid.uuid4().hex[:12]}"
    for request in (
        signed("create_bucket", Bucket=plain),
        signed("put_object", Bucket=plain, Key="there.out", Body=b"x"),
        signed(
            "put_bucket_cors",
            Bucket=plain,
            CORSConfiguration={
                "CORSRules": [{"AllowedOrigins": ["http://a.example"], "AllowedMethods": ["HEAD"]}]
            },
        ),
        signed("create_bucket", Bucket=versioned),
        signed(
            "put_bucket_versioning",
            Bucket=versioned,
            VersioningConfiguration={"Status": "Enabled"},
        ),
        signed("put_object", Bucket=versioned, Key="gone.out", Body=b"x"),
        signed("delete_object", Bucket=versioned, Key="gone.out"),
    ):
        assert (await backend.handle(request)).status in (200, 204)
    return plain, versioned


async def test_missing_keys_are_answered_fast_and_as_moto_does(backend: MotoBackend) -> None:
    plain, _ = await setup_buckets(backend)
    missing = signed("head_object", Bucket=plain, Key="pending/abc-123.out")
    cases = [
        missing,
        signed("head_object", Bucket=plain, Key="a/b/c_d~e.out"),
        with_header(missing, b"if-none-match", b'"abc"'),  # conditions don't matter: 404
        Request("HEAD", f"/{plain}/nobody.out".encode(), ((b"host", HOST.encode()),), b""),
        Request("HEAD", f"/{plain}/x".encode(), ((b"host", b"localhost:4566"),), b""),
    ]
    for request in cases:
        fast, moto, answered_fast = await answers(backend, request)
        assert answered_fast, request.target
        assert fast.status == 404
        assert comparable(fast) == comparable(moto), request.target


async def test_anything_else_is_left_to_moto(backend: MotoBackend) -> None:
    plain, versioned = await setup_buckets(backend)
    missing = signed("head_object", Bucket=plain, Key="pending.out")
    cases = {
        "an existing key": signed("head_object", Bucket=plain, Key="there.out"),
        "a delete marker": signed("head_object", Bucket=versioned, Key="gone.out"),
        "a missing bucket": signed("head_object", Bucket="fast-no-such-bucket", Key="k"),
        "a version": signed("head_object", Bucket=plain, Key="pending.out", VersionId="v1"),
        "a part": signed("head_object", Bucket=plain, Key="pending.out", PartNumber=1),
        "an encoded key": signed("head_object", Bucket=plain, Key="a b.out"),
        "a dot segment": signed("head_object", Bucket=plain, Key="a/../there.out"),
        "an empty segment": signed("head_object", Bucket=plain, Key="a//b.out"),
        "another partition": signed(
            "head_object", region="cn-north-1", Bucket=plain, Key="pending.out"
        ),
        "an account pinned": with_header(missing, b"x-moto-account-id", b"111122223333"),
        "an Origin (moto's CORS answers it)": with_header(missing, b"origin", b"http://a.example"),
        "a virtual host": Request(
            "HEAD", b"/pending.out", ((b"host", f"{plain}.s3.amazonaws.com".encode()),), b""
        ),
        "a GET": signed("get_object", Bucket=plain, Key="pending.out"),
    }
    for name, request in cases.items():
        fast, moto, answered_fast = await answers(backend, request)
        assert not answered_fast, name
        assert comparable(fast)[0] == comparable(moto)[0], name


async def test_a_key_written_after_a_404_is_seen_by_the_next_head(backend: MotoBackend) -> None:
    plain, _ = await setup_buckets(backend)
    head = signed("head_object", Bucket=plain, Key="soon.out")
    assert (await backend.handle(head)).status == 404
    put = signed("put_object", Bucket=plain, Key="soon.out", Body=b"now")
    assert (await backend.handle(put)).status == 200
    after = await backend.handle(head)
    assert after.status == 200
    assert dict(after.headers)["Content-Length"] == "3"


async def test_moto_without_the_seam_answers_every_head(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def missing() -> dict[str, Any]:
        raise _fast_head.SeamMissing("moved")

    monkeypatch.setattr(_fast_head, "check_seam", missing)
    moto = MotoBackend()
    with caplog.at_level(logging.WARNING, logger="sagemaker_async"):
        await moto.start()
    try:
        assert moto.missing_key_heads is None
        assert "every HEAD goes through moto's web stack (moved)" in caplog.text
        plain, _ = await setup_buckets(moto)
        answer = await moto.handle(signed("head_object", Bucket=plain, Key="pending.out"))
        assert answer.status == 404
    finally:
        await moto.aclose()


def test_the_seam_is_there_in_the_moto_we_support() -> None:
    seam = _fast_head.check_seam()
    assert set(seam) == {"settings", "region_of", "account_of", "backends", "partition_of"}


async def test_moto_iam_checks_on_means_moto_decides(
    backend: MotoBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, _ = await setup_buckets(backend)
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    heads = backend.missing_key_heads
    assert heads is not None
    assert heads.answer(signed("head_object", Bucket=plain, Key="pending.out")) is None
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "111122223333")
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    assert heads.answer(signed("head_object", Bucket=plain, Key="pending.out")) is None


async def test_a_forged_head_is_refused_before_any_answer() -> None:
    """With --credentials the signature is checked on the head: a forged HEAD of a missing
    key gets 403, never the fast 404 (which would tell it the key is not there)."""
    async with LocalEndpoint({"e": bytes.upper}, credentials="AKID:SECRET") as local:

        def head(secret: str) -> int:
            s3 = boto3.client(
                "s3",
                region_name="us-east-1",
                endpoint_url=local.s3_endpoint_url,
                aws_access_key_id="AKID",
                aws_secret_access_key=secret,
                config=Config(retries={"max_attempts": 1, "mode": "standard"}),
            )
            try:
                s3.head_object(Bucket=local.bucket, Key="output/pending.out")
            except s3.exceptions.ClientError as exc:
                return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
            return 200

        heads = local._backend.missing_key_heads  # type: ignore[union-attr]
        assert heads is not None
        assert await asyncio.to_thread(head, "WRONG") == 403
        assert heads.answered == 0
        assert await asyncio.to_thread(head, "SECRET") == 404
        assert heads.answered == 1
        anonymous = await asyncio.to_thread(
            httpx.head, f"{local.s3_endpoint_url}/{local.bucket}/output/pending.out"
        )
        assert anonymous.status_code == 403


# -- fuzzed against the oracle ------------------------------------------------------------

_FUZZ_KEYS = ("there.out", "gone.out", "pending.out", "a/b.out")


@pytest.fixture(scope="module")
def fuzz_backend() -> Any:
    """One started backend for every example (moto's calls are synchronous underneath)."""
    moto = MotoBackend()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(moto.start())
    buckets = loop.run_until_complete(setup_buckets(moto))
    try:
        yield moto, buckets
    finally:
        loop.run_until_complete(moto.aclose())
        loop.close()


def _fuzz_request(data: st.DataObject, buckets: tuple[str, str]) -> Request:
    """A HEAD of a missing key the fast answer takes, with none, one or a few of its parts
    changed at random (so about half are the fast answer's, the rest moto's alone)."""
    plain, versioned = buckets
    plain_key = st.text(alphabet="abAZ09-._~/", min_size=1, max_size=12)
    odd_key = st.text(alphabet="abAZ09-._~/%+ é", min_size=1, max_size=12)
    alternatives: dict[str, st.SearchStrategy[Any]] = {
        "method": st.sampled_from(["GET", "PUT", "head"]),
        "bucket": st.sampled_from([versioned, "fast-no-such-bucket", plain.upper(), "a"]),
        "key": st.one_of(st.sampled_from(_FUZZ_KEYS), odd_key),
        "encoding": st.sampled_from(["quoted", "quoted-all"]),
        "query": st.sampled_from(["?versionId=v1", "?partNumber=1", "?x", "?", "?uploads"]),
        "host": st.sampled_from(
            [b"localhost", b"[::1]:4566", b"s3.amazonaws.com", b"example.test", b"127.0.0.1."]
        ),
        "region": st.sampled_from(["eu-west-1", "cn-north-1", "us-gov-west-1", "nowhere"]),
        "access_key": st.sampled_from(["AKIAEXAMPLE", "ASIAUNKNOWN", ""]),
        "account": st.sampled_from([b"123456789012", b"111122223333"]),
        "authorization": st.just(None),
        "extra": st.sampled_from(
            [
                (b"origin", b"http://a.example"),
                (b"origin", b"http://b.example"),
                (b"x-amz-expected-bucket-owner", b"111122223333"),
                (b"x-amz-request-payer", b"requester"),
                (b"if-none-match", b'"x"'),
                (b"range", b"bytes=0-1"),
                (b"x-amz-checksum-mode", b"ENABLED"),
                (b"user-agent", b"fuzz"),
            ]
        ),
    }
    chosen = data.draw(
        st.lists(st.sampled_from(sorted(alternatives)), max_size=3, unique=True)
        | st.just([])  # as often as not, nothing changed
    )
    parts: dict[str, Any] = {
        "method": "HEAD", "bucket": plain, "key": data.draw(plain_key), "encoding": "raw",
        "query": "", "host": b"127.0.0.1:4566", "region": "us-east-1", "access_key": "AKID",
        "account": None, "authorization": "signed", "extra": None,
    }  # fmt: skip
    for name in chosen:
        parts[name] = data.draw(alternatives[name], label=name)
    key = parts["key"]
    encoded = {"raw": key, "quoted": quote(key, safe="/"), "quoted-all": quote(key, safe="")}
    target = f"/{parts['bucket']}/{encoded[parts['encoding']]}{parts['query']}"
    headers = [(b"host", parts["host"])]
    if parts["authorization"] is not None:
        credential = f"{parts['access_key']}/20261126/{parts['region']}/s3/aws4_request"
        headers.append(
            (
                b"authorization",
                f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, "
                "Signature=00".encode(),
            )
        )
    if parts["account"] is not None:
        headers.append((b"x-moto-account-id", parts["account"]))
    if parts["extra"] is not None:
        headers.append(parts["extra"])
    return Request(parts["method"], target.encode(), tuple(headers), b"")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_fast_answer_is_moto_s_answer(fuzz_backend: Any, data: st.DataObject) -> None:
    moto, buckets = fuzz_backend
    request = _fuzz_request(data, buckets)
    heads = moto.missing_key_heads
    assert heads is not None
    fast = heads.answer(request)
    event("answered fast" if fast is not None else "left to moto")
    if fast is None:
        return  # moto's to answer: nothing of ours to compare
    assert request.method == "HEAD"
    assert comparable(fast) == comparable(moto._call(request)), request


async def test_our_client_s_polls_are_answered_fast() -> None:
    """What the fast answer is for: a pending result's two HEADs, as our client sends them."""
    from sagemaker_async import AsyncInvocation
    from test_local_support import client_for

    async with LocalEndpoint({"e": bytes.upper}) as local, client_for(local) as client:
        heads = local._backend.missing_key_heads  # type: ignore[union-attr]
        assert heads is not None
        pending = AsyncInvocation(
            "x", f"s3://{local.bucket}/output/x.out", f"s3://{local.bucket}/failure/x-error.out"
        )
        assert await client.poll_result(pending) is None
        assert heads.answered == 2
