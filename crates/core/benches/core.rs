//! Core benchmarks: `just bench-core`. Targets live in the README's table.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use swarmbus_core::breaker::BreakerConfig;
use swarmbus_core::envelope::{self, Envelope, Limits};
use swarmbus_core::protocol::ClientFrame;
use swarmbus_core::topic::match_literal;
use swarmbus_core::{
    BusConfig, CircuitBreaker, EventBus, EventId, Priority, PriorityQueue, Router, StateStore,
};

const BATCH: usize = 1_000;

fn bus(c: &mut Criterion) {
    let mut group = c.benchmark_group("bus");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, breaker) in [
        ("exact_publish_dispatch", None),
        ("exact_publish_dispatch_with_breaker", Some(BreakerConfig::default())),
    ] {
        let config = BusConfig { capacity: BATCH, breaker, ..Default::default() };
        let mut bus = EventBus::new(config, || 0u64);
        let mut sum = 0u64;
        let counter = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let c2 = counter.clone();
        bus.subscribe("swarm.alpha.task.assigned", move |e| {
            c2.set(c2.get() + e.payload);
            Ok(())
        })
        .unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                for i in 0..BATCH as u64 {
                    bus.publish("swarm.alpha.task.assigned", i, Priority::TASK).unwrap();
                }
                sum += bus.drain(usize::MAX).calls as u64;
            })
        });
        black_box((sum, counter.get()));
    }
    // The batch path: one topic resolution for the whole batch.
    let mut bus = EventBus::new(BusConfig { capacity: BATCH, breaker: None, ..Default::default() }, || 0u64);
    bus.subscribe("swarm.alpha.task.assigned", |e| {
        black_box(e.payload);
        Ok(())
    })
    .unwrap();
    let mut next = 0u64;
    group.bench_function("exact_publish_batch_dispatch", |b| {
        b.iter(|| {
            let ids = next..next + BATCH as u64;
            next += BATCH as u64;
            bus.publish_batch("swarm.alpha.task.assigned", ids.map(|i| (EventId(i), i)), Priority::TASK)
                .unwrap();
            bus.drain(usize::MAX).calls
        })
    });
    group.finish();
}

fn patterns(n: usize) -> Vec<String> {
    (0..n).map(|i| if i % 2 == 0 { format!("swarm.s{i}.*.task") } else { format!("swarm.s{i}.>") }).collect()
}

fn topics(n: usize) -> Vec<String> {
    (0..4_096).map(|k| format!("swarm.s{}.agent{}.task", (k * 7919) % n, k % 100)).collect()
}

fn router(c: &mut Criterion) {
    let mut group = c.benchmark_group("router");
    for n in [10, 100, 1_000] {
        let pats = patterns(n);
        let tops = topics(n);
        let mut router = Router::new();
        for p in &pats {
            router.subscribe(p).unwrap();
        }
        group.throughput(Throughput::Elements(tops.len() as u64));
        group.bench_with_input(BenchmarkId::new("trie_uncached", n), &n, |b, _| {
            b.iter(|| {
                let mut hits = 0usize;
                for t in &tops {
                    router.for_each_match(t, |_| hits += 1);
                }
                hits
            })
        });
        let mut cached = Router::with_cache_capacity(8_192);
        for p in &pats {
            cached.subscribe(p).unwrap();
        }
        group.bench_with_input(BenchmarkId::new("route_cached", n), &n, |b, _| {
            b.iter(|| tops.iter().map(|t| cached.route(t).unwrap().len()).sum::<usize>())
        });
        // The peer: a loop over every pattern, as the JavaScript coordinator's RegExp router did.
        group.bench_with_input(BenchmarkId::new("naive_scan", n), &n, |b, _| {
            b.iter(|| tops.iter().map(|t| pats.iter().filter(|p| match_literal(p, t)).count()).sum::<usize>())
        });
    }
    group.finish();
}

fn queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(BATCH as u64));
    let priorities: Vec<Priority> =
        (0..BATCH).map(|i| Priority::new(((i * 7) % 10) as u8).unwrap()).collect();
    let mut q = PriorityQueue::new(BATCH);
    group.bench_function("push_drain", |b| {
        b.iter(|| {
            for (i, p) in priorities.iter().enumerate() {
                let _ = q.push(*p, i as u64);
            }
            let mut sum = 0;
            while let Some((_, v)) = q.pop() {
                sum += v;
            }
            sum
        })
    });
    group.finish();
}

