#!/usr/bin/env bash
# Builds {{name}} into a component: ./build.sh [OUTPUT], default {{name}}.wasm beside this
# script. Adds the wasm32-wasip2 target with rustup if it is missing; cargo's build files go to
# target/ here (or $CARGO_TARGET_DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/{{name}}.wasm}")"
target_dir="${CARGO_TARGET_DIR:-$here/target}"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2 >/dev/null
fi
cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml" --target-dir "$target_dir"
mkdir -p "$(dirname "$out")"
cp "$target_dir/wasm32-wasip2/release/{{crate}}.wasm" "$out.tmp"
mv "$out.tmp" "$out"
echo "built $out ($(du -h "$out" | cut -f1))"
