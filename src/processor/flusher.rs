//! The processor's writer thread: atomic writes off the hot path.
//!
//! Each atomic replace fsyncs a file and its directory, which takes
//! milliseconds on real disks. The replay loop only serialises its state
//! into a [`Batch`] of named byte buffers and hands it over; this thread
//! writes the buffers in the order given (checkpoint first, then data
//! files, then status), so the on-disk order guarantee of the checkpoint
//! holds. While a batch is being written and another waits, the loop skips
//! its flush and tries again later, so the cadence stays "at most every
//! `--flush-ms`" and the replay is never blocked by the disk.

use crate::ipc::{write_atomic, IpcError};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Files to replace, in order.
pub type Batch = Vec<(&'static str, Vec<u8>)>;

/// Hands batches to the writer thread.
pub struct Flusher {
    tx: Option<SyncSender<Batch>>,
    error: Arc<Mutex<Option<IpcError>>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub fn start(dir: PathBuf) -> Flusher {
        let (tx, rx) = sync_channel::<Batch>(1);
        let error = Arc::new(Mutex::new(None));
        let thread = {
            let error = error.clone();
            std::thread::Builder::new()
                .name("write".into())
                .spawn(move || write_loop(dir, rx, error))
                .ok()
        };
        Flusher {
            tx: Some(tx),
            error,
            thread,
        }
    }

    /// Queues `batch` unless the writer is still busy. `Ok(false)` when it
    /// was not taken (try again later); `Err` if an earlier write failed.
    pub fn offer(&mut self, batch: Batch) -> Result<bool, IpcError> {
        self.check()?;
        let Some(tx) = &self.tx else { return Ok(false) };
        match tx.try_send(batch) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Disconnected(_)) => Ok(false),
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

fn write_loop(dir: PathBuf, rx: Receiver<Batch>, error: Arc<Mutex<Option<IpcError>>>) {
    for batch in rx {
        for (name, bytes) in batch {
            if let Err(e) = write_atomic(&dir, name, &bytes) {
                if let Ok(mut slot) = error.lock() {
                    slot.get_or_insert(e);
                }
                // Later files of a failed batch would get ahead of the
                // checkpoint; drop them.
                break;
            }
        }
    }
}
