"""sagemaker-async: an asyncio-native client for Amazon SageMaker Asynchronous Inference."""

from ._client import AsyncInferenceClient
from ._models import AsyncInvocation, InferenceResult
from ._notifications import InferenceEvent
from ._version import __version__
from .errors import (
    AccessDeniedError,
    InferenceFailedError,
    InternalFailure,
    NoCredentialsError,
    ParamValidationError,
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
    "InferenceEvent",
    "InferenceFailedError",
    "InferenceResult",
    "InternalFailure",
    "NoCredentialsError",
    "ParamValidationError",
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
for _name in ("AsyncInferenceClient", "AsyncInvocation", "InferenceEvent", "InferenceResult"):
    globals()[_name].__module__ = __name__
del _name
