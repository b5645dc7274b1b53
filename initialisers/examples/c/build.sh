#!/usr/bin/env bash
# Builds the C example into a component: ./build.sh [OUTPUT], default workspace-setup.wasm
# beside this script.
#
# Needs clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 from Debian (.ci/setup installs
# them), and the Rust toolchain's wasm-component-ld (it comes with rustup's toolchain), which
# links the objects with lld and turns the module into a component. The C bindings come from
# `wit-bindgen c` (wit-bindgen-cli, pinned, installed with cargo into a cache outside the
# repository on first use: a few minutes, once per machine).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="$(realpath -m "${1:-$here/workspace-setup.wasm}")"

for tool in clang wasm-ld; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing (run .ci/setup)" >&2; exit 1; }
done
[ -f /usr/include/wasm32-wasi/stdlib.h ] || { echo "$0: wasi-libc is missing (run .ci/setup)" >&2; exit 1; }

wit_bindgen_version=0.63.0
tools="${XDG_CACHE_HOME:-$HOME/.cache}/bootstrap-wasm/wit-bindgen-cli-$wit_bindgen_version"
if [ ! -x "$tools/bin/wit-bindgen" ]; then
    cargo install --quiet --locked wit-bindgen-cli --version "$wit_bindgen_version" \
        --no-default-features --features c --root "$tools"
fi
linker="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/wasm-component-ld"

bindings="$repo/target/examples/c-bindings"
mkdir -p "$bindings" "$(dirname "$out")"
if ! generated="$("$tools/bin/wit-bindgen" c "$repo/wit" --world initialiser-component --out-dir "$bindings" 2>&1)"; then
    echo "$generated" >&2
    exit 1
fi
clang --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Wextra -mexec-model=reactor \
    -I"$bindings" -fuse-ld="$linker" -Wl,--wasm-ld-path="$(command -v wasm-ld)" -Wl,--wasi-adapter=reactor \
    -o "$out.tmp" "$here/workspace-setup.c" "$here/json.c" \
    "$bindings/initialiser_component.c" "$bindings/initialiser_component_component_type.o"
mv "$out.tmp" "$out"
echo "built $out ($(du -h "$out" | cut -f1))"
