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
    let target = dir.join(name);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = write_then_rename(&tmp, &target, write);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|source| IpcError::Write {
        path: target,
        source,
    })?;
    sync_dir(dir).map_err(|source| IpcError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_then_rename(
    tmp: &Path,
    target: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::with_capacity(64 * 1024, File::create(tmp)?);
    write(&mut file)?;
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, target)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
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
