//! The supervisor: starts the processor and the viewer, watches them,
//! restarts whichever crashes or hangs, and stops them on request.
//!
//! # Layout
//!
//! - [`policy`]: restart policy as data (backoff, stable period, budget).
//! - [`child`]: the pure per-child state machine, `next(event) → actions`.
//! - [`spawn`]: starting a child (own process group, parent-death signal)
//!   and signalling its group.
//! - [`signals`]: SIGINT/SIGTERM → [`Stop`] requests.
//! - [`logs`]: child output on the console and in `OUT/logs/`.
//! - this module: [`run`], the event loop that connects them, the hang
//!   check on `status.json`, the `/healthz` probe (readiness, then
//!   liveness), and `supervisor.json`.
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
pub mod demo;
pub mod launch;
pub mod logs;
pub mod policy;
pub mod signals;
pub mod spawn;

pub use child::{Action, Child, Event, ExitReason};
pub use logs::Console;
pub use policy::{Restart, RestartPolicy};
pub use signals::{stop_on_signals, Stop};

use crate::ipc::{self, files, ChildStatus, DirLock, IpcError, SupervisorStatus};
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often the processor's heartbeat is read while it runs.
const HEARTBEAT_POLL: Duration = Duration::from_millis(200);
/// How often `/healthz` is tried until the viewer answers.
const HEALTH_POLL: Duration = Duration::from_millis(25);
/// How often an answering viewer is probed again (each probe waits at
/// most a second for its answer).
const LIVENESS_POLL: Duration = Duration::from_secs(1);

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
    #[error("cannot find the program {name}: {source}")]
    Program {
        name: String,
        source: std::io::Error,
    },
}

/// How to tell that a server child answers: `GET http://host:port/healthz`
/// returns 200. With a hang limit, a server that answered once and then
/// stops answering for that long counts as hung.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    host: String,
    port: u16,
    hang_limit: Option<Duration>,
}

impl HealthCheck {
    pub fn new(host: impl Into<String>, port: u16) -> HealthCheck {
        HealthCheck {
            host: host.into(),
            port,
            hang_limit: None,
        }
    }

    /// Kill and restart the server when, after its first answer, it has
    /// not answered `/healthz` for `limit` (probed every second).
    pub fn with_hang_limit(mut self, limit: Duration) -> HealthCheck {
        self.hang_limit = Some(limit);
        self
    }

    /// The page's URL, printed once the server answers.
    pub fn url(&self) -> String {
        crate::addr::url(&self.host, self.port)
    }

    /// One probe, with a short timeout.
    pub async fn probe(&self) -> bool {
        let authority = crate::addr::authority(&self.host, self.port);
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(authority.as_str())
                .await
                .ok()?;
            let request =
                format!("GET /healthz HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = Vec::with_capacity(64);
            let mut limited = (&mut stream).take(4096);
            while !head.windows(2).any(|w| w == b"\r\n") {
                let mut buf = [0u8; 256];
                let n = limited.read(&mut buf).await.ok()?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&head);
            let mut parts = line.split_whitespace();
            let version = parts.next()?;
            Some(version.starts_with("HTTP/") && parts.next() == Some("200"))
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), attempt).await,
            Ok(Some(true))
        )
    }
}

/// One child to supervise.
#[derive(Clone, Debug)]
pub struct ChildSpec {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    first_start_args: Vec<OsString>,
    policy: RestartPolicy,
    hang_limit: Option<Duration>,
    health: Option<HealthCheck>,
    colour: u8,
}

