//! A generic supervisor: starts child processes, watches them, restarts
//! whichever crashes or hangs, and stops them on request.
//!
//! It knows no program by name: which children run, with which arguments
//! and checks, is a [`Config`] the application builds (`orderflow`'s is
//! [`crate::app::launch`]).
//!
//! # Layout
//!
//! - [`config`]: what to supervise ([`ChildSpec`], [`Config`]), plain values.
//! - [`policy`]: restart policy as data (backoff, stable period, budget).
//! - [`child`]: the pure per-child state machine, `next(event) → actions`.
//! - [`runner`]: [`run`], the event loop that feeds the machines, checks
//!   heartbeats and deadlines, and writes `supervisor.json`.
//! - [`slot`]: one child as the loop holds it (spec, machine, log, the
//!   tasks watching its current process).
//! - [`spawn`]: starting a process (own process group, parent-death
//!   signal) and signalling its group.
//! - [`reaper`]: a started process until it ends: output into its log,
//!   reaping, clearing its group, the exit report.
//! - [`health`]: signs of life: the heartbeat in `status.json`, the
//!   `/healthz` probe (readiness, then liveness).
//! - [`signals`]: SIGINT/SIGTERM → [`Stop`] requests.
//! - [`logs`]: child output on the console and in `OUT/logs/`.
//!
//! The supervisor owns `OUT/supervisor.json`, `OUT/.supervisor.lock` and
//! `OUT/logs/`; it only *reads* `status.json` (the processor's heartbeat)
//! and never writes the data files, which belong to the processor.
//!
//! # Why an event loop over a state machine
//!
//! Everything that can happen to a child (it was spawned, it exited, its
//! heartbeat went stale, a deadline passed, a stop was asked) becomes an
//! [`child::Event`] delivered on one task, in order, to that child's
//! machine; only the machine decides, and the loop only carries out its
//! [`child::Action`]s. There is no shared mutable state between tasks: the
//! tasks that reap processes, read output and probe `/healthz` just send
//! messages. Children are one-for-one: an event for one child never
//! touches the other's machine.
//!
//! The loop must run on a thread that lives as long as the supervisor (the
//! binary uses a current-thread runtime on the main thread), because the
//! children's parent-death signal is tied to the thread that spawned them
//! (see [`spawn`]).

pub mod child;
pub mod config;
pub mod health;
pub mod logs;
pub mod policy;
pub mod reaper;
pub mod runner;
pub mod signals;
pub mod slot;
pub mod spawn;

pub use child::{Action, Child, Event, ExitReason};
pub use config::{ChildSpec, Config};
pub use health::HealthCheck;
pub use logs::Console;
pub use policy::{Restart, RestartPolicy};
pub use runner::run;
pub use signals::{stop_on_signals, Stop};

use crate::ipc::IpcError;
use std::path::PathBuf;

/// Errors that stop the supervisor before or while it runs.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error(transparent)]
    Ipc(#[from] IpcError),
    #[error("cannot open the log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no child to supervise")]
    NoChildren,
}

/// How the supervisor ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// A stop was requested (signal or channel).
    pub stopped: bool,
    /// Children that ended marked failed.
    pub failed: Vec<String>,
}

impl Outcome {
    /// Exit code for the binary: 0 unless a child failed (a requested stop
    /// is a success).
    pub fn exit_code(&self) -> i32 {
        if self.failed.is_empty() {
            0
        } else {
            1
        }
    }
}
