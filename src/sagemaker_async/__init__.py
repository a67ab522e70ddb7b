"""sagemaker-async: an asyncio-native client for Amazon SageMaker Asynchronous Inference."""

from typing import TYPE_CHECKING, Any

from ._client import AsyncInferenceClient
from ._io.results import DEFAULT_POLL_INTERVAL
from ._io.streams import ResultStream
from ._models import AsyncInvocation, DownloadedResult, InferenceResult
from ._protocol.s3 import S3Location, parse_s3_uri
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
    "DEFAULT_POLL_INTERVAL",
    "AccessDeniedError",
    "AsyncInferenceClient",
    "AsyncInvocation",
    "DownloadedResult",
    "InferenceEvent",
    "InferenceFailedError",
    "InferenceResult",
    "InternalFailure",
    "NoCredentialsError",
    "ParamValidationError",
    "ResultStream",
    "ResultTooLargeError",
    "S3Location",
    "SageMakerAsyncError",
    "ServiceError",
    "ServiceUnavailable",
    "ThrottlingError",
    "TransportError",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
    "parse_s3_uri",
]

# Reprs and tracebacks should name the public path, as httpx does.
if TYPE_CHECKING:
    from ._protocol.notifications import InferenceEvent

for _name in (
    "AsyncInferenceClient",
    "AsyncInvocation",
    "DownloadedResult",
    "InferenceResult",
    "ResultStream",
    "S3Location",
):
    globals()[_name].__module__ = __name__
del _name


def __getattr__(name: str) -> Any:
    # Notifications are imported when first used: most programs never listen.
    if name == "InferenceEvent":
        from ._protocol.notifications import InferenceEvent

        InferenceEvent.__module__ = __name__
        globals()[name] = InferenceEvent
        return InferenceEvent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
