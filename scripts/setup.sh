#!/usr/bin/env bash
# Installs what the recipes need, skipping whatever is already present.
#   scripts/setup.sh demo   what `just demo` uses: the wasm32 target, wasm-bindgen-cli,
#                           and the npm packages of the dashboard build (package.json
#                           "dependencies": esbuild, binaryen's wasm-opt, uplot, msgpackr).
#   scripts/setup.sh all    everything (`just setup`): the above, the no_std target, clippy
#                           and rustfmt, Chromium and redis-server (apt-get), and the npm
#                           test and benchmark peers ("devDependencies": deno, workerd, …).
#   scripts/setup.sh bench  only the benchmark peers that no test needs (`just setup-bench`):
#                           nats-server (apt-get), the peer of `just bench-bridge`.
set -euo pipefail
scope="${1:?usage: scripts/setup.sh demo|all|bench}"
case "$scope" in demo | all | bench) ;; *) echo "usage: scripts/setup.sh demo|all|bench" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."

if [ "$scope" = bench ]; then
    command -v nats-server >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server
    }
    exit 0
fi

targets="wasm32-unknown-unknown"
[ "$scope" = all ] && targets="$targets thumbv7em-none-eabi"
installed="$(rustup target list --installed)"
for target in $targets; do
    grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
if [ "$scope" = all ]; then
    components="$(rustup component list --installed)"
    for component in clippy rustfmt; do
        grep -q "^$component" <<<"$components" || rustup component add "$component"
    done
fi

# wasm-bindgen CLI and test runner, pinned to the version in Cargo.lock (no --locked: see docs/toolchain.md).
version="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
    cargo install wasm-bindgen-cli --version "$version"
fi

if [ "$scope" = all ]; then
    # Headless Chromium and its driver for the browser tests; redis-server for the bridge's Redis tests.
    missing=""
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || missing="$missing chromium chromium-driver"
    command -v redis-server >/dev/null || missing="$missing redis-server"
    if [ -n "$missing" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    fi
fi

# npm packages, reinstalled only when package-lock.json changed or more are needed.
# The stamp records what the last install covered: `demo` (--omit=dev) or `all`.
stamp=node_modules/.swarmbus-setup
have="$( [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && cat "$stamp" || true)"
if [ "$scope" = all ] && [ "$have" != all ]; then
    npm ci --no-audit --no-fund
    echo all >"$stamp"
elif [ "$scope" = demo ] && [ -z "$have" ]; then
    npm ci --omit=dev --no-audit --no-fund
    echo demo >"$stamp"
fi