impl ChildSpec {
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        args: Vec<OsString>,
        policy: RestartPolicy,
    ) -> ChildSpec {
        ChildSpec {
            name: name.into(),
            program: program.into(),
            args,
            first_start_args: Vec::new(),
            policy,
            hang_limit: None,
            health: None,
            colour: 36,
        }
    }

    /// Arguments appended on the first start only, not on restarts.
    pub fn with_first_start_args(mut self, args: Vec<OsString>) -> ChildSpec {
        self.first_start_args = args;
        self
    }

    /// The arguments of the start after `restarts` restarts.
    pub fn args(&self, restarts: u32) -> Vec<OsString> {
        let mut args = self.args.clone();
        if restarts == 0 {
            args.extend(self.first_start_args.iter().cloned());
        }
        args
    }

    /// Kill and restart the child when `OUT/status.json`'s `heartbeat_ms`
    /// is older than `limit` while it runs (the processor).
    pub fn with_hang_limit(mut self, limit: Duration) -> ChildSpec {
        self.hang_limit = Some(limit);
        self
    }

    /// Probe `/healthz` after each start; the first answer prints the URL.
    pub fn with_health(mut self, health: HealthCheck) -> ChildSpec {
        self.health = Some(health);
        self
    }

    /// ANSI colour (31‒37) of the name on a terminal.
    pub fn with_colour(mut self, colour: u8) -> ChildSpec {
        self.colour = colour;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The supervisor's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    out: PathBuf,
    children: Vec<ChildSpec>,
    grace: Duration,
    console: Console,
    log_max_bytes: u64,
    log_files: u32,
}

impl Config {
    pub fn new(out: impl Into<PathBuf>, children: Vec<ChildSpec>) -> Config {
        Config {
            out: out.into(),
            children,
            grace: Duration::from_secs(3),
            console: Console::Auto,
            log_max_bytes: logs::MAX_BYTES,
            log_files: logs::FILES,
        }
    }

    /// Time between SIGTERM and SIGKILL on a graceful stop.
    pub fn with_grace(mut self, grace: Duration) -> Config {
        self.grace = grace;
        self
    }

    pub fn with_console(mut self, console: Console) -> Config {
        self.console = console;
        self
    }

    /// Size of one log file and number of files kept per child.
    pub fn with_log_rotation(mut self, max_bytes: u64, files: u32) -> Config {
        self.log_max_bytes = max_bytes;
        self.log_files = files;
        self
    }

    pub fn out(&self) -> &Path {
        &self.out
    }
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
    /// Exit code for the binary: 0 unless a child failed.
    pub fn exit_code(&self) -> i32 {
        if self.failed.is_empty() {
            0
        } else {
            1
        }
    }
}

/// Messages from the helper tasks to the loop.
enum Msg {
    Exited {
        idx: usize,
        pid: u32,
        reason: ExitReason,
    },
    Healthy {
        idx: usize,
        pid: u32,
    },
    /// An answering server has not answered for `silent`.
    Unanswered {
        idx: usize,
        pid: u32,
        silent: Duration,
    },
}

