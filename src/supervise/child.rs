//! The per-child state machine: `next(event, now) -> actions`.
//!
//! This module owns the life cycle of one supervised child and nothing
//! else. It is pure: it starts no process, sends no signal, reads no clock
//! and touches no file. The event loop in [`super::runner`] turns real happenings
//! (a spawn, a reaped exit, a stale heartbeat or an unanswered health
//! probe, a shutdown request, a
//! deadline passing) into [`Event`]s, and carries out the [`Action`]s the
//! machine returns. Keeping the decisions here, apart from the side
//! effects, is what lets every restart rule be unit-tested exactly and
//! quickly (Horust's `service_handler` does the same).
//!
//! ```text
//!             Start               Spawned
//!  NotStarted ─────► Starting ────────────► Running ──exit 0 (worker)──► Finished
//!                       ▲  │ spawn failed      │ │
//!          deadline     │  ▼                   │ │ crash / hang-kill
//!          passed  ┌── Backoff ◄───────────────┘ │   (budget left)
//!                  │       │ budget spent         │
//!                  └───────┴──────────► Failed    │ Shutdown: SIGTERM,
//!                                                 ▼ SIGKILL after grace
//!                                              Stopping ──exit──► Stopped
//! ```
//!
//! A new machine is `NotStarted`, a state of its own rather than a final
//! one: nothing has run yet, so nothing is finished, failed or stopped, and
//! only [`Event::Start`] moves it. `supervisor.json` has no such state (the
//! loop starts every child before it first writes the file); should a
//! machine be shown before its start, it reads `stopped`, as it always has.
//!
//! The machine holds at most one deadline (the end of a backoff, or the end
//! of the shutdown grace period); the runner feeds [`Event::TimerFired`]
//! once `now` has reached [`Child::deadline`]. A timer event that arrives
//! early or in a state without a deadline is ignored, so a late or stray
//! wake-up can never restart a child twice.

use super::policy::RestartPolicy;
use crate::ipc::{ChildState, ChildStatus};
use nix::sys::signal::Signal;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Why a child's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
    /// It could not be started at all.
    SpawnFailed(String),
}

impl ExitReason {
    /// An exit with code 0.
    pub fn is_success(&self) -> bool {
        matches!(self, ExitReason::Code(0))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Code(code) => write!(f, "exited with code {code}"),
            ExitReason::Signal(sig) => match Signal::try_from(*sig) {
                Ok(s) => write!(f, "killed by {}", s.as_str()),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            ExitReason::SpawnFailed(msg) => write!(f, "could not start: {msg}"),
        }
    }
}

/// Something that happened to the child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Begin supervising: start the child.
    Start,
    /// The process was started with this pid.
    Spawned { pid: u32 },
    /// The process could not be started.
    SpawnFailed(String),
    /// The process ended (it has been reaped).
    Exited(ExitReason),
    /// It has given no sign of life for `silent`; `sign` says which
    /// (`"heartbeat"`, `"answer on /healthz"`).
    Unresponsive {
        silent: Duration,
        sign: &'static str,
    },
    /// `now` has reached the machine's deadline.
    TimerFired,
    /// Stop the child: gracefully (SIGTERM, SIGKILL after the grace
    /// period), or at once with `force`.
    Shutdown { force: bool },
}

/// What the runner must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the child's process and report `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send `signal` to the child's process group (led by `pid`).
    Signal { pid: u32, signal: Signal },
}

/// Where a machine is: not started yet, or in one of the states
/// `supervisor.json` shows, since an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Started { state: ChildState, since: Instant },
}

/// One supervised child.
#[derive(Clone, Debug)]
pub struct Child {
    name: String,
    policy: RestartPolicy,
    grace: Duration,
    phase: Phase,
    pid: Option<u32>,
    restarts: u32,
    /// Crashes in a row since the last stable run: the backoff exponent.
    attempt: u32,
    /// When the recent crashes happened, for the crash-loop budget.
    crashes: VecDeque<Instant>,
    running_since: Option<Instant>,
    deadline: Option<Instant>,
    last_exit: Option<String>,
    /// Set when we killed the process ourselves because it hung: the exit
    /// is reported with this reason rather than "killed by SIGKILL".
    kill_reason: Option<String>,
}

