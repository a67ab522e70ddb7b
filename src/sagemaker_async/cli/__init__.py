"""The ``sagemaker-async`` command line (``python -m sagemaker_async`` too).

Commands: ``invoke-endpoint-async`` (the AWS CLI's, plus ``--wait``), ``wait``, ``get``,
``batch``, ``demo`` and ``local serve``. The library never imports this package. Each
command's own modules (the batch engine, the local endpoint, ...) are imported only when
that command runs; ``--help`` needs only the parser and the table of options.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0, 1 failure, 2 usage, 130 interrupted)."""
    from ._main import run

    return run(argv)
