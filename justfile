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
    cargo test --workspace && cargo test --manifest-path initialisers/Cargo.toml

# Build the core initialisers' components on their own.
initialisers:
    cargo build --release --target wasm32-wasip2 --manifest-path initialisers/Cargo.toml --target-dir target/guests

# The house rules CI checks before the tests: formatting, clippy, rustdoc.
check: setup
    .ci/check

# What CI runs.
ci:
    .ci/run

# Build the example initialiser (initialisers/examples/) in one language: rust, python, js or c.
example language:
    initialisers/examples/{{language}}/build.sh

# Build the Rust example (the guest SDK, cargo).
example-rust: (example "rust")

# Build the Python example (componentize-py, in a virtualenv of its own).
example-python: (example "python")

# Build the JavaScript example (componentize-js, from npm).
example-js: (example "js")

# Build the C example (wit-bindgen-cli, Debian's clang).
example-c: (example "c")

# Each guest language's component size, compile time and call time (docs/authoring.md).
bench-guests:
    cargo bench -p bootstrap-wasm --bench guests

# Upstream's Python bootstrapper, which the startup and scale benches then measure beside ours.
install-upstream:
    runtime/benches/install-upstream

# The runtime's own figures in docs/performance.md (against the tests' peer): brokers, start-up,
# instances, scale, shutdown; and loading 1,000 tenants' files (no service involved).
bench: setup
    cargo bench -p bootstrap-wasm --bench brokers --bench startup --bench instances --bench scale --bench shutdown --bench tenants

# N tenants converged against TrustGraph 2.4.4's and 2.11.1's own services, beside each
# version's own bootstrapper (the README's figures); a long run: 1,000 tenants on 2.11.1 take
# minutes, at flow-svc's pace.
bench-real-services: setup
    cargo bench -p bootstrap-wasm --bench real_services
