//! Fault tests of the supervisor (`orderflow run`) with real processes:
//! children are SIGKILLed, SIGSTOPped, crash-looped; the supervisor is
//! SIGTERMed and SIGKILLed; a second supervisor is started on the same OUT.
//!
//! The viewer is the real binary. The processor is the real binary where a
//! real run is needed (kill, hang) and a small Python stand-in
//! (`supervisor/fake_processor.py`, same arguments and `status.json`
//! heartbeat) where it must misbehave on cue (ignore SIGTERM, start a
//! grandchild, crash at once).
//!
//! Every wait is a poll on a condition with a deadline (the harness's
//! `wait_for`); every process started is killed by a guard on drop; the
//! tests run one at a time (they measure latencies on a small shared
//! machine).

use crate::harness::{self, TestCommand, ORDERFLOW, PROCESSOR, VIEWER};
use orderflow::ipc::{ChildState, ChildStatus, SupervisorStatus};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
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
    processor: PathBuf,
    /// Arguments for the processor given to every `orderflow run`.
    processor_args: Vec<String>,
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
        let path = dir.path().join("fake-processor");
        let text = include_str!("supervisor/fake_processor.py");
        fs::write(&path, format!("#!{}\n{text}", python())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let processor = dir.path().join("fake-processor");
        Fixture {
            dir,
            port: free_port(),
            processor,
            processor_args: Vec::new(),
        }
    }

    /// A fixture that runs the real processor on `hours` of generated
    /// market data for BTC-USDT on 2024-03-01, replayed at `speed`.
    fn with_real_processor(hours: f64, speed: &str) -> Fixture {
        let mut f = Fixture::new();
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let template = orderflow::synth::SynthConfig::new(0, 0);
        let db =
            orderflow::synth::write_days(&f.path("data"), "BTC-USDT", day, 1, hours, &template)
                .unwrap();
        f.processor = PathBuf::from(PROCESSOR);
        f.processor_args = vec![
            "--window-seconds".into(),
            "10".into(),
            "--speed".into(),
            speed.into(),
            "--db".into(),
            db[0].to_string_lossy().into_owned(),
        ];
        f
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
        self.spawn_on(out, port, extra, env, |cmd, stdout| {
            cmd.stdout(fs::File::create(stdout).unwrap());
        })
    }

    /// `run_on` with the supervisor's stdout set up by `stdout` (given the
    /// path `Supervisor::output` reads).
    fn spawn_on(
        &self,
        out: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
        stdout_to: impl FnOnce(&mut TestCommand, &Path),
    ) -> Supervisor {
        let n = fs::read_dir(self.dir.path()).unwrap().count();
        let stdout = self.path(&format!("supervisor-{n}.out"));
        let stderr = self.path(&format!("supervisor-{n}.err"));
        let mut cmd = TestCommand::new(ORDERFLOW);
        cmd.args(["run", "BTC-USDT", "2024-03-01", "2024-03-01", "--out"])
            .arg(out)
            .args(["--port", &port.to_string()])
            .args(&self.processor_args)
            .args(extra)
            .env("ORDERFLOW_PROCESSOR_BIN", &self.processor)
            .env("ORDERFLOW_VIEWER_BIN", viewer_program(self))
            .env("FAKE_START_LOG", self.start_log())
            .stdin(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap());
        stdout_to(&mut cmd, &stdout);
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
    /// How many times the supervisor started `child`, from its log (works
    /// for the fakes and the real binaries alike).
    fn started(&self, child: &str) -> usize {
        fs::read_to_string(self.out().join(format!("logs/{child}.log")))
            .unwrap_or_default()
            .matches(" sup started pid")
            .count()
    }

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
fn viewer_program(_: &Fixture) -> PathBuf {
    PathBuf::from(VIEWER)
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
        let mut last = None;
        let found = harness::wait_for(timeout, || {
            let status = self.status();
            if let Some(s) = &status {
                self.note(s);
                if cond(s) {
                    return Some(s.clone());
                }
            }
            last = status;
            None
        });
        found.unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {what}\nlast supervisor.json: {last:#?}\nstdout:\n{}\nstderr:\n{}",
                self.output(),
                fs::read_to_string(&self.stderr).unwrap_or_default()
            )
        })
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

    /// The processor `pid` has written its heartbeat (so it is past its
    /// start-up, signal handlers included).
    fn wait_beating(&mut self, pid: u32) {
        let path = self.out.join("status.json");
        self.wait_for("the processor's heartbeat", Duration::from_secs(10), |_| {
            orderflow::ipc::read_json::<serde_json::Value>(&path)
                .is_ok_and(|v| v["pid"].as_u64() == Some(u64::from(pid)))
        });
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        let status = harness::wait_for(timeout, || child.try_wait().unwrap());
        status.unwrap_or_else(|| {
            panic!(
                "supervisor still running after {timeout:?}\n{}",
                self.output()
            )
        })
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
    if let Ok(sig) = nix::sys::signal::Signal::try_from(sig) {
        harness::kill(pid, sig);
    }
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
    let gone = harness::wait_for(timeout, || (!pids.iter().any(|p| alive(*p))).then_some(()));
    assert!(
        gone.is_some(),
        "still alive after {timeout:?}: {:?}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
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
    assert_eq!(vlog.matches(" sup started pid").count(), 2, "{vlog}");
}

#[test]
fn a_killed_processor_is_restarted_resumes_and_finishes() {
    let _serial = serial();
    // 5 minutes of market at 100×: about 3 s of replay.
    let f = Fixture::with_real_processor(5.0 / 60.0, "100");
    let mut sup = f.run(&["--fresh"], &[]);
    let ready = sup.wait_ready();
    let viewer = pid_of(&ready, "viewer");
    // Kill it once it has made progress.
    let status_path = f.out().join("status.json");
    let progressed = sup.wait_for(
        "the processor to make progress",
        Duration::from_secs(10),
        |_| {
            orderflow::ipc::read_json::<orderflow::ipc::Status>(&status_path)
                .is_ok_and(|st| st.rows_done > 0 && st.progress < 0.7)
        },
    );
    let processor = pid_of(&progressed, "processor");
    signal(processor, libc_sig::KILL);
    let after = sup.wait_for(
        "the processor to be restarted",
        Duration::from_secs(2),
        |s| child(s, "processor").pid.is_some_and(|p| p != processor),
    );
    assert_eq!(child(&after, "processor").restarts, 1);
    let done = sup.wait_for("the processor to finish", Duration::from_secs(30), |s| {
        child(s, "processor").state == ChildState::Finished
    });
    let p = child(&done, "processor");
    assert_eq!((p.pid, p.restarts), (None, 1));
    assert_eq!(p.last_exit.as_deref(), Some("exited with code 0"));
    let st: orderflow::ipc::Status = orderflow::ipc::read_json(&status_path).unwrap();
    assert_eq!(st.state, orderflow::ipc::RunState::Finished);
    // The viewer keeps serving, untouched.
    let v = child(&done, "viewer");
    assert_eq!(
        (v.pid, v.state, v.restarts),
        (Some(viewer), ChildState::Running, 0)
    );
    assert!(healthz(f.port));
    assert!(
        sup.child.try_wait().unwrap().is_none(),
        "the supervisor keeps the viewer running"
    );
    // The restart resumed rather than started over (no --fresh on it), and
    // the result is that of an uninterrupted run.
    let log = fs::read_to_string(f.out().join("logs/processor.log")).unwrap();
    assert_eq!(log.matches("started pid").count(), 2, "{log}");
    let clean = f.path("clean");
    let status = TestCommand::processor()
        .args(["BTC-USDT", "2024-03-01", "2024-03-01"])
        .args(&f.processor_args[..2])
        .args(&f.processor_args[4..])
        .args(["--speed", "max", "--out"])
        .arg(&clean)
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    for name in ["ohlc_data.json", "metrics_data.json", "depth_data.json"] {
        let a = fs::read(f.out().join(name)).unwrap();
        let b = fs::read(clean.join(name)).unwrap();
        assert!(a == b, "{name} differs from an uninterrupted run");
    }
}

#[test]
fn a_restarted_processor_gets_fresh_only_on_its_first_start() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&["--fresh"], &[("FAKE_RUN_MS", "2500")]);
    let ready = sup.wait_ready();
    let processor = pid_of(&ready, "processor");
    sup.wait_beating(processor);
    signal(processor, libc_sig::KILL);
    sup.wait_for("the processor to finish", Duration::from_secs(10), |s| {
        child(s, "processor").state == ChildState::Finished
    });
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
    // Finished is final: not restarted.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.starts("processor").len(), 2);
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
    // Each backoff, from the supervisor's own time stamps: when the viewer
    // entered backoff after k restarts, and when restart k + 1 began.
    // Polled every millisecond; a state missed under load is skipped.
    let mut backoff_since: Vec<Option<i64>> = vec![None; 6];
    let mut restart_since: Vec<Option<i64>> = vec![None; 6];
    let mut first_crash_seen: Option<Instant> = None;
    let end = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let s = sup.status().unwrap();
        let v = child(&s, "viewer");
        let k = v.restarts as usize;
        match v.state {
            ChildState::Backoff if k < 6 => {
                backoff_since[k].get_or_insert(v.since_ms);
                first_crash_seen.get_or_insert_with(Instant::now);
            }
            ChildState::Starting | ChildState::Running if k < 6 => {
                restart_since[k].get_or_insert(v.since_ms);
            }
            ChildState::Failed => break s,
            _ => {}
        }
        assert!(Instant::now() < end, "viewer never marked failed: {s:#?}");
        std::thread::sleep(Duration::from_millis(1));
    };
    // From the outside: the five backoffs (3.1 s in all) really were waited.
    let total = first_crash_seen.map(|t| t.elapsed()).unwrap_or_default();
    eprintln!("first crash seen → failed: {total:?}");
    assert!(total >= Duration::from_millis(2900), "{total:?}");
    let v = child(&failed, "viewer");
    assert_eq!((v.pid, v.restarts), (None, 5));
    assert_eq!(v.last_exit.as_deref(), Some("exited with code 1"));
    let delays: Vec<Option<i64>> = (0..5)
        .map(|k| Some(restart_since[k + 1]? - backoff_since[k]?))
        .collect();
    eprintln!("viewer backoff delays (ms): {delays:?}");
    let observed: Vec<(usize, i64)> = delays
        .iter()
        .enumerate()
        .filter_map(|(k, d)| Some((k, (*d)?)))
        .collect();
    assert!(observed.len() >= 3, "too few backoffs observed: {delays:?}");
    for &(k, ms) in &observed {
        let expected = 100i64 << k;
        // Never early (but for ms rounding); late only by a busy machine.
        assert!(
            ms >= expected - 2 && ms < expected + 300,
            "backoff {k}: {ms} ms, expected {expected}: {delays:?}"
        );
    }
    for pair in observed.windows(2) {
        assert!(pair[1].1 > pair[0].1, "delays must grow: {delays:?}");
    }
    let p = child(&failed, "processor");
    assert_eq!(
        (p.pid, p.state, p.restarts),
        (Some(processor), ChildState::Running, 0)
    );
    // Failed is final; the supervisor keeps the processor going.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(f.started("viewer"), 6);
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
    // An hour of market at 10×: it runs for the whole test.
    let f = Fixture::with_real_processor(1.0, "10");
    let mut sup = f.run(&["--hang-limit-ms", "2000"], &[]);
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
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    let p = child(&after, "processor");
    assert_eq!(p.restarts, 1);
    let reason = p.last_exit.as_deref().unwrap_or("");
    assert!(reason.starts_with("hung: no heartbeat for 2."), "{reason}");
    wait_gone(&[processor], Duration::from_secs(1));
    assert_eq!(child(&after, "viewer").pid, Some(viewer));
    // The new one beats: not killed again, though it has now run well past
    // the limit (3 s of heartbeats against 2 s).
    let new = p.pid.unwrap_or_default();
    let status_path = f.out().join("status.json");
    let later = sup.wait_for(
        "the new processor to beat for 3 s",
        Duration::from_secs(10),
        |s| {
            let p = child(s, "processor");
            p.restarts != 1
                || orderflow::ipc::read_json::<orderflow::ipc::Status>(&status_path)
                    .is_ok_and(|st| st.pid == new && st.heartbeat_ms > p.since_ms + 3000)
        },
    );
    assert_eq!(child(&later, "processor").restarts, 1);
}

#[test]
fn a_stopped_viewer_stops_answering_is_killed_and_restarted() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&["--hang-limit-ms", "2000"], &[]);
    let ready = sup.wait_ready();
    let processor = pid_of(&ready, "processor");
    let viewer = pid_of(&ready, "viewer");
    signal(viewer, libc_sig::STOP);
    let stopped = Instant::now();
    let port = f.port;
    let after = sup.wait_for(
        "the hung viewer to be replaced and answering",
        Duration::from_secs(6),
        |s| child(s, "viewer").pid.is_some_and(|pid| pid != viewer) && healthz(port),
    );
    let took = stopped.elapsed();
    eprintln!("viewer hang detection (SIGSTOP → new viewer answering): {took:?}");
    // The limit counts from the last answer, which came at most one probe
    // interval (1 s) before the stop: so not sooner than 1 s after it.
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    let v = child(&after, "viewer");
    assert_eq!((v.state, v.restarts), (ChildState::Running, 1));
    let reason = v.last_exit.as_deref().unwrap_or("");
    assert!(
        reason.starts_with("hung: no answer on /healthz for 2."),
        "{reason}"
    );
    wait_gone(&[viewer], Duration::from_secs(1));
    assert!(!alive(viewer));
    assert_eq!(child(&after, "processor").pid, Some(processor));
    // The new one answers: not killed again, though it has now run well
    // past the limit (answering 3 s after its start, against 2 s).
    let later = sup.wait_for(
        "the new viewer to answer for 3 s",
        Duration::from_secs(10),
        |s| {
            let v = child(s, "viewer");
            v.restarts != 1 || (orderflow::ipc::now_ms() > v.since_ms + 3000 && healthz(port))
        },
    );
    assert_eq!(child(&later, "viewer").restarts, 1);
}

#[test]
fn a_console_nobody_reads_blocks_neither_the_supervisor_nor_the_children() {
    let _serial = serial();
    let f = Fixture::new();
    // stdout is a pipe this test never reads: it is full after 64 KiB, as
    // a terminal paused with Ctrl-S would be. The processor prints about
    // 600 KB/s and beats every 100 ms.
    let mut sup = f.spawn_on(
        &f.out(),
        f.port,
        &["--hang-limit-ms", "2000"],
        &[("FAKE_CHATTY", "1000")],
        |cmd, _| {
            cmd.stdout(Stdio::piped());
        },
    );
    let _unread = sup.child.stdout.take();
    let ready = sup.wait_ready();
    let processor = pid_of(&ready, "processor");
    // Its output keeps flowing into the log file long past what the pipes
    // could hold (had the console blocked the supervisor, the processor
    // would block on its own output and be killed as hung).
    let log = f.out().join("logs/processor.log");
    let size = |p: &Path| fs::metadata(p).map_or(0, |m| m.len());
    sup.wait_for(
        "4 MB of processor output kept",
        Duration::from_secs(30),
        |_| size(&log) + size(&log.with_extension("log.1")) > 4_000_000,
    );
    let now = sup.status().unwrap();
    let p = child(&now, "processor");
    assert_eq!((p.pid, p.restarts), (Some(processor), 0), "{now:#?}");
    // The loop still acts: a killed viewer is replaced at once.
    let viewer = pid_of(&ready, "viewer");
    signal(viewer, libc_sig::KILL);
    let port = f.port;
    sup.wait_for("a new viewer answering", Duration::from_secs(2), |s| {
        child(s, "viewer").pid.is_some_and(|p| p != viewer) && healthz(port)
    });
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
    // Both went on SIGTERM, within the grace period (no SIGKILL needed).
    for c in &end.children {
        let exit = c.last_exit.as_deref().unwrap_or("");
        assert!(
            matches!(
                exit,
                "killed by SIGTERM" | "exited with code 0" | "exited with code 130"
            ),
            "{}: {exit}",
            c.name
        );
    }
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
    sup.wait_beating(processor);
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
    sup.wait_beating(processor);
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
    assert_eq!(f.started("processor"), 1);
    assert_eq!(f.started("viewer"), 1);
    let now = first.status().unwrap();
    assert_eq!(now.pid, first.pid());
    assert_eq!(now.children, ready.children);
    assert!(healthz(f.port));
    assert!(first.child.try_wait().unwrap().is_none());
}

