"""A pytest plugin: a local SageMaker async endpoint, and a client bound to it, as fixtures.

Installed with the package (entry point ``pytest11``); the fixtures need the ``local``
extra (``pip install 'sagemaker-async[local]'``). Loading the plugin costs nothing: moto,
httpx and the endpoint are imported only when a test asks for a fixture.

Declare endpoints with a marker (on a test, a class or a module), or by overriding the
``sagemaker_endpoints`` fixture::

    @pytest.mark.sagemaker_endpoint("my-endpoint", handler, concurrency=2)
    async def test_it(sagemaker_client, local_endpoint): ...

    @pytest.fixture
    def sagemaker_endpoints():
        return {"my-endpoint": handler}

``local_endpoint`` is a started ``LocalEndpoint``; ``sagemaker_client`` an
``AsyncInferenceClient`` aimed at it (dummy keys, ``us-east-1``). Options for the endpoint
(``time_scale``, ``credentials``, paths, ...) come from the ``local_endpoint_options``
fixture. Both fixtures are async, and run on the test's event loop under pytest-asyncio
(strict or auto mode) and under anyio's pytest plugin (``@pytest.mark.anyio``, asyncio
backend) alike: a sync fixture hands each request to the variant its runner handles.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from . import AsyncInferenceClient
    from .local import Handler, LocalEndpoint

__all__ = [
    "local_endpoint",
    "local_endpoint_options",
    "sagemaker_client",
    "sagemaker_endpoints",
]

MARKER = "sagemaker_endpoint"
REGION = "us-east-1"
# Signatures are not checked unless ``credentials`` is given; these are as good as any.
DUMMY_KEY = "test"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name, handler, *, concurrency=None): serve handler as endpoint NAME "
        "in the local_endpoint fixture (sagemaker-async)",
    )


@pytest.fixture
def sagemaker_endpoints(request: pytest.FixtureRequest) -> dict[str, Handler | str]:
    """Endpoint name to handler, from the ``sagemaker_endpoint`` markers; override at will."""
    endpoints: dict[str, Handler | str] = {}
    for marker in request.node.iter_markers(MARKER):  # the closest first: it wins
        name, handler = _marker_endpoint(marker)
        endpoints.setdefault(name, handler)
    if not endpoints:
        raise pytest.UsageError(
            "local_endpoint needs endpoints: mark the test with "
            f'@pytest.mark.{MARKER}("name", handler) or override the sagemaker_endpoints '
            "fixture"
        )
    return endpoints


@pytest.fixture
def local_endpoint_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments for ``LocalEndpoint``; the markers' ``concurrency`` is added."""
    concurrency: dict[str, int] = {}
    for marker in request.node.iter_markers(MARKER):
        name, _ = _marker_endpoint(marker)
        limit = marker.kwargs.get("concurrency")
        if limit is not None:
            concurrency.setdefault(name, limit)
    return {"concurrency": concurrency} if concurrency else {}


@pytest.fixture
def local_endpoint(request: pytest.FixtureRequest) -> LocalEndpoint:
    """A started ``LocalEndpoint`` serving ``sagemaker_endpoints``, stopped after the test."""
    endpoint: LocalEndpoint = request.getfixturevalue(_variant(request, "local_endpoint"))
    return endpoint


@pytest.fixture
def sagemaker_client(request: pytest.FixtureRequest) -> AsyncInferenceClient:
    """An ``AsyncInferenceClient`` bound to ``local_endpoint``, closed after the test."""
    client: AsyncInferenceClient = request.getfixturevalue(_variant(request, "sagemaker_client"))
    return client


def _marker_endpoint(marker: pytest.Mark) -> tuple[str, Handler | str]:
    if len(marker.args) != 2 or not isinstance(marker.args[0], str):
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes (name, handler), got {marker.args!r}")
    name, handler = marker.args
    return name, handler


def _variant(request: pytest.FixtureRequest, name: str) -> str:
    """The async fixture for this test's runner: anyio's if it runs the test, else asyncio's."""
    if "anyio_backend" in request.fixturenames:
        backend = request.getfixturevalue("anyio_backend")
        backend_name = backend if isinstance(backend, str) else backend[0]
        if backend_name != "asyncio":
            pytest.skip(f"the local SageMaker endpoint runs on asyncio, not {backend_name}")
        return f"_sagemaker_async_{name}_anyio"
    if _asyncio_fixture is None:
        raise pytest.UsageError(
            f"{name} is an async fixture: install pytest-asyncio, or run the test under "
            "anyio's plugin (@pytest.mark.anyio)"
        )
    return f"_sagemaker_async_{name}_asyncio"


# -- the async variants: the same code, registered for each runner ---------------------------


@contextlib.asynccontextmanager
async def _serve(
    endpoints: Mapping[str, Handler | str], options: Mapping[str, Any]
) -> AsyncIterator[LocalEndpoint]:
    try:
        from .local import LocalEndpoint
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise pytest.UsageError(
            f"the local_endpoint fixture needs the 'local' extra: "
            f"pip install 'sagemaker-async[local]' ({exc})"
        ) from None
    async with LocalEndpoint(endpoints, **options) as endpoint:
        yield endpoint


@contextlib.asynccontextmanager
async def _connect(
    endpoint: LocalEndpoint, options: Mapping[str, Any]
) -> AsyncIterator[AsyncInferenceClient]:
    from . import AsyncInferenceClient

    # With ``credentials`` the endpoint checks signatures: sign with those.
    credentials = options.get("credentials")
    if isinstance(credentials, str):
        key, _, secret = credentials.partition(":")
    elif credentials is not None:
        key, secret = credentials
    else:
        key = secret = DUMMY_KEY
    async with AsyncInferenceClient(
        REGION,
        endpoint_url=endpoint.endpoint_url,
        s3_endpoint_url=endpoint.s3_endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    ) as client:
        yield client


@pytest.fixture
async def _sagemaker_async_local_endpoint_anyio(
    sagemaker_endpoints: dict[str, Handler | str], local_endpoint_options: dict[str, Any]
) -> AsyncIterator[LocalEndpoint]:
    async with _serve(sagemaker_endpoints, local_endpoint_options) as endpoint:
        yield endpoint


@pytest.fixture
async def _sagemaker_async_sagemaker_client_anyio(
    local_endpoint: LocalEndpoint, local_endpoint_options: dict[str, Any]
) -> AsyncIterator[AsyncInferenceClient]:
    async with _connect(local_endpoint, local_endpoint_options) as client:
        yield client


try:
    import pytest_asyncio
except ImportError:  # anyio's plugin only
    _asyncio_fixture = None
else:
    _asyncio_fixture = pytest_asyncio.fixture

    @_asyncio_fixture
    async def _sagemaker_async_local_endpoint_asyncio(
        sagemaker_endpoints: dict[str, Handler | str], local_endpoint_options: dict[str, Any]
    ) -> AsyncIterator[LocalEndpoint]:
        async with _serve(sagemaker_endpoints, local_endpoint_options) as endpoint:
            yield endpoint

    @_asyncio_fixture
    async def _sagemaker_async_sagemaker_client_asyncio(
        local_endpoint: LocalEndpoint, local_endpoint_options: dict[str, Any]
    ) -> AsyncIterator[AsyncInferenceClient]:
        async with _connect(local_endpoint, local_endpoint_options) as client:
            yield client