/// Runs the supervisor until every child has ended or a stop was asked and
/// carried out. Takes `OUT/.supervisor.lock` first: a second supervisor on
/// the same `OUT` fails here, before starting anything.
pub async fn run(
    config: Config,
    mut stop: mpsc::UnboundedReceiver<Stop>,
) -> Result<Outcome, SuperviseError> {
    if config.children.is_empty() {
        return Err(SuperviseError::NoChildren);
    }
    std::fs::create_dir_all(&config.out).map_err(|source| IpcError::CreateDir {
        path: config.out.clone(),
        source,
    })?;
    let _lock = DirLock::acquire(&config.out, files::SUPERVISOR_LOCK, "supervisor")?;
    ipc::sweep_stale_temp_files(&config.out)?;
    let log_dir = config.out.join(files::LOGS);
    let open_log = |name: &str, colour: u8| {
        logs::Log::open(
            &log_dir,
            name,
            colour,
            config.console,
            config.log_max_bytes,
            config.log_files,
        )
        .map(Arc::new)
        .map_err(|source| SuperviseError::Log {
            path: log_dir.join(format!("{name}.log")),
            source,
        })
    };
    let own_log = open_log("orderflow", 33)?;
    let mut child_logs = Vec::new();
    for spec in &config.children {
        child_logs.push(open_log(&spec.name, spec.colour)?);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let n = config.children.len();
    let mut sup = Supervisor {
        machines: config
            .children
            .iter()
            .map(|s| Child::new(s.name.clone(), s.policy, config.grace))
            .collect(),
        config,
        logs: child_logs,
        own_log,
        tx,
        health_tasks: (0..n).map(|_| None).collect(),
        spawned_ms: vec![0; n],
        ready: vec![false; n],
        url: None,
        started_ms: ipc::now_ms(),
        published: None,
        publish_error: None,
        stopping: false,
    };
    sup.say(&format!(
        "supervising {} in {} (pid {})",
        sup.config
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        sup.config.out.display(),
        std::process::id()
    ));
    let outcome = sup.event_loop(&mut stop, rx).await;
    // Every child is final here; this only matters if that ever changes.
    sup.kill_everything();
    // The last lines ("stopped", …) reach the console before the exit.
    logs::flush_console(Duration::from_secs(1));
    Ok(outcome)
}

struct Supervisor {
    config: Config,
    machines: Vec<Child>,
    logs: Vec<Arc<logs::Log>>,
    own_log: Arc<logs::Log>,
    tx: mpsc::UnboundedSender<Msg>,
    health_tasks: Vec<Option<JoinHandle<()>>>,
    /// Wall clock of each child's last spawn, Unix ms.
    spawned_ms: Vec<i64>,
    /// Whether each child's current process has answered its health check.
    ready: Vec<bool>,
    url: Option<String>,
    started_ms: i64,
    published: Option<(Vec<ChildStatus>, Option<String>)>,
    /// The last error writing `supervisor.json`, reported once.
    publish_error: Option<String>,
    stopping: bool,
}

impl Supervisor {
    async fn event_loop(
        &mut self,
        stop: &mut mpsc::UnboundedReceiver<Stop>,
        mut rx: mpsc::UnboundedReceiver<Msg>,
    ) -> Outcome {
        let now = Instant::now();
        for idx in 0..self.machines.len() {
            self.feed(idx, Event::Start, now);
        }
        let mut stop_open = true;
        loop {
            self.publish_or_warn();
            if self.machines.iter().all(Child::is_terminal) {
                break;
            }
            let wake = self.next_wake(Instant::now());
            tokio::select! {
                request = stop.recv(), if stop_open => match request {
                    Some(request) => self.stop(request),
                    None => stop_open = false,
                },
                Some(msg) = rx.recv() => self.message(msg),
                () = tokio::time::sleep_until(wake.into()) => self.tick(),
            }
        }
        let failed: Vec<String> = self
            .machines
            .iter()
            .filter(|m| m.state() == ipc::ChildState::Failed)
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
        for (m, spec) in self.machines.iter().zip(&self.config.children) {
            if let Some(d) = m.deadline() {
                wake = wake.min(d);
            }
            if spec.hang_limit.is_some() && m.running_since().is_some() && !self.stopping {
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
                self.config.grace.as_secs_f64()
            ));
        }
        self.stopping = true;
        let now = Instant::now();
        for idx in 0..self.machines.len() {
            self.feed(idx, Event::Shutdown { force }, now);
        }
    }

    fn message(&mut self, msg: Msg) {
        match msg {
            Msg::Exited { idx, pid, reason } => {
                if self.machines[idx].pid() != Some(pid) {
                    return;
                }
                if let Some(task) = self.health_tasks[idx].take() {
                    task.abort();
                }
                self.ready[idx] = false;
                self.feed(idx, Event::Exited(reason), Instant::now());
                let m = &self.machines[idx];
                let what = match m.state() {
                    ipc::ChildState::Backoff => format!(
                        "restart {} in {} ms",
                        m.restarts() + 1,
                        m.deadline().map_or(0, |d| d
                            .saturating_duration_since(Instant::now())
                            .as_millis())
                    ),
                    ipc::ChildState::Failed => {
                        "crash loop: marked failed, not restarted again".to_string()
                    }
                    ipc::ChildState::Finished => match &self.url {
                        Some(url) => {
                            format!("finished; the viewer keeps serving {url} (Ctrl-C to stop)")
                        }
                        None => "finished".to_string(),
                    },
                    _ => "stopped".to_string(),
                };
                let line = format!("pid {pid} {}; {what}", m.last_exit().unwrap_or("exited"));
                self.say_about(idx, &line);
            }
            Msg::Unanswered { idx, pid, silent } => {
                if self.machines[idx].pid() != Some(pid) || self.stopping {
                    return;
                }
                self.ready[idx] = false;
                self.kill_hung(idx, silent, "answer on /healthz", Instant::now());
            }
            Msg::Healthy { idx, pid } => {
                if self.machines[idx].pid() != Some(pid) {
                    return;
                }
                self.ready[idx] = true;
                let Some(url) = self.config.children[idx]
                    .health
                    .as_ref()
                    .map(HealthCheck::url)
                else {
                    return;
                };
                let restarts = self.machines[idx].restarts();
                if self.url.is_none() {
                    self.url = Some(url.clone());
                    self.say(&format!("viewer ready: {url}"));
                } else {
                    self.say_about(
                        idx,
                        &format!("pid {pid} answering again (restart {restarts})"),
                    );
                }
            }
        }
    }

    /// Fires due deadlines and checks heartbeats.
    fn tick(&mut self) {
        let now = Instant::now();
        for idx in 0..self.machines.len() {
            if self.machines[idx].deadline().is_some_and(|d| now >= d) {
                self.feed(idx, Event::TimerFired, now);
            }
        }
        if self.stopping {
            return;
        }
        let now_ms = ipc::now_ms();
        for idx in 0..self.machines.len() {
            let Some(limit) = self.config.children[idx].hang_limit else {
                continue;
            };
            if self.machines[idx].running_since().is_none() {
                continue;
            }
            let beat = read_heartbeat(&self.config.out.join(files::STATUS)).unwrap_or(0);
            let last = beat.max(self.spawned_ms[idx]);
            let silent = Duration::from_millis(u64::try_from(now_ms - last).unwrap_or(0));
            if silent > limit {
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
            for action in self.machines[idx].next(event, now) {
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

    fn spawn(&mut self, idx: usize) -> Event {
        let spec = &self.config.children[idx];
        let restarts = self.machines[idx].restarts();
        let mut child = match spawn::spawn(&spec.program, &spec.args(restarts)) {
            Ok(child) => child,
            Err(e) => {
                let msg = format!("{}: {e}", spec.program.display());
                self.say_about(idx, &format!("cannot start {msg}"));
                return Event::SpawnFailed(msg);
            }
        };
        let Some(pid) = child.id() else {
            return Event::SpawnFailed("the process ended before it could be watched".into());
        };
        self.spawned_ms[idx] = ipc::now_ms();
        let log = Arc::clone(&self.logs[idx]);
        let readers = [
            child
                .stdout
                .take()
                .map(|s| pump(s, Arc::clone(&log), logs::Stream::Stdout)),
            child
                .stderr
                .take()
                .map(|s| pump(s, Arc::clone(&log), logs::Stream::Stderr)),
        ];
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let reason = match child.wait().await {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => ExitReason::Code(code),
                    (None, Some(sig)) => ExitReason::Signal(sig),
                    (None, None) => ExitReason::Code(-1),
                },
                Err(e) => ExitReason::SpawnFailed(format!("cannot wait for it: {e}")),
            };
            // One-for-one also for what the child left behind: anything
            // still in its group goes with it.
            let _ = spawn::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            // Let its last lines reach the log before the exit is reported.
            for reader in readers.into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
            }
            let _ = tx.send(Msg::Exited { idx, pid, reason });
        });
        if let Some(health) = spec.health.clone() {
            let tx = self.tx.clone();
            self.health_tasks[idx] = Some(tokio::spawn(async move {
                while !health.probe().await {
                    tokio::time::sleep(HEALTH_POLL).await;
                }
                let _ = tx.send(Msg::Healthy { idx, pid });
                let Some(limit) = health.hang_limit else {
                    return;
                };
                // Then its liveness: the task ends with the process (the
                // loop aborts it on the exit).
                let mut answered = Instant::now();
                loop {
                    tokio::time::sleep(LIVENESS_POLL).await;
                    if health.probe().await {
                        answered = Instant::now();
                    } else if answered.elapsed() > limit {
                        let silent = answered.elapsed();
                        let _ = tx.send(Msg::Unanswered { idx, pid, silent });
                        return;
                    }
                }
            }));
        }
        if restarts > 0 {
            self.say_about(idx, &format!("started pid {pid} (restart {restarts})"));
        } else {
            self.say_about(idx, &format!("started pid {pid}"));
        }
        Event::Spawned { pid }
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
            .machines
            .iter()
            .map(|m| m.status(now, now_ms))
            .collect();
        let key = (children.clone(), self.url.clone());
        // Compare without the times derived from the clock, which drift by
        // a millisecond between calls.
        let strip = |(c, u): &(Vec<ChildStatus>, Option<String>)| {
            (
                c.iter()
                    .map(|s| {
                        (
                            s.name.clone(),
                            s.pid,
                            s.state,
                            s.restarts,
                            s.last_exit.clone(),
                        )
                    })
                    .collect::<Vec<_>>(),
                u.clone(),
            )
        };
        if self.published.as_ref().map(strip) == Some(strip(&key)) {
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
            path: self.config.out.join(files::SUPERVISOR),
            source,
        })?;
        bytes.push(b'\n');
        ipc::write_atomic(&self.config.out, files::SUPERVISOR, &bytes)?;
        self.published = Some(key);
        Ok(())
    }

    /// Last resort when the loop ends early (an error): no child outlives
    /// the supervisor.
    fn kill_everything(&mut self) {
        for m in &self.machines {
            if let Some(pid) = m.pid() {
                let _ = spawn::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        for task in self.health_tasks.iter_mut().filter_map(Option::take) {
            task.abort();
        }
    }

    fn say(&self, line: &str) {
        self.own_log.line(logs::Stream::Supervisor, line);
    }

    fn say_about(&self, idx: usize, line: &str) {
        let name = self.machines[idx].name();
        self.own_log
            .line(logs::Stream::Supervisor, &format!("{name}: {line}"));
        // In the child's own file too, so its log tells the whole story;
        // the console has it once, from the supervisor's line.
        self.logs[idx].keep(logs::Stream::Supervisor, line);
    }
}

/// Copies a child's output, line by line, into its log.
fn pump<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    log: Arc<logs::Log>,
    stream: logs::Stream,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    // A progress bar redraws with carriage returns: keep
                    // the last state of the line.
                    let line = text.trim_end_matches(['\n', '\r']);
                    let line = line.rsplit('\r').next().unwrap_or(line);
                    log.line(stream, line);
                }
            }
        }
    })
}

