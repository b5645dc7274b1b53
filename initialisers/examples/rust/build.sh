#!/usr/bin/env bash
# Builds the Rust example into a component: ./build.sh [OUTPUT], default workspace-setup.wasm
# beside this script. Needs the wasm32-wasip2 target (.ci/setup adds it); cargo's build files go
# to the repository's target/examples/rust-target.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/workspace-setup.wasm}")"
target_dir="$here/../../../target/examples/rust-target"

cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml" --target-dir "$target_dir"
mkdir -p "$(dirname "$out")"
cp "$target_dir/wasm32-wasip2/release/workspace_setup.wasm" "$out.tmp"
mv "$out.tmp" "$out"
echo "built $out ($(du -h "$out" | cut -f1))"
