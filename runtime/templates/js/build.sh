#!/usr/bin/env bash
# Builds {{name}} into a component: ./build.sh [OUTPUT], default {{name}}.wasm beside this
# script. Installs componentize-js (pinned in package.json) into node_modules here on first
# use; needs node and npm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/{{name}}.wasm}")"

cd "$here"
if [ ! -d node_modules/@bytecodealliance/componentize-js ]; then
    npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
mkdir -p "$(dirname "$out")"
node build.mjs "$out"
echo "built $out ($(du -h "$out" | cut -f1))"
