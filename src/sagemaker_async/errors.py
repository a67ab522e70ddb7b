"""The exceptions sagemaker-async raises, split by who is at fault.

    SageMakerAsyncError
    ├── ParamValidationError      (also a ValueError) bad argument, raised before any I/O
    ├── NoCredentialsError
    ├── TransportError            connection / timeout after retries, wraps the httpx error
    ├── ServiceError              .code .message .status_code .request_id
    │   ├── ValidationError       400 ValidationError
    │   ├── ThrottlingError       throttling codes / 429, after retries
    │   ├── InternalFailure       500
    │   ├── ServiceUnavailable    503
    │   └── AccessDeniedError     403 (S3 or the runtime)
    ├── InferenceFailedError      the model failed: .failure_location .message
    ├── ResultTooLargeError       the result is over max_bytes: .location .size
    └── WaitTimeoutError          no result before the deadline

Messages never contain the secret key, the session token, custom attributes or a body:
every message is built here from fields that are safe to show.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "InferenceFailedError",
    "InternalFailure",
    "NoCredentialsError",
    "ParamValidationError",
    "ResultTooLargeError",
    "SageMakerAsyncError",
    "ServiceError",
    "ServiceUnavailable",
    "ThrottlingError",
    "TransportError",
    "ValidationError",
    "WaitTimeoutError",
]


class SageMakerAsyncError(Exception):
    """Base class of every error this library raises on purpose."""


class ParamValidationError(SageMakerAsyncError, ValueError):
    """An argument breaks a rule of the API; nothing was sent."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class NoCredentialsError(SageMakerAsyncError):
    """No AWS credentials could be found for signing."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "Unable to locate AWS credentials: pass aws_access_key_id/aws_secret_access_key "
            "or credentials=, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or configure a profile."
        )


class TransportError(SageMakerAsyncError):
    """The request could not be completed on the network, after all retries."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class ServiceError(SageMakerAsyncError):
    """The service (SageMaker Runtime or S3) answered with an error."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status_code: int,
        request_id: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.code} (HTTP {self.status_code})"
        if self.message:
            text += f": {self.message}"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields must survive pickling (multiprocessing, task queues).
        return (
            _rebuild_service_error,
            (type(self), self.message, self.code, self.status_code, self.request_id),
        )


def _rebuild_service_error(
    cls: type[ServiceError], message: str, code: str, status_code: int, request_id: str | None
) -> ServiceError:
    return cls(message, code=code, status_code=status_code, request_id=request_id)


class ValidationError(ServiceError):
    """The service rejected the parameters, or the endpoint is unknown or not async."""


class ThrottlingError(ServiceError):
    """The service kept throttling the call until retries ran out."""


class InternalFailure(ServiceError):
    """The service failed internally (HTTP 500) on every attempt."""


class ServiceUnavailable(ServiceError):
    """The service was unavailable (HTTP 503) on every attempt."""


class AccessDeniedError(ServiceError):
    """The credentials may not do this (S3 403, bad signature, unknown key)."""


class InferenceFailedError(SageMakerAsyncError):
    """The model failed: the service wrote a failure object instead of an output."""

    def __init__(self, message: str, *, failure_location: str | None = None) -> None:
        super().__init__(
            f"inference failed ({failure_location}): {message}" if failure_location else message
        )
        self.message = message
        self.failure_location = failure_location


class ResultTooLargeError(SageMakerAsyncError):
    """The result object is larger than the caller's ``max_bytes``; its body was not read."""

    def __init__(self, message: str, *, location: str, size: int) -> None:
        super().__init__(message)
        self.location = location
        self.size = size

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_too_large, (str(self), self.location, self.size))


def _rebuild_too_large(message: str, location: str, size: int) -> ResultTooLargeError:
    return ResultTooLargeError(message, location=location, size=size)


class WaitTimeoutError(SageMakerAsyncError):
    """Neither the output nor the failure appeared before the deadline."""

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout
