//! Storage faults on a real tmpfs (mounted by the test; skipped with a
//! message where that is not allowed): a disk that fills at several
//! points, a read-only file system under a run to resume, an output
//! directory removed while the processor runs. Each time: exit 1, one message naming the
//! file and the cause once, `status.json` saying why when it can still be
//! written, every file left parseable; then the same command, once the
//! cause is gone, ends identical to an uninterrupted run, store included.

use crate::harness::{fast_tempdir, json, KillOnDrop, TestCommand, PROCESSOR};
use crate::store::{args, generate};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs mounted on a temp dir, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Every JSON file under `dir` by relative path, parsed (panics on one
/// that does not parse), with the wall-clock stamps taken out.
fn outputs(dir: &Path) -> BTreeMap<PathBuf, serde_json::Value> {
    fn walk(dir: &Path, base: &Path, into: &mut BTreeMap<PathBuf, serde_json::Value>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, into);
            } else if p.extension().is_some_and(|x| x == "json") {
                let mut v = json(&p);
                if let Some(o) = v.as_object_mut() {
                    for stamp in ["written_ms", "updated_ms"] {
                        o.remove(stamp);
                    }
                }
                into.insert(p.strip_prefix(base).unwrap().to_path_buf(), v);
            }
        }
    }
    let mut all = BTreeMap::new();
    walk(dir, dir, &mut all);
    all
}

/// What a run leaves that must equal the reference: the rolling files and
/// the store (not status, checkpoint or control).
fn results(dir: &Path) -> BTreeMap<PathBuf, serde_json::Value> {
    outputs(dir)
        .into_iter()
        .filter(|(p, _)| {
            !["status.json", "checkpoint.json", "control.json"].contains(&p.to_str().unwrap_or(""))
        })
        .collect()
}

/// Checks a failed run: exit 1, the cause said once in one message naming
/// a file in `out`, and every file left parseable.
fn check_failure(out: &Path, output: &std::process::Output, cause: &str) {
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains(cause))
        .unwrap_or_else(|| panic!("no {cause:?} in {err}"));
    assert_eq!(
        err.matches(cause).count(),
        1,
        "the cause said more than once: {err}"
    );
    assert!(
        line.contains(&out.display().to_string()),
        "the file is not named: {line}"
    );
    if out.exists() {
        outputs(out);
    }
}

#[test]
fn a_disk_that_fills_fails_cleanly_and_the_run_resumes_once_space_is_back() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 20);
    let reference = dir.path().join("reference");
    crate::store::run_ok(&args(&files, &reference, &[]));
    let want = results(&reference);
    // At the first write (only the space kept for status.json fits), in
    // the middle, and late (the checkpoint and its replacement).
    for size in ["80k", "600k", "1300k"] {
        let Some(fs) = Tmpfs::mount(size) else {
            return;
        };
        let out = fs.path().join("out");
        let argv = args(&files, &out, &["--speed", "300", "--flush-ms", "20"]);
        let output = TestCommand::processor()
            .args(&argv)
            .out_dir(&out)
            .output()
            .unwrap();
        check_failure(&out, &output, "No space left on device");
        let status = json(&out.join("status.json"));
        assert_eq!(status["state"], "failed", "{size}");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("No space left on device"),
            "{size}: {status}"
        );
        // Space back: the same command ends as the uninterrupted run.
        fs.remount("size=64m");
        TestCommand::processor()
            .args(&argv)
            .out_dir(&out)
            .assert_success();
        assert_eq!(results(&out), want, "{size}: resumed run differs");
        assert_eq!(json(&out.join("status.json"))["state"], "finished");
    }
}

#[test]
fn a_read_only_or_vanished_output_fails_cleanly_and_recovers() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 20);
    let reference = dir.path().join("reference");
    crate::store::run_ok(&args(&files, &reference, &[]));
    let want = results(&reference);
    let Some(fs) = Tmpfs::mount("64m") else {
        return;
    };
    for vanish in [false, true] {
        let out = fs.path().join(if vanish { "gone" } else { "ro" });
        let argv = args(&files, &out, &["--speed", "40", "--flush-ms", "20"]);
        let mut child = KillOnDrop(
            Command::new(PROCESSOR)
                .args(&argv)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        crate::harness::wait_until("a running replay", Duration::from_secs(20), || {
            let s = std::fs::read(out.join("status.json")).ok()?;
            let s: serde_json::Value = serde_json::from_slice(&s).ok()?;
            s["market_time_ms"].is_i64().then_some(())
        });
        let output = if vanish {
            std::fs::remove_dir_all(&out).unwrap();
            let status = child.wait_exit(Duration::from_secs(20));
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr)
                .unwrap();
            std::process::Output {
                status,
                stdout: Vec::new(),
                stderr: stderr.into_bytes(),
            }
        } else {
            // A file system cannot turn read-only under an open writer:
            // the processor dies first, and is started again on it.
            child.0.kill().unwrap();
            child.0.wait().unwrap();
            let before = outputs(&out);
            fs.remount("ro");
            let output = TestCommand::processor()
                .args(&argv)
                .out_dir(&out)
                .output()
                .unwrap();
            assert_eq!(
                outputs(&out),
                before,
                "the last good files are as they were"
            );
            fs.remount("rw");
            output
        };
        let cause = if vanish {
            "No such file or directory"
        } else {
            "Read-only file system"
        };
        check_failure(&out, &output, cause);
        let started = Instant::now();
        TestCommand::processor()
            .args(args(&files, &out, &[]))
            .out_dir(&out)
            .assert_success();
        assert!(started.elapsed() < Duration::from_secs(60));
        assert_eq!(
            results(&out),
            want,
            "vanish {vanish}: recovered run differs"
        );
    }
}