/// `heartbeat_ms` from `status.json`, read leniently: only that field.
fn read_heartbeat(path: &Path) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Beat {
        heartbeat_ms: i64,
    }
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Beat>(&bytes)
        .ok()
        .map(|b| b.heartbeat_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_urls() {
        assert_eq!(
            HealthCheck::new("127.0.0.1", 8050).url(),
            "http://127.0.0.1:8050/"
        );
        assert_eq!(
            HealthCheck::new("0.0.0.0", 80).url(),
            "http://127.0.0.1:80/"
        );
        assert_eq!(HealthCheck::new("::1", 8050).url(), "http://[::1]:8050/");
    }

    #[test]
    fn reads_only_the_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        assert_eq!(read_heartbeat(&p), None);
        std::fs::write(&p, r#"{"state":"running","heartbeat_ms":1234,"future":1}"#).unwrap();
        assert_eq!(read_heartbeat(&p), Some(1234));
        std::fs::write(&p, "{").unwrap();
        assert_eq!(read_heartbeat(&p), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn probe_sees_200_and_refuses_anything_else() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz HTTP/1.1\r\n"));
                s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let check = HealthCheck::new("127.0.0.1", port);
        assert!(check.probe().await);
        assert!(!check.probe().await);
        server.await.unwrap();
        // Nobody listening any more.
        assert!(!check.probe().await);
    }

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
