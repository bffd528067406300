//! The package API from Rust, run by wasm-bindgen-test-runner in Node and, with
//! `WASM_BINDGEN_USE_BROWSER=1`, in headless Chromium (`just test-wasm` runs both).
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function, Reflect, Uint8Array, JSON};
use swarmbus_wasm::breaker::CircuitBreaker;
use swarmbus_wasm::bus::Bus;
use swarmbus_wasm::codec::{decode, decode_envelope, encode, encode_envelope, peek_header};
use swarmbus_wasm::store::StateStore;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test as test;

fn json(text: &str) -> JsValue {
    JSON::parse(text).unwrap()
}

fn stringify(value: &JsValue) -> String {
    JSON::stringify(value).unwrap().into()
}

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &key.into()).unwrap()
}

/// A JS function collecting `event.payload` into `log` (a JS array).
fn collector(log: &Array) -> Function {
    let f = Function::new_with_args("log", "return (event) => { log.push(event.payload); }");
    f.call1(&JsValue::NULL, log).unwrap().unchecked_into()
}

#[test]
fn msgpack_round_trip_gives_plain_objects() {
    let value = json(r#"{"a":[1,2.5,-3,{"b":null,"c":"日本"}],"t":true,"e":{}}"#);
    let bytes = encode(value.clone()).unwrap();
    let back = decode(&bytes).unwrap();
    assert_eq!(stringify(&back), stringify(&value), "maps must come back as plain objects");
    assert!(!back.is_instance_of::<js_sys::Map>());
}

#[test]
fn binary_and_big_integers_round_trip() {
    let value = js_sys::Object::new();
    Reflect::set(&value, &"bin".into(), &Uint8Array::from(&[1u8, 2, 255][..])).unwrap();
    Reflect::set(&value, &"big".into(), &js_sys::BigInt::from(u64::MAX).into()).unwrap();
    let back = decode(&encode(value.into()).unwrap()).unwrap();
    assert_eq!(get(&back, "bin").dyn_into::<Uint8Array>().unwrap().to_vec(), [1, 2, 255]);
    assert_eq!(get(&back, "big"), JsValue::from(js_sys::BigInt::from(u64::MAX)));
}

#[test]
fn bad_bytes_are_decode_errors() {
    for bytes in [&[0xc1][..], &[0x92, 0x01], &[0xdd, 0xff, 0xff, 0xff, 0xff], &[0x01, 0x02]] {
        assert_eq!(decode(bytes).unwrap_err().code, "DECODE_ERROR", "{bytes:?}");
    }
    assert_eq!(decode_envelope(js_bytes(&[0x90])).unwrap_err().code, "DECODE_ERROR");
}

#[test]
fn envelopes_round_trip_and_peek() {
    let input =
        json(r#"{"topic":"swarm.a.task","priority":7,"payload":{"x":1},"sender":"agent-1","ttlMs":500}"#);
    let bytes = encode_envelope(input).unwrap();
    let env = decode_envelope(js_bytes(&bytes)).unwrap();
    assert_eq!(get(&env, "topic"), "swarm.a.task");
    assert_eq!(get(&env, "priority"), 7);
    assert_eq!(get(&env, "sender"), "agent-1");
    assert_eq!(get(&env, "ttlMs"), 500);
    assert!(get(&env, "swarm").is_undefined());
    let payload = get(&env, "payload").dyn_into::<Uint8Array>().unwrap().to_vec();
    assert_eq!(stringify(&decode(&payload).unwrap()), r#"{"x":1}"#);
    let header = peek_header(Uint8Array::from(&bytes[..]).into()).unwrap();
    assert_eq!(get(&header, "id"), get(&env, "id"));
    let bad = json(r#"{"topic":"a.*","payload":1}"#);
    assert_eq!(encode_envelope(bad).unwrap_err().code, "INVALID_TOPIC");
    let bad = json(r#"{"topic":"a","payload":1,"priority":12}"#);
    assert_eq!(encode_envelope(bad).unwrap_err().code, "INVALID_PRIORITY");
}

#[test]
fn bus_routes_by_wildcard_in_priority_order() {
    let bus = Bus::new(JsValue::UNDEFINED).unwrap();
    let log = Array::new();
    bus.subscribe("swarm.*.task", collector(&log), JsValue::UNDEFINED).unwrap();
    bus.publish("swarm.a.task", 1.into(), json(r#"{"priority":1}"#)).unwrap();
    bus.publish("swarm.b.task", 2.into(), json(r#"{"priority":9}"#)).unwrap();
    bus.publish("swarm.b.other", 3.into(), JsValue::UNDEFINED).unwrap();
    bus.publish("swarm.c.task", 4.into(), JsValue::UNDEFINED).unwrap();
    assert_eq!(bus.drain(None).unwrap(), 3);
    assert_eq!(stringify(&log), "[2,4,1]");
    assert_eq!(bus.publish("a.>", 0.into(), JsValue::UNDEFINED).unwrap_err().code, "INVALID_TOPIC");
    assert_eq!(
        bus.subscribe("a.>.b", collector(&log), JsValue::UNDEFINED).unwrap_err().code,
        "INVALID_PATTERN"
    );
    assert_eq!(bus.publish("a", 0.into(), json(r#"{"priority":10}"#)).unwrap_err().code, "INVALID_PRIORITY");
}

#[test]
fn throwing_handlers_trip_their_breaker_and_critical_events_bypass_it() {
    let options = json(r#"{"breaker":{"failureThreshold":2,"openMs":60000,"halfOpenProbes":1}}"#);
    let bus = Bus::new(options).unwrap();
    let thrower = Function::new_with_args("event", "throw new Error('boom ' + event.payload)");
    let bad = bus.subscribe("t", thrower, JsValue::UNDEFINED).unwrap();
    let log = Array::new();
    bus.subscribe("t", collector(&log), JsValue::UNDEFINED).unwrap();
    let errors = Array::new();
    let on_error = Function::new_with_args("errors", "return (e, id) => errors.push(e.message + '@' + id)")
        .call1(&JsValue::NULL, &errors)
        .unwrap();
    bus.on_error(Some(on_error.unchecked_into()));
    for i in 0..4 {
        bus.publish("t", i.into(), JsValue::UNDEFINED).unwrap();
    }
    bus.publish("t", 99.into(), json(r#"{"priority":8}"#)).unwrap();
    assert_eq!(bus.drain(None).unwrap(), 7, "99 and 0 reach both; 1..3 only the healthy one");
    assert_eq!(stringify(&errors), format!(r#"["boom 99@{bad}","boom 0@{bad}"]"#));
    assert_eq!(log.length(), 5);
    let state = bus.breaker_state(bad).unwrap();
    assert_eq!(get(&state, "state"), "open");
    let metrics = bus.metrics().unwrap();
    assert_eq!(get(&metrics, "handlerErrors"), 2);
    assert_eq!(get(&metrics, "skippedOpen"), 3);
    assert_eq!(get(&metrics, "breakerTransitions"), 1);
}

#[wasm_bindgen_test::wasm_bindgen_test]
async fn circuit_breaker_runs_sync_and_async_calls() {
    let breaker = CircuitBreaker::new(json(r#"{"failureThreshold":2,"openMs":60000}"#)).unwrap();
    let ok = Function::new_no_args("return 42");
    assert_eq!(JsFuture::from(breaker.run(ok, JsValue::UNDEFINED)).await.unwrap(), 42);
    let rejecting = Function::new_no_args("return Promise.reject(new Error('down'))");
    for _ in 0..2 {
        let err = JsFuture::from(breaker.run(rejecting.clone(), JsValue::UNDEFINED)).await.unwrap_err();
        assert_eq!(get(&err, "message"), "down");
    }
    assert_eq!(breaker.state(), "open");
    let err =
        JsFuture::from(breaker.run(Function::new_no_args("return 1"), JsValue::UNDEFINED)).await.unwrap_err();
    assert_eq!(get(&err, "code"), "CIRCUIT_OPEN");
    let critical =
        JsFuture::from(breaker.run(Function::new_no_args("return 7"), json(r#"{"priority":9}"#))).await;
    assert_eq!(critical.unwrap(), 7);
    let saved = breaker.to_json().unwrap();
    let restored = CircuitBreaker::from_json(JSON::stringify(&saved).unwrap().into()).unwrap();
    assert_eq!(restored.state(), "open");
    assert_eq!(CircuitBreaker::from_json(json(r#"{"nope":1}"#)).err().unwrap().code, "DECODE_ERROR");
}

#[test]
fn state_store_versions_snapshots_diffs_and_bytes() {
    let store = StateStore::new(None);
    assert_eq!(store.set("phase".into(), "plan".into()).unwrap(), 1.0);
    let first = store.snapshot(Some("plan".into())).unwrap();
    store.merge("agents".into(), json(r#"{"a1":"idle"}"#)).unwrap();
    assert_eq!(store.compare_and_set("phase".into(), 1.0, "act".into()).unwrap(), 3.0);
    assert_eq!(store.compare_and_set("phase".into(), 1.0, "x".into()).unwrap_err().code, "VERSION_CONFLICT");
    let second = store.snapshot(None).unwrap();
    let patch = store.diff(first, second).unwrap();
    assert_eq!(get(&patch, "ops").unchecked_into::<Array>().length(), 2);
    store.restore(first).unwrap();
    assert!(store.get("agents".into()).unwrap().is_undefined());
    store.apply(patch).unwrap();
    assert_eq!(stringify(&store.get("agents".into()).unwrap()), r#"{"a1":"idle"}"#);
    let copy = StateStore::from_bytes(js_bytes(&store.to_bytes())).unwrap();
    assert_eq!(stringify(&copy.get("phase".into()).unwrap()), r#""act""#);
    assert_eq!(StateStore::from_bytes(js_bytes(&[1, 2, 3])).err().unwrap().code, "DECODE_ERROR");
    assert_eq!(store.restore(999.0).unwrap_err().code, "UNKNOWN_SNAPSHOT");
}

/// Bytes as the JS `Uint8Array` the exports take.
fn js_bytes(bytes: &[u8]) -> JsValue {
    js_sys::Uint8Array::from(bytes).into()
}

/// `{ get x() { throw new Error('boom') } }`.
fn throwing_getter() -> JsValue {
    Function::new_no_args("return { get x() { throw new Error('boom'); } };").call0(&JsValue::NULL).unwrap()
}

/// `[[[…0…]]]`, `depth` arrays deep.
fn deep_array(depth: usize) -> JsValue {
    (0..depth).fold(JsValue::from(0), |inner, _| Array::of1(&inner).into())
}

// Regression (issue 11): a throwing getter unwound through Rust, leaving the store
// borrowed; a 10,000-deep array overflowed the wasm stack.
#[test]
fn throws_and_deep_values_are_invalid_arguments_and_the_store_stays_usable() {
    let store = StateStore::new(None);
    for _ in 0..1_000 {
        assert_eq!(store.set("k".into(), throwing_getter()).unwrap_err().code, "INVALID_ARGUMENT");
        assert_eq!(encode(throwing_getter()).unwrap_err().code, "INVALID_ARGUMENT");
    }
    for depth in [129, 10_000, 100_000] {
        assert_eq!(store.set("k".into(), deep_array(depth)).unwrap_err().code, "INVALID_ARGUMENT", "{depth}");
        assert_eq!(encode(deep_array(depth)).unwrap_err().code, "INVALID_ARGUMENT", "{depth}");
    }
    assert_eq!(store.set("k".into(), deep_array(128)).unwrap(), 1.0);
    assert_eq!(store.version(), 1.0);
}

#[test]
fn priorities_outside_0_to_9_are_invalid_priority() {
    for priority in ["265", "\"9\"", "3.5", "-1", "10"] {
        let input = json(&format!(r#"{{"topic":"a.b","payload":1,"priority":{priority}}}"#));
        assert_eq!(encode_envelope(input).unwrap_err().code, "INVALID_PRIORITY", "{priority}");
        let options = json(&format!(r#"{{"bypassPriority":{priority}}}"#));
        assert_eq!(CircuitBreaker::new(options).err().unwrap().code, "INVALID_PRIORITY", "{priority}");
    }
    let nine = encode_envelope(json(r#"{"topic":"a.b","payload":1,"priority":9}"#)).unwrap();
    assert_eq!(get(&decode_envelope(js_bytes(&nine)).unwrap(), "priority"), 9);
}
