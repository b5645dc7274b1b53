#!/usr/bin/env bash
# Builds {{name}} into a component: ./build.sh [OUTPUT], default {{name}}.wasm beside this
# script. Installs componentize-py (pinned) into a virtualenv here (.venv) on first use; needs
# python3 with venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/{{name}}.wasm}")"

if [ ! -x "$here/.venv/bin/componentize-py" ]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install --quiet --disable-pip-version-check componentize-py==0.25.1
fi

cd "$here"
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$(dirname "$out")"
"$here/.venv/bin/componentize-py" -d "$here/wit" -w initialiser-component componentize app -o "$out.tmp" >/dev/null
mv "$out.tmp" "$out"
echo "built $out ($(du -h "$out" | cut -f1))"
