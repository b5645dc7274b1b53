#!/usr/bin/env bash
# Builds the JavaScript example into a component: ./build.sh [OUTPUT], default
# workspace-setup.wasm beside this script. Installs componentize-js (pinned by
# package-lock.json) into node_modules here (git-ignored) on first use; needs node and npm
# (.ci/setup installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/workspace-setup.wasm}")"

cd "$here"
if [ ! -d node_modules/@bytecodealliance/componentize-js ]; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
mkdir -p "$(dirname "$out")"
node build.mjs "$out"
echo "built $out ($(du -h "$out" | cut -f1))"
