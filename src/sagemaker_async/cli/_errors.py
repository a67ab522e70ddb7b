"""How the command line fails: one readable line, an exit status a script can act on.

    0    success
    1    the service, the network, the credentials or the model failed (or a wait timed out)
    2    bad usage or a bad parameter: nothing was sent
    130  interrupted (Ctrl-C); 143 for SIGTERM

A traceback only with ``--debug``. Our messages and the library's never contain a secret
(the library promises it, and tests hold it to that), so they are printed as they are:
masking them would only garble innocent text (with the dummy secret ``test``,
``latest-model`` once printed as ``la****-model``). Text we do not control — an unexpected
exception's message, a ``--debug`` traceback or log line — passes through a ``Redactor``
that knows the secrets of this run and masks them where they stand as whole tokens.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterable, Mapping
from typing import TextIO

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "CliError",
    "Interrupted",
    "Redactor",
    "UsageError",
    "describe",
    "exit_status",
    "install_debug_logging",
    "report",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

_MASK = "****"
# Shorter values are not worth masking: replacing them would garble innocent text.
_MIN_SECRET = 4
# A short secret is masked only where it stands whole, not inside a longer word, name or
# key: ``test`` never touches ``latest-model``, ``contest.out`` or ``test-inputs/``. A long
# one (a real secret key, a session token) cannot be part of innocent text by chance, so it
# is masked wherever it occurs, glued to ``=`` or ``/`` or not.
_NAME_CHARS = r"A-Za-z0-9_.\-"
_ALWAYS_MASKED = 16
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_NEWLINES = re.compile(r"\s*[\r\n]+\s*")
_MAX_LINE = 2000


class CliError(Exception):
    """A failure the command line explains itself; ``exit_status`` says whose fault."""

    exit_status = EXIT_FAILURE


class UsageError(CliError):
    """The command line or a file it names is wrong; nothing was sent."""

    exit_status = EXIT_USAGE


class Interrupted(CliError):
    """Stopped by the user before the command could finish cleanly."""

    exit_status = EXIT_INTERRUPTED


class Redactor:
    """Masks every known secret, where it stands as a whole token, in text we do not control."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add_environment(self, env: Mapping[str, str] = os.environ) -> None:
        """The credentials a run may find in its environment."""
        for name in _SECRET_ENV:
            self.add(env.get(name))

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= _MIN_SECRET and secret not in self._secrets:
            self._secrets.add(secret)
            self._pattern = None

    def __call__(self, text: str) -> str:
        if not self._secrets:
            return text
        if self._pattern is None:
            # Longest first, so a secret that contains another is masked whole.
            alternatives = "|".join(
                re.escape(secret)
                if len(secret) >= _ALWAYS_MASKED
                else f"(?<![{_NAME_CHARS}]){re.escape(secret)}(?![{_NAME_CHARS}])"
                for secret in sorted(self._secrets, key=len, reverse=True)
            )
            self._pattern = re.compile(alternatives)
        return self._pattern.sub(_MASK, text)


def exit_status(exc: BaseException) -> int:
    """The exit status for an exception that ended a command."""
    from ..errors import ParamValidationError  # light: the errors module imports nothing

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, CliError):
        return exc.exit_status
    if isinstance(exc, ParamValidationError):
        return EXIT_USAGE
    return EXIT_FAILURE


def describe(exc: BaseException, redact: Redactor | None = None, *, debug: bool = False) -> str:
    """One line saying what went wrong, in the library's own words where it has them.

    Service errors already read ``Code (HTTP status): message [request id]``; other errors
    of the library are prefixed with their class, which is what a script greps for. Only
    an unexpected exception (a bug, or a dependency's own words) goes through ``redact``.
    """
    from ..errors import SageMakerAsyncError, ServiceError

    if isinstance(exc, (ServiceError, CliError)):
        text = str(exc)
    elif isinstance(exc, SageMakerAsyncError):
        text = f"{type(exc).__name__}: {exc}"
    elif isinstance(exc, OSError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
        if redact is not None:
            text = redact(text)
        if not debug:
            text += " (run again with --debug for a traceback)"
    text = _NEWLINES.sub(" | ", text.strip())
    if len(text) > _MAX_LINE:
        text = text[: _MAX_LINE - 3] + "..."
    return text


def report(exc: BaseException, *, prog: str, stderr: TextIO, redact: Redactor, debug: bool) -> int:
    """Print the error (and with ``debug`` its traceback, redacted); return the exit status."""
    if debug and not isinstance(exc, KeyboardInterrupt):
        stderr.write(redact("".join(traceback.format_exception(exc))))
    if isinstance(exc, KeyboardInterrupt):
        stderr.write(f"{prog}: interrupted\n")
    else:
        stderr.write(f"{prog}: error: {describe(exc, redact, debug=debug)}\n")
    stderr.flush()
    return exit_status(exc)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


def install_debug_logging(stderr: TextIO, redact: Redactor) -> logging.Handler:
    """``--debug``: the library's DEBUG log lines (one per attempt) on stderr, redacted."""
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(_RedactingFormatter(redact))
    logger = logging.getLogger("sagemaker_async")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler
