#!/usr/bin/env bash
# Create bench/.venv (idempotently) with the project, editable, plus the `bench`
# dependency group from pyproject.toml (aiobotocore, boto3, matplotlib).
#
# The benchmark gets its own venv because aiobotocore pins botocore narrowly; the
# project's dev venv (.venv at the repo root) must keep the botocore its tests need.
# A stamp file records the hash of pyproject.toml: when it changes, we reinstall.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
py="$venv/bin/python"
stamp="$venv/.installed-bench"
PYTHON="${PYTHON:-python3}"

want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

if [[ ! -x "$py" ]]; then
    "$PYTHON" -m venv "$venv"
fi
"$py" -m pip install -q --upgrade pip
# `--group` reads [dependency-groups] from the pyproject.toml in the current directory
# (pip >= 25.1, which the upgrade above guarantees).
(cd "$root" && "$py" -m pip install -q -e . --group bench)
echo "$want" > "$stamp"
"$py" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(sagemaker-async|aiobotocore|botocore|boto3|httpx|httpcore|h11|aiohttp|matplotlib)==' \
    | sed 's/^/bench venv: /' >&2
