//! The viewer's HTTP surface against a real server on 127.0.0.1, port 0.

use super::client::{get, request, wait_for, Sse};
use crate::harness::{KillOnDrop, TestCommand, VIEWER};
use orderflow::ipc::{self, files, Depth, MetricRow, OhlcRow, VizWriter};
use orderflow::viewer::{Config, Viewer, ViewerError};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// A viewer served on its own runtime thread; stops when dropped.
pub struct TestViewer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestViewer {
    pub fn start(dir: &Path) -> TestViewer {
        let dir = dir.to_path_buf();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let viewer = Viewer::bind(Config::new(dir, "127.0.0.1", 0))
                    .await
                    .unwrap();
                addr_tx.send(viewer.local_addr()).unwrap();
                viewer
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("viewer bound");
        TestViewer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TestViewer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn bar(i: i64) -> OhlcRow {
    let p = 30_000.0 + (i % 17) as f64 * 2.5;
    OhlcRow {
        ts: 1_652_400_000_000 + i * 60_000,
        open: p,
        high: p + 7.5,
        low: p - 5.0,
        close: p + 2.5,
        volume: 1.25 + i as f64 * 0.5,
    }
}

pub fn metric(i: i64) -> MetricRow {
    let o = ((i % 7) as f64 - 3.0) / 10.0 + 0.012_345;
    MetricRow {
        ts: bar(i).ts,
        obi: [o, o + 0.1, o - 0.1, o + 0.05],
        cvd: Some([i as f64, i as f64 + 2.0, i as f64 - 1.5, i as f64 + 1.0]),
    }
}

pub fn depth() -> Depth {
    Depth {
        bids: (0..20)
            .map(|i| [30_000.0 - i as f64 * 0.5, 1.0 + i as f64 * 0.1])
            .collect(),
        asks: (0..20)
            .map(|i| [30_000.5 + i as f64 * 0.5, 0.8 + i as f64 * 0.15])
            .collect(),
    }
}

fn write_all_files(dir: &Path, bars: i64) -> VizWriter {
    let mut w = VizWriter::open(dir, 1000).unwrap();
    for i in 0..bars {
        w.add_ohlc(bar(i));
        w.add_metric(metric(i));
    }
    w.set_depth(depth());
    w.flush().unwrap();
    ipc::writer::write_json(dir, files::STATUS, &status()).unwrap();
    ipc::writer::write_json(dir, files::SUPERVISOR, &supervisor()).unwrap();
    w
}

pub fn status() -> ipc::Status {
    ipc::Status {
        state: ipc::RunState::Running,
        instrument: "BTC-USDT".into(),
        start_date: "2022-05-13".into(),
        end_date: "2022-05-13".into(),
        window_seconds: 60,
        progress: 0.42,
        rows_done: 4200,
        rows_total: 10_000,
        rows_per_second: 12_345.0,
        market_time_ms: Some(1_652_450_700_000),
        skipped_rows: 0,
        warnings: 0,
        paused: false,
        run_id: String::new(),
        speed: Some(60.0),
        pid: 1,
        heartbeat_ms: ipc::now_ms(),
        started_ms: ipc::now_ms(),
        message: None,
    }
}

pub fn supervisor() -> ipc::SupervisorStatus {
    let child = |name: &str, restarts| ipc::ChildStatus {
        name: name.into(),
        pid: Some(2),
        state: ipc::ChildState::Running,
        restarts,
        last_exit: None,
        last_error: None,
        since_ms: 0,
    };
    ipc::SupervisorStatus {
        pid: 1,
        started_ms: 0,
        updated_ms: 0,
        url: None,
        children: vec![child("processor", 1), child("viewer", 0)],
    }
}

#[test]
fn viewer_serves_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let _w = write_all_files(dir.path(), 30);
    let v = TestViewer::start(dir.path());

    let page = get(v.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // A build without the chart (no web/dist) serves the page saying how
    // to build it, and empty chart files; every other route is the same.
    let chart = orderflow::viewer::assets::CHART_BUILT;
    let page_link = if chart {
        "/assets/app.js"
    } else {
        "scripts/build-web"
    };
    assert!(page.text().contains(page_link));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    for (path, ctype) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/orderflow_web.js", "text/javascript"),
        ("/assets/orderflow_web_bg.wasm", "application/wasm"),
    ] {
        let r = get(v.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(ctype),
            "{path}"
        );
        assert!(!r.body.is_empty() || !chart && path.starts_with("/assets/orderflow_web"));
    }
    assert!(
        !chart
            || get(v.addr, "/assets/orderflow_web_bg.wasm")
                .body
                .starts_with(b"\0asm")
    );

    for (route, name) in [
        ("ohlc", files::OHLC),
        ("metrics", files::METRICS),
        ("depth", files::DEPTH),
        ("status", files::STATUS),
        ("supervisor", files::SUPERVISOR),
    ] {
        let r = get(v.addr, &format!("/api/{route}"));
        assert_eq!(r.status, 200, "{route}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-orderflow-stale"), Some("false"), "{route}");
        assert!(
            r.header("x-orderflow-version")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert_eq!(
            r.body,
            std::fs::read(dir.path().join(name)).unwrap(),
            "{route} serves the file as written"
        );
    }
    let ohlc: Vec<OhlcRow> = serde_json::from_slice(&get(v.addr, "/api/ohlc").body).unwrap();
    assert_eq!(ohlc.len(), 30);
    assert_eq!(ohlc[29], bar(29));

    let h = get(v.addr, "/healthz");
    assert_eq!(h.status, 200);
    let health: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(health["ok"], true);
    assert_eq!(health["files"].as_array().unwrap().len(), 5);
}

#[test]
fn viewer_serves_empty_defaults_before_files_exist() {
    let dir = tempfile::tempdir().unwrap();
    let v = TestViewer::start(dir.path());
    let r = get(v.addr, "/api/ohlc");
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(r.header("x-orderflow-version"), Some("0"));
    assert_eq!(get(v.addr, "/api/depth").text(), r#"{"bids":[],"asks":[]}"#);
    assert_eq!(get(v.addr, "/api/status").text(), "null");
}

#[test]
fn viewer_serves_the_last_good_copy_marked_stale() {
    let dir = tempfile::tempdir().unwrap();
    let _w = write_all_files(dir.path(), 10);
    let good = std::fs::read(dir.path().join(files::OHLC)).unwrap();
    let v = TestViewer::start(dir.path());
    assert_eq!(
        get(v.addr, "/api/ohlc").header("x-orderflow-stale"),
        Some("false")
    );

    let sse = Sse::connect(v.addr);
    sse.next_named("hello", Instant::now() + Duration::from_secs(5))
        .expect("hello");
    // Corrupt: truncated JSON, replaced atomically like any other write.
    ipc::write_atomic(dir.path(), files::OHLC, b"[[1652400000000,1,2").unwrap();
    let ev = sse
        .next_named(files::OHLC, Instant::now() + Duration::from_secs(5))
        .expect("an event saying the file went stale");
    assert_eq!(ev.data["stale"], true);
    let r = wait_for("ohlc marked stale", Duration::from_secs(5), || {
        let r = get(v.addr, "/api/ohlc");
        (r.header("x-orderflow-stale") == Some("true")).then_some(r)
    });
    assert_eq!(r.status, 200);
    assert_eq!(r.body, good, "the last good copy is served");
    let health: serde_json::Value = serde_json::from_slice(&get(v.addr, "/healthz").body).unwrap();
    assert!(
        health["files"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not valid"),
        "{health}"
    );

    // Wrong shape (valid JSON, not the format) is just as stale.
    ipc::write_atomic(dir.path(), files::METRICS, br#"{"rows": []}"#).unwrap();
    wait_for("metrics marked stale", Duration::from_secs(5), || {
        (get(v.addr, "/api/metrics").header("x-orderflow-stale") == Some("true")).then_some(())
    });

    // Missing: still the last good copy.
    std::fs::remove_file(dir.path().join(files::OHLC)).unwrap();
    std::thread::yield_now();
    let r = get(v.addr, "/api/ohlc");
    assert_eq!((r.status, &r.body), (200, &good));
    assert_eq!(r.header("x-orderflow-stale"), Some("true"));

    // Good again: fresh, not stale, a newer version.
    let before: u64 = r.header("x-orderflow-version").unwrap().parse().unwrap();
    ipc::writer::write_json(dir.path(), files::OHLC, &[bar(1)]).unwrap();
    let r = wait_for("ohlc fresh again", Duration::from_secs(5), || {
        let r = get(v.addr, "/api/ohlc");
        (r.header("x-orderflow-stale") == Some("false")).then_some(r)
    });
    assert!(
        r.header("x-orderflow-version")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > before
    );
    assert_eq!(
        serde_json::from_slice::<Vec<OhlcRow>>(&r.body).unwrap(),
        [bar(1)]
    );
}

#[test]
fn viewer_refuses_paths_outside_its_routes() {
    let dir = tempfile::tempdir().unwrap();
    let _w = write_all_files(dir.path(), 3);
    std::fs::write(dir.path().join("secret.txt"), b"TOPSECRET").unwrap();
    let v = TestViewer::start(dir.path());
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/assets/../Cargo.toml",
        "/assets/..%2fCargo.toml",
        "/assets/%2e%2e%2f%2e%2e%2fCargo.toml",
        "/assets/..%2f..%2f..%2fetc%2fpasswd",
        "/api/..%2fsecret.txt",
        "/api/%2e%2e/secret.txt",
        "/api/../secret.txt",
        "/api/ohlc_data.json",
        "/ohlc_data.json",
        "/secret.txt",
        "/assets/",
        "/assets",
        "/api/",
        "/api",
        "/api/ohlc/..",
        "/web/static/index.html",
        "//etc/passwd",
        "/assets/app.js%00.wasm",
    ] {
        let r = get(v.addr, path);
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("TOPSECRET") && !r.text().contains("[package]"),
            "{path} leaked"
        );
    }
    let r = request(
        v.addr,
        "POST",
        "/api/ohlc",
        Some(&format!("127.0.0.1:{}", v.addr.port())),
    );
    assert_eq!(r.status, 405);
}

#[test]
fn viewer_refuses_foreign_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let v = TestViewer::start(dir.path());
    let port = v.addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            request(v.addr, "GET", "/healthz", Some(&host)).status,
            200,
            "{host}"
        );
    }
    for host in [
        Some(format!("evil.example:{port}")),
        Some(format!("localhost.evil.example:{port}")),
        Some("evil.example".to_string()),
        Some(format!("127.0.0.1:{}", port.wrapping_add(1))),
        None,
    ] {
        for path in ["/", "/api/ohlc", "/api/events", "/nope"] {
            let r = request(v.addr, "GET", path, host.as_deref());
            assert_eq!(r.status, 403, "{host:?} {path}");
        }
    }
}

