//! The processor's writer thread: serialising and atomic writes off the
//! hot path.
//!
//! Each atomic replace fsyncs a file and its directory, which takes
//! milliseconds on real disks, and serialising a thousand bars takes a
//! few more. The replay loop only copies what is to be written (bars,
//! book, status: plain structs) into a [`Batch`] of named writers and
//! hands it over when this thread is idle; this thread serialises each one
//! straight into its temp file, in the order given (checkpoint first, then
//! data files, then status), so the on-disk order guarantee of the
//! checkpoint holds. While it is busy the loop skips its flush and tries
//! again later, so the cadence stays "at most every `--flush-ms`", the
//! replay is never blocked by the disk, and at most one batch is alive.

use crate::ipc::{write_atomic_with, IpcError};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Writes one file's content.
pub type Content = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// Files to replace, in order.
pub type Batch = Vec<(&'static str, Content)>;

/// The content of a file: `value` as JSON.
pub fn json<T: serde::Serialize + Send + 'static>(value: T) -> Content {
    Box::new(move |w| serde_json::to_writer(w, &value).map_err(std::io::Error::other))
}

/// The content of a file: `value`, shared with other files of the flush,
/// as JSON.
pub fn json_shared<T: serde::Serialize + Send + Sync + 'static>(value: Arc<T>) -> Content {
    Box::new(move |w| serde_json::to_writer(w, &*value).map_err(std::io::Error::other))
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

/// Hands batches to the writer thread.
pub struct Flusher {
    tx: Option<SyncSender<Batch>>,
    busy: Arc<AtomicBool>,
    error: Arc<Mutex<Option<IpcError>>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub fn start(dir: PathBuf) -> Flusher {
        let (tx, rx) = sync_channel::<Batch>(1);
        let error = Arc::new(Mutex::new(None));
        let busy = Arc::new(AtomicBool::new(false));
        let thread = {
            let (error, busy) = (error.clone(), busy.clone());
            std::thread::Builder::new()
                .name("write".into())
                .spawn(move || write_loop(dir, rx, busy, error))
                .ok()
        };
        Flusher {
            tx: Some(tx),
            busy,
            error,
            thread,
        }
    }

    /// Whether the writer would take a batch now (build one only then).
    /// `Err` if an earlier write failed.
    pub fn ready(&mut self) -> Result<bool, IpcError> {
        self.check()?;
        Ok(self.tx.is_some() && !self.busy.load(Ordering::Acquire))
    }

    /// Hands `batch` over. `Ok(false)` when it was not taken (the writer
    /// is busy: try again later).
    pub fn offer(&mut self, batch: Batch) -> Result<bool, IpcError> {
        self.check()?;
        let Some(tx) = &self.tx else { return Ok(false) };
        if self.busy.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        match tx.try_send(batch) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.busy.store(false, Ordering::Release);
                Ok(false)
            }
        }
    }

    /// Writes `batch` after everything queued, and waits until all of it
    /// is on disk.
    pub fn finish(&mut self, batch: Batch) -> Result<(), IpcError> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(batch);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.check()
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

fn write_loop(
    dir: PathBuf,
    rx: Receiver<Batch>,
    busy: Arc<AtomicBool>,
    error: Arc<Mutex<Option<IpcError>>>,
) {
    for batch in rx {
        for (name, content) in batch {
            if let Err(e) = write_atomic_with(&dir, name, content) {
                if let Ok(mut slot) = error.lock() {
                    slot.get_or_insert(e);
                }
                // Later files of a failed batch would get ahead of the
                // checkpoint; drop them.
                break;
            }
        }
        busy.store(false, Ordering::Release);
    }
}
