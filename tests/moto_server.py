"""A local S3 and SageMaker Runtime for end-to-end tests: moto's server, on 127.0.0.1.

A pytest plugin: test modules opt in with ``pytest_plugins = ["moto_server"]``.

The server runs in a subprocess, not a thread of the test process, so that what the test
process allocates (the 50 MB upload test measures it with tracemalloc) is ours alone. It
starts once per session on a free ephemeral port, and is stopped at the end; each test
gets a reset server (``/moto-api/reset``), so queued results and buckets never leak from one
test into the next. Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sagemaker_async import AsyncInferenceClient

MOTO_REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"
MOTO_KEY = "testing"
MOTO_SECRET = "testing"
_STARTUP_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """A running moto server, and the few control calls the tests need."""

    url: str
    _boto3_clients: dict[str, Any] = field(default_factory=dict, repr=False)
    # One pool for the control calls: a new httpx.Client loads the CA bundle (~50 ms).
    # trust_env=False: a developer's HTTP_PROXY must not capture calls to 127.0.0.1.
    _http: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=10, trust_env=False), repr=False
    )

    def reset(self) -> None:
        self._http.post(f"{self.url}/moto-api/reset").raise_for_status()

    def queue_async_results(self, *results: dict[str, Any], region: str = MOTO_REGION) -> None:
        """What the next InvokeEndpointAsync calls write: ``{"data": ..., "is_failure": ...}``."""
        response = self._http.post(
            f"{self.url}/moto-api/static/sagemaker/async-endpoint-results",
            json={"account_id": MOTO_ACCOUNT, "region": region, "results": list(results)},
        )
        response.raise_for_status()

    def boto3(self, service: str) -> Any:
        """A boto3 client against the server (cached: creating one takes ~50 ms)."""
        client = self._boto3_clients.get(service)
        if client is None:
            import boto3
            from botocore.config import Config

            client = self._boto3_clients[service] = boto3.client(
                service,
                region_name=MOTO_REGION,
                endpoint_url=self.url,
                aws_access_key_id=MOTO_KEY,
                aws_secret_access_key=MOTO_SECRET,
                # An explicit (empty) proxy map: HTTP_PROXY must not capture 127.0.0.1.
                config=Config(proxies={}),
            )
        return client

    def boto3_s3(self) -> Any:
        """boto3's S3 client: the independent reader of what our client wrote."""
        return self.boto3("s3")

    def close(self) -> None:
        self._http.close()

    def warm_up(self) -> None:
        """Load moto's S3 and SageMaker Runtime backends now, not in the first test."""
        self.boto3_s3().list_buckets()
        self.boto3("sagemaker-runtime").invoke_endpoint_async(
            EndpointName="warm-up", InputLocation="s3://warm-up/input"
        )
        self.reset()

    def client(self, **kwargs: Any) -> AsyncInferenceClient:
        """Our client, with both endpoints pointed at the server."""
        kwargs.setdefault("region_name", MOTO_REGION)
        kwargs.setdefault("endpoint_url", self.url)
        kwargs.setdefault("s3_endpoint_url", self.url)
        kwargs.setdefault("aws_access_key_id", MOTO_KEY)
        kwargs.setdefault("aws_secret_access_key", MOTO_SECRET)
        return AsyncInferenceClient(**kwargs)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with status {process.returncode}")
        try:
            httpx.get(f"{url}/moto-api/", timeout=1, trust_env=False).raise_for_status()
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"moto server at {url} not ready after {_STARTUP_TIMEOUT}s"
                ) from exc
            time.sleep(0.05)  # readiness polling in a fixture, not in a test
        else:
            return


@pytest.fixture(scope="session")
def moto_server_session() -> Iterator[MotoServer]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_until_ready(process, url)
        server = MotoServer(url)
        try:
            # Session fixtures run before conftest's per-test AWS_* isolation: isolate the
            # boto3 clients made here the same way, so no developer profile is read.
            with pytest.MonkeyPatch.context() as env_patch:
                for name in [name for name in os.environ if name.startswith("AWS_")]:
                    env_patch.delenv(name)
                env_patch.setenv("AWS_CONFIG_FILE", os.devnull)
                env_patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
                server.warm_up()
            yield server
        finally:
            server.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def moto_server(moto_server_session: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The session's server, reset to empty for this test.

    The client honours HTTP_PROXY and friends, as httpx does: make sure a developer's proxy
    never sees the calls to 127.0.0.1.
    """
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, ",".join(filter(None, ["127.0.0.1", os.environ.get(name)])))
    moto_server_session.reset()
    return moto_server_session
