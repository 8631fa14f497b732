//! The last good copy of each data file, and the change events.
//!
//! Owns what the viewer serves: for every file in [`ipc::files::SERVED`] the
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

use crate::ipc::files;
use crate::ipc::{self, Depth, MetricRow, OhlcRow, Status, SupervisorStatus};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// The served files, by the index the cache and the routes use: the table
/// in [`ipc::files::SERVED`], not a copy of it.
pub use crate::ipc::files::SERVED as FILES;

fn parses<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<T>(bytes).map(|_| ())
}

/// Whether `bytes` are a good copy of the served file `name`: they parse
/// as its format (a file without a format of its own: as any JSON).
fn validate(name: &str, bytes: &[u8]) -> Result<(), serde_json::Error> {
    match name {
        files::OHLC => parses::<Vec<OhlcRow>>(bytes),
        files::METRICS => parses::<Vec<MetricRow>>(bytes),
        files::DEPTH => parses::<Depth>(bytes),
        files::STATUS => parses::<Status>(bytes),
        files::SUPERVISOR => parses::<SupervisorStatus>(bytes),
        _ => parses::<serde_json::Value>(bytes),
    }
}

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
                    body: Arc::from(f.empty.as_bytes()),
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
            .and_then(|bytes| match validate(spec.name, &bytes) {
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
            validate(f.name, f.empty.as_bytes()).unwrap_or_else(|e| {
                // status/supervisor defaults are `null`: not a valid value,
                // they are only served until the file exists.
                assert_eq!(f.empty, "null", "{}: {e}", f.name);
            });
        }
    }

    /// The page cannot import the table and keeps its own copy: app.js's
    /// `FILES` map (name → `/api/<route>`) and its empty `data` (route →
    /// value) must say what [`ipc::files::SERVED`] says.
    #[test]
    fn the_pages_copy_of_the_file_table_matches() {
        let js = include_str!("../../web/static/app.js");
        let squeeze = |s: &str| -> String {
            s.chars()
                .filter(|c| !c.is_whitespace() && !matches!(c, '\'' | '"'))
                .collect()
        };
        let block = |start: &str| -> String {
            let from = js.find(start).map(|i| i + start.len());
            let rest = &js[from.unwrap_or_else(|| panic!("no `{start}` in app.js"))..];
            squeeze(&rest[..rest.find("};").unwrap_or(0)])
        };
        let names: String = FILES
            .iter()
            .map(|f| format!("{}:/api/{},", f.name, f.route))
            .collect();
        assert_eq!(block("const FILES = {"), names);
        let empty: Vec<String> = FILES
            .iter()
            .map(|f| format!("{}:{}", f.route, squeeze(f.empty)))
            .collect();
        assert_eq!(block("const data = {"), empty.join(","));
    }
}
