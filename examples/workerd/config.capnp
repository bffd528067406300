# The swarmbus edge worker on workerd (Cloudflare's runtime), locally:
#   node examples/workerd/build.mjs
#   SWARMBUS_BRIDGE_URL=http://127.0.0.1:8080 npx workerd serve examples/workerd/config.capnp
# `--socket-addr http=127.0.0.1:PORT` overrides the address below.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .swarmbusWorker),
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const swarmbusWorker :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "dist/worker.mjs"),
    (name = "swarmbus_bg.wasm", wasm = embed "dist/swarmbus_bg.wasm"),
  ],
  compatibilityDate = "2025-01-01",
  bindings = [
    (name = "BRIDGE_URL", fromEnvironment = "SWARMBUS_BRIDGE_URL"),
    (name = "SWARMBUS_TOKEN", fromEnvironment = "SWARMBUS_TOKEN"),
  ],
  globalOutbound = "internet",
);
