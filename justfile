# swarmbus tasks. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := "never"

# List the recipes.
default:
    @just --list

# Rust targets and components, wasm-bindgen-cli, Chromium, redis-server, all npm packages.
# Install what every recipe needs; skips whatever is already present.
setup:
    scripts/setup.sh all

# No apt-get, no browsers, no test peers: the wasm32 target, wasm-bindgen-cli, the dashboard's npm packages.
# Install only what `just demo` uses.
setup-demo:
    scripts/setup.sh demo

# Every suite CI runs: format, lints, tests, no_std and wasm builds, fuzz targets compile.
test: setup fmt-check lint test-core build-nostd build-fuzz test-wasm test-js test-bridge test-www test-edge test-cross

# Format all Rust code.
fmt:
    cargo fmt --all

# Fail if any Rust code is not formatted.
fmt-check:
    cargo fmt --all --check

# Clippy on every target (native and wasm32), warnings are errors.
lint:
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy -p swarmbus-wasm --target wasm32-unknown-unknown --all-targets -- -D warnings
    cargo clippy -p swarmbus-core --no-default-features -- -D warnings

# Core unit, property and doc tests, with and without std.
test-core:
    cargo test -p swarmbus-core
    cargo test -p swarmbus-core --no-default-features --lib

# Bridge unit tests, WebSocket/HTTP tests on loopback port 0, and Redis mode
# against a redis-server the tests start on a free port.
test-bridge:
    cargo test -p swarmbus-bridge

# Run the bridge on 127.0.0.1:8080 (embedded broker; `just bridge --redis redis://127.0.0.1:6379` relays through Redis).
bridge *args:
    cargo run --release -p swarmbus-bridge -- {{args}}

# Build the core for a target with no standard library, and for wasm32.
build-nostd:
    cargo build -p swarmbus-core --no-default-features --target thumbv7em-none-eabi
    cargo build -p swarmbus-core --no-default-features --target wasm32-unknown-unknown
    cargo build -p swarmbus-core --target wasm32-unknown-unknown

wasm_pkg := "crates/wasm/pkg"
wasm_opt_flags := "--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue"

