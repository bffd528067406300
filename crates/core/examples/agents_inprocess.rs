//! The in-process figure of `just load`: 100 agents on the core event bus, no
//! I/O, one bus per core (the original JavaScript coordinator's 2,844,004
//! events/s "with 100 agents" was this kind of number).
//!
//! Each agent subscribes to its inbox (`swarm.{s}.agent.{a}.>`) and to its
//! swarm's phase broadcasts (`swarm.{s}.phase`); every round each agent sends a
//! batch to another agent of its swarm with a priority from the coordinator's
//! mix, each swarm broadcasts one phase event, and the bus drains.
//!
//! `cargo run --release -p swarmbus-core --example agents_inprocess -- --agents 100 --threads 2 --seconds 3`

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use swarmbus_core::{BusConfig, EventBus, EventId, Priority};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Priorities of the coordinator's mix, one entry per 1 % (phase broadcasts come separately).
fn priority_mix() -> Vec<Priority> {
    let mut mix = Vec::with_capacity(100);
    for (priority, share) in [(8u8, 4), (7, 3), (6, 10), (5, 12), (4, 12), (3, 12), (2, 12), (1, 12), (0, 23)]
    {
        mix.extend(std::iter::repeat_n(Priority::new(priority).expect("0..=9"), share));
    }
    mix
}

const SWARMS: usize = 4;
const BATCH: u64 = 64;

struct Outcome {
    published: u64,
    delivered: u64,
}

/// One core's share: `agents` agents on one bus for `duration`.
fn run(first_agent: usize, agents: usize, duration: Duration, batched: bool) -> Outcome {
    let config = BusConfig { capacity: 1 << 16, breaker: None, ..Default::default() };
    let mut bus: EventBus<u64, _> = EventBus::new(config, || 0u64);
    let delivered = Rc::new(Cell::new(0u64));
    let ids: Vec<usize> = (first_agent..first_agent + agents).collect();
    for &a in &ids {
        let swarm = a % SWARMS;
        for pattern in [format!("swarm.{swarm}.agent.{a}.>"), format!("swarm.{swarm}.phase")] {
            let seen = delivered.clone();
            bus.subscribe(&pattern, move |_| {
                seen.set(seen.get() + 1);
                Ok(())
            })
            .expect("valid pattern");
        }
    }
    // Each agent's target: the next agent of its swarm on this core.
    let topics: Vec<String> = ids
        .iter()
        .map(|&a| {
            let swarm = a % SWARMS;
            let peer = ids.iter().copied().find(|&b| b > a && b % SWARMS == swarm).unwrap_or(a);
            format!("swarm.{swarm}.agent.{peer}.task")
        })
        .collect();
    let phases: Vec<String> = (0..SWARMS).map(|s| format!("swarm.{s}.phase")).collect();
    let mix = priority_mix();
    let (mut published, mut next_id, mut round) = (0u64, 1u64, 0usize);
    let started = Instant::now();
    while started.elapsed() < duration {
        for (i, topic) in topics.iter().enumerate() {
            let priority = mix[(round * 31 + i * 7) % mix.len()];
            if batched {
                let batch = (next_id..next_id + BATCH).map(|id| (EventId(id), id));
                bus.publish_batch(topic, batch, priority).expect("queue has room");
            } else {
                for id in next_id..next_id + BATCH {
                    bus.publish(topic, id, priority).expect("queue has room");
                }
            }
            next_id += BATCH;
            published += BATCH;
        }
        for phase in &phases {
            bus.publish(phase, round as u64, Priority::MAX).expect("queue has room");
            published += 1;
        }
        bus.drain(usize::MAX);
        round += 1;
    }
    Outcome { published, delivered: delivered.get() }
}

fn main() {
    let agents = arg("--agents", 100) as usize;
    let threads = arg("--threads", 2).max(1) as usize;
    let duration = Duration::from_secs(arg("--seconds", 3));
    println!("| in-process (core bus, no I/O) | agents | threads | published/s | delivered/s |");
    println!("|---|---|---|---|---|");
    for batched in [false, true] {
        let started = Instant::now();
        let per = agents.div_ceil(threads);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let first = t * per;
                let count = per.min(agents.saturating_sub(first));
                std::thread::spawn(move || run(first, count, duration, batched))
            })
            .collect();
        let outcomes: Vec<Outcome> = handles.into_iter().map(|h| h.join().expect("agent thread")).collect();
        let elapsed = started.elapsed().as_secs_f64();
        let published: u64 = outcomes.iter().map(|o| o.published).sum();
        let delivered: u64 = outcomes.iter().map(|o| o.delivered).sum();
        println!(
            "| {} | {agents} | {threads} | {:.0} | {:.0} |",
            if batched { "publish_batch (64 per call) + drain" } else { "publish one by one + drain" },
            published as f64 / elapsed,
            delivered as f64 / elapsed
        );
    }
}
