//! Fault tests of the supervisor (`orderflow run`) with real processes:
//! children are SIGKILLed, SIGSTOPped, crash-looped; the supervisor is
//! SIGTERMed and SIGKILLed; a second supervisor is started on the same OUT.
//!
//! The children are small Python stand-ins (`supervisor/fake_*.py`) that
//! speak the same contract as the real binaries (arguments, `status.json`
//! heartbeat, `/healthz`), so these tests pin the supervisor's behaviour
//! alone. To run them against the real viewer, make [`viewer_program`]
//! return `env!("CARGO_BIN_EXE_orderflow-viewer")`.
//!
//! Every wait is a poll with a deadline; every process started is killed
//! by a guard on drop; the tests run one at a time (they measure latencies
//! on a small shared machine).

use orderflow::ipc::{ChildState, ChildStatus, SupervisorStatus};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A temp dir with the fake children and an OUT directory.
struct Fixture {
    dir: tempfile::TempDir,
    port: u16,
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            (
                "fake-processor",
                include_str!("supervisor/fake_processor.py"),
            ),
            ("fake-viewer", include_str!("supervisor/fake_viewer.py")),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, format!("#!{}\n{text}", python())).unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fixture {
            dir,
            port: free_port(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn out(&self) -> PathBuf {
        self.path("out")
    }

    fn start_log(&self) -> PathBuf {
        self.path("starts.log")
    }

    /// `orderflow run` on the fakes; `extra` are more arguments, `env` more
    /// variables for the children.
    fn run(&self, extra: &[&str], env: &[(&str, &str)]) -> Supervisor {
        self.run_on(&self.out(), self.port, extra, env)
    }

    fn run_on(&self, out: &Path, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Supervisor {
        let n = fs::read_dir(self.dir.path()).unwrap().count();
        let stdout = self.path(&format!("supervisor-{n}.out"));
        let stderr = self.path(&format!("supervisor-{n}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orderflow"));
        cmd.args(["run", "BTC-USDT", "2024-03-01", "2024-03-01", "--out"])
            .arg(out)
            .args(["--port", &port.to_string()])
            .args(extra)
            .env("ORDERFLOW_PROCESSOR_BIN", self.path("fake-processor"))
            .env("ORDERFLOW_VIEWER_BIN", viewer_program(self))
            .env("FAKE_START_LOG", self.start_log())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Supervisor {
            child,
            out: out.to_path_buf(),
            port,
            stdout,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Lines of the fakes' start log: (program, pid, wall ms, args).
    fn starts(&self, program: &str) -> Vec<(u32, i64, String)> {
        fs::read_to_string(self.start_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(4, ' ');
                (parts.next()? == program).then_some(())?;
                Some((
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                    parts.next().unwrap_or("").to_string(),
                ))
            })
            .collect()
    }
}

/// The viewer the tests run. One line to switch to the real one:
/// `PathBuf::from(env!("CARGO_BIN_EXE_orderflow-viewer"))`.
fn viewer_program(f: &Fixture) -> PathBuf {
    f.path("fake-viewer")
}

/// A running `orderflow` whose process and children are killed on drop.
struct Supervisor {
    child: Child,
    out: PathBuf,
    port: u16,
    stdout: PathBuf,
    stderr: PathBuf,
    /// Every child pid seen in supervisor.json, killed on drop.
    seen: Vec<u32>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(s) = self.status() {
            self.note(&s);
        }
        // Only processes still running from this test's directory: a pid
        // seen earlier may belong to someone else by now.
        let marker = self
            .out
            .parent()
            .unwrap_or(&self.out)
            .to_string_lossy()
            .into_owned();
        for pid in &self.seen {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if alive(*pid) && String::from_utf8_lossy(&cmdline).contains(&marker) {
                signal(*pid, libc_sig::KILL);
            }
        }
    }
}

impl Supervisor {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn note(&mut self, s: &SupervisorStatus) {
        for pid in s.children.iter().filter_map(|c| c.pid) {
            if !self.seen.contains(&pid) {
                self.seen.push(pid);
            }
        }
    }

    fn status(&self) -> Option<SupervisorStatus> {
        orderflow::ipc::read_json(&self.out.join("supervisor.json")).ok()
    }

    /// Polls supervisor.json until `cond` holds; panics after `timeout`
    /// with the last state seen and the supervisor's output.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&SupervisorStatus) -> bool,
    ) -> SupervisorStatus {
        let end = Instant::now() + timeout;
        loop {
            let status = self.status();
            if let Some(s) = &status {
                self.note(s);
                if cond(s) {
                    return s.clone();
                }
            }
            if Instant::now() > end {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\nlast supervisor.json: {status:#?}\nstdout:\n{}\nstderr:\n{}",
                    self.output(),
                    fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Both children running, the viewer answering.
    fn wait_ready(&mut self) -> SupervisorStatus {
        let port = self.port;
        self.wait_for(
            "both children running and the viewer answering",
            Duration::from_secs(15),
            |s| {
                s.children.iter().all(|c| c.state == ChildState::Running)
                    && s.url.is_some()
                    && healthz(port)
            },
        )
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "supervisor still running after {timeout:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

fn child<'a>(s: &'a SupervisorStatus, name: &str) -> &'a ChildStatus {
    s.children
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} in {s:#?}"))
}

fn pid_of(s: &SupervisorStatus, name: &str) -> u32 {
    child(s, name)
        .pid
        .unwrap_or_else(|| panic!("{name} has no pid in {s:#?}"))
}

mod libc_sig {
    pub const KILL: i32 = 9;
    pub const TERM: i32 = 15;
    pub const INT: i32 = 2;
    pub const STOP: i32 = 19;
}

fn signal(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Waits until none of `pids` is alive; returns how long it took.
fn wait_gone(pids: &[u32], timeout: Duration) -> Duration {
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            start.elapsed() < timeout,
            "still alive after {timeout:?}: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /healthz` answered 200.
fn healthz(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

#[test]
fn a_killed_viewer_answers_again_within_1s_and_the_processor_keeps_its_pid() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&[], &[]);
    let before = sup.wait_ready();
    let processor = pid_of(&before, "processor");
    let viewer = pid_of(&before, "viewer");
    assert_eq!(before.pid, sup.pid());
    assert_eq!(
        before.url.as_deref(),
        Some(format!("http://127.0.0.1:{}/", f.port).as_str())
    );

    signal(viewer, libc_sig::KILL);
    let killed = Instant::now();
    let port = f.port;
    let after = sup.wait_for("a new viewer answering", Duration::from_secs(1), |s| {
        child(s, "viewer").pid.is_some_and(|p| p != viewer) && healthz(port)
    });
    let latency = killed.elapsed();
    eprintln!("viewer restart latency (SIGKILL → /healthz 200): {latency:?}");
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    assert!(!alive(viewer));
    let v = child(&after, "viewer");
    assert_eq!((v.state, v.restarts), (ChildState::Running, 1));
    assert_eq!(v.last_exit.as_deref(), Some("killed by SIGKILL"));
    let p = child(&after, "processor");
    assert_eq!(
        (p.pid, p.state, p.restarts),
        (Some(processor), ChildState::Running, 0)
    );

    // The URL is printed once, not on every restart; output is prefixed
    // and kept in the logs.
    sup.wait_for("the restart to be logged", Duration::from_secs(2), |_| {
        fs::read_to_string(f.out().join("logs/orderflow.log"))
            .unwrap_or_default()
            .contains("answering again")
    });
    let stdout = sup.output();
    assert_eq!(
        stdout.matches("viewer ready: http://127.0.0.1:").count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("processor | fake processor"), "{stdout}");
    assert!(
        !stdout.contains('\x1b'),
        "no colour when stdout is not a terminal: {stdout}"
    );
    let plog = fs::read_to_string(f.out().join("logs/processor.log")).unwrap();
    assert!(plog.contains(" out fake processor"), "{plog}");
    assert!(plog.contains(" err a line on stderr"), "{plog}");
    let vlog = fs::read_to_string(f.out().join("logs/viewer.log")).unwrap();
    assert_eq!(vlog.matches(" out fake viewer").count(), 2, "{vlog}");
}

#[test]
fn a_killed_processor_is_restarted_resumes_and_finishes() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&["--fresh"], &[("FAKE_RUN_MS", "2500")]);
    let ready = sup.wait_ready();
    let processor = pid_of(&ready, "processor");
    let viewer = pid_of(&ready, "viewer");
    signal(processor, libc_sig::KILL);
    let after = sup.wait_for(
        "the processor to be restarted",
        Duration::from_secs(2),
        |s| child(s, "processor").pid.is_some_and(|p| p != processor),
    );
    assert_eq!(child(&after, "processor").restarts, 1);
    let done = sup.wait_for("the processor to finish", Duration::from_secs(10), |s| {
        child(s, "processor").state == ChildState::Finished
    });
    let p = child(&done, "processor");
    assert_eq!((p.pid, p.restarts), (None, 1));
    assert_eq!(p.last_exit.as_deref(), Some("exited with code 0"));
    // The viewer keeps serving, untouched.
    let v = child(&done, "viewer");
    assert_eq!(
        (v.pid, v.state, v.restarts),
        (Some(viewer), ChildState::Running, 0)
    );
    assert!(healthz(f.port));
    // --fresh on the first start only: the restart resumed.
    let starts = f.starts("processor");
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts[0].2.ends_with("--fresh"), "{starts:?}");
    assert!(!starts[1].2.contains("--fresh"), "{starts:?}");
    assert!(
        starts[1]
            .2
            .contains(&format!("--out {}", f.out().display())),
        "{starts:?}"
    );
    // Finished is final: still finished a while later, not restarted.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.starts("processor").len(), 2);
    assert!(
        sup.child.try_wait().unwrap().is_none(),
        "the supervisor keeps the viewer running"
    );
}

#[test]
fn a_crash_looping_viewer_backs_off_then_fails_and_the_processor_is_untouched() {
    let _serial = serial();
    let f = Fixture::new();
    // The port is taken: every viewer exits at once.
    let squatter = TcpListener::bind(("127.0.0.1", f.port)).unwrap();
    let mut sup = f.run(&[], &[]);
    let first = sup.wait_for("the processor running", Duration::from_secs(10), |s| {
        child(s, "processor").state == ChildState::Running
    });
    let processor = pid_of(&first, "processor");
    // Record when each restart happens, from the outside.
    let mut restart_at: Vec<Instant> = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let s = sup.status().unwrap();
        let v = child(&s, "viewer");
        while restart_at.len() < v.restarts as usize {
            restart_at.push(Instant::now());
        }
        if v.state == ChildState::Failed {
            break s;
        }
        assert!(Instant::now() < end, "viewer never marked failed: {s:#?}");
        std::thread::sleep(Duration::from_millis(2));
    };
    let v = child(&failed, "viewer");
    assert_eq!((v.pid, v.restarts), (None, 5));
    assert_eq!(v.last_exit.as_deref(), Some("exited with code 1"));
    let gaps: Vec<u128> = restart_at
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    eprintln!("gaps between viewer restarts (ms): {gaps:?}");
    assert_eq!(gaps.len(), 4);
    for (i, pair) in gaps.windows(2).enumerate() {
        assert!(pair[1] > pair[0], "delays must grow: {gaps:?}");
        // Backoff 200, 400, 800, 1600 ms between restarts 1‒5.
        assert!(pair[1] >= (200 << (i + 1)) * 9 / 10, "{gaps:?}");
    }
    let p = child(&failed, "processor");
    assert_eq!(
        (p.pid, p.state, p.restarts),
        (Some(processor), ChildState::Running, 0)
    );
    // Failed is final; the supervisor keeps the processor going.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(f.starts("viewer").len(), 6);
    assert!(alive(processor));
    assert!(sup.child.try_wait().unwrap().is_none());
    // Stopped now, it reports the failure in its exit code.
    signal(sup.pid(), libc_sig::TERM);
    let status = sup.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1));
    drop(squatter);
}

