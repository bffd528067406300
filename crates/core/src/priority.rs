//! Event priorities 0–9, 9 the most urgent.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::error::PriorityError;

/// An event priority from 0 (bulk) to 9 (phase transition); higher is more urgent.
///
/// The levels keep the meanings of the JavaScript coordinator swarmbus replaces:
///
/// | level | constant | meaning |
/// |---|---|---|
/// | 9 | [`Priority::PHASE_TRANSITION`] | swarm phase transitions |
/// | 8 | [`Priority::CRITICAL`] | critical coordination |
/// | 7 | [`Priority::LIFECYCLE`] | agent lifecycle (spawn, exit) |
/// | 6 | [`Priority::TASK`] | task assignment |
/// | 1–5 | [`Priority::NORMAL`] = 5 | general traffic |
/// | 0 | [`Priority::BULK`] | bulk, first to be evicted |
///
/// Priorities at or above [`Priority::CRITICAL`] are never dropped silently.
///
/// # Examples
/// ```
/// use swarmbus_core::Priority;
/// let p = Priority::new(7)?;
/// assert!(p > Priority::NORMAL);
/// assert!(Priority::new(10).is_err());
/// # Ok::<(), swarmbus_core::PriorityError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

impl Priority {
    /// Number of distinct priority levels.
    pub const LEVELS: usize = 10;
    /// 0: bulk traffic, evicted first.
    pub const BULK: Priority = Priority(0);
    /// 5: the default for general traffic.
    pub const NORMAL: Priority = Priority(5);
    /// 6: task assignment.
    pub const TASK: Priority = Priority(6);
    /// 7: agent lifecycle.
    pub const LIFECYCLE: Priority = Priority(7);
    /// 8: critical coordination; never dropped silently, bypasses breakers by default.
    pub const CRITICAL: Priority = Priority(8);
    /// 9: phase transitions, the most urgent.
    pub const PHASE_TRANSITION: Priority = Priority(9);
    /// The most urgent level.
    pub const MAX: Priority = Priority(9);

    /// Checks that `value` is in 0..=9.
    pub const fn new(value: u8) -> Result<Self, PriorityError> {
        if value <= 9 {
            Ok(Priority(value))
        } else {
            Err(PriorityError { value })
        }
    }

    /// The numeric level.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The level as an index into per-priority arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// True for levels that must never be dropped silently (≥ 8).
    pub const fn is_critical(self) -> bool {
        self.0 >= Self::CRITICAL.0
    }

    /// Every level, from 0 to 9.
    pub fn all() -> impl DoubleEndedIterator<Item = Priority> {
        (0..=9).map(Priority)
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

impl TryFrom<u8> for Priority {
    type Error = PriorityError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
