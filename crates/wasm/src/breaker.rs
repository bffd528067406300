//! The JS `CircuitBreaker`: wrap any sync or async call, as opossum does.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use swarmbus_core::breaker::{BreakerConfig, Permit};
use swarmbus_core::{CircuitBreaker as CoreBreaker, Priority};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::bus::breaker_info;
use crate::convert::{get, plain, priority_from_js, to_js};
use crate::error::{Error, Result};

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

const THREW: u8 = 0;
const RETURNED_PROMISE: u8 = 2;

// What `f()` returned or threw stays in JS until `take_called` (no result object per call).
#[wasm_bindgen(module = "/src/helpers.js")]
extern "C" {
    /// Calls `f()`: `THREW` (0), returned a value (1) or `RETURNED_PROMISE` (2).
    fn call_guarded(f: &Function) -> u8;
    /// What the last `call_guarded` returned or threw.
    fn take_called() -> JsValue;
}

/// A circuit breaker around any function. Its state serializes with
/// `toJSON()` and comes back with `CircuitBreaker.fromJSON()`, so a serverless
/// worker can keep it between requests.
#[wasm_bindgen]
pub struct CircuitBreaker {
    inner: Rc<RefCell<CoreBreaker>>,
}

#[wasm_bindgen]
impl CircuitBreaker {
    /// `new CircuitBreaker({failureThreshold = 5, openMs = 30000, halfOpenProbes = 3,
    /// bypassPriority = 8, failureRate?, backoff?})`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "BreakerOptions | undefined")] options: JsValue,
    ) -> Result<CircuitBreaker> {
        let config = config_from_js(&options)?;
        Ok(Self { inner: Rc::new(RefCell::new(CoreBreaker::new(config))) })
    }

    /// Calls `fn()` if the breaker admits it and records the outcome. Returns a
    /// promise of `fn`'s result (awaited when `fn` returns a promise); rejects
    /// with code `CIRCUIT_OPEN` without calling `fn` when the circuit is open.
    pub fn run(
        &self,
        #[wasm_bindgen(unchecked_param_type = "() => unknown")] f: Function,
        #[wasm_bindgen(unchecked_param_type = "{ priority?: number } | undefined")] options: JsValue,
    ) -> Promise {
        if !f.is_function() {
            return Promise::reject(&Error::invalid("CircuitBreaker.run takes a function").into());
        }
        let permit = match self.admit(&options) {
            Ok(permit) => permit,
            Err(e) => return Promise::reject(&e.into()),
        };
        // No borrow is held while `f` runs: it may call this breaker again.
        let outcome = call_guarded(&f);
        let value = take_called();
        let now = now_ms();
        match outcome {
            THREW => {
                self.inner.borrow_mut().on_failure(permit, now);
                Promise::reject(&value)
            }
            RETURNED_PROMISE => {
                let promise: Promise = value.unchecked_into();
                let inner = self.inner.clone();
                future_to_promise(async move {
                    // `promise` is a fresh native promise (see `call_guarded`): no user `then` runs here.
                    let outcome = JsFuture::from(promise).await;
                    let now = now_ms();
                    let mut breaker = inner.borrow_mut();
                    match &outcome {
                        Ok(_) => breaker.on_success(permit, now),
                        Err(_) => breaker.on_failure(permit, now),
                    };
                    outcome
                })
            }
            _ => {
                self.inner.borrow_mut().on_success(permit, now);
                Promise::resolve(&value)
            }
        }
    }

    /// The state name: `closed`, `open`, `half-open`, `forced-open` or `disabled`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        let now = now_ms();
        let mut breaker = self.inner.borrow_mut();
        breaker.poll(now);
        breaker.state().kind().as_str().to_owned()
    }

    /// The state with its details: `{state, consecutiveFailures, sinceMs?, waitMs?, ...}`.
    #[wasm_bindgen(unchecked_return_type = "BreakerStateInfo")]
    pub fn info(&self) -> Result<JsValue> {
        let now = now_ms();
        let (state, transitions, window) = {
            let mut breaker = self.inner.borrow_mut();
            breaker.poll(now);
            (breaker.state(), breaker.transition_count(), breaker.window())
        };
        breaker_info(&state, transitions, window)
    }

    /// Opens the circuit until `reset()`.
    #[wasm_bindgen(js_name = forceOpen)]
    pub fn force_open(&self) {
        let now = now_ms();
        self.inner.borrow_mut().force_open(now);
    }

    /// Lets every call through and records nothing until `reset()`.
    pub fn disable(&self) {
        let now = now_ms();
        self.inner.borrow_mut().disable(now);
    }

    /// Closes the circuit and forgets failures.
    pub fn reset(&self) {
        let now = now_ms();
        self.inner.borrow_mut().reset(now);
    }

    /// The whole breaker (settings and state) as a plain JSON-safe object.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> Result<JsValue> {
        let breaker = self.inner.borrow().clone();
        to_js(&breaker)
    }

    /// Restores a breaker saved with `toJSON()` (the object, or its JSON string).
    #[wasm_bindgen(js_name = fromJSON)]
    pub fn from_json(saved: JsValue) -> Result<CircuitBreaker> {
        // A string goes through the engine's JSON.parse, not a second JSON parser in wasm.
        let saved = match saved.as_string() {
            Some(text) => js_sys::JSON::parse(&text).map_err(|e| {
                Error::decode(format_args!("invalid JSON: {}", crate::bus::error_message(&e)))
            })?,
            None => saved,
        };
        // A throw or too deep while reading is INVALID_ARGUMENT; a wrong shape is DECODE_ERROR.
        let breaker: CoreBreaker = serde_wasm_bindgen::from_value(plain(&saved)?).map_err(Error::decode)?;
        Ok(Self { inner: Rc::new(RefCell::new(breaker)) })
    }
}

impl CircuitBreaker {
    /// Reads `{priority}` (guarded), then asks the breaker: no borrow while JS runs.
    fn admit(&self, options: &JsValue) -> Result<Permit> {
        let priority = if options.is_undefined() || options.is_null() {
            Priority::NORMAL
        } else if !options.is_object() {
            return Err(Error::invalid("run options must be an object"));
        } else {
            let priority = get(options, "priority")
                .map_err(|e| Error::thrown("INVALID_ARGUMENT", "reading run options threw", &e))?;
            priority_from_js(&priority)?.unwrap_or(Priority::NORMAL)
        };
        let now = now_ms();
        Ok(self.inner.borrow_mut().try_acquire(now, priority)?)
    }
}

/// Breaker options (`BreakerOptions`) read through a guarded plain copy;
/// `undefined` or `null` give the defaults; a `bypassPriority` that is not
/// an integer 0–9 (or `null`) is `INVALID_PRIORITY`. The `Bus` reads its
/// `breaker` option with this too.
pub(crate) fn config_from_js(options: &JsValue) -> Result<BreakerConfig> {
    if options.is_undefined() || options.is_null() {
        return Ok(BreakerConfig::default());
    }
    let copy = plain(options)?;
    if copy.is_object() {
        // `copy` is a plain object this module made: reading it runs no user code.
        let bypass = js_sys::Reflect::get(&copy, &"bypassPriority".into()).unwrap_or(JsValue::UNDEFINED);
        priority_from_js(&bypass)?;
    }
    serde_wasm_bindgen::from_value(copy).map_err(Error::invalid)
}
