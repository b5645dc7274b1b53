#!/usr/bin/env bash
# Builds the Python example into a component: ./build.sh [OUTPUT], default workspace-setup.wasm
# beside this script. Installs componentize-py (pinned) into a virtualenv here (.venv,
# git-ignored) on first use; needs python3 with venv (.ci/setup installs it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/workspace-setup.wasm}")"
wit="$here/../../../wit"

if [ ! -x "$here/.venv/bin/componentize-py" ]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install --quiet --disable-pip-version-check componentize-py==0.25.1
fi

cd "$here"
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$(dirname "$out")"
"$here/.venv/bin/componentize-py" -d "$wit" -w initialiser-component componentize app -o "$out.tmp" >/dev/null
mv "$out.tmp" "$out"
echo "built $out ($(du -h "$out" | cut -f1))"
