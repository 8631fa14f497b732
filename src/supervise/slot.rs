//! One supervised child as the event loop holds it: its [`ChildSpec`],
//! its state machine, its log, and the helper tasks of its current
//! process.
//!
//! A [`Slot`] is where a machine's [`Action`](super::Action)s meet the
//! world: it starts the process ([`super::spawn`]), hands it to
//! [`super::reaper`] and, for a server, to a [`HealthCheck`](super::HealthCheck) task, all of
//! which report back to the loop as [`Report`]s tagged with the slot's
//! index and the process's pid. It decides nothing itself (the machine
//! does) and knows no other slot: children are one-for-one.

use super::child::{Child, ExitReason};
use super::config::ChildSpec;
use super::health::{self, Probed};
use super::logs::Log;
use super::{reaper, spawn};
use crate::ipc;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// What a helper task tells the loop about process `pid` of slot `idx`.
#[derive(Debug)]
pub struct Report {
    pub idx: usize,
    pub pid: u32,
    pub news: News,
}

#[derive(Debug)]
pub enum News {
    /// The process ended and has been reaped.
    Exited(ExitReason),
    /// What its health check saw.
    Health(Probed),
}

/// One supervised child.
#[derive(Debug)]
pub struct Slot {
    spec: ChildSpec,
    machine: Child,
    log: Arc<Log>,
    /// The current process's health check, stopped when it ends.
    probe: Option<JoinHandle<()>>,
    /// Wall clock of the last spawn, Unix ms: the heartbeat's reference
    /// until the new process writes its own.
    spawned_ms: i64,
}

impl Slot {
    pub fn new(spec: ChildSpec, log: Arc<Log>, grace: Duration) -> Slot {
        let machine = Child::new(spec.name(), spec.policy(), grace);
        Slot {
            spec,
            machine,
            log,
            probe: None,
            spawned_ms: 0,
        }
    }

    pub fn spec(&self) -> &ChildSpec {
        &self.spec
    }

    pub fn machine(&self) -> &Child {
        &self.machine
    }

    pub fn machine_mut(&mut self) -> &mut Child {
        &mut self.machine
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Whether `pid` is the current process (reports about an older one
    /// are late and ignored).
    pub fn is_current(&self, pid: u32) -> bool {
        self.machine.pid() == Some(pid)
    }

    /// Starts the process for the machine's current restart count, with
    /// the tasks that watch it reporting to `tx`. Returns its pid, or why
    /// it could not be started.
    pub fn spawn(&mut self, idx: usize, tx: &UnboundedSender<Report>) -> Result<u32, String> {
        let program = self.spec.program();
        let args = self.spec.args(self.machine.restarts());
        let child = spawn::spawn(program, &args, self.spec.env())
            .map_err(|e| format!("{}: {e}", program.display()))?;
        let Some(pid) = child.id() else {
            return Err("the process ended before it could be watched".into());
        };
        self.spawned_ms = ipc::now_ms();
        let send = move |tx: &UnboundedSender<Report>, news: News| {
            let _ = tx.send(Report { idx, pid, news });
        };
        let exits = tx.clone();
        reaper::watch(child, pid, Arc::clone(&self.log), move |reason| {
            send(&exits, News::Exited(reason));
        });
        if let Some(check) = self.spec.health().cloned() {
            let probes = tx.clone();
            self.probe = Some(check.watch(move |seen| send(&probes, News::Health(seen))));
        }
        Ok(pid)
    }

    /// The current process has ended: its health check goes with it.
    pub fn ended(&mut self) {
        if let Some(task) = self.probe.take() {
            task.abort();
        }
    }

    /// Whether the running process's heartbeat must be polled.
    pub fn watches_heartbeat(&self) -> bool {
        self.spec.hang_limit().is_some() && self.machine.running_since().is_some()
    }

    /// How long the running process has given no heartbeat in
    /// `status_path`, when that is longer than its hang limit. The
    /// reference is the later of its last heartbeat and its start, so a
    /// new process gets the full limit and its predecessor's stale file
    /// does not count against it.
    pub fn overdue_heartbeat(&self, status_path: &Path, now_ms: i64) -> Option<Duration> {
        let limit = self.spec.hang_limit()?;
        self.machine.running_since()?;
        let beat = health::read_heartbeat(status_path).unwrap_or(0);
        let last = beat.max(self.spawned_ms);
        let silent = Duration::from_millis(u64::try_from(now_ms - last).unwrap_or(0));
        (silent > limit).then_some(silent)
    }

    /// Last resort: SIGKILL to the process group, if there is one, and no
    /// more health checks.
    pub fn kill_now(&mut self) {
        if let Some(pid) = self.machine.pid() {
            let _ = spawn::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
        self.ended();
    }
}
