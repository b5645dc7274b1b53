# Recipes for working on bootstrap-wasm. `just --list` shows them.

# Install what the build needs (the wasm32-wasip2 target, ...).
setup:
    .ci/setup

# Converge examples/init.yaml on the embedded backend and show what it wrote.
demo state="target/demo.redb": setup
    cargo run -- -c examples/init.yaml --pubsub-backend embedded --state {{state}} --once
    cargo run -q -- dump --state {{state}} --workspace default

# Every test: unit, end-to-end and doc tests.
test: setup
    cargo test --workspace

# Build the core initialisers' components on their own.
initialisers:
    cargo build --release --target wasm32-wasip2 --manifest-path initialisers/Cargo.toml --target-dir target/guests

# What CI runs.
ci:
    .ci/run
