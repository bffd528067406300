# The nats-server peer of `just bench-bridge`: two nodes joined by a route, each
# with a WebSocket listener, on free loopback ports. Source it after
# scripts/procs.sh (its `spawn` records the PIDs, stopped when the recipe ends):
#   nats_cluster    starts node A and node B and waits until the route is up; sets
#                   nats_a_ws, nats_b_ws (ws:// URLs) and nats_a_pid, nats_b_pid.
# Configs live in a temporary directory removed once both nodes have read them
# (the nodes' logs stay there and are printed if the route does not come up).

# Prints $1 free loopback TCP ports, held open together so they differ.
free_ports() {
    python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# Writes node $1's config: client port, monitor port, WebSocket port, its route port, the other node's route port.
nats_config() {
    cat <<EOF
server_name: $1
listen: 127.0.0.1:$2
http: 127.0.0.1:$3
websocket { listen: "127.0.0.1:$4", no_tls: true }
cluster { name: bench, listen: 127.0.0.1:$5, routes: [nats-route://127.0.0.1:$6] }
EOF
}

nats_cluster() {
    local dir ports a b
    dir="$(mktemp -d)"
    read -r -a ports <<<"$(free_ports 8)"
    a=("${ports[@]:0:4}")
    b=("${ports[@]:4:4}")
    nats_config a "${a[@]}" "${b[3]}" >"$dir/a.conf"
    nats_config b "${b[@]}" "${a[3]}" >"$dir/b.conf"
    spawn nats-server -c "$dir/a.conf" -l "$dir/a.log"
    nats_a_pid=$spawned
    spawn nats-server -c "$dir/b.conf" -l "$dir/b.log"
    nats_b_pid=$spawned
    nats_a_ws="ws://127.0.0.1:${a[2]}"
    nats_b_ws="ws://127.0.0.1:${b[2]}"
    for _ in $(seq 100); do
        if curl -fs "http://127.0.0.1:${a[1]}/routez" | grep -q '"num_routes": 1' &&
            curl -fs "http://127.0.0.1:${b[1]}/routez" | grep -q '"num_routes": 1'; then
            rm -rf "$dir"
            return 0
        fi
        sleep 0.1
    done
    echo "nats-server route did not come up" >&2
    cat "$dir"/*.log >&2
    exit 1
}

# Prints a ratio row: scenario name $1, then delivered/s, p50 and p99 of our row $2
# over those of the nats row $3 (rows as examples/load.rs prints them).
compare() {
    awk -v name="$1" -v ours="$2" -v theirs="$3" '
        function r(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
        BEGIN {
            split(ours, o, "|"); split(theirs, t, "|")
            printf "| %s | %s | %s | %s |\n", name, r(o[6], t[6]), r(o[7], t[7]), r(o[8], t[8])
        }'
}
