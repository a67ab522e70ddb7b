"""sagemaker-async: an asyncio-native client for Amazon SageMaker Asynchronous Inference."""

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
    "InferenceFailedError",
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