fn breaker(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker");
    group.throughput(Throughput::Elements(1));
    let mut b = CircuitBreaker::default();
    let mut now = 0u64;
    group.bench_function("acquire_and_record", |bench| {
        bench.iter(|| {
            now += 1;
            let permit = b.try_acquire(black_box(now), Priority::NORMAL).unwrap();
            b.on_success(permit, now)
        })
    });
    group.finish();
}

/// A store holding `bytes` of state (measured as JSON), in keys of about 1 KB.
fn store_of(bytes: usize) -> StateStore {
    let mut store = StateStore::new();
    let mut size = 2;
    let mut i = 0;
    while size < bytes {
        let agents: Vec<Value> = (0..20)
            .map(|a| json!({"id": format!("agent-{i}-{a}"), "load": a * 7 + i, "ok": a % 3 != 0}))
            .collect();
        let value = json!({ "agents": agents, "phase": "execute", "weights": [0.25, 0.5, -1.5] });
        size += serde_json::to_vec(&value).unwrap().len().min(bytes);
        store.set(format!("swarm-{i}"), value);
        i += 1;
    }
    store
}

fn store(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    for (label, size) in [("1KB", 1_024), ("1MB", 1_024 * 1_024)] {
        let mut s = store_of(size);
        group.bench_function(BenchmarkId::new("snapshot", label), |b| b.iter(|| s.snapshot(None)));
        // The peer: a full copy of the state, as the JavaScript coordinator's JSON snapshots were.
        let plain = plain_json(&s);
        group.bench_function(BenchmarkId::new("full_copy_peer", label), |b| b.iter(|| plain.clone()));
    }
    let mut s = store_of(200 * 1_024);
    let plain = plain_json(&s);
    let json_len = serde_json::to_vec(&plain).unwrap().len();
    eprintln!("state for the 200KB benches: {} keys, {json_len} bytes of JSON", s.len());
    group.throughput(Throughput::Bytes(json_len as u64));
    // Cold: no entry has been encoded before.
    group.bench_function("to_msgpack_200KB_cold", |b| {
        let fresh = || {
            let mut store = StateStore::new();
            for (key, value) in plain.as_object().into_iter().flatten() {
                store.set(key.clone(), value.clone());
            }
            store.current()
        };
        b.iter_batched_ref(fresh, |snap| snap.to_msgpack(), BatchSize::LargeInput)
    });
    group
        .bench_function("to_msgpack_200KB_cold_rmp_serde", |b| b.iter(|| rmp_serde::to_vec(&plain).unwrap()));
    // Periodic save: one key changed since the last image.
    let mut n = 0u64;
    s.current().to_msgpack();
    group.bench_function("to_msgpack_200KB_one_key_changed", |b| {
        b.iter(|| {
            n += 1;
            s.merge("swarm-0", &json!({ "phase": n }));
            s.current().to_msgpack()
        })
    });
    let snap = s.current();
    group.bench_function("to_json_200KB", |b| b.iter(|| snap.to_json()));
    group.bench_function("json_stringify_peer_200KB", |b| b.iter(|| serde_json::to_vec(&plain).unwrap()));
    let packed = snap.to_msgpack();
    group.bench_function("from_msgpack_200KB", |b| {
        b.iter(|| swarmbus_core::Snapshot::from_msgpack(&packed).unwrap())
    });
    group.finish();
}

