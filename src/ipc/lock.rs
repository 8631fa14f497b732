//! One writer per output directory, enforced with `flock`.
//!
//! The lock is an advisory exclusive `flock` on a small file in the
//! directory, taken without waiting: a second writer fails at once and is
//! told which pid holds it. The kernel drops the lock when the holder dies,
//! even by SIGKILL, so a crashed run never leaves the directory locked.
//! Readers take no lock.

use super::IpcError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A held directory lock; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl DirLock {
    /// Takes the exclusive lock `dir/name` for `role` ("processor",
    /// "supervisor"), writing our pid into it.
    pub fn acquire(dir: &Path, name: &str, role: &'static str) -> Result<DirLock, IpcError> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| IpcError::Lock {
                path: path.clone(),
                source,
            })?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!(" (pid {pid})"),
                    Err(_) => String::new(),
                };
                return Err(IpcError::Locked {
                    dir: dir.to_path_buf(),
                    role,
                    holder,
                });
            }
            Err((_, errno)) => {
                return Err(IpcError::Lock {
                    path,
                    source: errno.into(),
                })
            }
        };
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())?;
            f.flush()
        };
        write_pid(&mut lock).map_err(|source| IpcError::Lock {
            path: path.clone(),
            source,
        })?;
        Ok(DirLock { _lock: lock, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_with_the_holder_pid_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), ".l", "processor").unwrap();
        let err = DirLock::acquire(dir.path(), ".l", "processor")
            .unwrap_err()
            .to_string();
        assert!(err.contains("already in use by another processor"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DirLock::acquire(dir.path(), ".l", "processor").unwrap();
    }
}