#[test]
fn viewer_announces_each_file_change_within_50ms() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = write_all_files(dir.path(), 5);
    let v = TestViewer::start(dir.path());
    let sse = Sse::connect(v.addr);
    let hello = sse
        .next_named("hello", Instant::now() + Duration::from_secs(5))
        .expect("hello");
    assert_eq!(hello.data["files"].as_array().unwrap().len(), 5);
    let mut latencies = Vec::new();
    let mut last_version = 0;
    for round in 0..6i64 {
        for name in files::DATA {
            let start = Instant::now();
            match name {
                files::OHLC => {
                    w.add_ohlc(bar(10 + round));
                    w.flush().unwrap();
                }
                files::METRICS => {
                    w.add_metric(metric(10 + round));
                    w.flush().unwrap();
                }
                files::DEPTH => {
                    let mut d = depth();
                    d.bids[0][1] += (round + 1) as f64;
                    w.set_depth(d);
                    w.flush().unwrap();
                }
                files::STATUS => {
                    let mut s = status();
                    s.rows_done += (round + 1) as u64;
                    ipc::writer::write_json(dir.path(), name, &s).unwrap();
                }
                _ => {
                    let mut s = supervisor();
                    s.children[0].restarts += (round + 1) as u32;
                    ipc::writer::write_json(dir.path(), name, &s).unwrap();
                }
            }
            let ev = sse
                .next_named(name, start + Duration::from_secs(5))
                .unwrap_or_else(|| panic!("no change event for {name}"));
            let version = ev.data["version"].as_u64().unwrap();
            assert!(version > last_version, "versions grow");
            assert_eq!(ev.data["stale"], false);
            last_version = version;
            latencies.push(ev.at.duration_since(start));
        }
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    eprintln!(
        "change event latency: median {median:?}, max {:?}",
        latencies.last().unwrap()
    );
    // Measured from before the write (file fsync included), so this
    // bounds rename → event from above.
    assert!(median < Duration::from_millis(50), "median {median:?}");
}

