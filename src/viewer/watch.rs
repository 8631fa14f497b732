//! Watching `OUT` for changes and turning them into reloads.
//!
//! Writers replace files by renaming a temp file over them, so a watch on
//! the file itself would follow the old inode and go quiet after the
//! first replace. This module watches the directory instead (inotify via
//! `notify`) and maps each event's paths to the served file names; temp
//! files and other names are ignored. Events go through an unbounded
//! channel to one task that reloads each named file once per batch, so a
//! burst of renames costs one read per file. A slow poll (metadata only)
//! backs the watch up, for events the kernel dropped or a directory that
//! was replaced. It only reads; [`State`] decides what changed.

use super::state::{index_of_name, State, FILES};
use super::ViewerError;
use notify::{RecursiveMode, Watcher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often the backup poll looks at the files' metadata.
pub const POLL: Duration = Duration::from_millis(1000);

/// Starts watching `state.dir()` and reloading changed files until
/// `shutdown` turns true. The watcher lives in the spawned task.
pub fn spawn(
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ViewerError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // On an error, the poll catches up.
        if let Ok(event) = res {
            for path in &event.paths {
                if let Some(i) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(index_of_name)
                {
                    let _ = tx.send(i);
                }
            }
        }
    })
    .map_err(|source| ViewerError::Watch {
        dir: state.dir().to_path_buf(),
        source,
    })?;
    watcher
        .watch(state.dir(), RecursiveMode::NonRecursive)
        .map_err(|source| ViewerError::Watch {
            dir: state.dir().to_path_buf(),
            source,
        })?;
    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(first) = rx.recv() => {
                    let mut due = [false; FILES.len()];
                    due[first] = true;
                    while let Ok(i) = rx.try_recv() {
                        due[i] = true;
                    }
                    for (i, _) in due.iter().enumerate().filter(|(_, d)| **d) {
                        state.reload(i, true);
                    }
                }
                _ = poll.tick() => {
                    state.reload_all(false);
                }
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }))
}