#[test]
fn a_stopped_processor_is_detected_by_its_heartbeat_killed_and_restarted() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&["--hang-limit-ms", "1000"], &[]);
    let ready = sup.wait_ready();
    let processor = pid_of(&ready, "processor");
    let viewer = pid_of(&ready, "viewer");
    signal(processor, libc_sig::STOP);
    let stopped = Instant::now();
    let after = sup.wait_for(
        "the hung processor to be replaced",
        Duration::from_secs(4),
        |s| {
            let p = child(s, "processor");
            p.state == ChildState::Running && p.pid.is_some_and(|pid| pid != processor)
        },
    );
    let took = stopped.elapsed();
    eprintln!("hang detection (SIGSTOP → new processor running): {took:?}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    let p = child(&after, "processor");
    assert_eq!(p.restarts, 1);
    let reason = p.last_exit.as_deref().unwrap_or("");
    assert!(reason.starts_with("hung: no heartbeat for 1."), "{reason}");
    wait_gone(&[processor], Duration::from_secs(1));
    assert_eq!(child(&after, "viewer").pid, Some(viewer));
    // The new one beats: not killed again.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(child(&sup.status().unwrap(), "processor").restarts, 1);
}

#[test]
fn sigterm_stops_every_child_and_its_group_within_2s() {
    let _serial = serial();
    let f = Fixture::new();
    let grandchildren = f.path("grandchildren");
    let mut sup = f.run(&[], &[("FAKE_GRANDCHILD", grandchildren.to_str().unwrap())]);
    let ready = sup.wait_ready();
    let mut pids = vec![pid_of(&ready, "processor"), pid_of(&ready, "viewer")];
    sup.wait_for("the processor's own child", Duration::from_secs(5), |_| {
        fs::read_to_string(&grandchildren).is_ok_and(|t| t.ends_with('\n'))
    });
    let grandchild: u32 = fs::read_to_string(&grandchildren)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild));
    sup.seen.push(grandchild);
    pids.push(grandchild);
    signal(sup.pid(), libc_sig::TERM);
    let took = wait_gone(&pids, Duration::from_secs(2));
    eprintln!("shutdown (SIGTERM → every child gone): {took:?}");
    let status = sup.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    let end = sup.status().unwrap();
    for c in &end.children {
        assert_eq!((c.state, c.pid), (ChildState::Stopped, None), "{end:#?}");
    }
    assert_eq!(
        child(&end, "viewer").last_exit.as_deref(),
        Some("killed by SIGTERM")
    );
    // No temp file left behind by the supervisor.
    let temps: Vec<_> = fs::read_dir(f.out())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".supervisor.json")
        })
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&["--grace-ms", "700"], &[("FAKE_IGNORE_TERM", "1")]);
    let ready = sup.wait_ready();
    let processor = pid_of(&ready, "processor");
    signal(sup.pid(), libc_sig::INT);
    let took = wait_gone(&[processor], Duration::from_secs(2));
    assert!(
        took >= Duration::from_millis(650),
        "killed before the grace period ended: {took:?}"
    );
    sup.wait_exit(Duration::from_secs(2));
    let end = sup.status().unwrap();
    assert_eq!(
        child(&end, "processor").last_exit.as_deref(),
        Some("killed by SIGKILL")
    );
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&["--grace-ms", "20000"], &[("FAKE_IGNORE_TERM", "1")]);
    let ready = sup.wait_ready();
    let processor = pid_of(&ready, "processor");
    signal(sup.pid(), libc_sig::INT);
    sup.wait_for("the processor stopping", Duration::from_secs(2), |s| {
        child(s, "processor").state == ChildState::Stopping
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        alive(processor),
        "SIGTERM is ignored, the grace period is long"
    );
    signal(sup.pid(), libc_sig::INT);
    let took = wait_gone(&[processor], Duration::from_secs(1));
    eprintln!("second Ctrl-C → processor gone: {took:?}");
    sup.wait_exit(Duration::from_secs(2));
}

