//! The processor's writer thread: the slow half of every atomic replace
//! off the hot path.
//!
//! Each atomic replace fsyncs a file and its directory, which takes
//! milliseconds on real disks. The replay loop serialises each file of a
//! flush straight from its own state into a temp file ([`prepare`]: page
//! cache writes, about a millisecond for a thousand bars, and no copy of
//! the state is ever made), then hands the written files to this thread,
//! which puts them in place stage by stage (sealed segments, then the
//! checkpoint, then data files, then status), so the on-disk order
//! guarantee of the checkpoint holds. The files of one stage are committed
//! together ([`commit_all`]): their fsyncs are issued at once, which the
//! file system folds into a journal commit or two. While it is busy the
//! loop skips its flush and tries again later, so the cadence stays "at most every `--flush-ms`", the
//! replay is never blocked by the disk, and at most one batch is pending.

use crate::ipc::{commit_all, prepare, IpcError, Pending};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Writes one file's content.
pub type Content<'a> = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + 'a>;

/// Files to replace, each by its path relative to `OUT` (the files of the
/// series store are in subdirectories), in stages: every file of a stage
/// is on disk before any file of the next is renamed; readers see the
/// renames in the order the files were pushed.
pub struct Batch<'a> {
    stages: Vec<Vec<(PathBuf, Content<'a>)>>,
}

impl<'a> Batch<'a> {
    pub fn new() -> Batch<'a> {
        Batch {
            stages: vec![Vec::new()],
        }
    }

    /// A batch of one file.
    pub fn one(rel: PathBuf, content: Content<'a>) -> Batch<'a> {
        let mut batch = Batch::new();
        batch.push(rel, content);
        batch
    }

    /// Adds a file to the current stage.
    pub fn push(&mut self, rel: PathBuf, content: Content<'a>) {
        if let Some(stage) = self.stages.last_mut() {
            stage.push((rel, content));
        }
    }

    /// Ends the current stage: what follows is renamed only once all of it
    /// is on disk.
    pub fn barrier(&mut self) {
        if self.stages.last().is_some_and(|s| !s.is_empty()) {
            self.stages.push(Vec::new());
        }
    }
}

impl Default for Batch<'_> {
    fn default() -> Self {
        Batch::new()
    }
}

/// The content of a file: `value` as JSON.
pub fn json<'a, T: serde::Serialize + 'a>(value: T) -> Content<'a> {
    Box::new(move |w| serde_json::to_writer(w, &value).map_err(std::io::Error::other))
}

/// Writes what `rows` yields as a JSON array, serialising each row as it
/// is produced (no converted copy of a thousand bars is ever held).
pub fn write_rows<I>(w: &mut dyn Write, rows: I) -> std::io::Result<()>
where
    I: Iterator,
    I::Item: serde::Serialize,
{
    struct Rows<I>(std::cell::Cell<Option<I>>);
    impl<I> serde::Serialize for Rows<I>
    where
        I: Iterator,
        I::Item: serde::Serialize,
    {
        fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
            serializer.collect_seq(self.0.take().into_iter().flatten())
        }
    }
    serde_json::to_writer(w, &Rows(std::cell::Cell::new(Some(rows)))).map_err(std::io::Error::other)
}

/// Written temp files, to be put in place stage by stage.
pub type Written = Vec<Vec<Pending>>;

/// Hands batches to the writer thread.
pub struct Flusher {
    dir: PathBuf,
    tx: Option<SyncSender<Written>>,
    busy: Arc<AtomicBool>,
    error: Arc<Mutex<Option<IpcError>>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the writer thread; `Err` if it cannot be started.
    pub fn start(dir: PathBuf) -> std::io::Result<Flusher> {
        let (tx, rx) = sync_channel::<Written>(1);
        let error = Arc::new(Mutex::new(None));
        let busy = Arc::new(AtomicBool::new(false));
        let thread = {
            let (error, busy) = (error.clone(), busy.clone());
            std::thread::Builder::new()
                .name("write".into())
                .spawn(move || commit_loop(rx, busy, error))?
        };
        Ok(Flusher {
            dir,
            tx: Some(tx),
            busy,
            error,
            thread: Some(thread),
        })
    }

    /// Whether the writer would take a batch now (build one only then).
    /// `Err` if an earlier write failed.
    pub fn ready(&self) -> Result<bool, IpcError> {
        self.check()?;
        Ok(self.tx.is_some() && !self.busy.load(Ordering::Acquire))
    }

    /// Writes `batch` to temp files and hands them over. `Ok(false)` when
    /// the writer is busy (nothing is written: try again later).
    pub fn offer(&self, batch: Batch<'_>) -> Result<bool, IpcError> {
        self.check()?;
        let Some(tx) = &self.tx else { return Ok(false) };
        if self.busy.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        let written = match self.write(batch) {
            Ok(written) => written,
            Err(e) => {
                self.busy.store(false, Ordering::Release);
                return Err(e);
            }
        };
        match tx.try_send(written) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => {
                self.busy.store(false, Ordering::Release);
                Ok(false)
            }
            Err(TrySendError::Disconnected(_)) => Err(self.writer_lost()),
        }
    }

    /// Writes `batch` to temp files, to be handed to [`Flusher::finish`].
    /// If one cannot be written, none is kept.
    pub fn write(&self, batch: Batch<'_>) -> Result<Written, IpcError> {
        batch
            .stages
            .into_iter()
            .filter(|stage| !stage.is_empty())
            .map(|stage| {
                stage
                    .into_iter()
                    .map(|(rel, content)| {
                        let path = self.dir.join(&rel);
                        let dir = path.parent().unwrap_or(&self.dir);
                        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                        prepare(dir, name, content)
                    })
                    .collect()
            })
            .collect()
    }

    /// Puts `written` in place after everything queued, and waits until all
    /// of it is on disk.
    pub fn finish(&mut self, written: Written) -> Result<(), IpcError> {
        let sent = self.tx.take().is_some_and(|tx| tx.send(written).is_ok());
        let joined = self.thread.take().is_some_and(|t| t.join().is_ok());
        self.check()?;
        if sent && joined {
            Ok(())
        } else {
            Err(self.writer_lost())
        }
    }

    /// The writer thread died (it does not, short of a bug): what was
    /// handed to it may not be on disk, so the run must not call itself
    /// finished.
    fn writer_lost(&self) -> IpcError {
        IpcError::Write {
            path: self.dir.clone(),
            source: std::io::Error::other("the writer thread stopped unexpectedly"),
        }
    }

    fn check(&self) -> Result<(), IpcError> {
        match self.error.lock() {
            Ok(mut e) => e.take().map_or(Ok(()), Err),
            Err(_) => Ok(()),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn commit_loop(rx: Receiver<Written>, busy: Arc<AtomicBool>, error: Arc<Mutex<Option<IpcError>>>) {
    for written in rx {
        for stage in written {
            if let Err(e) = commit_all(stage) {
                if let Ok(mut slot) = error.lock() {
                    slot.get_or_insert(e);
                }
                // Later stages of a failed batch would get ahead of the
                // checkpoint; drop them (their temp files go with them).
                break;
            }
        }
        busy.store(false, Ordering::Release);
    }
}
