// Small JS helpers the wasm crate imports (one module, so one file to load).
// Each section belongs to the Rust module named in its heading.

// --- bus.rs
export function make_event(id, topic, priority, timestamp, p, i) { return { id, topic, priority, timestamp, payload: i < 0 ? p : p[i] }; }
let thrown;
export function call_handler(f, id, topic, priority, timestamp, p, i) { try { f({ id, topic, priority, timestamp, payload: i < 0 ? p : p[i] }); return true; } catch (error) { thrown = error; return false; } }
export function take_thrown() { const error = thrown; thrown = undefined; return error; }
export function option_number(o, key) { try { const v = o[key]; return v === undefined || v === null ? -1 : typeof v === 'number' ? (v < 0 ? -3 : v) : -2; } catch (error) { thrown = error; return -4; } }
export function copy_batch(a) {
  try {
    if (!Array.isArray(a)) return undefined;
    const n = a.length;
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = a[i];
    return out;
  } catch (error) { thrown = error; return null; }
}

// --- codec.rs
const EXACT = Symbol('exact');
function replacer(key, v) {
  switch (typeof v) {
    case 'undefined': return null;
    case 'number': if (!Number.isFinite(v)) throw EXACT; return v;
    case 'object': if (v !== null && (ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Map)) throw EXACT; return v;
    case 'bigint': case 'function': case 'symbol': throw EXACT;
    default: return v;
  }
}
export function json_text(value) {
  try { return JSON.stringify(value, replacer); } catch (error) { return error === EXACT ? undefined : error; }
}
export function make_header(id, topic, priority) { return { id, topic, priority }; }
export function make_envelope(id, topic, priority, timestamp, ttlMs, sender, swarm, correlationId, payload) {
  const out = { id, topic, priority, timestamp };
  if (ttlMs !== undefined) out.ttlMs = ttlMs;
  if (sender !== undefined) out.sender = sender;
  if (swarm !== undefined) out.swarm = swarm;
  if (correlationId !== undefined) out.correlationId = correlationId;
  out.payload = payload;
  return out;
}
// Guarded (see the convert.rs section): -2 when reading `bytes` threw.
export function copy_prefix(bytes, memory, ptr, max) {
  try {
    if (!(bytes instanceof Uint8Array)) {
      if (!Array.isArray(bytes)) return -1;
      bytes = Uint8Array.from(bytes);
    }
    const len = TYPED_LENGTH.call(bytes);
    const n = len < max ? len : max;
    new Uint8Array(memory.buffer, ptr, n).set(n === len ? bytes : new Uint8Array(TYPED_BUFFER.call(bytes), TYPED_OFFSET.call(bytes), n));
    return len;
  } catch (error) { guarded = error; return -2; }
}

// --- breaker.rs
let called;
// A returned promise is re-wrapped in a fresh native one, so no user `then` runs from Rust.
export function call_guarded(f) { try { called = f(); if (!(called instanceof Promise)) return 1; const p = called; called = new Promise((resolve) => resolve(p)); return 2; } catch (error) { called = error; return 0; } }
export function take_called() { const value = called; called = undefined; return value; }

// --- exact.rs
export function value_kind(v) {
  switch (typeof v) {
    case 'undefined': return 0;
    case 'boolean': return v ? 2 : 1;
    case 'number': return 3;
    case 'string': return 4;
    case 'bigint': return 5;
    case 'object':
      if (v === null) return 0;
      if (Array.isArray(v)) return 6;
      if (v instanceof Uint8Array || v instanceof ArrayBuffer) return 7;
      if (ArrayBuffer.isView(v)) return 9;
      return 8;
    default: return 9;
  }
}
export function as_bytes(v) { return v instanceof Uint8Array ? v : new Uint8Array(v); }
export function entries_of(v) { return v instanceof Map ? Array.from(v) : Object.entries(v); }
export function set_key(o, k, v) {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}
export function new_object() { return {}; }

// --- messenger.rs
export function open_web_socket(ctor, url) {
  try { const ws = new ctor(url); ws.binaryType = 'arraybuffer'; return ws; }
  catch (error) { return error instanceof Error ? error : new Error(String(error)); }
}

// --- convert.rs: the guard. Every read or call that can run user code (getters,
// Proxies, toJSON, iterators, callbacks) happens inside a try here; the result or
// what was thrown waits in `guarded` for `guard_take`, so no exception unwinds through Rust.
let guarded;
const TOO_DEEP = Symbol('too deep');
const TYPED = Object.getPrototypeOf(Uint8Array.prototype);
const TYPED_LENGTH = Object.getOwnPropertyDescriptor(TYPED, 'length').get;
const TYPED_BUFFER = Object.getOwnPropertyDescriptor(TYPED, 'buffer').get;
const TYPED_OFFSET = Object.getOwnPropertyDescriptor(TYPED, 'byteOffset').get;
export function guard_take() { const value = guarded; guarded = undefined; return value; }
// A plain copy: own enumerable string keys of objects, arrays, Maps, fresh byte copies;
// primitives and functions as they are; `depth` levels of containers at most.
function plainCopy(v, depth) {
  if (typeof v !== 'object' || v === null) return v;
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (v instanceof ArrayBuffer) return new Uint8Array(new Uint8Array(v));
  if (ArrayBuffer.isView(v)) return v;
  if (depth === 0) throw TOO_DEEP;
  if (Array.isArray(v)) {
    const n = v.length;
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = plainCopy(v[i], depth - 1);
    return out;
  }
  if (v instanceof Map) {
    const out = new Map();
    for (const [k, x] of v) out.set(plainCopy(k, depth - 1), plainCopy(x, depth - 1));
    return out;
  }
  const out = {};
  for (const k of Object.keys(v)) set_key(out, k, plainCopy(v[k], depth - 1));
  return out;
}
// 1: copied; 0: reading it threw; 2: deeper than `depth`.
export function guard_plain(v, depth) {
  try { guarded = plainCopy(v, depth); return 1; } catch (error) { guarded = error; return error === TOO_DEEP ? 2 : 0; }
}
// Own enumerable properties, one level, values as they are.
export function guard_own(v) {
  try { const out = {}; for (const k of Object.keys(v)) set_key(out, k, v[k]); guarded = out; return true; } catch (error) { guarded = error; return false; }
}
export function guard_get(o, key) { try { guarded = o[key]; return true; } catch (error) { guarded = error; return false; } }
export function guard_call(f, self, a, b, c) { try { guarded = f.call(self, a, b, c); return true; } catch (error) { guarded = error; return false; } }
export function guard_describe(e) {
  try { return e instanceof Error ? String(e.message) : String(e); } catch (_) { return 'a value whose description threw'; }
}
