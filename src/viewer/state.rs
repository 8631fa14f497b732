//! The last good copy of each data file, and the change events.
//!
//! Owns what the viewer serves: for every file in [`ipc::files::DATA`] the
//! bytes of its last copy that parsed as its format, a version, and
//! whether the file on disk is currently missing or unreadable (stale).
//! A reload that finds a good new copy bumps the version and broadcasts a
//! [`Change`]; a reload that fails keeps the last good bytes and only
//! marks them stale, so a page never sees an error for a race or a
//! crashed writer. Versions come from one counter per viewer process,
//! tagged with an `instance` id so a page can tell a restarted viewer.
//!
//! It reads the files and never writes them: the viewer holds no state
//! that matters. A `std::sync::RwLock` guards the entries because every
//! critical section is a short copy with no `.await` inside.

use crate::ipc::{self, files, Depth, MetricRow, OhlcRow, Status, SupervisorStatus};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// One file the viewer serves: its name in `OUT`, its API route, how to
/// validate it and what to serve before it ever existed.
#[derive(Debug)]
pub struct FileSpec {
    pub name: &'static str,
    /// The last segment of `/api/<route>`.
    pub route: &'static str,
    validate: fn(&[u8]) -> Result<(), serde_json::Error>,
    pub empty: &'static [u8],
}

fn parses<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<T>(bytes).map(|_| ())
}

/// The served files, in the order of [`ipc::files::DATA`].
pub const FILES: [FileSpec; 5] = [
    FileSpec {
        name: files::OHLC,
        route: "ohlc",
        validate: parses::<Vec<OhlcRow>>,
        empty: b"[]",
    },
    FileSpec {
        name: files::METRICS,
        route: "metrics",
        validate: parses::<Vec<MetricRow>>,
        empty: b"[]",
    },
    FileSpec {
        name: files::DEPTH,
        route: "depth",
        validate: parses::<Depth>,
        empty: br#"{"bids":[],"asks":[]}"#,
    },
    FileSpec {
        name: files::STATUS,
        route: "status",
        validate: parses::<Status>,
        empty: b"null",
    },
    FileSpec {
        name: files::SUPERVISOR,
        route: "supervisor",
        validate: parses::<SupervisorStatus>,
        empty: b"null",
    },
];

/// Index in [`FILES`] of a file name.
pub fn index_of_name(name: &str) -> Option<usize> {
    FILES.iter().position(|f| f.name == name)
}

/// Index in [`FILES`] of an API route segment.
pub fn index_of_route(route: &str) -> Option<usize> {
    FILES.iter().position(|f| f.route == route)
}

/// A file changed: a new good copy (`stale: false`) or it became
/// missing/unreadable (`stale: true`, same version).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub file: &'static str,
    pub version: u64,
    pub stale: bool,
}

/// What is served for one file.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub body: Arc<[u8]>,
    /// 0: never read successfully (the body is the empty default).
    pub version: u64,
    pub stale: bool,
    /// Why the file is stale.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Entry {
    snap: Snapshot,
    /// `(inode, length, mtime ns)` at the last read, to skip unchanged
    /// files when polling.
    meta: Option<(u64, u64, i64)>,
}

/// The cache of every served file plus the change broadcast.
#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    entries: RwLock<Vec<Entry>>,
    counter: AtomicU64,
    instance: String,
    tx: broadcast::Sender<Change>,
}

impl State {
    /// An empty cache for `dir`; call [`State::reload_all`] to fill it.
    pub fn new(dir: &Path) -> State {
        let entries = FILES
            .iter()
            .map(|f| Entry {
                snap: Snapshot {
                    body: Arc::from(f.empty),
                    version: 0,
                    stale: true,
                    error: Some("not written yet".into()),
                },
                meta: None,
            })
            .collect();
        let (tx, _) = broadcast::channel(256);
        State {
            dir: dir.to_path_buf(),
            entries: RwLock::new(entries),
            counter: AtomicU64::new(0),
            instance: format!("{}-{}", std::process::id(), ipc::now_ms()),
            tx,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Identifies this viewer process in events and `/healthz`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// The current snapshot of file `i` of [`FILES`].
    pub fn snapshot(&self, i: usize) -> Option<Snapshot> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(i).map(|e| e.snap.clone())
    }

    /// `(file, version, stale)` of every file.
    pub fn versions(&self) -> Vec<Change> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        FILES
            .iter()
            .zip(entries.iter())
            .map(|(f, e)| Change {
                file: f.name,
                version: e.snap.version,
                stale: e.snap.stale,
            })
            .collect()
    }

