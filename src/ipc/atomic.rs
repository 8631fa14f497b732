//! Atomic replace: a reader sees the old file or the new one, never a mix.
//!
//! The bytes go to a temp file in the same directory (same file system, so
//! the rename is atomic), which is flushed and fsynced before it is renamed
//! over the target; then the directory is fsynced so the rename itself
//! survives a power cut. Temp files are named `.<target>.<pid>.<n>.tmp`, so
//! a sweep at start can remove those left by a writer that died, and only
//! those (a live writer's pid is still running).

use super::IpcError;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Atomically replaces `dir/name` with `bytes`.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), IpcError> {
    write_atomic_with(dir, name, |w| w.write_all(bytes))
}

/// Atomically replaces `dir/name` with what `write` writes (through a
/// buffer), so large values can be serialised straight to the file.
pub fn write_atomic_with(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), IpcError> {
    prepare(dir, name, write)?.commit()
}

/// The first half of an atomic replace: writes a temp file beside
/// `dir/name` with what `write` writes, and flushes it to the kernel. The
/// slow half (fsync, rename, fsync of the directory) is
/// [`Pending::commit`], which another thread may run.
pub fn prepare(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<Pending, IpcError> {
    let target = dir.join(name);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::io::BufWriter::with_capacity(64 * 1024, File::create(&tmp)?);
        write(&mut file)?;
        file.into_inner().map_err(|e| e.into_error())
    })();
    match written {
        Ok(file) => Ok(Pending {
            tmp,
            target,
            file: Some(file),
        }),
        Err(source) => {
            let _ = fs::remove_file(&tmp);
            Err(IpcError::Write {
                path: target,
                source,
            })
        }
    }
}

/// A temp file written by [`prepare`], not yet in place. Dropped without
/// [`Pending::commit`], it is removed and the target is left as it was.
#[derive(Debug)]
pub struct Pending {
    tmp: PathBuf,
    target: PathBuf,
    /// `None` once committed.
    file: Option<File>,
}

impl Pending {
    /// Fsyncs the temp file, renames it over the target and fsyncs the
    /// directory.
    pub fn commit(self) -> Result<(), IpcError> {
        commit_all(vec![self])
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Threads that fsync at once in [`commit_all`]: what the file system can
/// fold into one journal commit.
const SYNC_THREADS: usize = 8;

/// Runs `sync` on every item, on up to [`SYNC_THREADS`] threads at once
/// (one item: on this thread); the first error, with its item's index.
fn sync_each<T: Sync>(
    items: &[T],
    sync: impl Fn(&T) -> std::io::Result<()> + Sync,
) -> Result<(), (usize, std::io::Error)> {
    if items.len() <= 1 {
        return items
            .iter()
            .enumerate()
            .try_for_each(|(i, t)| sync(t).map_err(|e| (i, e)));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { return };
            if let Err(e) = sync(item) {
                if let Ok(mut slot) = first_error.lock() {
                    slot.get_or_insert((i, e));
                }
                return;
            }
        };
        let helpers = items.len().min(SYNC_THREADS) - 1;
        for _ in 0..helpers {
            // A helper that cannot start leaves its share to the others.
            let _ = std::thread::Builder::new().spawn_scoped(scope, work);
        }
        work();
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Commits several prepared files as one step, with the guarantee of
/// committing them one by one in order: readers see the renames in the
/// order given, and once it returns every file and every rename is on
/// disk. It is faster because the fsyncs of the files, then those of their
/// directories (each once), are issued together, so the file system folds
/// them into a journal commit or two instead of two per file. On error
/// nothing after the failed step is renamed, and the temp files not yet
/// renamed are removed.
pub fn commit_all(mut files: Vec<Pending>) -> Result<(), IpcError> {
    let write_error = |path: &Path, source| IpcError::Write {
        path: path.to_path_buf(),
        source,
    };
    sync_each(&files, |p| p.file.as_ref().map_or(Ok(()), File::sync_all))
        .map_err(|(i, e)| write_error(&files[i].target, e))?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for pending in &mut files {
        if let Some(file) = pending.file.take() {
            drop(file);
            if let Err(e) = fs::rename(&pending.tmp, &pending.target) {
                // Dropping the rest removes their temp files.
                let _ = fs::remove_file(&pending.tmp);
                return Err(write_error(&pending.target, e));
            }
        }
        let dir = pending.target.parent().unwrap_or(Path::new("."));
        if !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_path_buf());
        }
    }
    sync_each(&dirs, |d| sync_dir(d)).map_err(|(i, e)| write_error(&dirs[i], e))
}

/// Removes temp files in `dir` left by writers that are no longer running.
/// Returns the paths removed.
pub fn sweep_stale_temp_files(dir: &Path) -> Result<Vec<PathBuf>, IpcError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(IpcError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = temp_file_pid(name) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let path = entry.path();
            if fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    Ok(removed)
}

/// [`sweep_stale_temp_files`] in `dir` and every directory below it (the
/// series store's tree). A missing `dir` has nothing to sweep.
pub fn sweep_stale_temp_files_below(dir: &Path) -> Result<Vec<PathBuf>, IpcError> {
    let mut removed = sweep_stale_temp_files(dir)?;
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(removed);
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            removed.extend(sweep_stale_temp_files_below(&entry.path())?);
        }
    }
    Ok(removed)
}

/// A few pages of disk held in `dir/.status.reserve` while a writer runs,
/// given back ([`Reserve::release`]) just before its last, most important
/// small write when the disk is full (the processor's failed
/// `status.json`). Best effort: when it cannot be made, nothing is held.
#[derive(Debug)]
pub struct Reserve {
    path: Option<PathBuf>,
}

/// Bytes held by a [`Reserve`].
pub const RESERVE_BYTES: usize = 64 * 1024;

