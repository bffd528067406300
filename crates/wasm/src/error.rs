//! The one error type of the package: a JS `Error` with a string `.code`.

use core::fmt::Display;

use js_sys::Reflect;
use swarmbus_core::{BusError, CircuitOpen, CodecError, PriorityError, StoreError, TopicError};
use wasm_bindgen::JsValue;

/// An error thrown to JavaScript as `Error` with `.code` and `.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Stable machine-readable code, e.g. `INVALID_TOPIC`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

/// Every export returns this.
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Display) -> Self {
        Self { code, message: message.to_string() }
    }

    /// A bad argument (`INVALID_ARGUMENT`).
    pub fn invalid(message: impl Display) -> Self {
        Self::new("INVALID_ARGUMENT", message)
    }

    /// An input that could not be decoded (`DECODE_ERROR`).
    pub fn decode(message: impl Display) -> Self {
        Self::new("DECODE_ERROR", message)
    }

    /// An invalid topic (`INVALID_TOPIC`).
    pub fn topic(e: TopicError) -> Self {
        Self::new(TopicError::TOPIC_CODE, format_args!("invalid topic: {e}"))
    }

    /// What a caller's code threw (a getter, a Proxy trap, `toJSON`, a
    /// callback), as `code` with `context: <its message>`; see [`crate::convert`].
    pub fn thrown(code: &'static str, context: &str, thrown: &JsValue) -> Self {
        Self::new(code, format_args!("{context}: {}", crate::convert::describe(thrown)))
    }

    /// An invalid subscription pattern (`INVALID_PATTERN`).
    pub fn pattern(e: TopicError) -> Self {
        Self::new(TopicError::PATTERN_CODE, format_args!("invalid pattern: {e}"))
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        let error = js_sys::Error::new(&e.message);
        // Setting a property on a fresh Error object cannot fail.
        let _ = Reflect::set(&error, &"code".into(), &e.code.into());
        error.into()
    }
}

impl From<BusError> for Error {
    fn from(e: BusError) -> Self {
        Self::new(e.code(), e)
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Self::new(e.code(), e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::new(e.code(), e)
    }
}

impl From<PriorityError> for Error {
    fn from(e: PriorityError) -> Self {
        Self::new(PriorityError::CODE, e)
    }
}

impl From<CircuitOpen> for Error {
    fn from(e: CircuitOpen) -> Self {
        Self::new(CircuitOpen::CODE, e)
    }
}

impl From<serde_wasm_bindgen::Error> for Error {
    fn from(e: serde_wasm_bindgen::Error) -> Self {
        Self::invalid(e)
    }
}
