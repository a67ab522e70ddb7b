"""The ``sagemaker-async`` command line (``python -m sagemaker_async`` too).

Commands: ``invoke-endpoint-async`` (the AWS CLI's, plus ``--wait``), ``wait``, ``get``,
``batch``, ``demo`` and ``local serve``. The library never imports this package, and this
package imports the client only when a command runs, so neither slows the other down.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0, 1 failure, 2 usage, 130 interrupted)."""
    from ._main import run

    return run(argv)
