//! Client `report` frames as `swarmbus_client_events_total{kind, path}`, with
//! bounded label cardinality that no client can occupy for good.
//!
//! ## Label policy
//!
//! At most [`MAX_CLIENT_KINDS`] kinds have their own label; the rest count as
//! `kind="other"`. A connection holds the slot of the kind it reports (one
//! kind per connection: reporting another kind moves it) until it closes. A
//! kind nobody holds keeps its series until its slot is needed by a new kind:
//! then the slot of the kind released longest ago is reused and that kind's
//! series are removed. So occupying every slot takes [`MAX_CLIENT_KINDS`] open
//! connections, and the slots come back when they close.
//!
//! Counters never wrap: a report adds what the client handled since its
//! previous report on the connection (a counter that went down was reset by
//! the client and counts from zero), and the sum saturates at `u64::MAX`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::metrics::{ClientEventLabel, Metrics};

/// Distinct client kinds `swarmbus_client_events_total` labels; more count as `other`.
pub const MAX_CLIENT_KINDS: usize = 16;

/// The label of kinds without a slot.
pub const OTHER: &str = "other";

const PATHS: [&str; 2] = ["wasm", "js"];

#[derive(Default)]
struct Slot {
    /// Connections holding the slot now.
    holders: usize,
    /// When the last holder left (a [`Slots::clock`] tick), for reuse order.
    released: u64,
}

#[derive(Default)]
struct Slots {
    kinds: HashMap<String, Slot>,
    clock: u64,
}

/// The kinds that have their own label (see the module docs).
#[derive(Default)]
pub struct KindSlots {
    slots: Mutex<Slots>,
}

impl KindSlots {
    /// Takes a slot for `kind` for one connection; returns its label: `kind`
    /// itself, or [`OTHER`] when every slot is held. Pair with
    /// [`release`](Self::release) when the connection is done with it.
    pub fn acquire(&self, kind: &str, metrics: &Metrics) -> String {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.kinds.get_mut(kind) {
            slot.holders += 1;
            return kind.to_owned();
        }
        if slots.kinds.len() >= MAX_CLIENT_KINDS {
            let free = slots.kinds.iter().filter(|(_, s)| s.holders == 0).min_by_key(|(_, s)| s.released);
            let Some(old) = free.map(|(k, _)| k.clone()) else {
                return OTHER.to_owned();
            };
            slots.kinds.remove(&old);
            for path in PATHS {
                metrics.client_events.remove(&ClientEventLabel { kind: old.clone(), path });
            }
        }
        slots.kinds.insert(kind.to_owned(), Slot { holders: 1, released: 0 });
        kind.to_owned()
    }

    /// Gives back a connection's slot (a label from [`acquire`](Self::acquire)).
    pub fn release(&self, label: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.clock += 1;
        let now = slots.clock;
        if let Some(slot) = slots.kinds.get_mut(label) {
            slot.holders = slot.holders.saturating_sub(1);
            if slot.holders == 0 {
                slot.released = now;
            }
        }
    }
}

/// One connection's reporting state.
#[derive(Default)]
pub struct Reporter {
    /// The label this connection holds, if it reported.
    label: Option<(String, String)>,
    /// The counters of its last report.
    last: (u64, u64),
}

impl Reporter {
    /// Adds a report's counters to the metric; `false` when `kind` is not
    /// 1–32 of `a-z 0-9 _ -` (nothing is counted).
    pub fn report(&mut self, slots: &KindSlots, metrics: &Metrics, kind: &str, wasm: u64, js: u64) -> bool {
        let valid = (1..=32).contains(&kind.len())
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return false;
        }
        let label = match &self.label {
            Some((reported, label)) if reported == kind => label.clone(),
            _ => {
                self.release(slots);
                let label = slots.acquire(kind, metrics);
                self.label = Some((kind.to_owned(), label.clone()));
                label
            }
        };
        let (last_wasm, last_js) = self.last;
        // A counter that went down was reset by the client: count it from zero.
        let delta = |now: u64, last: u64| if now >= last { now - last } else { now };
        for (path, n) in [("wasm", delta(wasm, last_wasm)), ("js", delta(js, last_js))] {
            let counter =
                metrics.client_events.get_or_create(&ClientEventLabel { kind: label.clone(), path });
            let _ = counter
                .inner()
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_add(n)));
        }
        self.last = (wasm, js);
        true
    }

    /// Gives back the connection's slot (when it closes).
    pub fn release(&mut self, slots: &KindSlots) {
        if let Some((_, label)) = self.label.take() {
            slots.release(&label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(metrics: &Metrics, kind: &str, path: &str) -> Option<String> {
        let text = metrics.render();
        let key = format!("swarmbus_client_events_total{{kind=\"{kind}\",path=\"{path}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&key)).map(str::to_owned)
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        // Regression: a client could push the counter to u64::MAX and wrap it.
        let (slots, metrics) = (KindSlots::default(), Metrics::default());
        let mut a = Reporter::default();
        assert!(a.report(&slots, &metrics, "bot", u64::MAX, 0));
        let mut b = Reporter::default();
        assert!(b.report(&slots, &metrics, "bot", 10, 0));
        assert_eq!(value(&metrics, "bot", "wasm").as_deref(), Some(u64::MAX.to_string().as_str()));
        assert!(!a.report(&slots, &metrics, "Bad Kind", 1, 1));
    }

    #[test]
    fn slots_come_back_when_their_connections_close() {
        // Regression: the first 16 kinds ever seen held the label set for good.
        let (slots, metrics) = (KindSlots::default(), Metrics::default());
        let mut squatters: Vec<Reporter> = (0..MAX_CLIENT_KINDS)
            .map(|i| {
                let mut r = Reporter::default();
                assert!(r.report(&slots, &metrics, &format!("junk{i}"), 1, 0));
                r
            })
            .collect();
        let mut dashboard = Reporter::default();
        dashboard.report(&slots, &metrics, "dashboard", 5, 0);
        assert_eq!(value(&metrics, "other", "wasm").as_deref(), Some("5"), "every slot is held: other");
        dashboard.release(&slots);
        for squatter in &mut squatters {
            squatter.release(&slots);
        }
        let mut dashboard = Reporter::default();
        dashboard.report(&slots, &metrics, "dashboard", 7, 0);
        assert_eq!(value(&metrics, "dashboard", "wasm").as_deref(), Some("7"));
        assert_eq!(value(&metrics, "junk0", "wasm"), None, "the slot released longest ago was reused");
        assert_eq!(value(&metrics, "junk1", "wasm").as_deref(), Some("1"), "the others keep their series");
    }

    #[test]
    fn one_connection_holds_one_slot() {
        let (slots, metrics) = (KindSlots::default(), Metrics::default());
        let mut hopper = Reporter::default();
        for i in 0..2 * MAX_CLIENT_KINDS {
            hopper.report(&slots, &metrics, &format!("kind{i}"), i as u64, 0);
        }
        let mut honest = Reporter::default();
        honest.report(&slots, &metrics, "dashboard", 3, 0);
        assert_eq!(value(&metrics, "dashboard", "wasm").as_deref(), Some("3"));
    }
}
