"""``python -m sagemaker_async.local serve ...``: the command line's ``local serve``.

One implementation for both entry points: this is ``sagemaker-async local serve`` under
another name (same options, messages and exit statuses), so the two cannot drift apart.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from sagemaker_async.cli import main as cli_main

    return cli_main(["local", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
