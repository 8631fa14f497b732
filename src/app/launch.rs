//! From "run this instrument and these dates" to a supervisor [`Config`]:
//! which programs, which arguments, which policy for each child.
//!
//! This module owns the choice of the two children and how they are
//! invoked; it starts nothing itself. The binary parses the command line
//! and hands the result here, so the command-line layer stays thin and a
//! test (or another program) can build the same configuration directly.
//!
//! The children are found next to the running executable (the three
//! binaries are built and installed together), unless a path is given;
//! the binary lets `ORDERFLOW_PROCESSOR_BIN` / `ORDERFLOW_VIEWER_BIN`
//! override them, which is how the fault tests substitute fakes.

use crate::supervise::{ChildSpec, Config, HealthCheck, RestartPolicy};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the processor child in logs and `supervisor.json`.
pub const PROCESSOR: &str = "processor";
/// Name of the viewer child in logs and `supervisor.json`.
pub const VIEWER: &str = "viewer";

/// A child's program is missing.
#[derive(Debug, thiserror::Error)]
#[error("cannot find the program {name}: {source}")]
pub struct ProgramError {
    name: String,
    source: std::io::Error,
}

/// The programs run as children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programs {
    pub processor: PathBuf,
    pub viewer: PathBuf,
}

impl Programs {
    /// `orderflow-processor` and `orderflow-viewer` in the directory of the
    /// running executable, each replaced by `processor` / `viewer` if given.
    pub fn resolve(
        processor: Option<PathBuf>,
        viewer: Option<PathBuf>,
    ) -> Result<Programs, ProgramError> {
        let beside = |name: &str| -> Result<PathBuf, ProgramError> {
            let exe = std::env::current_exe().map_err(|source| ProgramError {
                name: name.to_string(),
                source,
            })?;
            Ok(exe.parent().unwrap_or(Path::new(".")).join(name))
        };
        let pick = |given: Option<PathBuf>, name: &str| -> Result<PathBuf, ProgramError> {
            let path = match given {
                Some(p) => p,
                None => beside(name)?,
            };
            if path.is_file() {
                Ok(path)
            } else {
                Err(ProgramError {
                    name: name.to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "{} does not exist; build it with `cargo build --release`",
                            path.display()
                        ),
                    ),
                })
            }
        };
        Ok(Programs {
            processor: pick(processor, "orderflow-processor")?,
            viewer: pick(viewer, "orderflow-viewer")?,
        })
    }
}

/// Everything `orderflow run` needs.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Positional and option arguments for the processor (everything but
    /// `--out`, which is added here).
    pub processor_args: Vec<OsString>,
    /// Arguments given to the processor's first start only (`--fresh`: a
    /// restart after a crash must resume from the checkpoint, not start
    /// over).
    pub first_start_args: Vec<OsString>,
    pub out: PathBuf,
    pub host: String,
    pub port: u16,
    /// The viewer's access token (needed off loopback).
    pub token: Option<String>,
    pub programs: Programs,
    /// Heartbeat age after which the processor counts as hung, and how
    /// long the viewer may leave `/healthz` unanswered.
    pub hang_limit: Duration,
    /// Time between SIGTERM and SIGKILL on a graceful stop.
    pub grace: Duration,
}

impl Launch {
    /// The supervisor configuration: the processor (restarted on failure,
    /// watched through its heartbeat) and the viewer (restarted on any
    /// exit, probed on `/healthz` until it answers, then every second for
    /// liveness).
    pub fn config(&self) -> Config {
        let mut processor_args = self.processor_args.clone();
        processor_args.push("--out".into());
        processor_args.push(self.out.clone().into_os_string());
        let processor = ChildSpec::new(
            PROCESSOR,
            &self.programs.processor,
            processor_args,
            RestartPolicy::worker(),
        )
        .with_first_start_args(self.first_start_args.clone())
        .with_hang_limit(self.hang_limit)
        .with_colour(36);
        let viewer_args: Vec<OsString> = vec![
            "--out".into(),
            self.out.clone().into_os_string(),
            "--host".into(),
            self.host.clone().into(),
            "--port".into(),
            self.port.to_string().into(),
        ];

        let mut viewer = ChildSpec::new(
            VIEWER,
            &self.programs.viewer,
            viewer_args,
            RestartPolicy::server(),
        )
        .with_health(
            // Probed every second with a 1 s timeout: under 2 s, one slow
            // answer would count as a hang.
            HealthCheck::new(self.host.clone(), self.port)
                .with_hang_limit(self.hang_limit.max(Duration::from_secs(2)))
                .with_token(self.token.clone()),
        )
        .with_colour(35);
        if let Some(t) = &self.token {
            // In the environment, not on the command line `ps` shows.
            viewer = viewer.with_env("ORDERFLOW_TOKEN", t);
        }
        Config::new(&self.out, vec![processor, viewer]).with_grace(self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_are_named() {
        let err = Programs::resolve(Some("/nonexistent/p".into()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/p does not exist"), "{err}");
    }

    #[test]
    fn the_processor_gets_out_and_fresh_only_on_its_first_start() {
        let launch = Launch {
            processor_args: vec!["BTC-USDT".into(), "2024-01-01".into(), "2024-01-01".into()],
            first_start_args: vec!["--fresh".into()],
            out: "/tmp/o".into(),
            host: "127.0.0.1".into(),
            port: 8050,
            token: None,
            programs: Programs {
                processor: "/p".into(),
                viewer: "/v".into(),
            },
            hang_limit: Duration::from_secs(5),
            grace: Duration::from_secs(3),
        };
        let config = launch.config();
        let p = &config.children()[0];
        assert_eq!(
            p.args(0),
            [
                "BTC-USDT",
                "2024-01-01",
                "2024-01-01",
                "--out",
                "/tmp/o",
                "--fresh"
            ]
        );
        assert_eq!(
            p.args(1),
            ["BTC-USDT", "2024-01-01", "2024-01-01", "--out", "/tmp/o"]
        );
        let v = &config.children()[1];
        assert_eq!(
            v.args(0),
            ["--out", "/tmp/o", "--host", "127.0.0.1", "--port", "8050"]
        );
        assert_eq!(
            v.health().map(HealthCheck::url).as_deref(),
            Some("http://127.0.0.1:8050/")
        );
        // The viewer's liveness limit is the processor's hang limit, but
        // never under 2 s (two probe intervals).
        assert_eq!(
            v.health().and_then(HealthCheck::hang_limit),
            Some(Duration::from_secs(5))
        );
        // Off loopback, the viewer gets its token, and the URL carries it.
        let remote = Launch {
            host: "0.0.0.0".into(),
            token: Some("t0k".into()),
            ..launch.clone()
        }
        .config();
        let v = &remote.children()[1];
        assert_eq!(
            v.args(0),
            ["--out", "/tmp/o", "--host", "0.0.0.0", "--port", "8050"]
        );
        assert_eq!(v.env(), [("ORDERFLOW_TOKEN".into(), "t0k".into())]);
        assert_eq!(
            v.health().map(HealthCheck::url).as_deref(),
            Some("http://127.0.0.1:8050/?token=t0k")
        );
        let short = Launch {
            hang_limit: Duration::from_millis(500),
            ..launch
        }
        .config();
        assert_eq!(
            short.children()[1]
                .health()
                .and_then(HealthCheck::hang_limit),
            Some(Duration::from_secs(2))
        );
        assert_eq!(config.grace(), Duration::from_secs(3));
    }
}
