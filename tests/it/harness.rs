//! Shared test harness: temp dirs, fixture builders, the binaries run
//! with a deadline, one way to wait on a condition, and one guard that
//! kills what a test started.
//!
//! Every binary a test runs goes through [`TestCommand`] (after ripgrep's
//! `tests/util.rs`): [`TestCommand::output`] runs it to the end like
//! `Command::output`, but a run past its timeout is killed and fails the
//! test with the command line, what it printed and a listing of its `--out`
//! directory, instead of stalling the suite; [`TestCommand::spawn`] starts
//! it in the background, to be held by a [`KillOnDrop`]. Every wait is
//! [`wait_for`] (or [`wait_until`], which fails the test at the deadline)
//! on an observable condition, never a fixed sleep.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

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

/// The processor binary built for these tests.
pub const PROCESSOR: &str = env!("CARGO_BIN_EXE_orderflow-processor");
/// The viewer binary built for these tests.
pub const VIEWER: &str = env!("CARGO_BIN_EXE_orderflow-viewer");
/// The supervisor binary built for these tests.
pub const ORDERFLOW: &str = env!("CARGO_BIN_EXE_orderflow");

/// How long a [`TestCommand`] may run before it counts as hung.
pub const TIMEOUT: Duration = Duration::from_secs(120);

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

/// A command under test: `Command`'s builder, run with a deadline.
#[derive(Debug)]
pub struct TestCommand {
    cmd: Command,
    timeout: Duration,
    out: Option<PathBuf>,
}

impl TestCommand {
    pub fn new(program: impl AsRef<OsStr>) -> TestCommand {
        TestCommand {
            cmd: Command::new(program),
            timeout: TIMEOUT,
            out: None,
        }
    }

    /// `orderflow-processor`.
    pub fn processor() -> TestCommand {
        TestCommand::new(PROCESSOR)
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut TestCommand {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.env(key, value);
        self
    }

    /// Where stdin comes from when [`spawn`](TestCommand::spawn)ed
    /// ([`output`](TestCommand::output) always closes it).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut TestCommand {
        self.cmd.stdin(cfg);
        self
    }

    /// Where stdout goes when [`spawn`](TestCommand::spawn)ed
    /// ([`output`](TestCommand::output) always captures it).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut TestCommand {
        self.cmd.stdout(cfg);
        self
    }

    /// Where stderr goes when [`spawn`](TestCommand::spawn)ed
    /// ([`output`](TestCommand::output) always captures it).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut TestCommand {
        self.cmd.stderr(cfg);
        self
    }

    /// How long [`output`](TestCommand::output) lets it run
    /// ([`TIMEOUT`] unless set).
    pub fn timeout(&mut self, timeout: Duration) -> &mut TestCommand {
        self.timeout = timeout;
        self
    }

    /// The directory listed when it fails (by default the argument after
    /// `--out`).
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut TestCommand {
        self.out = Some(dir.into());
        self
    }

    /// Runs it to the end with stdin closed and stdout and stderr
    /// captured, like `Command::output`. A run past the timeout is killed
    /// and fails the test with [`TestCommand::report`]; the `Err` is only
    /// for a program that cannot be started.
    pub fn output(&mut self) -> std::io::Result<Output> {
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let (status, hung) = match rx.recv_timeout(self.timeout) {
            Ok(status) => (status?, false),
            Err(_) => {
                kill(pid, nix::sys::signal::Signal::SIGKILL);
                let status = rx.recv().expect("the waiting thread answers")?;
                (status, true)
            }
        };
        let output = Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        if hung {
            panic!(
                "{}",
                self.report(&format!("hung: killed after {:?}", self.timeout), &output)
            );
        }
        Ok(output)
    }

    /// Runs it to the end and fails the test with
    /// [`TestCommand::report`] unless it succeeded.
    pub fn assert_success(&mut self) -> Output {
        let output = self
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.cmd));
        if !output.status.success() {
            panic!("{}", self.report("failed", &output));
        }
        output
    }

    /// Starts it in the background (hold it in a [`KillOnDrop`]).
    pub fn spawn(&mut self) -> std::io::Result<std::process::Child> {
        self.cmd.spawn()
    }

    /// What a failure shows: `what`, the command line, its exit, its
    /// stdout and stderr, and a listing of its output directory.
    pub fn report(&self, what: &str, output: &Output) -> String {
        let out = self.out.clone().or_else(|| {
            let mut args = self.cmd.get_args();
            args.position(|a| a == "--out")?;
            args.next().map(PathBuf::from)
        });
        let listing = out.map_or_else(
            || "(no --out)".to_string(),
            |dir| format!("{}:\n{}", dir.display(), listing(&dir)),
        );
        format!(
            "{what}\ncommand: {:?}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- output directory {listing}",
            self.cmd,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        )
    }
}

/// Every file below `dir` with its size, one a line, sorted.
pub fn listing(dir: &Path) -> String {
    fn walk(dir: &Path, lines: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            lines.push(format!("  {} (cannot be read)", dir.display()));
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => walk(&path, lines),
                Ok(m) => lines.push(format!("  {} ({} bytes)", path.display(), m.len())),
                Err(e) => lines.push(format!("  {} ({e})", path.display())),
            }
        }
    }
    let mut lines = Vec::new();
    walk(dir, &mut lines);
    lines.sort();
    if lines.is_empty() {
        "  (empty)".to_string()
    } else {
        lines.join("\n")
    }
}

/// Sends `signal` to process `pid`; one that is gone already is fine.
pub fn kill(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// Runs the processor to completion with `args` (killed and reported if
/// it hangs).
pub fn processor(args: &[&str]) -> Output {
    TestCommand::processor()
        .args(args)
        .output()
        .expect("run orderflow-processor")
}

/// `orderflow-processor INSTRUMENT 2024-01-01 2024-01-01 --db DB --out
/// OUT` followed by `extra`: the one-day replay most tests run (the
/// fixtures and generated captures are all on that day).
pub fn replay(instrument: &str, db: &Path, out: &Path, extra: &[&str]) -> TestCommand {
    let mut cmd = TestCommand::processor();
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

/// [`wait_for`] that fails the test, naming `what`, at the deadline.
pub fn wait_until<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

impl KillOnDrop {
    /// The process's id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the process to exit; fails the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.0;
        wait_until("the process to exit", timeout, || {
            child.try_wait().expect("try_wait")
        })
    }

    /// The first line of its stdout (which must be piped); fails the test
    /// if none comes within `timeout`. The rest of stdout is closed.
    pub fn first_line(&mut self, timeout: Duration) -> String {
        let stdout = self.0.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        rx.recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("no line on stdout within {timeout:?}"))
    }
}

#[test]
fn a_hung_command_is_killed_and_reported_with_its_output_and_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("left.json"), "{}").expect("write");
    let started = std::time::Instant::now();
    let hung = std::panic::catch_unwind(|| {
        TestCommand::new("sh")
            .args([
                "-c",
                "echo so far; echo trouble >&2; exec sleep 30",
                "--out",
            ])
            .arg(dir.path())
            .timeout(Duration::from_millis(300))
            .output()
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = hung
        .expect_err("a hang fails the test")
        .downcast::<String>()
        .expect("a message");
    for part in [
        "hung: killed after 300ms",
        "exec sleep 30",
        "so far",
        "trouble",
        "left.json (2 bytes)",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
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
