//! The JS `CircuitBreaker`: wrap any sync or async call, as opossum does.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use serde::Deserialize;
use swarmbus_core::breaker::{BreakerConfig, Permit};
use swarmbus_core::{CircuitBreaker as CoreBreaker, Priority};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::bus::breaker_info;
use crate::convert::{from_js, options_or_default, to_js};
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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RunOptions {
    priority: Option<u8>,
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
        let config: BreakerConfig = options_or_default(options)?;
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
        let permit = match self.admit(options) {
            Ok(permit) => permit,
            Err(e) => return Promise::reject(&e.into()),
        };
        let outcome = call_guarded(&f);
        let value = take_called();
        match outcome {
            THREW => {
                self.inner.borrow_mut().on_failure(permit, now_ms());
                Promise::reject(&value)
            }
            RETURNED_PROMISE => {
                let promise: Promise = value.unchecked_into();
                let inner = self.inner.clone();
                future_to_promise(async move {
                    let outcome = JsFuture::from(promise).await;
                    let mut breaker = inner.borrow_mut();
                    match &outcome {
                        Ok(_) => breaker.on_success(permit, now_ms()),
                        Err(_) => breaker.on_failure(permit, now_ms()),
                    };
                    outcome
                })
            }
            _ => {
                self.inner.borrow_mut().on_success(permit, now_ms());
                Promise::resolve(&value)
            }
        }
    }

    /// The state name: `closed`, `open`, `half-open`, `forced-open` or `disabled`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        let mut breaker = self.inner.borrow_mut();
        breaker.poll(now_ms());
        breaker.state().kind().as_str().to_owned()
    }

    /// The state with its details: `{state, consecutiveFailures, sinceMs?, waitMs?, ...}`.
    #[wasm_bindgen(unchecked_return_type = "BreakerStateInfo")]
    pub fn info(&self) -> Result<JsValue> {
        let mut breaker = self.inner.borrow_mut();
        breaker.poll(now_ms());
        breaker_info(&breaker.state(), breaker.transition_count(), breaker.window())
    }

    /// Opens the circuit until `reset()`.
    #[wasm_bindgen(js_name = forceOpen)]
    pub fn force_open(&self) {
        self.inner.borrow_mut().force_open(now_ms());
    }

    /// Lets every call through and records nothing until `reset()`.
    pub fn disable(&self) {
        self.inner.borrow_mut().disable(now_ms());
    }

    /// Closes the circuit and forgets failures.
    pub fn reset(&self) {
        self.inner.borrow_mut().reset(now_ms());
    }

    /// The whole breaker (settings and state) as a plain JSON-safe object.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> Result<JsValue> {
        to_js(&*self.inner.borrow())
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
        let breaker: CoreBreaker = from_js(saved).map_err(|e| Error::decode(e.message))?;
        Ok(Self { inner: Rc::new(RefCell::new(breaker)) })
    }
}

impl CircuitBreaker {
    fn admit(&self, options: JsValue) -> Result<Permit> {
        let options: RunOptions = options_or_default(options)?;
        let priority = Priority::new(options.priority.unwrap_or(Priority::NORMAL.get()))?;
        Ok(self.inner.borrow_mut().try_acquire(now_ms(), priority)?)
    }
}