#[test]
fn children_die_with_a_sigkilled_supervisor() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&[], &[]);
    let ready = sup.wait_ready();
    let pids = [pid_of(&ready, "processor"), pid_of(&ready, "viewer")];
    signal(sup.pid(), libc_sig::KILL);
    let took = wait_gone(&pids, Duration::from_secs(2));
    eprintln!("supervisor SIGKILLed → children gone: {took:?}");
    sup.wait_exit(Duration::from_secs(1));
}

#[test]
fn a_second_supervisor_on_the_same_out_is_refused_and_the_first_untouched() {
    let _serial = serial();
    let f = Fixture::new();
    let mut first = f.run(&[], &[]);
    let ready = first.wait_ready();
    let started = Instant::now();
    let mut second = f.run_on(&f.out(), free_port(), &[], &[]);
    let status = second.wait_exit(Duration::from_secs(5));
    eprintln!("second supervisor refused in {:?}", started.elapsed());
    assert_ne!(status.code(), Some(0));
    let err = fs::read_to_string(&second.stderr).unwrap();
    assert!(
        err.contains("already in use by another supervisor")
            && err.contains(&format!("pid {}", first.pid())),
        "{err}"
    );
    // It started nothing and changed nothing.
    assert_eq!(f.starts("processor").len(), 1);
    assert_eq!(f.starts("viewer").len(), 1);
    let now = first.status().unwrap();
    assert_eq!(now.pid, first.pid());
    assert_eq!(now.children, ready.children);
    assert!(healthz(f.port));
    assert!(first.child.try_wait().unwrap().is_none());
}