impl Child {
    /// A child that has not been started; feed it [`Event::Start`].
    pub fn new(name: impl Into<String>, policy: RestartPolicy, grace: Duration) -> Child {
        Child {
            name: name.into(),
            policy,
            grace,
            phase: Phase::NotStarted,
            pid: None,
            restarts: 0,
            attempt: 0,
            crashes: VecDeque::new(),
            running_since: None,
            deadline: None,
            last_exit: None,
            kill_reason: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state `supervisor.json` shows: `stopped` before the start (see
    /// the module docs), which [`Child::is_started`] tells apart.
    pub fn state(&self) -> ChildState {
        match self.phase {
            Phase::NotStarted => ChildState::Stopped,
            Phase::Started { state, .. } => state,
        }
    }

    /// Whether [`Event::Start`] has been delivered.
    pub fn is_started(&self) -> bool {
        self.phase != Phase::NotStarted
    }

    /// The pid of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    pub fn last_exit(&self) -> Option<&str> {
        self.last_exit.as_deref()
    }

    /// When the machine wants [`Event::TimerFired`].
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// When the current process was started, while it runs.
    pub fn running_since(&self) -> Option<Instant> {
        if self.state() == ChildState::Running {
            self.running_since
        } else {
            None
        }
    }

    /// Finished, failed or stopped: nothing more will happen by itself.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.phase,
            Phase::Started {
                state: ChildState::Finished | ChildState::Failed | ChildState::Stopped,
                ..
            }
        ) && self.pid.is_none()
    }

    /// Advances the machine.
    pub fn next(&mut self, event: Event, now: Instant) -> Vec<Action> {
        use ChildState as S;
        let state = match self.phase {
            // Only a start starts it; anything before is ignored.
            Phase::NotStarted if event == Event::Start => {
                self.set(S::Starting, now);
                return vec![Action::Spawn];
            }
            Phase::NotStarted => return Vec::new(),
            Phase::Started { state, .. } => state,
        };
        match (state, event) {
            (S::Starting, Event::Spawned { pid }) => {
                self.pid = Some(pid);
                self.running_since = Some(now);
                self.set(S::Running, now);
                Vec::new()
            }
            (S::Starting, Event::SpawnFailed(msg)) => {
                self.exited(ExitReason::SpawnFailed(msg), now);
                Vec::new()
            }
            (S::Running, Event::Exited(reason)) => {
                self.exited(reason, now);
                Vec::new()
            }
            (S::Running, Event::Unresponsive { silent, sign }) => match self.pid {
                Some(pid) if self.kill_reason.is_none() => {
                    self.kill_reason = Some(format!(
                        "hung: no {sign} for {:.1} s, killed",
                        silent.as_secs_f64()
                    ));
                    vec![Action::Signal {
                        pid,
                        signal: Signal::SIGKILL,
                    }]
                }
                _ => Vec::new(),
            },
            (S::Backoff, Event::TimerFired) if self.due(now) => {
                self.deadline = None;
                self.restarts += 1;
                self.set(S::Starting, now);
                vec![Action::Spawn]
            }
            (S::Stopping, Event::TimerFired) if self.due(now) => {
                self.deadline = None;
                self.kill(Signal::SIGKILL)
            }
            (state, Event::Shutdown { force }) => self.shutdown(state, force, now),
            (S::Stopping, Event::Spawned { pid }) => {
                self.pid = Some(pid);
                self.deadline = Some(now + self.grace);
                self.kill(Signal::SIGTERM)
            }
            (S::Stopping, Event::SpawnFailed(msg)) => {
                self.last_exit = Some(ExitReason::SpawnFailed(msg).to_string());
                self.set(S::Stopped, now);
                Vec::new()
            }
            (S::Stopping, Event::Exited(reason)) => {
                self.pid = None;
                self.deadline = None;
                self.last_exit = Some(reason.to_string());
                self.set(S::Stopped, now);
                Vec::new()
            }
            // Anything else (a stray timer, a repeated request or start,
            // events for a finished or failed child) changes nothing.
            _ => Vec::new(),
        }
    }

