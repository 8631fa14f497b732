//! Throwing a directory away without waiting for it: the directory is
//! renamed aside at once (one atomic rename; readers see it gone) and
//! deleted on a thread of its own.
//!
//! A fresh run replaces the series store of the run before it, which can be
//! hundreds of files and tens of megabytes; deleting them in place held the
//! replay for 60–150 ms on a day of two instruments, every `--fresh` start.
//! Renamed aside as `.NAME.discarded.PID.N` in the same parent, the old
//! files stop being the store at once and the deletion overlaps the replay.
//! A process killed while deleting leaves such a directory behind; the
//! next [`discard`] or [`sweep`] of the same name deletes those too.
//!
//! Only the one writer of `OUT` (it holds the lock of [`super::lock`])
//! calls this, so nothing else can be using a directory of that pattern.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

/// A deletion in progress; [`Discarding::wait`] for it to end.
#[derive(Debug)]
pub struct Discarding {
    thread: JoinHandle<Vec<(PathBuf, std::io::Error)>>,
}

impl Discarding {
    /// Waits for the deletion; returns what could not be deleted, and why.
    pub fn wait(self) -> Vec<(PathBuf, std::io::Error)> {
        self.thread.join().unwrap_or_else(|_| Vec::new())
    }
}

/// The prefix of the names `dir`'s discarded copies take.
fn prefix(name: &str) -> String {
    format!(".{name}.discarded.")
}

/// Renames `parent/name` aside and deletes it, and any copies discarded
/// before, on a new thread. `Ok(None)` when there was nothing to delete.
/// An error only when the rename itself failed: `parent/name` is then as
/// it was.
pub fn discard(parent: &Path, name: &str) -> std::io::Result<Option<Discarding>> {
    static N: AtomicU64 = AtomicU64::new(0);
    let aside = parent.join(format!(
        "{}{}.{}",
        prefix(name),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::rename(parent.join(name), &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(sweep(parent, name))
}

/// Deletes the copies of `parent/name` discarded before (by a process
/// that did not live to delete them) on a new thread; `None` when there
/// are none.
pub fn sweep(parent: &Path, name: &str) -> Option<Discarding> {
    let prefix = prefix(name);
    let found: Vec<PathBuf> = std::fs::read_dir(parent)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    if found.is_empty() {
        return None;
    }
    let thread = std::thread::Builder::new()
        .name("discard".into())
        .spawn(move || {
            found
                .into_iter()
                .filter_map(|p| match std::fs::remove_dir_all(&p) {
                    Ok(()) => None,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => Some((p, e)),
                })
                .collect()
        })
        .ok()?;
    Some(Discarding { thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_discarded_directory_is_gone_at_once_and_deleted_with_older_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("series");
        std::fs::create_dir_all(store.join("A/1s")).unwrap();
        std::fs::write(store.join("A/1s/0.json"), b"{}").unwrap();
        // Left by a process killed while it deleted.
        let leftover = dir.path().join(".series.discarded.1.0");
        std::fs::create_dir_all(leftover.join("B")).unwrap();
        std::fs::write(dir.path().join("status.json"), b"{}").unwrap();

        let pending = discard(dir.path(), "series").unwrap().unwrap();
        assert!(
            !store.exists(),
            "the store is gone as soon as discard returns"
        );
        std::fs::create_dir(&store).unwrap();
        assert!(pending.wait().is_empty());
        assert_eq!(names(dir.path()), ["series", "status.json"]);
        assert_eq!(
            names(&store),
            Vec::<String>::new(),
            "the new store is untouched"
        );
    }

    #[test]
    fn nothing_to_discard_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(discard(dir.path(), "series").unwrap().is_none());
        assert!(sweep(dir.path(), "series").is_none());
    }
}
