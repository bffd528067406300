// The `swarmbus` entry point for browsers, Deno and Cloudflare workerd: call
// `await init()` (or `initSync({ module })`) once, then use the exports.
//
// This wraps the wasm-bindgen glue so that a method called on an object after
// `free()` throws an Error with `code: 'FREED'` instead of a generic message.
import init, * as glue from './swarmbus.js';

const CLASSES = ['Bus', 'CircuitBreaker', 'StateStore', 'Messenger'];
const SKIP = new Set(['constructor', 'free', '__destroy_into_raw', '__wrap']);

function freed(className, member) {
  const error = new Error(`${className}.${member} used after free()`);
  error.code = 'FREED';
  return error;
}

for (const className of CLASSES) {
  const proto = glue[className].prototype;
  for (const member of Object.getOwnPropertyNames(proto)) {
    if (SKIP.has(member) || typeof member === 'symbol') continue;
    const descriptor = Object.getOwnPropertyDescriptor(proto, member);
    if (typeof descriptor.value === 'function') {
      const method = descriptor.value;
      // Fixed arity where it fits: no rest array per call on hot methods like Bus.publish.
      descriptor.value = method.length <= 3
        ? function (a, b, c) {
          if (!this.__wbg_ptr) throw freed(className, member);
          return method.call(this, a, b, c);
        }
        : function (...args) {
          if (!this.__wbg_ptr) throw freed(className, member);
          return method.apply(this, args);
        };
    } else {
      for (const accessor of ['get', 'set']) {
        const original = descriptor[accessor];
        if (!original) continue;
        descriptor[accessor] = function (...args) {
          if (!this.__wbg_ptr) throw freed(className, member);
          return original.apply(this, args);
        };
      }
    }
    Object.defineProperty(proto, member, descriptor);
  }
  // free() twice is harmless.
  const free = proto.free;
  proto.free = function () {
    if (this.__wbg_ptr) free.call(this);
  };
}

export * from './swarmbus.js';
export default init;

// decodeEnvelope returns the decoded payload (so that
// `decodeEnvelope(encodeEnvelope({ topic, payload })).payload` equals `payload`),
// and the payload's MessagePack bytes with `{ raw: true }`. A glue function that
// takes the options itself (decoding in wasm) is used as it is.
const decodeEnvelopeGlue = glue.decodeEnvelope;
export const decodeEnvelope = decodeEnvelopeGlue.length >= 2
  ? decodeEnvelopeGlue
  : function decodeEnvelope(bytes, options) {
    const envelope = decodeEnvelopeGlue(bytes);
    if (options?.raw !== true) envelope.payload = glue.decode(envelope.payload);
    return envelope;
  };
