//! The swarm simulator of `swarmbus-bridge demo`: agents in several swarms
//! publishing a realistic priority mix into the bridge, with swarms that go
//! through failure bursts so that the dashboard's breakers open and close.
//!
//! | priority | topic | share |
//! |---|---|---|
//! | 9 phase transition | `swarm.{s}.phase` | every `--phase-secs` per swarm |
//! | 8 coordination | `swarm.{s}.coord` | 4 % |
//! | 7 lifecycle | `swarm.{s}.agent.{a}.lifecycle` | 3 % |
//! | 6 task assignment | `swarm.{s}.task.assign` | 10 % |
//! | 1–5 general status | `swarm.{s}.agent.{a}.status` | 60 % |
//! | 0 bulk telemetry | `swarm.{s}.telemetry` | 23 % |
//!
//! Every payload is a MessagePack map with `kind`, `agent`, `swarm`, `seq`,
//! `t` (send time, ms since the epoch), `load` and `fail`. `fail` marks events
//! a consumer should treat as failing: at `--failure-rate` normally, and at 90 %
//! while the swarm is in its failure burst (the first quarter of every
//! `--flaky-secs` period, one swarm after the other).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use serde::{Deserialize, Serialize};
use swarmbus_core::{Envelope, Priority};

use crate::server::Bridge;

/// Flags of the simulator.
#[derive(Debug, Clone, Args)]
pub struct SimulatorConfig {
    /// Simulated agents, spread over the swarms.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub agents: u32,
    /// Number of swarms (named alpha, beta, gamma, ...; at most 8).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=SWARM_NAMES.len() as i64))]
    pub swarms: u32,
    /// Events per second, all agents together (changeable at run time: `POST /v1/demo/rate`).
    #[arg(long, default_value_t = 20_000)]
    pub rate: u32,
    /// Share of events marked as failing outside failure bursts (0 to 1).
    #[arg(long, default_value_t = 0.02, value_parser = share)]
    pub failure_rate: f64,
    /// Period of each swarm's failure burst cycle, in seconds (0: no bursts).
    #[arg(long, default_value_t = 20)]
    pub flaky_secs: u64,
    /// Seconds between phase transitions of one swarm.
    #[arg(long, default_value_t = 10)]
    pub phase_secs: u64,
}

/// Parses a share: a number from 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{text:?} is not a number from 0 to 1")),
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self { agents: 100, swarms: 4, rate: 20_000, failure_rate: 0.02, flaky_secs: 20, phase_secs: 10 }
    }
}

const SWARM_NAMES: [&str; 8] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
const PHASES: [&str; 4] = ["plan", "execute", "review", "done"];
const TICK: Duration = Duration::from_millis(10);

/// The running simulator.
pub struct Simulator {
    bridge: Arc<Bridge>,
    config: SimulatorConfig,
    rate: AtomicU32,
    published: AtomicU64,
}

/// What `GET /v1/demo` answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DemoInfo {
    agents: u32,
    swarms: Vec<String>,
    rate: u32,
    failure_rate: f64,
    flaky_secs: u64,
    published: u64,
}

/// Body of `POST /v1/demo/rate`.
#[derive(Deserialize, Serialize)]
struct RateBody {
    rate: u32,
}