#[test]
fn a_bad_replay_option_is_refused_before_any_child_starts() {
    let _serial = serial();
    let f = Fixture::new();
    let mut sup = f.run(&["--speed", "fast"], &[]);
    let status = sup.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1));
    let err = fs::read_to_string(&sup.stderr).unwrap();
    assert_eq!(
        err.trim(),
        "orderflow: --speed \"fast\" is neither `max` nor a positive number"
    );
    // Nothing was started, so nothing was written.
    assert!(f.starts("processor").is_empty());
    assert!(!f.out().exists(), "OUT was created");
}

#[test]
fn a_processor_on_a_full_disk_backs_off_says_why_and_the_viewer_stays() {
    let _serial = serial();
    let Some(fs) = crate::faults::Tmpfs::mount("160k") else {
        return;
    };
    let f = Fixture::with_real_processor(0.5, "max");
    let out = fs.path().join("out");
    let started = std::time::Instant::now();
    let mut sup = f.run_on(&out, f.port, &[], &[]);
    let failing = sup.wait_for(
        "the processor failing again and again",
        Duration::from_secs(30),
        |s| {
            let p = &s.children[0];
            p.restarts >= 3
                && p.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("No space left on device"))
        },
    );
    // Backoff, not a tight loop: 100 + 200 + 400 ms at least.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{failing:#?}"
    );
    let p = &failing.children[0];
    assert!(
        p.last_exit.as_deref().is_some_and(|e| e.contains("1")),
        "{p:#?}"
    );
    // The supervisor and the viewer keep going.
    assert!(
        sup.child.try_wait().unwrap().is_none(),
        "the supervisor died"
    );
    assert!(healthz(sup.port), "the viewer stopped answering");
}