# Build the npm package `swarmbus` into crates/wasm/pkg (release, wasm-bindgen --target web, wasm-opt).
build-wasm:
    cargo build --profile wasm-release -p swarmbus-wasm --target wasm32-unknown-unknown
    rm -rf {{wasm_pkg}} && mkdir -p {{wasm_pkg}}
    wasm-bindgen --target web --weak-refs --out-dir {{wasm_pkg}} --out-name swarmbus target/wasm32-unknown-unknown/wasm-release/swarmbus_wasm.wasm
    node_modules/.bin/wasm-opt -O3 {{wasm_opt_flags}} {{wasm_pkg}}/swarmbus_bg.wasm -o {{wasm_pkg}}/swarmbus_bg.wasm
    cp crates/wasm/js/* {{wasm_pkg}}/
    cp LICENSE-MIT LICENSE-APACHE {{wasm_pkg}}/
    scripts/check_wasm_size.sh {{wasm_pkg}}/swarmbus_bg.wasm

# Make the built package importable as `swarmbus` (node_modules/swarmbus -> crates/wasm/pkg).
link-pkg:
    mkdir -p node_modules && ln -sfn ../{{wasm_pkg}} node_modules/swarmbus

# wasm-bindgen tests of the wasm crate, in Node and in headless Chromium.
test-wasm:
    #!/usr/bin/env bash
    set -euo pipefail
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner WASM_BINDGEN_TEST_TIMEOUT=120
    cargo test -p swarmbus-wasm --target wasm32-unknown-unknown
    # Headless Chromium. Its start once hung past the test timeout in CI: a run
    # that times out is retried once; a failing test fails at once.
    # Each run has a process group of its own: the runner, chromedriver and
    # Chromium it left behind are killed by group id (scripts/run_group.sh).
    for attempt in 1 2; do
        status=0
        WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver scripts/run_group.sh 300 cargo test -p swarmbus-wasm --target wasm32-unknown-unknown || status=$?
        [ "$status" -ne 124 ] && exit "$status"
        echo "headless Chromium run timed out (attempt $attempt)"
    done
    exit 124

# Node integration tests that import the built package as a user would (`swarmbus/node`),
# the Messenger ones against a real bridge process.
test-js: build-wasm check-dts link-pkg
    cargo build -p swarmbus-bridge
    node --test --test-reporter=spec crates/wasm/tests-js/
    node --test --test-reporter=spec crates/wasm/tests-ts/ tests/package.test.mjs

# The JS contract: the generated .d.ts must equal crates/wasm/api/swarmbus.d.ts.
# After an intended API change: `SWARMBUS_BLESS=1 just check-dts`.
check-dts:
    #!/usr/bin/env bash
    set -euo pipefail
    # The public API only: the glue's InitOutput lists internal exports whose names carry hashes.
    public_api() { sed '/^export type InitInput/,$d' "$1"; }
    if [ "${SWARMBUS_BLESS:-}" = 1 ]; then public_api {{wasm_pkg}}/swarmbus.d.ts > crates/wasm/api/swarmbus.d.ts; fi
    diff -u crates/wasm/api/swarmbus.d.ts <(public_api {{wasm_pkg}}/swarmbus.d.ts) || { echo "the .d.ts changed: review, then SWARMBUS_BLESS=1 just check-dts"; exit 1; }

# The leak test for longer: `just soak 60` runs about an hour of mixed operations.
soak minutes="10": build-wasm link-pkg
    SWARMBUS_SOAK_OPS=$(( {{minutes}} * 3000000 )) node --test --test-timeout=$(( ({{minutes}} + 5) * 60000 )) crates/wasm/tests-js/memory.test.mjs

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

# The live swarm: builds the wasm package and the dashboard, then runs
# `swarmbus-bridge demo` (embedded broker + swarm simulator) on 127.0.0.1:8080.
# Arguments pass through: `just demo --listen 127.0.0.1:9000`, `just demo --redis redis://…`, `--rate 5000`.
demo *args: setup-demo
    #!/usr/bin/env bash
    set -euo pipefail
    source scripts/procs.sh
    # The bridge (profile `demo`: no LTO, parallel codegen) builds while the dashboard does.
    spawn cargo build --profile demo -p swarmbus-bridge
    {{just_executable()}} build-www
    wait "$spawned"
    cargo run --profile demo -p swarmbus-bridge -- demo {{args}}

# The core bus on its own, in one process: a small swarm, narrated.
demo-core *args:
    cargo run --release -p swarmbus-core --example swarm_demo -- {{args}}

# Bundle the dashboard (www/src) with esbuild into www/dist, with the wasm module.
build-www: build-wasm link-pkg
    node www/build.mjs

# The Deno and Cloudflare workerd examples run for real (npm `deno` and `workerd`)
# against a bridge process, with a wasm Messenger subscriber.
test-edge: build-wasm link-pkg
    cargo build -p swarmbus-bridge
    node examples/workerd/build.mjs
    node --test --test-reporter=spec tests/edge.test.mjs tests/readme.test.mjs

# Everything at once: Redis, two bridges with auth, a Chromium page and this Node
# process with Messengers, the workerd example; then a Redis restart.
test-cross: build-wasm link-pkg
    cargo build -p swarmbus-bridge
    node examples/workerd/build.mjs
    node --test --test-reporter=spec tests/cross.test.mjs

# The dashboard in headless Chromium (playwright-core) against `swarmbus-bridge demo`;
# the screenshot lands in target/www-test/.
test-www: build-www
    cargo build -p swarmbus-bridge
    node --test --test-reporter=spec www/tests/

# Benchmarks of the wasm package against JS peers (eventemitter3, msgpackr, opossum, RegExp loop, JSON.parse).
bench-js: build-wasm link-pkg
    node crates/wasm/bench/bench.mjs

# 100 agents through the bridge for SECONDS: native agents (examples/agents.rs),
# then agents in Node through the wasm package (crates/wasm/bench/agents.mjs);
# then the in-process figure (core bus, 100 agents, no I/O, one bus per core).
load seconds="10": build-wasm link-pkg
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p swarmbus-bridge --bins --examples
    cargo build --release -p swarmbus-core --examples
    bin=target/release/swarmbus-bridge
    source scripts/procs.sh
    echo "| agents | n | published/s | delivered/s | p50 ms | p99 ms | bridge drops | client drops / failed publishes | breaker transitions | bridge RSS |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    spawn $bin --listen 127.0.0.1:18090 2>/dev/null; native=$spawned
    wait_up 127.0.0.1:18090
    target/release/examples/agents --url ws://127.0.0.1:18090/ws --agents 100 --rate 500 --seconds {{seconds}} --bridge-pid $native
    spawn $bin --listen 127.0.0.1:18091 2>/dev/null; node_bridge=$spawned
    wait_up 127.0.0.1:18091
    node crates/wasm/bench/agents.mjs --url ws://127.0.0.1:18091/ws --agents 100 --rate 100 --seconds {{seconds}} --bridge-pid $node_bridge
    echo
    target/release/examples/agents_inprocess --agents 100 --threads 2 --seconds 3

# Benchmark peers no test needs: nats-server (apt-get), skipped when present.
setup-bench:
    scripts/setup.sh bench

# Bridge throughput and latency: the load generator (examples/load.rs) against
# the bridge binary, embedded and through a redis-server, then the socket.io +
# redis-adapter peer doing the same fan-out, then two bridges on one Redis against
# a two-node nats-server cluster (issue 15's scenarios), then RSS per idle connection.
bench-bridge seconds="5": setup-bench
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p swarmbus-bridge --bins --examples
    bin=target/release/swarmbus-bridge
    load=target/release/examples/load
    source scripts/procs.sh
    limits="--publish-rate 10000000 --publish-burst 1000000"
    spawn $bin --listen 127.0.0.1:18080 $limits 2>/dev/null
    spawn redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null
    sleep 0.3
    spawn $bin --listen 127.0.0.1:18081 $limits --redis redis://127.0.0.1:16379 2>/dev/null
    spawn $bin --listen 127.0.0.1:18082 $limits --redis redis://127.0.0.1:16379 2>/dev/null; bridge_b=$spawned
    wait_up 127.0.0.1:18080; wait_up 127.0.0.1:18081; wait_up 127.0.0.1:18082
    echo "| mode | publishers | subscribers | published/s | delivered/s | p50 ms | p99 ms | lost |"
    echo "|---|---|---|---|---|---|---|---|"
    $load --label "embedded, max rate" --url ws://127.0.0.1:18080/ws --publishers 4 --subscribers 4 --seconds {{seconds}}
    $load --label "embedded, 10k msg/s" --url ws://127.0.0.1:18080/ws --publishers 4 --subscribers 4 --rate 2500 --seconds {{seconds}}
    $load --label "redis, 2 bridges, max rate" --url ws://127.0.0.1:18081/ws ws://127.0.0.1:18082/ws --publishers 4 --subscribers 4 --seconds {{seconds}}
    $load --label "redis, 2 bridges, 10k msg/s" --url ws://127.0.0.1:18081/ws ws://127.0.0.1:18082/ws --publishers 4 --subscribers 4 --rate 2500 --seconds {{seconds}}
    # The peer: two socket.io 4 servers with @socket.io/redis-adapter on the same Redis.
    sio=crates/redis-bridge/bench/socketio.mjs
    spawn node $sio --serve 19090 --redis 16379 >/dev/null
    spawn node $sio --serve 19091 --redis 16379 >/dev/null
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:19091/socket.io/?EIO=4&transport=polling" && break; sleep 0.1; done
    node $sio --label "socket.io + redis-adapter, 2 servers, max rate" --url http://127.0.0.1:19090 --url http://127.0.0.1:19091 --seconds {{seconds}}
    node $sio --label "socket.io + redis-adapter, 2 servers, 10k msg/s" --url http://127.0.0.1:19090 --url http://127.0.0.1:19091 --rate 2500 --seconds {{seconds}}
    # The NATS peer (issue 15): two nats-server nodes joined by a route, WebSocket on. Publishers on
    # bridge 18081 / node A, subscribers on bridge 18082 / node B, so every message crosses Redis or
    # the route. 100-byte payloads; the last columns: node B's send-type syscalls and CPU time per delivery,
    # and the CPU time of the load generator itself.
    source crates/redis-bridge/bench/nats.sh
    nats_cluster
    echo
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| scenario, server | publishers | subscribers | published/s | delivered/s | p50 ms | p99 ms | lost | send calls per delivery, node B | node B CPU µs per delivery | generator CPU s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    bridges="--publish-url ws://127.0.0.1:18081/ws --subscribe-url ws://127.0.0.1:18082/ws --perf-pid $bridge_b"
    nats="--nats --publish-url $nats_a_ws --subscribe-url $nats_b_ws --perf-pid $nats_b_pid"
    compared=()
    for scenario in "(a) 1 topic, 4 pub → 16 sub, max rate|--topics 1 --publishers 4 --subscribers 16" \
        "(b) 100 topics, 10 pub → 100 sub × 3 topics, max rate|--topics 100 --topics-per-subscriber 3 --publishers 10 --subscribers 100" \
        "(c) 10k msg/s, fan-out 16|--topics 1 --publishers 4 --subscribers 16 --rate 2500"; do
        name="${scenario%%|*}"; opts="${scenario#*|}"
        ours=$($load --label "$name: swarmbus-bridge ×2 + Redis" $bridges $opts --payload 100 --seconds {{seconds}})
        echo "$ours"
        theirs=$($load --label "$name: nats-server ×2 + route" $nats $opts --payload 100 --seconds {{seconds}})
        echo "$theirs"
        compared+=("$(compare "$name" "$ours" "$theirs")")
    done
    echo
    echo "| scenario | delivered/s swarmbus / nats | p50 swarmbus / nats | p99 swarmbus / nats |"
    echo "|---|---|---|---|"
    printf '%s\n' "${compared[@]}"
    echo
    # Memory per idle connection (embedded bridge on its own).
    ulimit -n 20000 || true
    spawn $bin --listen 127.0.0.1:18083 2>/dev/null; idle_pid=$spawned
    wait_up 127.0.0.1:18083
    $load --url ws://127.0.0.1:18083/ws --idle 10000 --bridge-pid $idle_pid
