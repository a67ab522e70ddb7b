"""sagemaker-async: an asyncio-native client for Amazon SageMaker Asynchronous Inference."""

from ._client import AsyncInferenceClient
from ._models import AsyncInvocation, DownloadedResult, InferenceResult
from ._streams import ResultStream
from ._version import __version__
from .errors import (
    AccessDeniedError,
    InferenceFailedError,
    InternalFailure,
    NoCredentialsError,
    ParamValidationError,
    ResultTooLargeError,
    SageMakerAsyncError,
    ServiceError,
    ServiceUnavailable,
    ThrottlingError,
    TransportError,
    ValidationError,
    WaitTimeoutError,
)

__all__ = [
    "AccessDeniedError",
    "AsyncInferenceClient",
    "AsyncInvocation",
    "DownloadedResult",
    "InferenceFailedError",
    "InferenceResult",
    "InternalFailure",
    "NoCredentialsError",
    "ParamValidationError",
    "ResultStream",
    "ResultTooLargeError",
    "SageMakerAsyncError",
    "ServiceError",
    "ServiceUnavailable",
    "ThrottlingError",
    "TransportError",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
]

# Reprs and tracebacks should name the public path, as httpx does.
for _name in (
    "AsyncInferenceClient",
    "AsyncInvocation",
    "DownloadedResult",
    "InferenceResult",
    "ResultStream",
):
    globals()[_name].__module__ = __name__
del _name