impl Reserve {
    pub fn hold(dir: &Path) -> Reserve {
        let path = dir.join(".status.reserve");
        let made = File::create(&path).and_then(|mut f| {
            f.write_all(&[0u8; RESERVE_BYTES])?;
            f.sync_all()
        });
        match made {
            Ok(()) => Reserve { path: Some(path) },
            Err(_) => {
                let _ = fs::remove_file(&path);
                Reserve { path: None }
            }
        }
    }

    /// Gives the space back (removes the file).
    pub fn release(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        self.release();
    }
}

/// The writer pid in a temp file name `.<target>.<pid>.<n>.tmp`.
fn temp_file_pid(name: &str) -> Option<u32> {
    let stem = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = stem.rsplitn(3, '.');
    let _n: u64 = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(pid)
}

fn process_alive(pid: u32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A writer that fails like a full disk after `left` bytes: the fault
    /// seam for the atomic replace.
    struct FullAfter {
        left: usize,
    }

    impl Write for FullAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_that_fails_midway_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "f.json", b"[1,2,3]").unwrap();
        let big = vec![b'x'; 200_000];
        let err = write_atomic_with(dir.path(), "f.json", |w| {
            // What goes to the file goes through a writer that fills up.
            let mut seam = FullAfter { left: 70_000 };
            std::io::copy(&mut &big[..], &mut seam)?;
            w.write_all(&big)
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("f.json") && text.contains("No space left on device"),
            "{text}"
        );
        assert_eq!(
            std::fs::read(dir.path().join("f.json")).unwrap(),
            b"[1,2,3]"
        );
        assert_eq!(names(dir.path()), ["f.json"]);
        let mut reserve = Reserve::hold(dir.path());
        assert_eq!(
            std::fs::metadata(dir.path().join(".status.reserve"))
                .unwrap()
                .len(),
            RESERVE_BYTES as u64
        );
        reserve.release();
        assert_eq!(names(dir.path()), ["f.json"]);
    }

    #[test]
    fn a_prepared_file_is_invisible_until_committed_and_gone_if_dropped() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.json", b"[1]").unwrap();
        let pending = prepare(dir.path(), "a.json", |w| w.write_all(b"[1,2]")).unwrap();
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"[1]");
        pending.commit().unwrap();
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"[1,2]");
        assert_eq!(names(dir.path()), ["a.json"]);

        let dropped = prepare(dir.path(), "a.json", |w| w.write_all(b"[3]")).unwrap();
        assert_eq!(
            names(dir.path()).len(),
            2,
            "the temp file exists while pending"
        );
        drop(dropped);
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"[1,2]");
        assert_eq!(names(dir.path()), ["a.json"]);

        let failed = prepare(dir.path(), "a.json", |_| Err(std::io::Error::other("no")));
        assert!(matches!(failed, Err(IpcError::Write { .. })));
        assert_eq!(names(dir.path()), ["a.json"]);
    }

    #[test]
    fn files_committed_together_all_land_and_a_failed_rename_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        write_atomic(dir.path(), "a.json", b"old").unwrap();
        let prepared = |d: &Path, name: &str, text: &'static str| {
            prepare(d, name, move |w| w.write_all(text.as_bytes())).unwrap()
        };
        commit_all(vec![
            prepared(dir.path(), "a.json", "new a"),
            prepared(&sub, "b.json", "b"),
            prepared(dir.path(), "c.json", "c"),
        ])
        .unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("a.json")).unwrap(),
            "new a"
        );
        assert_eq!(fs::read_to_string(sub.join("b.json")).unwrap(), "b");
        assert_eq!(names(dir.path()), ["a.json", "c.json", "sub"]);
        assert_eq!(names(&sub), ["b.json"]);

        // The second file's rename fails (a directory is in the way): the
        // first is in place, the third is not, and no temp file is left.
        fs::create_dir(dir.path().join("d.json")).unwrap();
        fs::write(dir.path().join("d.json/x"), "").unwrap();
        let err = commit_all(vec![
            prepared(dir.path(), "a.json", "newer a"),
            prepared(dir.path(), "d.json", "d"),
            prepared(&sub, "b.json", "newer b"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("d.json"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("a.json")).unwrap(),
            "newer a"
        );
        assert_eq!(fs::read_to_string(sub.join("b.json")).unwrap(), "b");
        assert_eq!(names(dir.path()), ["a.json", "c.json", "d.json", "sub"]);
        assert_eq!(names(&sub), ["b.json"]);
    }

    #[test]
    fn writes_replace_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.json", b"[1]").unwrap();
        write_atomic(dir.path(), "a.json", b"[1,2]").unwrap();
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"[1,2]");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn sweep_removes_only_dead_writers_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0x7ffffff0 is far above pid_max: never alive.
        let dead = dir.path().join(".ohlc_data.json.2147483632.5.tmp");
        let mine = dir
            .path()
            .join(format!(".ohlc_data.json.{}.1.tmp", std::process::id()));
        let other = dir.path().join("notes.tmp");
        for p in [&dead, &mine, &other] {
            fs::write(p, b"x").unwrap();
        }
        let removed = sweep_stale_temp_files(dir.path()).unwrap();
        assert_eq!(removed, std::slice::from_ref(&dead));
        assert!(mine.exists() && other.exists() && !dead.exists());
    }

    #[test]
    fn parses_temp_names() {
        assert_eq!(temp_file_pid(".status.json.42.7.tmp"), Some(42));
        assert_eq!(temp_file_pid("status.json"), None);
        assert_eq!(temp_file_pid(".x.tmp"), None);
    }

    #[test]
    fn write_into_missing_dir_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = write_atomic(&missing, "a.json", b"1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.json"), "{err}");
    }
}