    /// Rereads every file (`force`: even when its metadata is unchanged).
    pub fn reload_all(&self, force: bool) -> Vec<Change> {
        (0..FILES.len())
            .filter_map(|i| self.reload(i, force))
            .collect()
    }

    /// Rereads file `i`; returns and broadcasts the change, if any.
    pub fn reload(&self, i: usize, force: bool) -> Option<Change> {
        let spec = FILES.get(i)?;
        let path = self.dir.join(spec.name);
        let meta = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.ino(), m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec()));
        if !force {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if entries[i].meta == meta && meta.is_some() {
                return None;
            }
        }
        let read = std::fs::read(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|bytes| match (spec.validate)(&bytes) {
                Ok(()) => Ok(bytes),
                Err(e) => Err(format!("{} is not valid: {e}", path.display())),
            });
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let entry = &mut entries[i];
        entry.meta = meta;
        let change = match read {
            Ok(bytes) => {
                if !entry.snap.stale && *entry.snap.body == *bytes {
                    return None;
                }
                let version = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
                entry.snap = Snapshot {
                    body: Arc::from(bytes),
                    version,
                    stale: false,
                    error: None,
                };
                Change {
                    file: spec.name,
                    version,
                    stale: false,
                }
            }
            Err(error) => {
                let was_stale = entry.snap.stale;
                entry.snap.stale = true;
                entry.snap.error = Some(error);
                if was_stale {
                    return None;
                }
                Change {
                    file: spec.name,
                    version: entry.snap.version,
                    stale: true,
                }
            }
        };
        drop(entries);
        // No subscriber is fine: nobody is listening yet.
        let _ = self.tx.send(change.clone());
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_good_copy_and_marks_it_stale() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path());
        let mut rx = state.subscribe();
        assert_eq!(
            state.reload(0, true),
            None,
            "missing at start: already stale, no event"
        );
        assert_eq!(&*state.snapshot(0).unwrap().body, b"[]");
        ipc::write_atomic(dir.path(), files::OHLC, b"[[60000,1,2,0.5,1.5,3]]").unwrap();
        let c = state.reload(0, true).unwrap();
        assert_eq!(
            c,
            Change {
                file: files::OHLC,
                version: 1,
                stale: false
            }
        );
        assert_eq!(rx.try_recv().unwrap(), c);
        assert_eq!(state.reload(0, true), None, "same bytes: no new version");
        ipc::write_atomic(dir.path(), files::OHLC, b"[[60000,1,2").unwrap();
        let c = state.reload(0, true).unwrap();
        assert!(c.stale && c.version == 1);
        let snap = state.snapshot(0).unwrap();
        assert_eq!(&*snap.body, b"[[60000,1,2,0.5,1.5,3]]");
        assert!(snap.stale && snap.error.unwrap().contains("not valid"));
        std::fs::remove_file(dir.path().join(files::OHLC)).unwrap();
        assert_eq!(state.reload(0, true), None, "still stale");
        ipc::write_atomic(dir.path(), files::OHLC, b"[[60000,1,2,0.5,1.5,3]]").unwrap();
        assert_eq!(
            state.reload(0, true).unwrap().version,
            2,
            "good again: a new version"
        );
    }

    #[test]
    fn routes_and_names_map_to_the_same_files() {
        for (i, f) in FILES.iter().enumerate() {
            assert_eq!(index_of_name(f.name), Some(i));
            assert_eq!(index_of_route(f.route), Some(i));
            assert_eq!(ipc::files::DATA[i], f.name);
            (f.validate)(f.empty).unwrap_or_else(|e| {
                // status/supervisor defaults are `null`: not a valid value,
                // they are only served until the file exists.
                assert_eq!(f.empty, b"null", "{}: {e}", f.name);
            });
        }
    }
}
