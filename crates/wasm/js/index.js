// The `swarmbus` entry point for browsers, Deno and Cloudflare workerd: call
// `await init()` (or `initSync({ module })`) once, then use the exports.
//
// This wraps the wasm-bindgen glue so that a method called on an object after
// `free()` throws an Error with `code: 'FREED'` instead of a generic message.
import init, * as glue from './swarmbus.js';
import { Bus, MessengerLink } from './bus.js';

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

// `Bus` is the JS-side bus of bus.js (core decides routing and breakers, JS
// runs the per-event loop); core's own wasm bus stays available as `CoreBus`
// (the reference the differential test compares against).
export { Bus, Router, Subscription, CoreBus } from './bus.js';

// `new Messenger(bus, options)` takes the JS `Bus` (linked through a private
// core bus the Rust Messenger runs on, see MessengerLink in bus.js) or a `CoreBus`.
const GlueMessenger = glue.Messenger;

// `subscribe` and `flush` return promises; one nobody awaits must not become an
// unhandled rejection (Node 20 exits on those): a refusal also reaches onError.
for (const member of ['subscribe', 'flush', 'refreshToken']) {
  const method = GlueMessenger.prototype[member];
  GlueMessenger.prototype[member] = function (a, handler) {
    // A Messenger of a JS Bus has its own `subscribe` (below); one of a CoreBus
    // has no bus Subscription to resolve with, so it takes no handler.
    if (member === 'subscribe' && handler !== undefined && handler !== null) {
      const error = new Error('subscribe(pattern, handler) needs a Messenger of a JS Bus; with a CoreBus, subscribe the handler on the CoreBus');
      error.code = 'INVALID_ARGUMENT';
      throw error;
    }
    const promise = method.call(this, a);
    promise.catch(() => {});
    return promise;
  };
}
export function Messenger(bus, options) {
  if (!new.target) throw new TypeError("Class constructor Messenger cannot be invoked without 'new'");
  if (!(bus instanceof Bus)) return new GlueMessenger(bus, options);
  if (bus._freed) throw freed('Bus', 'Messenger');
  if (bus._link !== null) {
    const error = new Error('this Bus already has a Messenger');
    error.code = 'INVALID_STATE';
    throw error;
  }
  const link = new MessengerLink(bus);
  let messenger;
  try {
    messenger = new GlueMessenger(link.core, options);
  } catch (error) {
    link.free();
    throw error;
  }
  bus._link = link;
  // The forward patterns, mirrored so that a local publish none matches stays in JS.
  try {
    for (const pattern of options?.forward ?? []) link.addForward(pattern);
    for (const pattern of options?.subscribe ?? []) link.explicit.add(pattern);
  } catch {
    // The Messenger read the same option without error; nothing to mirror otherwise.
  }
  const forward = messenger.forward;
  messenger.forward = function (pattern) {
    forward.call(this, pattern);
    link.addForward(pattern);
  };
  const stopForwarding = messenger.stopForwarding;
  messenger.stopForwarding = function (pattern) {
    const stopped = stopForwarding.call(this, pattern);
    if (stopped) link.removeForward(pattern);
    return stopped;
  };
  // close() stops forwarding until the next connect(); local delivery goes on.
  const close = messenger.close;
  messenger.close = function () {
    close.call(this);
    link.closed = true;
  };
  const connect = messenger.connect;
  messenger.connect = function (url, connectOptions) {
    const connected = connect.call(this, url, connectOptions);
    link.closed = false;
    return connected;
  };
  // A pattern declared once: `messenger.subscribe(pattern, handler, options)` also
  // subscribes `handler` on the bus (remote and local events); the promise
  // resolves with the bus Subscription once the bridge acknowledged the pattern.
  // The remote subscription lives while a handler of it does (or while it was
  // also subscribed on its own): the last one unsubscribed, or a `once` that
  // fired, unsubscribes the pattern at the bridge.
  const subscribeRemote = messenger.subscribe;
  const unsubscribeRemote = messenger.unsubscribe;
  link.unsubscribeRemote = (pattern) => unsubscribeRemote.call(messenger, pattern);
  messenger.subscribe = function (pattern, handler, subscribeOptions) {
    if (!this.__wbg_ptr) throw freed('Messenger', 'subscribe');
    if (handler === undefined || handler === null) {
      const acked = subscribeRemote.call(this, pattern);
      link.explicit.add(pattern);
      return acked;
    }
    // The bus first: a refused handler or option leaves nothing subscribed at the bridge.
    const subscription = bus.subscribe(pattern, handler, subscribeOptions);
    link.hold(subscription.id, pattern);
    let acked;
    try {
      acked = subscribeRemote.call(this, pattern);
    } catch (error) {
      subscription.unsubscribe();
      throw error;
    }
    const done = acked.then(() => subscription, (error) => {
      subscription.unsubscribe();
      throw error;
    });
    done.catch(() => {});
    return done;
  };
  // Unsubscribes the pattern at the bridge and its handlers from `messenger.subscribe` on the bus.
  messenger.unsubscribe = function (pattern) {
    if (!this.__wbg_ptr) throw freed('Messenger', 'unsubscribe');
    link.explicit.delete(pattern);
    let removed = false;
    for (const id of link.dropHolders(pattern)) removed = bus._unsubscribe(id) || removed;
    return unsubscribeRemote.call(this, pattern) || removed;
  };
  const free = messenger.free;
  messenger.free = function () {
    free.call(this);
    if (bus._link === link) {
      bus._link = null;
      link.free();
    }
  };
  return messenger;
}
Messenger.prototype = GlueMessenger.prototype;
Object.setPrototypeOf(Messenger, GlueMessenger);

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
