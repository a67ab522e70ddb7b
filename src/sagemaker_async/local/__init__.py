"""A local SageMaker Asynchronous Inference endpoint that runs real handlers.

Optional (``pip install 'sagemaker-async[local]'``, which brings moto's S3); the core client
never imports it. One port on 127.0.0.1 serves ``POST /endpoints/{name}/async-invocations``
the way the service does — validation, errors, 202 with the output and failure locations, a
queue with a concurrency limit, timeouts and expiry — and S3 (moto's, or one you name), so
our client, boto3 and the AWS CLI all work against it unchanged::

    from sagemaker_async import AsyncInferenceClient
    from sagemaker_async.local import LocalEndpoint

    async with LocalEndpoint(endpoints={"my-endpoint": lambda payload: payload.upper()}) as local:
        async with AsyncInferenceClient(
            "us-east-1",
            endpoint_url=local.endpoint_url,
            s3_endpoint_url=local.s3_endpoint_url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        ) as client:
            invocation = await client.invoke_endpoint_async("my-endpoint", body=b"hi")
"""

from ._endpoint import DEFAULT_CONCURRENCY, LocalEndpoint
from ._handlers import Handler, InvocationAttributes, ModelServerUnavailable
from ._serve import run_until_signalled, serve
from ._storage import StorageError

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Handler",
    "InvocationAttributes",
    "LocalEndpoint",
    "ModelServerUnavailable",
    "StorageError",
    "run_until_signalled",
    "serve",
]

for _name in ("InvocationAttributes", "LocalEndpoint"):
    globals()[_name].__module__ = __name__
del _name
