//! Shared test harness: temp dirs, binaries, the real OKX capture.
#![allow(dead_code)]

use std::path::PathBuf;

/// The real OKX capture beside the repository, or `None` (with a message)
/// when it is absent.
pub fn okx_capture() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/okx-capture-2022-05-13");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: the OKX capture is not at {}", dir.display());
        None
    }
}

use std::path::Path;
use std::process::{Command, Output};

/// The processor binary built for these tests.
pub const PROCESSOR: &str = env!("CARGO_BIN_EXE_orderflow-processor");

/// A directory for output that many flushes hit: tmpfs when the machine
/// has one (fsync there is free), else the usual temp dir.
pub fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

/// Runs the processor to completion with `args`.
pub fn processor(args: &[&str]) -> Output {
    Command::new(PROCESSOR)
        .args(args)
        .output()
        .expect("run orderflow-processor")
}

/// `orderflow-processor INSTRUMENT 2024-01-01 2024-01-01 --db DB --out
/// OUT` followed by `extra`: the one-day replay most tests run (the
/// fixtures and generated captures are all on that day).
pub fn replay(instrument: &str, db: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(PROCESSOR);
    cmd.args([instrument, "2024-01-01", "2024-01-01", "--db"])
        .arg(db)
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

/// A capture file built row by row, in the spec's schema.
pub struct Capture {
    pub conn: rusqlite::Connection,
}

impl Capture {
    pub fn create(path: &Path) -> Capture {
        let conn = rusqlite::Connection::open(path).expect("create capture");
        conn.execute_batch(
            "CREATE TABLE book(id INTEGER PRIMARY KEY, bids TEXT NOT NULL, asks TEXT NOT NULL, timestamp INTEGER NOT NULL);
             CREATE TABLE trades(id INTEGER PRIMARY KEY, trade_id REAL NOT NULL, price REAL NOT NULL,
                                 size REAL NOT NULL, side TEXT NOT NULL, timestamp INTEGER NOT NULL);",
        )
        .expect("schema");
        Capture { conn }
    }

    pub fn book(&self, ts: i64, bids: &str, asks: &str) -> &Capture {
        self.conn
            .execute(
                "INSERT INTO book(bids, asks, timestamp) VALUES (?1, ?2, ?3)",
                rusqlite::params![bids, asks, ts],
            )
            .expect("insert book");
        self
    }

    pub fn trade(&self, ts: i64, price: f64, size: f64, side: &str) -> &Capture {
        self.conn
            .execute(
                "INSERT INTO trades(trade_id, price, size, side, timestamp) VALUES (1, ?1, ?2, ?3, ?4)",
                rusqlite::params![price, size, side, ts],
            )
            .expect("insert trade");
        self
    }
}

/// Reads a JSON file as a generic value.
pub fn json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Names of temp files left in `dir`.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// A child process killed when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