    /// A stop request in `state`: a running child gets SIGTERM and the
    /// grace deadline (SIGKILL at once with `force`); a spawn under way is
    /// stopped as soon as it reports; a second, forced request kills a
    /// stopping child now; a backoff is cancelled. A final child stays as
    /// it is.
    fn shutdown(&mut self, state: ChildState, force: bool, now: Instant) -> Vec<Action> {
        use ChildState as S;
        match state {
            S::Running => {
                self.set(S::Stopping, now);
                if force {
                    self.kill(Signal::SIGKILL)
                } else {
                    self.deadline = Some(now + self.grace);
                    self.kill(Signal::SIGTERM)
                }
            }
            S::Starting => {
                self.set(S::Stopping, now);
                Vec::new()
            }
            S::Stopping if force => {
                self.deadline = None;
                self.kill(Signal::SIGKILL)
            }
            S::Backoff => {
                self.deadline = None;
                self.set(S::Stopped, now);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The child's line in `supervisor.json`. `now_ms` is the wall clock
    /// at `now`, so instants can be shown as Unix milliseconds.
    pub fn status(&self, now: Instant, now_ms: i64) -> ChildStatus {
        let wall = |at: Instant| {
            now_ms - ms(now.saturating_duration_since(at)) + ms(at.saturating_duration_since(now))
        };
        ChildStatus {
            name: self.name.clone(),
            pid: self.pid,
            state: self.state(),
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            last_error: None,
            since_ms: match self.phase {
                Phase::NotStarted => now_ms,
                Phase::Started { since, .. } => wall(since),
            },
        }
    }

    fn set(&mut self, state: ChildState, now: Instant) {
        self.phase = Phase::Started { state, since: now };
    }

    fn due(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    fn kill(&self, signal: Signal) -> Vec<Action> {
        self.pid
            .map(|pid| Action::Signal { pid, signal })
            .into_iter()
            .collect()
    }

    /// The process is gone while we wanted it running: finish, back off,
    /// or give up.
    fn exited(&mut self, reason: ExitReason, now: Instant) {
        self.pid = None;
        let text = self
            .kill_reason
            .take()
            .unwrap_or_else(|| reason.to_string());
        self.last_exit = Some(text);
        let ran = self
            .running_since
            .take()
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if !self.policy.restarts_after(&reason) {
            self.set(ChildState::Finished, now);
            return;
        }
        if ran >= self.policy.stable_after {
            self.attempt = 0;
            self.crashes.clear();
        }
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.policy.window)
        {
            self.crashes.pop_front();
        }
        if self.crashes.len() > self.policy.max_restarts as usize {
            self.deadline = None;
            self.set(ChildState::Failed, now);
            return;
        }
        self.deadline = Some(now + self.policy.backoff(self.attempt));
        self.attempt = self.attempt.saturating_add(1);
        self.set(ChildState::Backoff, now);
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::policy::Restart;

    const GRACE: Duration = Duration::from_secs(3);

    fn started(policy: RestartPolicy, t: Instant, pid: u32) -> Child {
        let mut c = Child::new("c", policy, GRACE);
        assert_eq!(c.next(Event::Start, t), [Action::Spawn]);
        assert_eq!(c.state(), ChildState::Starting);
        assert_eq!(c.next(Event::Spawned { pid }, t), []);
        assert_eq!(c.state(), ChildState::Running);
        c
    }

    fn after(t: Instant, ms: u64) -> Instant {
        t + Duration::from_millis(ms)
    }

    /// Crashes at once every time; returns the backoff delays seen until
    /// the child is marked failed.
    fn crash_until_failed(c: &mut Child, mut t: Instant) -> Vec<u128> {
        let mut delays = Vec::new();
        for pid in 100.. {
            c.next(Event::Exited(ExitReason::Code(1)), t);
            if c.state() == ChildState::Failed {
                return delays;
            }
            assert_eq!(c.state(), ChildState::Backoff);
            let due = c.deadline().unwrap();
            delays.push((due - t).as_millis());
            // Early wake-ups change nothing.
            assert_eq!(
                c.next(Event::TimerFired, due - Duration::from_millis(1)),
                []
            );
            assert_eq!(c.next(Event::TimerFired, due), [Action::Spawn]);
            c.next(Event::Spawned { pid }, due);
            t = after(due, 5);
        }
        unreachable!()
    }

    #[test]
    fn a_new_child_is_not_started_and_only_a_start_moves_it() {
        let t = Instant::now();
        let mut c = Child::new("c", RestartPolicy::worker(), GRACE);
        assert!(!c.is_started() && !c.is_terminal());
        for event in [
            Event::TimerFired,
            Event::Shutdown { force: true },
            Event::Spawned { pid: 3 },
            Event::Exited(ExitReason::Code(0)),
        ] {
            assert_eq!(c.next(event, t), []);
            assert!(!c.is_started() && !c.is_terminal());
        }
        // Shown as it always was: no process, nothing running.
        let s = c.status(t, 1000);
        assert_eq!(
            (s.state, s.pid, s.since_ms),
            (ChildState::Stopped, None, 1000)
        );
        assert_eq!(c.next(Event::Start, t), [Action::Spawn]);
        assert!(c.is_started());
        assert_eq!(c.next(Event::Start, t), [], "started once");
    }

    #[test]
    fn a_crash_loop_backs_off_exponentially_then_fails() {
        let t = Instant::now();
        let mut c = started(RestartPolicy::server(), t, 1);
        let delays = crash_until_failed(&mut c, after(t, 5));
        assert_eq!(delays, [100, 200, 400, 800, 1600]);
        assert_eq!(c.restarts(), 5);
        assert_eq!(c.pid(), None);
        assert_eq!(c.deadline(), None);
        assert!(c.is_terminal());
        assert_eq!(c.last_exit(), Some("exited with code 1"));
        // A failed child stays failed.
        assert_eq!(c.next(Event::TimerFired, after(t, 60_000)), []);
        assert_eq!(
            c.next(Event::Shutdown { force: false }, after(t, 60_000)),
            []
        );
        assert_eq!(c.state(), ChildState::Failed);
    }

    #[test]
    fn a_stable_run_resets_backoff_and_budget() {
        let t = Instant::now();
        let mut c = started(RestartPolicy::server(), t, 1);
        let t = after(t, 5);
        for (i, pid) in (2..5).enumerate() {
            c.next(Event::Exited(ExitReason::Signal(9)), t);
            let due = c.deadline().unwrap();
            assert_eq!((due - t).as_millis(), 100 << i);
            c.next(Event::TimerFired, due);
            c.next(Event::Spawned { pid }, due);
        }
        // Runs 10 s: healthy again.
        let t = after(c.running_since().unwrap(), 10_000);
        c.next(Event::Exited(ExitReason::Signal(9)), t);
        assert_eq!((c.deadline().unwrap() - t).as_millis(), 100);
        assert_eq!(c.last_exit(), Some("killed by SIGKILL"));
        c.next(Event::TimerFired, c.deadline().unwrap());
        c.next(Event::Spawned { pid: 9 }, c.deadline().unwrap_or(t));
        // The full budget is available again: 5 more restarts.
        let delays = crash_until_failed(&mut c, after(t, 200));
        assert_eq!(delays, [200, 400, 800, 1600]);
    }

    #[test]
    fn crashes_outside_the_window_do_not_count() {
        let policy = RestartPolicy {
            max_restarts: 2,
            window: Duration::from_secs(5),
            stable_after: Duration::from_secs(3600),
            ..RestartPolicy::server()
        };
        let mut t = Instant::now();
        let mut c = started(policy, t, 1);
        for pid in 2..10 {
            // A crash every 3 s: at most 2 in any 5 s window.
            t = after(t, 3000);
            c.next(Event::Exited(ExitReason::Code(3)), t);
            assert_eq!(c.state(), ChildState::Backoff, "crash {pid}");
            c.next(Event::TimerFired, c.deadline().unwrap());
            c.next(Event::Spawned { pid }, t);
        }
    }

    #[test]
    fn a_worker_that_exits_0_is_finished_but_a_server_is_restarted() {
        let t = Instant::now();
        let mut w = started(RestartPolicy::worker(), t, 1);
        assert_eq!(w.next(Event::Exited(ExitReason::Code(0)), t), []);
        assert_eq!(w.state(), ChildState::Finished);
        assert!(w.is_terminal());
        assert_eq!(w.deadline(), None);

        let mut s = started(RestartPolicy::server(), t, 1);
        s.next(Event::Exited(ExitReason::Code(0)), t);
        assert_eq!(s.state(), ChildState::Backoff);
        assert_eq!(s.policy.restart, Restart::Always);
    }

    #[test]
    fn a_worker_that_crashes_is_restarted() {
        let t = Instant::now();
        let mut w = started(RestartPolicy::worker(), t, 1);
        w.next(Event::Exited(ExitReason::Signal(9)), t);
        assert_eq!(w.state(), ChildState::Backoff);
        assert_eq!(w.next(Event::TimerFired, after(t, 100)), [Action::Spawn]);
        assert_eq!(w.state(), ChildState::Starting);
        w.next(Event::Spawned { pid: 2 }, after(t, 101));
        assert_eq!(
            (w.state(), w.pid(), w.restarts()),
            (ChildState::Running, Some(2), 1)
        );
    }

    #[test]
    fn a_hung_child_is_killed_once_and_restarted_with_the_reason() {
        let t = Instant::now();
        let mut c = started(RestartPolicy::worker(), t, 7);
        let stale = Event::Unresponsive {
            silent: Duration::from_millis(5200),
            sign: "heartbeat",
        };
        assert_eq!(
            c.next(stale.clone(), t),
            [Action::Signal {
                pid: 7,
                signal: Signal::SIGKILL
            }]
        );
        // Until it is reaped, further stale reports send nothing more.
        assert_eq!(c.next(stale, t), []);
        c.next(Event::Exited(ExitReason::Signal(9)), t);
        assert_eq!(c.state(), ChildState::Backoff);
        assert_eq!(c.last_exit(), Some("hung: no heartbeat for 5.2 s, killed"));
        // The next crash is reported as itself.
        c.next(Event::TimerFired, after(t, 100));
        c.next(Event::Spawned { pid: 8 }, after(t, 100));
        c.next(Event::Exited(ExitReason::Code(2)), after(t, 200));
        assert_eq!(c.last_exit(), Some("exited with code 2"));
    }

    #[test]
    fn shutdown_sends_sigterm_then_sigkill_after_the_grace_period() {
        let t = Instant::now();
        let mut c = started(RestartPolicy::server(), t, 5);
        assert_eq!(
            c.next(Event::Shutdown { force: false }, t),
            [Action::Signal {
                pid: 5,
                signal: Signal::SIGTERM
            }]
        );
        assert_eq!(c.state(), ChildState::Stopping);
        assert_eq!(c.deadline(), Some(t + GRACE));
        assert_eq!(c.next(Event::TimerFired, after(t, 2999)), []);
        assert_eq!(
            c.next(Event::TimerFired, t + GRACE),
            [Action::Signal {
                pid: 5,
                signal: Signal::SIGKILL
            }]
        );
        c.next(Event::Exited(ExitReason::Signal(9)), t + GRACE);
        assert_eq!((c.state(), c.pid()), (ChildState::Stopped, None));
        assert!(c.is_terminal());
        // A stopped child is never restarted.
        assert_eq!(c.next(Event::TimerFired, after(t, 60_000)), []);
        assert_eq!(c.next(Event::Start, after(t, 60_000)), []);
    }

    #[test]
    fn a_second_shutdown_kills_at_once() {
        let t = Instant::now();
        let mut c = started(RestartPolicy::server(), t, 5);
        c.next(Event::Shutdown { force: false }, t);
        assert_eq!(
            c.next(Event::Shutdown { force: true }, after(t, 10)),
            [Action::Signal {
                pid: 5,
                signal: Signal::SIGKILL
            }]
        );
        assert_eq!(c.deadline(), None);
        c.next(Event::Exited(ExitReason::Signal(9)), after(t, 20));
        assert_eq!(c.state(), ChildState::Stopped);
    }

    #[test]
    fn shutdown_during_backoff_cancels_the_restart() {
        let t = Instant::now();
        let mut c = started(RestartPolicy::server(), t, 5);
        c.next(Event::Exited(ExitReason::Code(1)), t);
        assert_eq!(c.next(Event::Shutdown { force: false }, t), []);
        assert_eq!(c.state(), ChildState::Stopped);
        assert_eq!(c.next(Event::TimerFired, after(t, 100)), []);
        assert!(c.is_terminal());
    }

    #[test]
    fn shutdown_while_spawning_stops_the_child_when_it_reports() {
        let t = Instant::now();
        let mut c = Child::new("c", RestartPolicy::server(), GRACE);
        c.next(Event::Start, t);
        c.next(Event::Shutdown { force: false }, t);
        assert_eq!(
            c.next(Event::Spawned { pid: 3 }, t),
            [Action::Signal {
                pid: 3,
                signal: Signal::SIGTERM
            }]
        );
        c.next(Event::Exited(ExitReason::Signal(15)), t);
        assert_eq!(c.state(), ChildState::Stopped);
    }

    #[test]
    fn a_spawn_failure_counts_as_a_crash() {
        let t = Instant::now();
        let mut c = Child::new("c", RestartPolicy::worker(), GRACE);
        c.next(Event::Start, t);
        c.next(Event::SpawnFailed("No such file or directory".into()), t);
        assert_eq!(c.state(), ChildState::Backoff);
        assert_eq!(
            c.last_exit(),
            Some("could not start: No such file or directory")
        );
    }

    #[test]
    fn status_reports_wall_clock_times() {
        let t = Instant::now();
        let mut c = started(RestartPolicy::server(), t, 5);
        c.next(Event::Exited(ExitReason::Code(1)), after(t, 1000));
        let s = c.status(after(t, 1050), 1_000_050);
        assert_eq!(s.state, ChildState::Backoff);
        assert_eq!(s.since_ms, 1_000_000);
        assert_eq!(s.pid, None);
        assert_eq!(s.last_exit.as_deref(), Some("exited with code 1"));
    }
}
