//! Logs: what is printed, in which format, and how often.
//!
//! - **Filter.** `RUST_LOG` is honoured as written (`RUST_LOG=warn`,
//!   `RUST_LOG=swarmbus_bridge=debug`, …); when it is unset or empty the level
//!   is `info`. Nothing is added on top of what `RUST_LOG` says. Invalid
//!   directives are reported on stderr and ignored.
//! - **Destination and format.** One line per event on stderr: human-readable
//!   text (`--log-format text`, the default) or one JSON object per line
//!   (`--log-format json`, with `timestamp`, `level`, `target` and `fields`).
//! - **Colour.** ANSI colour only when stderr is a terminal and `NO_COLOR` is
//!   not set: pipes, files and log collectors get plain text.
//! - **Repeats.** A message a retry loop would print on every attempt (Redis
//!   unreachable) goes through a [`Throttle`]: the first occurrence is logged
//!   at once, then at most one per period, with the number of occurrences
//!   left out since the last one printed.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: `RUST_LOG` (default `info`), `format`,
/// stderr, colour only on a terminal. Fails if a subscriber is already installed.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).from_env_lossy();
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(colour).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

/// Lets a repeated message through at most once per period (see the module docs).
///
/// Usable in a `static`: `static UNREACHABLE: Throttle = Throttle::new(Duration::from_secs(30));`
pub struct Throttle {
    period_ms: u64,
    /// Milliseconds since [`clock_base`] before which nothing is let through.
    next_ms: AtomicU64,
    /// Occurrences held back since the last one let through.
    held: AtomicU64,
}

impl Throttle {
    /// A throttle that lets one occurrence through per `period`.
    pub const fn new(period: Duration) -> Self {
        Self { period_ms: period.as_millis() as u64, next_ms: AtomicU64::new(0), held: AtomicU64::new(0) }
    }

    /// `Some(held)` when this occurrence should be logged (`held`: how many
    /// were held back since the last one logged), `None` when it should not.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(now_ms())
    }

    /// [`Throttle::allow`] at `now_ms` milliseconds on the throttle's clock.
    pub fn allow_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Acquire);
        let wins = now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(self.period_ms),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok();
        if wins {
            Some(self.held.swap(0, Ordering::AcqRel))
        } else {
            self.held.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

/// The process-wide origin of [`Throttle`]'s clock.
fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Milliseconds since [`clock_base`], plus one so that the first call is never at 0.
fn now_ms() -> u64 {
    clock_base().elapsed().as_millis() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_passes_then_one_per_period_with_the_count_held_back() {
        let throttle = Throttle::new(Duration::from_secs(30));
        assert_eq!(throttle.allow_at(1), Some(0));
        assert_eq!(throttle.allow_at(2), None);
        assert_eq!(throttle.allow_at(29_000), None);
        assert_eq!(throttle.allow_at(30_001), Some(2));
        assert_eq!(throttle.allow_at(30_002), None);
        assert_eq!(throttle.allow_at(90_000), Some(1));
    }

    #[test]
    fn a_zero_period_lets_everything_through() {
        let throttle = Throttle::new(Duration::ZERO);
        assert_eq!(
            (throttle.allow_at(5), throttle.allow_at(5), throttle.allow_at(6)),
            (Some(0), Some(0), Some(0))
        );
    }
}
