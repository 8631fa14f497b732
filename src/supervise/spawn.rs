//! Starting a child process and signalling its process group.
//!
//! This module owns the `fork`/`exec` details and nothing else: it does not
//! decide when to start or stop (that is [`super::child`]) and does not
//! read the child's output (that is [`super::logs`]).
//!
//! Every child is started:
//! - in its own process group (`process_group(0)`, i.e. `setpgid(0, 0)`),
//!   so a signal to the group reaches the child and anything it started,
//!   and a Ctrl-C on the terminal (sent to the foreground group) reaches
//!   only the supervisor, which then stops the children in order;
//! - with a parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGKILL)`, set
//!   in `pre_exec`, kept across `exec`), so the kernel kills it when the
//!   supervisor dies, even by SIGKILL. SIGKILL rather than SIGTERM because
//!   a stopped or hung child must not survive either; the processor is
//!   crash-safe by design, so losing its last moments costs nothing.
//!   The parent-death signal fires when the *thread* that forked exits, so
//!   the supervisor must spawn from a thread that lives as long as it does
//!   (the binary runs a current-thread runtime on the main thread);
//! - with stdin closed and stdout/stderr piped to the supervisor.
//!
//! There is a window between `fork` and `prctl` in which the supervisor
//! can die unnoticed; `pre_exec` closes it by checking that the parent is
//! still the supervisor after setting the signal, and failing the exec if
//! not (the check the `prctl(2)` man page recommends).

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpid, getppid, Pid};
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Starts `program args…` as a supervised child (see the module docs).
pub fn spawn(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let supervisor = getpid();
    // SAFETY: the closure runs in the forked child before exec; it only
    // makes two system calls (prctl, getppid) and allocates nothing, which
    // is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if getppid() != supervisor {
                return Err(Errno::ESRCH.into());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Sends `signal` to the process group led by `pid`. A group that is
/// already gone is not an error.
pub fn signal_group(pid: u32, signal: Signal) -> Result<(), Errno> {
    let raw = i32::try_from(pid).map_err(|_| Errno::EINVAL)?;
    if raw <= 1 {
        // Never signal "every process" (0 or -1) or init's group.
        return Err(Errno::EINVAL);
    }
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_signal_special_groups() {
        assert_eq!(signal_group(0, Signal::SIGKILL), Err(Errno::EINVAL));
        assert_eq!(signal_group(1, Signal::SIGKILL), Err(Errno::EINVAL));
        assert_eq!(signal_group(u32::MAX, Signal::SIGKILL), Err(Errno::EINVAL));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_child_leads_its_own_group_and_dies_with_its_group() {
        let mut child = spawn(Path::new("sleep"), &["30".into()], &[]).unwrap();
        let pid = child.id().unwrap();
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(pid as i32))).unwrap();
        assert_eq!(pgid.as_raw(), pid as i32);
        assert_ne!(pgid, nix::unistd::getpgrp());
        signal_group(pid, Signal::SIGKILL).unwrap();
        let status = child.wait().await.unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        // Gone already: not an error.
        signal_group(pid, Signal::SIGTERM).unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_missing_program_is_an_error() {
        assert!(spawn(Path::new("/nonexistent/orderflow-child"), &[], &[]).is_err());
    }
}
