//! A small swarm on one core event bus, narrated: `just demo` (or
//! `cargo run --release -p swarmbus-core --example swarm_demo -- --agents 100 --rounds 50`).
//!
//! Agents in three swarms publish the coordinator's priority mix; a monitor
//! listens to everything by wildcard; a flaky auditor fails often enough for its
//! breaker to open, probe and close again; each swarm keeps a versioned state
//! store with snapshots and diffs; every event also crosses the envelope codec.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use serde_json::json;
use swarmbus_core::breaker::BreakerConfig;
use swarmbus_core::envelope::{self, Envelope};
use swarmbus_core::{BusConfig, EventBus, ManualClock, Priority, StateStore, SubscribeOptions};

const START_MS: u64 = 1_764_000_000_000;
const SWARMS: [&str; 3] = ["alpha", "beta", "gamma"];

/// The coordinator's mix: (priority, topic suffix, share in percent).
const MIX: [(u8, &str, u32); 6] = [
    (9, "phase.transition", 1),
    (8, "coord.critical", 4),
    (7, "agent.lifecycle", 10),
    (6, "task.assigned", 20),
    (3, "telemetry.report", 45),
    (0, "bulk.sync", 20),
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number, got {v}")))
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agents = arg("--agents", 100);
    let rounds = arg("--rounds", 40);
    println!("swarmbus core demo: {agents} agents in {} swarms, {rounds} rounds", SWARMS.len());
    println!("(time is a manual clock: each round advances it by 1 second)\n");

    let clock = ManualClock::new(START_MS);
    let config = BusConfig { capacity: 4_096, ..Default::default() };
    let mut bus: EventBus<Vec<u8>, _> = EventBus::new(config, clock.clone());

    let by_priority = Rc::new(RefCell::new([0u64; 10]));
    let seen = by_priority.clone();
    bus.subscribe("swarm.>", move |e| {
        seen.borrow_mut()[e.priority.index()] += 1;
        Ok(())
    })?;

    // The auditor fails during rounds 5..15: its breaker should open, then recover.
    let round_now = Rc::new(RefCell::new(0usize));
    let round = round_now.clone();
    let breaker =
        BreakerConfig { failure_threshold: 5, open_ms: 3_000, half_open_probes: 3, ..Default::default() };
    let auditor = bus.subscribe_with(
        "swarm.*.task.>",
        SubscribeOptions { once: false, breaker: Some(breaker) },
        move |_| if (5..15).contains(&*round.borrow()) { Err("audit backend down".into()) } else { Ok(()) },
    )?;
    bus.on_transition(move |sub, t| {
        println!(
            "  t={:>2}s breaker of subscription #{}: {} -> {}",
            (t.at_ms - START_MS) / 1_000,
            sub.get(),
            t.from,
            t.to
        );
    });

    let mut stores: BTreeMap<&str, StateStore> = SWARMS.iter().map(|s| (*s, StateStore::new())).collect();
    let mut envelope_bytes = 0usize;
    let started = Instant::now();
    let mut next_id = 0u64;
    for r in 0..rounds {
        *round_now.borrow_mut() = r;
        for agent in 0..agents {
            let swarm = SWARMS[agent % SWARMS.len()];
            let roll = ((agent * 31 + r * 17) % 100) as u32;
            let mut acc = 0;
            let (priority, suffix, _) = *MIX
                .iter()
                .find(|(_, _, share)| {
                    acc += share;
                    roll < acc
                })
                .unwrap_or(&MIX[5]);
            let topic = format!("swarm.{swarm}.{suffix}");
            let payload = serde_json::to_vec(&json!({"agent": agent, "round": r}))?;

            // Every event crosses the wire format once: encode, route on the header, decode.
            next_id += 1;
            let mut env = Envelope::new(next_id, topic, Priority::new(priority)?, clock.now(), payload);
            env.sender = Some(format!("agent-{agent}"));
            env.swarm = Some(swarm.into());
            let bytes = env.encode()?;
            envelope_bytes += bytes.len();
            let header = envelope::peek_header(&bytes)?;
            let decoded = envelope::decode(&bytes)?;
            bus.publish(header.topic, decoded.payload, header.priority)?;

            if priority == 7 {
                stores
                    .get_mut(swarm)
                    .expect("known swarm")
                    .merge("agents", &json!({ format!("a{agent}"): format!("alive@{r}") }));
            }
        }
        bus.drain(usize::MAX);
        for (swarm, store) in stores.iter_mut() {
            store.set("round", json!(r));
            if r % 10 == 9 {
                let id = store.snapshot(Some(&format!("round {r}")));
                if *swarm == "alpha" {
                    let previous = store.snapshots().rev().nth(1).map(|s| s.id);
                    let changes = match previous {
                        Some(p) => {
                            format!("{} keys changed since snapshot {}", store.diff(p, id)?.ops.len(), p.0)
                        }
                        None => "the first".to_string(),
                    };
                    println!(
                        "  t={r:>2}s alpha: snapshot {} at version {} ({changes})",
                        id.0,
                        store.version()
                    );
                }
            }
        }
        clock.advance(1_000);
    }
    let elapsed = started.elapsed();

    let m = bus.metrics();
    let total: u64 = m.published.iter().sum();
    println!(
        "\npublished {total} events ({} envelope bytes) in {:.1} ms",
        envelope_bytes,
        elapsed.as_secs_f64() * 1e3
    );
    println!(
        "monitor (swarm.>) received by priority 9..0: {:?}",
        by_priority.borrow().iter().rev().collect::<Vec<_>>()
    );
    println!(
        "handler calls {}, handler errors {}, skipped while the auditor's breaker was open {}, breaker transitions {}",
        m.delivered,
        m.handler_errors,
        m.skipped_open.iter().sum::<u64>(),
        m.breaker_transitions
    );
    println!(
        "auditor breaker now: {}",
        bus.breaker(auditor).map(|b| b.state().kind().as_str()).unwrap_or("none")
    );
    let cache = bus.router().cache_stats();
    println!("route cache: {} hits, {} misses", cache.hits, cache.misses);
    for (swarm, store) in &stores {
        let agents_known = store.get("agents").and_then(|v| v.as_object()).map_or(0, |o| o.len());
        println!(
            "state of {swarm}: version {}, {} snapshots kept, {agents_known} agents seen alive",
            store.version(),
            store.snapshots().count()
        );
    }
    Ok(())
}

trait Now {
    fn now(&self) -> u64;
}

impl Now for ManualClock {
    fn now(&self) -> u64 {
        swarmbus_core::Clock::now_ms(self)
    }
}
