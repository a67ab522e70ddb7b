"""The environment every benchmark child process runs in: fake credentials, no proxies.

Shared by ``bench.run`` and ``bench.s3_bench`` (which ``bench.run`` also runs), so neither
imports the other for it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FAKE_CREDENTIALS", "PROXY_VARIABLES", "child_env"]

PYCACHE = Path(__file__).resolve().parent / ".venv" / "pycache"

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLEBENCH0000",
    "AWS_SECRET_ACCESS_KEY": "benchSecretKeyExampleExampleExample00000",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k.lower() not in PROXY_VARIABLES
    }
    env.update(FAKE_CREDENTIALS)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    # Imports are timed as on a normal install, with bytecode cached: this sandbox sets
    # PYTHONDONTWRITEBYTECODE, which would leave an editable install (and anything pip did
    # not compile) recompiling its sources on every start. The cache goes to a tree of
    # our own inside the (git-ignored) bench venv instead of __pycache__ folders in src/.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env
