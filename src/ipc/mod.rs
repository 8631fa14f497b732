//! The file contract between the processes: every file in `OUT`, its
//! format, and how it is written, locked and read.
//!
//! The processor, the viewer and the supervisor share nothing but this
//! module's files, so everything about them lives here: names
//! ([`files`]), formats ([`formats`]), the atomic replace
//! ([`atomic`]), throwing a directory away in the background
//! ([`discard`]), the one-writer lock ([`lock`]) and the public writer type
//! that any Rust program can use to feed the viewer ([`VizWriter`]).
//! This module must not know about SQLite, the book or HTTP.

pub mod atomic;
pub mod control;
pub mod discard;
pub mod formats;
pub mod lock;
pub mod writer;

pub use atomic::{
    commit_all, prepare, sweep_stale_temp_files, sweep_stale_temp_files_below, write_atomic,
    write_atomic_with, Pending, Reserve,
};
pub use formats::{
    ChildState, ChildStatus, Depth, MetricRow, OhlcRow, RunState, Status, SupervisorStatus,
};
pub use lock::DirLock;
pub use writer::VizWriter;

use std::path::PathBuf;

/// Names of the files in the output directory.
pub mod files {
    pub const OHLC: &str = "ohlc_data.json";
    pub const METRICS: &str = "metrics_data.json";
    pub const DEPTH: &str = "depth_data.json";
    pub const STATUS: &str = "status.json";
    pub const SUPERVISOR: &str = "supervisor.json";
    pub const CHECKPOINT: &str = "checkpoint.json";
    /// How the replay is steered: written by the viewer, read by the
    /// processor.
    pub const CONTROL: &str = "control.json";
    /// Lock file held by the one writer of the data files.
    pub const WRITER_LOCK: &str = ".writer.lock";
    /// Lock file held by the one supervisor.
    pub const SUPERVISOR_LOCK: &str = ".supervisor.lock";
    /// Directory of the supervisor's child logs.
    pub const LOGS: &str = "logs";

    /// A file the viewer serves: its name in `OUT`, its route
    /// (`/api/<route>`) and the JSON served before it ever existed.
    #[derive(Debug)]
    pub struct Served {
        pub name: &'static str,
        pub route: &'static str,
        pub empty: &'static str,
    }

    /// The files the viewer serves, in the order it announces them: the
    /// one table of their names, routes and empty values. The page cannot
    /// import it and keeps a copy in `web/static/app.js`, which a test of
    /// the viewer holds to this one.
    pub const SERVED: [Served; 5] = [
        Served {
            name: OHLC,
            route: "ohlc",
            empty: "[]",
        },
        Served {
            name: METRICS,
            route: "metrics",
            empty: "[]",
        },
        Served {
            name: DEPTH,
            route: "depth",
            empty: r#"{"bids":[],"asks":[]}"#,
        },
        Served {
            name: STATUS,
            route: "status",
            empty: "null",
        },
        Served {
            name: SUPERVISOR,
            route: "supervisor",
            empty: "null",
        },
    ];

    /// The names of [`SERVED`], in its order.
    pub const DATA: [&str; SERVED.len()] = {
        let mut names = [""; SERVED.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = SERVED[i].name;
            i += 1;
        }
        names
    };
}

/// Errors of the file layer. Each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("cannot create output directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{dir} is already in use by another {role}{holder}; stop it or choose another --out directory"
    )]
    Locked {
        dir: PathBuf,
        role: &'static str,
        holder: String,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads and parses one JSON file of the contract.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, IpcError> {
    let bytes = std::fs::read(path).map_err(|source| IpcError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| IpcError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Wall-clock Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
