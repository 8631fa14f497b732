//! Restart policy as data: when a child is restarted, how long to wait, and
//! when to give up.
//!
//! This module owns only numbers and the arithmetic on them; it starts no
//! process and reads no clock (callers pass `Instant`s in). Keeping the
//! policy as a plain value means the state machine in [`super::child`] is
//! tested against exact delays, and the binary can tighten or relax a
//! policy without touching the machine.
//!
//! The shape follows supervisord and Horust: exponential backoff from
//! [`RestartPolicy::initial_backoff`], doubling up to
//! [`RestartPolicy::max_backoff`]; a run that lasted
//! [`RestartPolicy::stable_after`] counts as healthy and resets both the
//! backoff and the crash count; more than [`RestartPolicy::max_restarts`]
//! crashes within [`RestartPolicy::window`] is a crash loop, and the child
//! is marked failed instead of being restarted again.

use std::time::Duration;

/// When a child that exits is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Restart on a non-zero exit or a signal; an exit with code 0 means the
    /// child finished its work (the processor).
    OnFailure,
    /// Restart on any exit: the child is a server that should never stop by
    /// itself (the viewer).
    Always,
}

/// A child's restart policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    pub restart: Restart,
    /// Delay before the first restart after a crash.
    pub initial_backoff: Duration,
    /// The delay doubles with each crash in a row, up to this.
    pub max_backoff: Duration,
    /// A run at least this long resets the backoff and the crash count.
    pub stable_after: Duration,
    /// Crashes tolerated within `window`; one more marks the child failed.
    pub max_restarts: u32,
    /// The window in which crashes are counted.
    pub window: Duration,
}

impl RestartPolicy {
    /// The default for a long-running server: restart on any exit.
    pub fn server() -> RestartPolicy {
        RestartPolicy {
            restart: Restart::Always,
            ..RestartPolicy::worker()
        }
    }

    /// The default for a job that ends: restart only on failure.
    pub fn worker() -> RestartPolicy {
        RestartPolicy {
            restart: Restart::OnFailure,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            stable_after: Duration::from_secs(10),
            max_restarts: 5,
            window: Duration::from_secs(60),
        }
    }

    /// The delay before restart number `attempt` of a run of crashes
    /// (0 for the first): `initial × 2^attempt`, capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .map_or(self.max_backoff, |d| d.min(self.max_backoff))
    }

    /// Whether an exit with this reason should be followed by a restart,
    /// budget permitting.
    pub fn restarts_after(&self, exit: &super::child::ExitReason) -> bool {
        match self.restart {
            Restart::Always => true,
            Restart::OnFailure => !exit.is_success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100ms_and_caps_at_10s() {
        let p = RestartPolicy::worker();
        let ms: Vec<u128> = (0..10).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(10));
    }
}