fn plain_json(store: &StateStore) -> Value {
    Value::Object(
        store.keys().map(|k| (k.to_string(), store.get(k).cloned().unwrap_or(Value::Null))).collect(),
    )
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    for size in [200usize, 1_024, 8_192] {
        let mut env =
            Envelope::new(42, "swarm.alpha.task.assigned", Priority::TASK, 1_764_000_000_000, vec![7; size]);
        env.sender = Some("agent-42".into());
        env.swarm = Some("alpha".into());
        let bytes = env.encode().unwrap();
        group.throughput(Throughput::Elements(1));
        let mut buf = Vec::with_capacity(bytes.len());
        group.bench_with_input(BenchmarkId::new("encode", size), &size, |b, _| {
            b.iter(|| {
                buf.clear();
                envelope::encode_into(&env.as_ref(), &mut buf).unwrap();
                buf.len()
            })
        });
        group.bench_with_input(BenchmarkId::new("decode_ref", size), &size, |b, _| {
            b.iter(|| envelope::decode_ref(black_box(&bytes), &Limits::default()).unwrap().payload.len())
        });
        group.bench_with_input(BenchmarkId::new("decode_owned", size), &size, |b, _| {
            b.iter(|| envelope::decode(black_box(&bytes)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("peek_header", size), &size, |b, _| {
            b.iter(|| envelope::peek_header(black_box(&bytes)).unwrap().priority)
        });
    }
    group.finish();
}

/// The records the JS benchmark decodes (`crates/wasm/bench/bench.mjs`), as JSON of about `size` bytes.
fn records(size: usize) -> Value {
    let mut items = Vec::new();
    let mut value = json!({ "items": [] });
    while value.to_string().len() < size {
        let i = items.len();
        items.push(json!({"id": i, "name": format!("agent-{i}"), "load": i as f64 * 0.5 + 0.25, "ok": i % 2 == 0, "tags": ["a", "b"]}));
        value = json!({ "items": items });
    }
    value
}

fn transcode(c: &mut Criterion) {
    let mut group = c.benchmark_group("transcode");
    for size in [200usize, 8_192, 204_800] {
        let value = records(size);
        let text = value.to_string();
        let bytes = rmp_serde::to_vec_named(&value).unwrap();
        group.throughput(Throughput::Bytes(text.len() as u64));
        let mut json_out = String::with_capacity(text.len());
        group.bench_with_input(BenchmarkId::new("msgpack_to_json", size), &size, |b, _| {
            b.iter(|| {
                json_out.clear();
                swarmbus_core::msgpack_json::to_json(black_box(&bytes), 128, &mut json_out).unwrap();
                json_out.len()
            })
        });
        // The peer: what the wasm package did before, a value tree, then serde_json.
        group.bench_with_input(BenchmarkId::new("msgpack_to_json_via_tree_peer", size), &size, |b, _| {
            b.iter(|| {
                serde_json::to_string(&rmp_serde::from_slice::<Value>(black_box(&bytes)).unwrap())
                    .unwrap()
                    .len()
            })
        });
        let mut msgpack_out = Vec::with_capacity(bytes.len());
        group.bench_with_input(BenchmarkId::new("json_to_msgpack", size), &size, |b, _| {
            b.iter(|| {
                msgpack_out.clear();
                swarmbus_core::json_msgpack::to_msgpack(black_box(&text), 128, &mut msgpack_out).unwrap();
                msgpack_out.len()
            })
        });
        group.bench_with_input(BenchmarkId::new("json_to_msgpack_via_tree_peer", size), &size, |b, _| {
            b.iter(|| {
                rmp_serde::to_vec(&serde_json::from_str::<Value>(black_box(&text)).unwrap()).unwrap().len()
            })
        });
    }
    group.finish();
}

/// A bridge frame: a real 1 MiB publish, and pings padded with about a million
/// empty maps in an unknown field (refused at the padding's header when one
/// array holds them all; skipped token by token when chunked within the cap),
/// against rmp-serde, the decoder before issue 13.
fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    let ping = |padding: &[u8]| {
        let mut bytes =
            vec![0x83, 0xa1, b't', 0xa4, b'p', b'i', b'n', b'g', 0xa5, b'n', b'o', b'n', b'c', b'e', 1];
        bytes.extend([0xa3, b'p', b'a', b'd']);
        bytes.extend(padding);
        bytes
    };
    let mut flat = vec![0xdd];
    flat.extend(1_000_000u32.to_be_bytes());
    flat.extend(std::iter::repeat_n(0x80, 1_000_000));
    let mut chunked = vec![0xdc];
    chunked.extend(977u16.to_be_bytes());
    for chunk in 0..977 {
        let n: u16 = if chunk < 976 { 1024 } else { 576 };
        chunked.push(0xdc);
        chunked.extend(n.to_be_bytes());
        chunked.extend(std::iter::repeat_n(0x80, n as usize));
    }
    let publish = ClientFrame::Publish { envelope: vec![7; 1 << 20], ack: Some(1) }.encode();
    for (name, bytes) in
        [("publish_1mib", publish), ("padded_flat", ping(&flat)), ("padded_chunked", ping(&chunked))]
    {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| ClientFrame::decode(black_box(&bytes)).is_ok())
        });
        group.bench_function(BenchmarkId::new("rmp_serde", name), |b| {
            b.iter(|| rmp_serde::from_slice::<ClientFrame>(black_box(&bytes)).is_ok())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bus, router, queue, breaker, store, codec, transcode, frames
}
criterion_main!(benches);
