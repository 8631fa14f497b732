//! The event loop: [`run`] owns every child's [`Slot`], delivers what
//! happens to each child's machine as an [`Event`], carries out the
//! [`Action`]s it returns, checks heartbeats and deadlines, and writes
//! `supervisor.json`.
//!
//! This module owns `OUT/.supervisor.lock` (held for the whole run) and
//! `OUT/supervisor.json`; it reads `status.json` only through a slot's
//! heartbeat check and never writes the data files. It decides nothing
//! about a child itself: the machine does. See [`super`] for why one loop.

use super::child::{Action, Event};
use super::config::Config;
use super::health::{Probed, HEARTBEAT_POLL};
use super::logs::{self, Log, Stream};
use super::signals::Stop;
use super::slot::{News, Report, Slot};
use super::{spawn, Outcome, SuperviseError};
use crate::ipc::{self, files, ChildState, ChildStatus, DirLock, IpcError, SupervisorStatus};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Runs the supervisor until every child has ended or a stop was asked and
/// carried out. Takes `OUT/.supervisor.lock` first: a second supervisor on
/// the same `OUT` fails here, before starting anything.
pub async fn run(
    config: Config,
    mut stop: mpsc::UnboundedReceiver<Stop>,
) -> Result<Outcome, SuperviseError> {
    if config.children().is_empty() {
        return Err(SuperviseError::NoChildren);
    }
    let out = config.out().to_path_buf();
    std::fs::create_dir_all(&out).map_err(|source| IpcError::CreateDir {
        path: out.clone(),
        source,
    })?;
    let _lock = DirLock::acquire(&out, files::SUPERVISOR_LOCK, "supervisor")?;
    ipc::sweep_stale_temp_files(&out)?;
    let log_dir = out.join(files::LOGS);
    let (max_bytes, kept) = config.log_rotation();
    let open_log = |name: &str, colour: u8| {
        Log::open(&log_dir, name, colour, config.console(), max_bytes, kept)
            .map(Arc::new)
            .map_err(|source| SuperviseError::Log {
                path: log_dir.join(format!("{name}.log")),
                source,
            })
    };
    let own_log = open_log("orderflow", 33)?;
    let mut slots = Vec::new();
    for spec in config.children() {
        let log = open_log(spec.name(), spec.colour())?;
        slots.push(Slot::new(spec.clone(), log, config.grace()));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut sup = Supervisor {
        out,
        grace: config.grace(),
        slots,
        own_log,
        tx,
        url: None,
        started_ms: ipc::now_ms(),
        published: None,
        publish_error: None,
        stopping: false,
    };
    let names: Vec<&str> = sup.slots.iter().map(|s| s.spec().name()).collect();
    sup.say(&format!(
        "supervising {} in {} (pid {})",
        names.join(" and "),
        sup.out.display(),
        std::process::id()
    ));
    let outcome = sup.event_loop(&mut stop, rx).await;
    // Every child is final here; this only matters if that ever changes.
    for slot in &mut sup.slots {
        slot.kill_now();
    }
    // The last lines ("stopped", …) reach the console before the exit.
    logs::flush_console(Duration::from_secs(1));
    Ok(outcome)
}

/// What `supervisor.json` last said, without the times derived from the
/// clock (they drift by a millisecond between calls).
type Published = (
    Vec<(String, Option<u32>, ChildState, u32, Option<String>)>,
    Option<String>,
);

struct Supervisor {
    out: PathBuf,
    grace: Duration,
    slots: Vec<Slot>,
    own_log: Arc<Log>,
    tx: mpsc::UnboundedSender<Report>,
    /// The viewer's URL, once it has answered.
    url: Option<String>,
    started_ms: i64,
    published: Option<Published>,
    /// The last error writing `supervisor.json`, reported once.
    publish_error: Option<String>,
    stopping: bool,
}

impl Supervisor {
    async fn event_loop(
        &mut self,
        stop: &mut mpsc::UnboundedReceiver<Stop>,
        mut rx: mpsc::UnboundedReceiver<Report>,
    ) -> Outcome {
        let now = Instant::now();
        for idx in 0..self.slots.len() {
            self.feed(idx, Event::Start, now);
        }
        let mut stop_open = true;
        loop {
            self.publish_or_warn();
            if self.slots.iter().all(|s| s.machine().is_terminal()) {
                break;
            }
            let wake = self.next_wake(Instant::now());
            tokio::select! {
                request = stop.recv(), if stop_open => match request {
                    Some(request) => self.stop(request),
                    None => stop_open = false,
                },
                Some(report) = rx.recv() => self.report(report),
                () = tokio::time::sleep_until(wake.into()) => self.tick(),
            }
        }
        let failed: Vec<String> = self
            .slots
            .iter()
            .map(Slot::machine)
            .filter(|m| m.state() == ChildState::Failed)
            .map(|m| m.name().to_string())
            .collect();
        self.say(&if self.stopping {
            "stopped".to_string()
        } else if failed.is_empty() {
            "every child has ended".to_string()
        } else {
            format!("every child has ended; failed: {}", failed.join(", "))
        });
        self.publish_or_warn();
        Outcome {
            stopped: self.stopping,
            failed,
        }
    }

    /// The next instant something must be checked: a machine's deadline or
    /// the next heartbeat poll.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_secs(3600);
        for slot in &self.slots {
            if let Some(d) = slot.machine().deadline() {
                wake = wake.min(d);
            }
            if slot.watches_heartbeat() && !self.stopping {
                wake = wake.min(now + HEARTBEAT_POLL);
            }
        }
        wake
    }

    fn stop(&mut self, request: Stop) {
        let force = request == Stop::Now || self.stopping;
        if force {
            self.say("stopping now: SIGKILL to every child");
        } else {
            self.say(&format!(
                "stopping: SIGTERM to every child, SIGKILL after {:.1} s (Ctrl-C again to kill at once)",
                self.grace.as_secs_f64()
            ));
        }
        self.stopping = true;
        let now = Instant::now();
        for idx in 0..self.slots.len() {
            self.feed(idx, Event::Shutdown { force }, now);
        }
    }

    fn report(&mut self, Report { idx, pid, news }: Report) {
        if !self.slots[idx].is_current(pid) {
            return;
        }
        match news {
            News::Exited(reason) => {
                self.slots[idx].ended();
                self.feed(idx, Event::Exited(reason), Instant::now());
                self.exited(idx, pid);
            }
            News::Health(Probed::Answered) => self.answered(idx, pid),
            News::Health(Probed::Silent(silent)) => {
                if !self.stopping {
                    self.kill_hung(idx, silent, "answer on /healthz", Instant::now());
                }
            }
        }
    }

    /// Says what became of child `idx` after its process `pid` exited.
    fn exited(&self, idx: usize, pid: u32) {
        let m = self.slots[idx].machine();
        let what = match m.state() {
            ChildState::Backoff => format!(
                "restart {} in {} ms",
                m.restarts() + 1,
                m.deadline().map_or(0, |d| d
                    .saturating_duration_since(Instant::now())
                    .as_millis())
            ),
            ChildState::Failed => "crash loop: marked failed, not restarted again".to_string(),
            ChildState::Finished => match &self.url {
                Some(url) => format!("finished; the viewer keeps serving {url} (Ctrl-C to stop)"),
                None => "finished".to_string(),
            },
            _ => "stopped".to_string(),
        };
        let mut line = format!("pid {pid} {}; {what}", m.last_exit().unwrap_or("exited"));
        if matches!(m.state(), ChildState::Backoff | ChildState::Failed) {
            if let Some(err) = self.slots[idx].log().last_stderr() {
                line.push_str(&format!(" (last error: {err})"));
            }
        }
        self.say_about(idx, &line);
    }

    /// Child `idx`'s process `pid` answered its health check for the first
    /// time: the first answer of all prints the URL.
    fn answered(&mut self, idx: usize, pid: u32) {
        let Some(url) = self.slots[idx].spec().health().map(|h| h.url()) else {
            return;
        };
        if self.url.is_none() {
            self.say(&format!("viewer ready: {url}"));
            self.url = Some(url);
        } else {
            let restarts = self.slots[idx].machine().restarts();
            self.say_about(
                idx,
                &format!("pid {pid} answering again (restart {restarts})"),
            );
        }
    }

    /// Fires due deadlines and checks heartbeats.
    fn tick(&mut self) {
        let now = Instant::now();
        for idx in 0..self.slots.len() {
            if self.slots[idx]
                .machine()
                .deadline()
                .is_some_and(|d| now >= d)
            {
                self.feed(idx, Event::TimerFired, now);
            }
        }
        if self.stopping {
            return;
        }
        let status = self.out.join(files::STATUS);
        let now_ms = ipc::now_ms();
        for idx in 0..self.slots.len() {
            if let Some(silent) = self.slots[idx].overdue_heartbeat(&status, now_ms) {
                self.kill_hung(idx, silent, "heartbeat", now);
            }
        }
    }

    /// Child `idx` gave no `sign` of life for `silent`: says so and lets
    /// its machine kill it (it is then restarted like a crash).
    fn kill_hung(&mut self, idx: usize, silent: Duration, sign: &'static str, now: Instant) {
        self.say_about(
            idx,
            &format!(
                "no {sign} for {:.1} s: killing its group",
                silent.as_secs_f64()
            ),
        );
        self.feed(idx, Event::Unresponsive { silent, sign }, now);
    }

    /// Delivers `event` to child `idx` and carries out the actions,
    /// including the events those actions produce.
    fn feed(&mut self, idx: usize, event: Event, now: Instant) {
        let mut queue = vec![event];
        while let Some(event) = queue.pop() {
            for action in self.slots[idx].machine_mut().next(event, now) {
                match action {
                    Action::Spawn => queue.push(self.spawn(idx)),
                    Action::Signal { pid, signal } => {
                        if let Err(e) = spawn::signal_group(pid, signal) {
                            self.say_about(
                                idx,
                                &format!("cannot send {} to group {pid}: {e}", signal.as_str()),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Starts child `idx`'s process; the event says how that went.
    fn spawn(&mut self, idx: usize) -> Event {
        match self.slots[idx].spawn(idx, &self.tx) {
            Ok(pid) => {
                let restarts = self.slots[idx].machine().restarts();
                if restarts > 0 {
                    self.say_about(idx, &format!("started pid {pid} (restart {restarts})"));
                } else {
                    self.say_about(idx, &format!("started pid {pid}"));
                }
                Event::Spawned { pid }
            }
            Err(msg) => {
                self.say_about(idx, &format!("cannot start {msg}"));
                Event::SpawnFailed(msg)
            }
        }
    }

    /// Writes `supervisor.json` if anything in it changed. A failed write
    /// (full disk, OUT removed) is reported once and retried on the next
    /// change: the children matter more than their report.
    fn publish_or_warn(&mut self) {
        match self.publish() {
            Ok(()) => self.publish_error = None,
            Err(e) => {
                let text = e.to_string();
                if self.publish_error.as_deref() != Some(text.as_str()) {
                    self.say(&format!("warning: {text}"));
                    self.publish_error = Some(text);
                }
            }
        }
    }

    fn publish(&mut self) -> Result<(), SuperviseError> {
        let now = Instant::now();
        let now_ms = ipc::now_ms();
        let children: Vec<ChildStatus> = self
            .slots
            .iter()
            .map(|s| {
                let mut c = s.machine().status(now, now_ms);
                if matches!(c.state, ChildState::Backoff | ChildState::Failed) {
                    c.last_error = s.log().last_stderr();
                }
                c
            })
            .collect();
        let key: Published = (
            children
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.pid,
                        c.state,
                        c.restarts,
                        c.last_exit.clone(),
                    )
                })
                .collect(),
            self.url.clone(),
        );
        if self.published.as_ref() == Some(&key) {
            return Ok(());
        }
        let status = SupervisorStatus {
            pid: std::process::id(),
            started_ms: self.started_ms,
            updated_ms: now_ms,
            url: self.url.clone(),
            children,
        };
        let mut bytes = serde_json::to_vec_pretty(&status).map_err(|source| IpcError::Parse {
            path: self.out.join(files::SUPERVISOR),
            source,
        })?;
        bytes.push(b'\n');
        ipc::write_atomic(&self.out, files::SUPERVISOR, &bytes)?;
        self.published = Some(key);
        Ok(())
    }

    fn say(&self, line: &str) {
        self.own_log.line(Stream::Supervisor, line);
    }

    fn say_about(&self, idx: usize, line: &str) {
        let slot = &self.slots[idx];
        self.own_log.line(
            Stream::Supervisor,
            &format!("{}: {line}", slot.spec().name()),
        );
        // In the child's own file too, so its log tells the whole story;
        // the console has it once, from the supervisor's line.
        slot.log().keep(Stream::Supervisor, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::{ChildSpec, Console, RestartPolicy};

    /// The loop itself, on real processes, stopped through the channel.
    #[tokio::test(flavor = "current_thread")]
    async fn runs_restarts_and_stops_real_children() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let quick = RestartPolicy {
            initial_backoff: Duration::from_millis(10),
            ..RestartPolicy::worker()
        };
        let children = vec![
            ChildSpec::new(
                "done",
                "sh",
                vec!["-c".into(), "echo hello; exit 0".into()],
                quick,
            ),
            ChildSpec::new("crash", "sh", vec!["-c".into(), "exit 3".into()], quick),
            ChildSpec::new("serve", "sleep", vec!["30".into()], RestartPolicy::server()),
        ];
        let config = Config::new(&out, children).with_console(Console::Quiet);
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(run(config, stop_rx));
        let status_path = out.join(files::SUPERVISOR);
        let read = || ipc::read_json::<SupervisorStatus>(&status_path).ok();
        let deadline = Instant::now() + Duration::from_secs(20);
        let state = loop {
            if let Some(s) = read() {
                if s.children[0].state == ipc::ChildState::Finished
                    && s.children[1].state == ipc::ChildState::Failed
                {
                    break s;
                }
            }
            assert!(Instant::now() < deadline, "{:?}", read());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(state.children[1].restarts, 5);
        assert_eq!(
            state.children[1].last_exit.as_deref(),
            Some("exited with code 3")
        );
        assert_eq!(state.children[2].state, ipc::ChildState::Running);
        let sleeper = state.children[2].pid.unwrap();
        // A second supervisor on the same OUT is refused.
        let (_tx2, rx2) = mpsc::unbounded_channel();
        let err = run(
            Config::new(&out, vec![ChildSpec::new("x", "true", vec![], quick)]),
            rx2,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("already in use by another supervisor"),
            "{err}"
        );
        stop_tx.send(Stop::Graceful).unwrap();
        let outcome = handle.await.unwrap().unwrap();
        assert_eq!(
            outcome,
            Outcome {
                stopped: true,
                failed: vec!["crash".into()]
            }
        );
        assert_eq!(outcome.exit_code(), 1);
        let end = read().unwrap();
        assert_eq!(end.children[2].state, ipc::ChildState::Stopped);
        assert_eq!(
            end.children[2].last_exit.as_deref(),
            Some("killed by SIGTERM")
        );
        assert!(matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleeper as i32), None),
            Err(nix::errno::Errno::ESRCH)
        ));
        let log = std::fs::read_to_string(out.join("logs/done.log")).unwrap();
        assert!(log.contains(" out hello"), "{log}");
    }
}