#[derive(Serialize)]
struct AgentEvent<'a> {
    kind: &'a str,
    agent: String,
    swarm: &'a str,
    seq: u64,
    t: u64,
    load: f64,
    fail: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<u8>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Simulator {
    /// A simulator publishing into `bridge`.
    pub fn new(bridge: Arc<Bridge>, mut config: SimulatorConfig) -> Arc<Self> {
        config.swarms = config.swarms.clamp(1, SWARM_NAMES.len() as u32);
        config.agents = config.agents.max(1);
        let rate = AtomicU32::new(config.rate);
        Arc::new(Self { bridge, config, rate, published: AtomicU64::new(0) })
    }

    /// Names of the simulated swarms.
    pub fn swarms(&self) -> Vec<String> {
        SWARM_NAMES[..self.config.swarms as usize].iter().map(|s| (*s).to_owned()).collect()
    }

    /// Sets the event rate (events per second).
    pub fn set_rate(&self, rate: u32) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Publishes until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut rng = fastrand::Rng::new();
        let started = now_ms();
        let mut seq = 0u64;
        let mut owed = 0.0f64;
        let mut next_phase = vec![0u64; self.config.swarms as usize];
        loop {
            ticker.tick().await;
            let now = now_ms();
            for (swarm, due) in next_phase.iter_mut().enumerate() {
                if now >= *due {
                    seq += 1;
                    let step = (now - started) / 1000 / self.config.phase_secs.max(1);
                    self.publish(self.phase_event(swarm, step, seq, now));
                    *due = now + self.config.phase_secs.max(1) * 1000;
                }
            }
            owed += f64::from(self.rate.load(Ordering::Relaxed)) * TICK.as_secs_f64();
            while owed >= 1.0 {
                owed -= 1.0;
                seq += 1;
                self.publish(self.random_event(&mut rng, seq, now, started));
            }
        }
    }

    fn publish(&self, envelope: Envelope) {
        let Ok(bytes) = envelope.encode() else { return };
        self.bridge.publish_detached(bytes);
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// True while `swarm` is in its failure burst.
    fn flaky(&self, swarm: usize, now: u64, started: u64) -> bool {
        let period = self.config.flaky_secs * 1000;
        if period == 0 {
            return false;
        }
        let slot = period / u64::from(self.config.swarms);
        let offset = (now - started + period - swarm as u64 * slot) % period;
        offset < period / 4
    }

    fn phase_event(&self, swarm: usize, step: u64, seq: u64, now: u64) -> Envelope {
        let name = SWARM_NAMES[swarm];
        let event = AgentEvent {
            kind: "phase",
            agent: format!("{name}-lead"),
            swarm: name,
            seq,
            t: now,
            load: 0.0,
            fail: false,
            phase: Some(PHASES[(step as usize + swarm) % PHASES.len()]),
            task: None,
            level: None,
        };
        self.envelope(format!("swarm.{name}.phase"), Priority::MAX, &event, seq)
    }

    fn random_event(&self, rng: &mut fastrand::Rng, seq: u64, now: u64, started: u64) -> Envelope {
        let agent = rng.u32(..self.config.agents);
        let swarm = (agent % self.config.swarms) as usize;
        let name = SWARM_NAMES[swarm];
        let fail_chance = if self.flaky(swarm, now, started) { 0.9 } else { self.config.failure_rate };
        let mut event = AgentEvent {
            kind: "status",
            agent: format!("agent-{agent}"),
            swarm: name,
            seq,
            t: now,
            load: (rng.f64() * 100.0).round() / 100.0,
            fail: rng.f64() < fail_chance,
            phase: None,
            task: None,
            level: None,
        };
        let roll = rng.u32(..100);
        let (topic, priority) = match roll {
            0..4 => {
                event.kind = "coordination";
                (format!("swarm.{name}.coord"), 8)
            }
            4..7 => {
                event.kind = "lifecycle";
                (format!("swarm.{name}.agent.{agent}.lifecycle"), 7)
            }
            7..17 => {
                event.kind = "task";
                event.task = Some(seq);
                (format!("swarm.{name}.task.assign"), 6)
            }
            17..77 => {
                let level = rng.u8(1..=5);
                event.level = Some(level);
                (format!("swarm.{name}.agent.{agent}.status"), level)
            }
            _ => {
                event.kind = "telemetry";
                (format!("swarm.{name}.telemetry"), 0)
            }
        };
        let priority = Priority::new(priority).unwrap_or(Priority::NORMAL);
        self.envelope(topic, priority, &event, seq)
    }

    fn envelope(&self, topic: String, priority: Priority, event: &AgentEvent<'_>, seq: u64) -> Envelope {
        let payload = rmp_serde::to_vec_named(event).unwrap_or_default();
        let mut envelope = Envelope::new(seq, topic, priority, event.t, payload);
        envelope.sender = Some(event.agent.clone());
        envelope.swarm = Some(event.swarm.to_owned());
        envelope
    }

    /// `GET /v1/demo` (settings and counters) and `GET`/`POST /v1/demo/rate`.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/demo", get(info))
            .route("/v1/demo/rate", get(rate).post(set_rate))
            .with_state(self)
    }
}

async fn info(State(sim): State<Arc<Simulator>>) -> Json<DemoInfo> {
    Json(DemoInfo {
        agents: sim.config.agents,
        swarms: sim.swarms(),
        rate: sim.rate.load(Ordering::Relaxed),
        failure_rate: sim.config.failure_rate,
        flaky_secs: sim.config.flaky_secs,
        published: sim.published.load(Ordering::Relaxed),
    })
}

async fn rate(State(sim): State<Arc<Simulator>>) -> Json<RateBody> {
    Json(RateBody { rate: sim.rate.load(Ordering::Relaxed) })
}

async fn set_rate(State(sim): State<Arc<Simulator>>, Json(body): Json<RateBody>) -> Json<RateBody> {
    sim.set_rate(body.rate);
    tracing::info!(rate = body.rate, "simulator rate changed");
    Json(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn events_follow_the_priority_mix_and_bursts_take_turns() {
        let bridge = Bridge::new(Config::default()).unwrap();
        let sim = Simulator::new(bridge, SimulatorConfig::default());
        let mut rng = fastrand::Rng::with_seed(7);
        let mut by_priority = [0u32; 10];
        for seq in 0..10_000 {
            let env = sim.random_event(&mut rng, seq, 1_000, 0);
            assert!(env.topic.starts_with("swarm."), "{}", env.topic);
            swarmbus_core::topic::validate_topic(&env.topic).unwrap();
            by_priority[env.priority.index()] += 1;
        }
        assert_eq!(by_priority[9], 0, "phase transitions are timed, not random");
        for (p, share) in [(8, 4), (7, 3), (6, 10), (0, 23)] {
            let got = by_priority[p] as f64 / 100.0;
            assert!((got - share as f64).abs() < 1.5, "priority {p}: {got}% vs {share}%");
        }
        let phase = sim.phase_event(1, 0, 1, 5);
        assert_eq!((phase.topic.as_str(), phase.priority), ("swarm.beta.phase", Priority::MAX));
        // 20 s period, 4 swarms: swarm k is in its burst during [5k, 5k + 5) s.
        for t in [0u64, 4_999, 5_000, 12_000, 19_999] {
            let flaky: Vec<usize> = (0..4).filter(|&s| sim.flaky(s, t, 0)).collect();
            assert_eq!(flaky, vec![(t / 5_000) as usize], "at {t} ms");
        }
    }
}
