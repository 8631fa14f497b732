//! Watching a started process until it ends: copying its output into its
//! log, reaping it, clearing its process group, and reporting why it
//! ended.
//!
//! This module owns what happens between a successful [`super::spawn`]
//! and the exit report, and nothing else: it does not decide what the exit
//! means (that is [`super::child`]) and writes only through the child's
//! [`Log`]. Each process gets one task that waits for it and one per
//! output pipe; they share nothing with the event loop but the report
//! they send at the end.

use super::child::ExitReason;
use super::logs::{Log, Stream};
use super::spawn;
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

/// How long the output of an ended process may take to reach its log
/// before the exit is reported anyway.
const DRAIN: Duration = Duration::from_millis(500);

/// Takes over `child` (whose group `pid` leads): copies its stdout and
/// stderr into `log`, waits for it, SIGKILLs whatever is left in its group,
/// lets its last lines reach the log, then calls `report` with why it
/// ended.
pub fn watch(
    mut child: Child,
    pid: u32,
    log: Arc<Log>,
    report: impl FnOnce(ExitReason) + Send + 'static,
) -> JoinHandle<()> {
    let readers = [
        child
            .stdout
            .take()
            .map(|s| pump(s, Arc::clone(&log), Stream::Stdout)),
        child
            .stderr
            .take()
            .map(|s| pump(s, Arc::clone(&log), Stream::Stderr)),
    ];
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
        let _ = spawn::signal_group(pid, Signal::SIGKILL);
        // Let its last lines reach the log before the exit is reported.
        for reader in readers.into_iter().flatten() {
            let _ = tokio::time::timeout(DRAIN, reader).await;
        }
        report(reason);
    })
}

/// Copies a child's output, line by line, into its log.
fn pump<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    log: Arc<Log>,
    stream: Stream,
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