#[test]
fn viewer_reports_a_taken_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(Viewer::bind(Config::new(dir.path(), "127.0.0.1", port)))
        .unwrap_err();
    assert!(matches!(err, ViewerError::PortInUse { .. }), "{err}");

    let out = TestCommand::new(VIEWER)
        .args([
            "--out",
            dir.path().to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already in use") && stderr.contains("--port"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn viewer_binary_prints_its_url_and_stops_on_sigterm() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        TestCommand::new(VIEWER)
            .args(["--out", dir.path().to_str().unwrap(), "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let line = child.first_line(Duration::from_secs(10));
    let url = line.split_whitespace().last().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    assert_eq!(get(addr, "/healthz").status, 200);
    let _sse = Sse::connect(addr); // an open event stream must not hold up the exit
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_restarted_viewer_serves_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let _w = write_all_files(dir.path(), 12);
    let first = TestViewer::start(dir.path());
    let before: Vec<Vec<u8>> = ["ohlc", "metrics", "depth", "status", "supervisor"]
        .iter()
        .map(|r| get(first.addr, &format!("/api/{r}")).body)
        .collect();
    drop(first);
    let second = TestViewer::start(dir.path());
    let after: Vec<Vec<u8>> = ["ohlc", "metrics", "depth", "status", "supervisor"]
        .iter()
        .map(|r| get(second.addr, &format!("/api/{r}")).body)
        .collect();
    assert_eq!(before, after);
    assert!(before.iter().all(|b| b.len() > 2));
}

#[test]
fn viewer_follows_a_replaced_output_directory() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    std::fs::create_dir(&out).unwrap();
    ipc::writer::write_json(&out, files::OHLC, &[bar(0)]).unwrap();
    let v = TestViewer::start(&out);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::create_dir(&out).unwrap();
    ipc::writer::write_json(&out, files::OHLC, &[bar(0), bar(1)]).unwrap();
    // Picked up by the poll (within a second or two), which re-arms the watch.
    wait_for("the new directory's file", Duration::from_secs(5), || {
        let rows: Vec<OhlcRow> = serde_json::from_slice(&get(v.addr, "/api/ohlc").body).ok()?;
        (rows.len() == 2).then_some(())
    });
    // From now on changes are announced by the watch again, fast.
    let sse = Sse::connect(v.addr);
    sse.next_named("hello", Instant::now() + Duration::from_secs(5))
        .expect("hello");
    let start = Instant::now();
    ipc::writer::write_json(&out, files::OHLC, &[bar(0), bar(1), bar(2)]).unwrap();
    let ev = sse
        .next_named(files::OHLC, start + Duration::from_secs(5))
        .expect("change event");
    assert!(
        ev.at.duration_since(start) < Duration::from_millis(500),
        "announced by the watch, not the 1 s poll: {:?}",
        ev.at.duration_since(start)
    );
}
