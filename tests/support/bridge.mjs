// Starts a real swarmbus-bridge process on a free loopback port for a test.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The bridge binary: `SWARMBUS_BRIDGE_BIN`, else the debug build (`cargo build -p swarmbus-bridge`). */
export const BRIDGE_BIN = process.env.SWARMBUS_BRIDGE_BIN ?? `${ROOT}target/debug/swarmbus-bridge`;

/**
 * Spawns the bridge (`command`, e.g. `['demo']`, then `--listen 127.0.0.1:0`
 * and `args`) from the repository root and resolves
 * once it logs its address: `{ url, wsUrl, port, stop() }`.
 */
export async function startBridge(args = [], { listen = '127.0.0.1:0', command = [] } = {}) {
  const child = spawn(BRIDGE_BIN, [...command, '--listen', listen, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bridge did not start:\n${output}`)), 15_000);
    const onData = (chunk) => {
      output += chunk;
      const match = /listening on http:\/\/([\d.]+:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`bridge exited with ${code}:\n${output}`));
    });
  });
  const port = Number(address.split(':')[1]);
  return {
    url: `http://${address}`,
    wsUrl: `ws://${address}/ws`,
    port,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** An HS256 JWT for the bridge's `--auth-secret`. */
export function signToken(secret, claims) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** Resolves when `predicate()` (sync or async) is true, polling every 10 ms; rejects after `ms`. */
export async function until(predicate, ms = 5_000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A loopback TCP port free right now. */
export async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Headless Chromium (`CHROMIUM`, default /usr/bin/chromium) with flags quiet on a closed network. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}
