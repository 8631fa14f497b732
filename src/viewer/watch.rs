//! Watching `OUT` for changes and turning them into reloads.
//!
//! Writers replace files by renaming a temp file over them, so a watch on
//! the file itself would follow the old inode and go quiet after the
//! first replace. This module watches the directory instead (inotify via
//! `notify`) and maps each event's paths to the served file names; temp
//! files and other names are ignored. Events go through an unbounded
//! channel to one task that reloads each named file once per batch, so a
//! burst of renames costs one read per file. A slow poll (metadata only)
//! backs the watch up, for events the kernel dropped, and re-arms the
//! watch when the directory itself was replaced (removed and made again).
//! It only reads; [`State`] decides what changed.

use super::state::{index_of_name, State, FILES};
use super::ViewerError;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often the backup poll looks at the files' metadata.
pub const POLL: Duration = Duration::from_millis(1000);

fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// Sent instead of a file index when the watched directory itself went
/// away: the watch is dead and must be made again once it is back.
const REARM: usize = usize::MAX;

fn watch_dir(
    dir: &Path,
    tx: mpsc::UnboundedSender<usize>,
) -> Result<RecommendedWatcher, ViewerError> {
    let watched = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // On an error, the poll catches up.
        if let Ok(event) = res {
            if matches!(event.kind, notify::EventKind::Remove(_))
                && event.paths.iter().any(|p| p == &watched)
            {
                let _ = tx.send(REARM);
            }
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
        dir: dir.to_path_buf(),
        source,
    })?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|source| ViewerError::Watch {
            dir: dir.to_path_buf(),
            source,
        })?;
    Ok(watcher)
}

/// Starts watching `state.dir()` and reloading changed files until
/// `shutdown` turns true. The watcher lives in the spawned task.
pub fn spawn(
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ViewerError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
    let dir = state.dir().to_path_buf();
    // A directory that is not there (yet, or any more: it may be replaced
    // between start-up and here) is watched once the poll sees it.
    let mut watcher = match watch_dir(&dir, tx.clone()) {
        Ok(w) => Some(w),
        Err(_) if !dir.is_dir() => None,
        Err(e) => return Err(e),
    };
    let mut identity = dir_identity(&dir);
    let mut rearm = watcher.is_none();
    Ok(tokio::spawn(async move {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(first) = rx.recv() => {
                    let mut due = [false; FILES.len()];
                    let mut mark = |i: usize| match i {
                        REARM => rearm = true,
                        i => due[i] = true,
                    };
                    mark(first);
                    while let Ok(i) = rx.try_recv() {
                        mark(i);
                    }
                    for (i, _) in due.iter().enumerate().filter(|(_, d)| **d) {
                        state.reload(i, true);
                    }
                }
                _ = poll.tick() => {
                    // The directory was removed (its watch died) or
                    // replaced: watch the one that is there now. Inode
                    // numbers are reused, so the removal event counts,
                    // not only a changed identity.
                    let now = dir_identity(&dir);
                    if now.is_some() && (rearm || now != identity) {
                        if let Ok(w) = watch_dir(&dir, tx.clone()) {
                            watcher = Some(w);
                            identity = now;
                            rearm = false;
                            state.reload_all(true);
                        }
                    }
                    state.reload_all(false);
                }
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        drop(watcher);
    }))
}
