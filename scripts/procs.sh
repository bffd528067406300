# Background processes of a recipe, stopped by PID when the recipe ends.
# Source it from a bash recipe: `source scripts/procs.sh`, then
#   spawn CMD ARGS...    starts CMD in the background and records its PID in $spawned
#   wait_up HOST:PORT    waits (at most 10 s) until the bridge there answers /readyz
# Every recorded PID is sent SIGTERM on exit, error or interrupt.
pids=()
spawned=""
trap 'if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi' EXIT

spawn() {
    "$@" &
    spawned=$!
    pids+=("$spawned")
}

wait_up() {
    for _ in $(seq 100); do
        curl -fs "http://$1/readyz" >/dev/null && return 0
        sleep 0.1
    done
    echo "bridge $1 did not come up" >&2
    exit 1
}
