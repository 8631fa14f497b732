//! What to supervise: each child's program, arguments, restart policy and
//! liveness checks ([`ChildSpec`]), and the supervisor's own settings
//! ([`Config`]).
//!
//! Plain values built before anything starts; nothing here touches a
//! process or a file. Which children an application runs, with which
//! arguments, is the application's choice (see [`crate::app`]): this
//! module knows no program by name.

use super::health::HealthCheck;
use super::logs::{self, Console};
use super::policy::RestartPolicy;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Environment variables added for the child (secrets stay out of its
    /// command line, which every local user can read).
    env: Vec<(OsString, OsString)>,
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
            env: Vec::new(),
        }
    }

    /// Sets `key=value` in the child's environment.
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> ChildSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn env(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// Arguments appended on the first start only, not on restarts.
    pub fn with_first_start_args(mut self, args: Vec<OsString>) -> ChildSpec {
        self.first_start_args = args;
        self
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

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The arguments of the start after `restarts` restarts.
    pub fn args(&self, restarts: u32) -> Vec<OsString> {
        let mut args = self.args.clone();
        if restarts == 0 {
            args.extend(self.first_start_args.iter().cloned());
        }
        args
    }

    pub fn policy(&self) -> RestartPolicy {
        self.policy
    }

    /// The heartbeat age after which the running child counts as hung.
    pub fn hang_limit(&self) -> Option<Duration> {
        self.hang_limit
    }

    pub fn health(&self) -> Option<&HealthCheck> {
        self.health.as_ref()
    }

    pub fn colour(&self) -> u8 {
        self.colour
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

    pub fn children(&self) -> &[ChildSpec] {
        &self.children
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    pub fn console(&self) -> Console {
        self.console
    }

    /// Size of one log file and number of files kept per child.
    pub fn log_rotation(&self) -> (u64, u32) {
        (self.log_max_bytes, self.log_files)
    }
}
