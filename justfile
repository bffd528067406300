# swarmbus tasks. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := "never"

# List the recipes.
default:
    @just --list

# Install what the recipes need; skips whatever is already present.
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    installed="$(rustup target list --installed)"
    for target in thumbv7em-none-eabi wasm32-unknown-unknown; do
        grep -qx "$target" <<<"$installed" || rustup target add "$target"
    done
    components="$(rustup component list --installed)"
    for component in clippy rustfmt; do
        grep -q "^$component" <<<"$components" || rustup component add "$component"
    done

# Every suite CI runs: format, lints, tests, no_std and wasm builds, fuzz targets compile.
test: setup fmt-check lint test-core build-nostd build-fuzz

# Format all Rust code.
fmt:
    cargo fmt --all

# Fail if any Rust code is not formatted.
fmt-check:
    cargo fmt --all --check

# Clippy on every target, warnings are errors.
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Core unit, property and doc tests, with and without std.
test-core:
    cargo test -p swarmbus-core
    cargo test -p swarmbus-core --no-default-features --lib

# Build the core for a target with no standard library, and for wasm32.
build-nostd:
    cargo build -p swarmbus-core --no-default-features --target thumbv7em-none-eabi
    cargo build -p swarmbus-core --no-default-features --target wasm32-unknown-unknown
    cargo build -p swarmbus-core --target wasm32-unknown-unknown

# Keep the fuzz targets compiling (stable toolchain, no fuzzing).
build-fuzz:
    cargo check --manifest-path crates/core/fuzz/Cargo.toml --bins

# Fuzz one target with cargo-fuzz on nightly, e.g. `just fuzz envelope_decode 60`.
fuzz target="envelope_decode" seconds="60":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    cd crates/core
    cargo +nightly fuzz run {{target}} -- -max_total_time={{seconds}}

# Core criterion benchmarks (native, release), then a table of medians; extra args go to criterion.
bench-core *args:
    rm -rf target/criterion
    cargo bench -p swarmbus-core --bench core -- {{args}}
    python3 scripts/criterion_table.py target/criterion

# Run the core bus demo: a small swarm on one event bus, narrated.
demo *args:
    cargo run --release -p swarmbus-core --example swarm_demo -- {{args}}
