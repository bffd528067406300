//! A bounded priority queue: higher priority first, FIFO within a priority.
//!
//! ## Overflow policy
//!
//! When the queue is full, an incoming item of priority `p` evicts the **oldest
//! item of the lowest priority below `p`**. If every queued item is at least as
//! urgent as `p`, the incoming item is rejected with [`QueueFull`], which hands
//! it back. Either way the caller gets the dropped item, so nothing disappears
//! silently, and [`PriorityQueue::dropped`] counts evictions per priority.

use alloc::collections::VecDeque;

use crate::error::QueueFull;
use crate::priority::Priority;

/// What [`PriorityQueue::push`] did with a full queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an evicted item is a dropped event; count or report it"]
pub enum Pushed<T> {
    /// The item was queued without displacing anything.
    Queued,
    /// The item was queued and this less urgent, older item was evicted.
    Evicted(T, Priority),
}

/// A bounded queue of items tagged with a [`Priority`].
///
/// # Examples
/// ```
/// use swarmbus_core::{Priority, PriorityQueue, queue::Pushed};
/// let mut q = PriorityQueue::new(2);
/// assert_eq!(q.push(Priority::BULK, "bulk"), Ok(Pushed::Queued));
/// assert_eq!(q.push(Priority::NORMAL, "normal"), Ok(Pushed::Queued));
/// // Full: a critical item evicts the oldest lowest-priority one.
/// assert_eq!(q.push(Priority::CRITICAL, "critical"), Ok(Pushed::Evicted("bulk", Priority::BULK)));
/// // Full of items at least as urgent: rejected, and handed back.
/// assert_eq!(q.push(Priority::BULK, "late").unwrap_err().rejected, "late");
/// assert_eq!(q.pop(), Some((Priority::CRITICAL, "critical")));
/// assert_eq!(q.pop(), Some((Priority::NORMAL, "normal")));
/// assert_eq!(q.pop(), None);
/// ```
#[derive(Debug, Clone)]
pub struct PriorityQueue<T> {
    levels: [VecDeque<T>; Priority::LEVELS],
    /// Bit `p` is set when level `p` is non-empty.
    occupied: u16,
    len: usize,
    capacity: usize,
    dropped: [u64; Priority::LEVELS],
}

impl<T> PriorityQueue<T> {
    /// An empty queue that holds at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            levels: Default::default(),
            occupied: 0,
            len: 0,
            capacity: capacity.max(1),
            dropped: [0; Priority::LEVELS],
        }
    }

    /// Queues `item`, applying the overflow policy when full.
    pub fn push(&mut self, priority: Priority, item: T) -> Result<Pushed<T>, QueueFull<T>> {
        let mut outcome = Pushed::Queued;
        if self.len >= self.capacity {
            let lowest = self.occupied.trailing_zeros() as usize;
            if lowest >= priority.index() {
                return Err(QueueFull { rejected: item, priority });
            }
            let victim = self.pop_level(lowest).expect("occupied bit set for a non-empty level");
            self.dropped[lowest] += 1;
            outcome = Pushed::Evicted(victim, Priority::new(lowest as u8).expect("level < 10"));
        }
        self.levels[priority.index()].push_back(item);
        self.occupied |= 1 << priority.index();
        self.len += 1;
        Ok(outcome)
    }

    /// Removes the oldest item of the highest non-empty priority.
    pub fn pop(&mut self) -> Option<(Priority, T)> {
        if self.occupied == 0 {
            return None;
        }
        let highest = 15 - self.occupied.leading_zeros() as usize;
        let item = self.pop_level(highest)?;
        Some((Priority::new(highest as u8).expect("level < 10"), item))
    }

    /// The item [`pop`](Self::pop) would return next.
    pub fn peek(&self) -> Option<(Priority, &T)> {
        if self.occupied == 0 {
            return None;
        }
        let highest = 15 - self.occupied.leading_zeros() as usize;
        let item = self.levels[highest].front()?;
        Some((Priority::new(highest as u8).expect("level < 10"), item))
    }

    fn pop_level(&mut self, level: usize) -> Option<T> {
        let queue = &mut self.levels[level];
        let item = queue.pop_front()?;
        if queue.is_empty() {
            self.occupied &= !(1 << level);
        }
        self.len -= 1;
        Some(item)
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of queued items per priority.
    pub fn depth_by_priority(&self) -> [usize; Priority::LEVELS] {
        core::array::from_fn(|p| self.levels[p].len())
    }

    /// Items evicted by the overflow policy so far, per priority.
    pub fn dropped(&self) -> [u64; Priority::LEVELS] {
        self.dropped
    }

    /// Removes every item, most urgent first, and hands each to `f`.
    pub fn drain_all(&mut self, mut f: impl FnMut(Priority, T)) {
        while let Some((p, item)) = self.pop() {
            f(p, item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Priority {
        Priority::new(n).unwrap()
    }

    #[test]
    fn fifo_within_priority_and_higher_first() {
        let mut q = PriorityQueue::new(16);
        for (i, pri) in [3, 9, 3, 0, 9, 5].into_iter().enumerate() {
            assert_eq!(q.push(p(pri), i), Ok(Pushed::Queued));
        }
        let order: alloc::vec::Vec<_> = core::iter::from_fn(|| q.pop()).map(|(_, i)| i).collect();
        assert_eq!(order, [1, 4, 5, 0, 2, 3]);
    }

    #[test]
    fn overflow_evicts_oldest_of_lowest_below_incoming() {
        let mut q = PriorityQueue::new(3);
        assert_eq!(q.push(p(2), "a"), Ok(Pushed::Queued));
        assert_eq!(q.push(p(1), "b"), Ok(Pushed::Queued));
        assert_eq!(q.push(p(1), "c"), Ok(Pushed::Queued));
        assert_eq!(q.push(p(2), "d"), Ok(Pushed::Evicted("b", p(1))));
        assert_eq!(q.push(p(1), "e").unwrap_err(), QueueFull { rejected: "e", priority: p(1) });
        assert_eq!(q.dropped()[1], 1);
        assert_eq!(q.depth_by_priority()[2], 2);
    }

    #[test]
    fn critical_items_are_only_evicted_by_more_urgent_ones_and_returned() {
        let mut q = PriorityQueue::new(1);
        assert_eq!(q.push(Priority::CRITICAL, 1), Ok(Pushed::Queued));
        assert!(q.push(Priority::CRITICAL, 2).is_err());
        assert_eq!(q.push(Priority::PHASE_TRANSITION, 3), Ok(Pushed::Evicted(1, Priority::CRITICAL)));
        assert_eq!(q.dropped()[8], 1);
    }
}
