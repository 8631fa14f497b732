//! The page end to end in headless Chromium: it draws the bars a writer
//! adds, its crosshair readout shows exactly the hovered bar, and it
//! survives the viewer being SIGKILLed and restarted without a reload.

use super::http::{bar, depth, metric, status, supervisor};
use super::webdriver::Browser;
use crate::harness::{wait_until, KillOnDrop, TestCommand, VIEWER};
use orderflow::ipc::{self, files, MetricRow, OhlcRow, VizWriter};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// The `orderflow-viewer` binary as a child process, killed on drop.
pub struct ViewerProcess {
    pub child: KillOnDrop,
    pub addr: SocketAddr,
}

impl ViewerProcess {
    pub fn start(out: &Path, port: u16) -> ViewerProcess {
        ViewerProcess::start_in(Path::new("."), out, port)
    }

    /// Started in `cwd`, with `out` as given (relative to `cwd` when it is
    /// relative, as `--out out` usually is).
    pub fn start_in(cwd: &Path, out: &Path, port: u16) -> ViewerProcess {
        let mut child = KillOnDrop(
            TestCommand::new(VIEWER)
                .current_dir(cwd)
                .args(["--out", &out.to_string_lossy(), "--port", &port.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("start orderflow-viewer"),
        );
        let line = child.first_line(T);
        let url = line
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|_| panic!("no URL in {line:?}"));
        ViewerProcess { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.0.kill(); // SIGKILL
        let _ = self.child.0.wait();
    }
}

pub fn write_initial(dir: &Path, bars: i64) -> VizWriter {
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

fn add_bar(w: &mut VizWriter, i: i64) {
    w.add_ohlc(bar(i));
    w.add_metric(metric(i));
    w.flush().unwrap();
}

const T: Duration = Duration::from_secs(20);

/// Waits until the page has applied every version the viewer has and
/// drawn what it applied (two animation frames later).
fn settle(b: &Browser, addr: SocketAddr) {
    let health: Value = serde_json::from_slice(&super::client::get(addr, "/healthz").body).unwrap();
    let newest = health["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["version"].as_u64())
        .max()
        .unwrap_or(0);
    b.wait_state("all versions applied", T, |s| {
        s["dataVersion"].as_u64() >= Some(newest)
    });
    b.exec(
        "window.__frames = 0; requestAnimationFrame(() => requestAnimationFrame(() => { window.__frames = 2; }));",
        json!([]),
    );
    wait_until("two animation frames", T, || {
        (b.exec("return window.__frames;", json!([])) == json!(2)).then_some(())
    });
}

/// Hovers over the bar starting at `ts` once the page has settled, checks
/// the readout against the rows in the files, and that moving the
/// crosshair did not redraw the chart.
fn check_hover(b: &Browser, addr: SocketAddr, dir: &Path, ts: i64) {
    settle(b, addr);
    let draws_before = b.state()["draws"].as_u64().unwrap();
    check_hover_values(b, dir, ts);
    assert_eq!(
        b.state()["draws"].as_u64().unwrap(),
        draws_before,
        "moving the crosshair must not redraw the chart"
    );
}

#[test]
fn viewer_page_draws_hovers_and_survives_a_viewer_restart() {
    let Some(b) = Browser::start(1600, 900) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut w = write_initial(dir.path(), 40);
    let mut v = ViewerProcess::start(dir.path(), 0);
    let port = v.addr.port();
    b.goto(&v.url());

    let s = b.wait_state("first draw of 40 bars", T, |s| {
        s["bars"] == 40 && s["draws"].as_u64() >= Some(1) && s["connection"] == "live"
    });
    assert_eq!(s["lastBarTs"].as_i64(), Some(bar(39).ts));
    assert!(s["lastDrawMs"].as_f64().unwrap() > 0.0);
    let header = b
        .exec(
            "return document.getElementById('header').textContent;",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    for part in [
        "BTC-USDT",
        "1m",
        "42.0%",
        "12.3k rows/s",
        "2022-05-13 14:05:00 UTC",
        "processor 1",
        "viewer 0",
        "live",
    ] {
        assert!(header.contains(part), "header {header:?} lacks {part:?}");
    }

    // Bars written over time are drawn as they come.
    for i in 40..45 {
        let draws = b.state()["draws"].as_u64().unwrap();
        add_bar(&mut w, i);
        let s = b.wait_state("the new bar drawn", T, |s| {
            s["lastBarTs"].as_i64() == Some(bar(i).ts)
        });
        assert!(s["draws"].as_u64().unwrap() > draws);
        assert_eq!(s["bars"].as_u64(), Some(i as u64 + 1));
    }

    check_hover(&b, v.addr, dir.path(), bar(30).ts);
    check_hover(&b, v.addr, dir.path(), bar(44).ts);

    // Kill -9 the viewer: the page says so and keeps its chart.
    let before = b.state();
    v.kill9();
    let s = b.wait_state("reconnecting", T, |s| s["connection"] == "reconnecting");
    assert_eq!(s["bars"], before["bars"], "the last chart stays");
    add_bar(&mut w, 45);
    add_bar(&mut w, 46);
    let conn = b.exec(
        "return document.getElementById('h-conn').textContent;",
        json!([]),
    );
    assert_eq!(conn, "reconnecting");

    // Started again on the same port: live again, newer bars, no reload.
    b.exec("window.__notReloaded = true;", json!([]));
    let _v2 = ViewerProcess::start(dir.path(), port);
    let s = b.wait_state("live with the bars written meanwhile", T, |s| {
        s["connection"] == "live" && s["lastBarTs"].as_i64() == Some(bar(46).ts)
    });
    assert_eq!(s["bars"], 47);
    add_bar(&mut w, 47);
    b.wait_state("a bar after the restart", T, |s| {
        s["lastBarTs"].as_i64() == Some(bar(47).ts)
    });
    assert_eq!(
        b.exec("return window.__notReloaded === true;", json!([])),
        Value::Bool(true),
        "the page was not reloaded"
    );
    if let Some(dir) = option_env!("CARGO_TARGET_TMPDIR") {
        b.screenshot(&Path::new(dir).join("viewer-e2e.png"));
    }
}

#[test]
fn viewer_page_shows_stale_data() {
    let Some(b) = Browser::start(1200, 700) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _w = write_initial(dir.path(), 20);
    let v = ViewerProcess::start(dir.path(), 0);
    b.goto(&v.url());
    b.wait_state("live", T, |s| s["connection"] == "live" && s["bars"] == 20);
    ipc::write_atomic(dir.path(), files::OHLC, b"[[1,2,3").unwrap();
    let s = b.wait_state("stale", T, |s| s["connection"] == "stale");
    assert_eq!(s["bars"], 20, "the last good chart stays");
    ipc::writer::write_json(dir.path(), files::OHLC, &[bar(0), bar(1)]).unwrap();
    b.wait_state("live again", T, |s| {
        s["connection"] == "live" && s["bars"] == 2
    });
}

/// Hovers over the bar starting at `ts` and checks the hover state and
/// the readout against the files (for a bar the writer no longer changes).
fn check_hover_values(b: &Browser, dir: &Path, ts: i64) {
    let x = b
        .exec("return window.orderflowBarX(arguments[0]);", json!([ts]))
        .as_f64()
        .unwrap();
    let y = b
        .exec("return window.orderflowPriceY();", json!([]))
        .as_f64()
        .unwrap();
    b.move_mouse(x, y);
    let s = b.wait_state("hover on the bar", T, |s| {
        s["hover"]["ts"].as_i64() == Some(ts)
    });
    let ohlc: Vec<OhlcRow> = ipc::read_json(&dir.join(files::OHLC)).unwrap();
    let metrics: Vec<MetricRow> = ipc::read_json(&dir.join(files::METRICS)).unwrap();
    let row = ohlc.iter().find(|r| r.ts == ts).expect("bar in file");
    let m = metrics.iter().find(|r| r.ts == ts).expect("metric in file");
    let shown: Vec<f64> = s["hover"]["ohlc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(
        shown,
        [
            row.ts as f64,
            row.open,
            row.high,
            row.low,
            row.close,
            row.volume
        ]
    );
    let shown_m: Vec<f64> = s["hover"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let cvd = m.cvd.expect("nine-column metrics");
    assert_eq!(
        shown_m,
        [
            m.ts as f64,
            m.obi[0],
            m.obi[1],
            m.obi[2],
            m.obi[3],
            cvd[0],
            cvd[1],
            cvd[2],
            cvd[3]
        ]
    );
    let text = b
        .exec(
            "return document.getElementById('readout').textContent;",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    let fmt = |v: f64| {
        b.exec(
            "return window.orderflowFormat.obi(arguments[0]);",
            json!([v]),
        )
        .as_str()
        .unwrap()
        .to_string()
    };
    let date = b.exec(
        "return new Date(arguments[0]).toISOString().slice(0,19).replace('T',' ');",
        json!([ts]),
    );
    let expected = [
        format!("{} UTC", date.as_str().unwrap()),
        format!("O {}", row.open),
        format!("H {}", row.high),
        format!("L {}", row.low),
        format!("C {}", row.close),
        format!("V {}", row.volume),
        format!("o {}", fmt(m.obi[0])),
        format!("h {}", fmt(m.obi[1])),
        format!("l {}", fmt(m.obi[2])),
        format!("c {}", fmt(m.obi[3])),
        format!("CVD {}", fmt(cvd[3])),
    ];
    for e in &expected {
        assert!(text.contains(e.as_str()), "readout {text:?} lacks {e:?}");
    }
}

/// 40 minutes of generated market on 2024-01-01 (`levels` per side) and
/// an empty `OUT` beside it: (the temp dir, the capture, `OUT`).
fn generated_replay(levels: usize) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = crate::harness::fast_tempdir();
    let db = dir.path().join("gen.db");
    let day = orderflow::synth::day_start_ms(chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
    let mut cfg = orderflow::synth::SynthConfig::new(day, 40 * 60_000);
    cfg.levels_per_side = levels;
    orderflow::synth::write_file(&db, &cfg).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    (dir, db, out)
}

/// The processor replaying `db` into `out` in 5 s bars at 25× market
/// speed: a new bar every 200 ms.
fn replay_5s_bars(db: &std::path::Path, out: &std::path::Path) -> KillOnDrop {
    KillOnDrop(
        crate::harness::replay("GEN", db, out, &["--window-seconds", "5", "--speed", "25"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start orderflow-processor"),
    )
}

#[test]
fn viewer_page_follows_a_processor_replay_across_a_viewer_restart() {
    let Some(b) = Browser::start(1600, 900) else {
        return;
    };
    let (_dir, db, out) = generated_replay(200);
    let mut v = ViewerProcess::start(&out, 0);
    let port = v.addr.port();
    b.goto(&v.url());
    let _processor = replay_5s_bars(&db, &out);
    let s = b.wait_state("bars forming", T, |s| {
        s["bars"].as_u64() >= Some(8)
            && s["connection"] == "live"
            && s["mode"] == "store"
            && s["historyBars"].is_u64()
            && s["fetching"] != true
            && s["stripping"] != true
    });
    assert_eq!(s["series"], "GEN/5s", "the store at the run's window");
    // Live bars come as stream diffs: no file is fetched for them.
    let fetched = |b: &Browser| {
        b.exec(
            "return performance.getEntriesByType('resource').filter(e => /\\/api\\/(ohlc|metrics|series\\/GEN\\/5s\\?)/.test(e.name)).map(e => e.name);",
            json!([]),
        )
    };
    let before = fetched(&b);
    let draws = s["draws"].as_u64().unwrap();
    let s2 = b.wait_state("more bars drawn", T, |x| {
        x["bars"].as_u64() >= Some(s["bars"].as_u64().unwrap() + 3)
    });
    assert!(s2["draws"].as_u64().unwrap() > draws);
    assert!(s2["streamEvents"].as_u64() > s["streamEvents"].as_u64());
    let after = fetched(&b);
    let (before, after) = (before.as_array().unwrap(), after.as_array().unwrap());
    // A stream that starts over (a `snapshot` after a reconnect, or a
    // `reset`) refetches the history strip, as it must; nothing else may
    // be fetched while following.
    let restarts = |x: &Value| {
        ["snapshots", "resets"]
            .iter()
            .map(|k| x[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let explained = restarts(&s2) - restarts(&s);
    assert!(
        after.len() as u64 <= before.len() as u64 + explained,
        "no whole-file or range refetch while following: {:?}\nbefore: {s}\nafter: {s2}",
        &after[before.len().min(after.len())..]
    );
    assert!(
        s2["freshnessMs"].as_f64().is_some_and(|ms| ms < 5_000.0),
        "{s2}"
    );
    let on_disk: Vec<OhlcRow> = ipc::read_json(&out.join(files::OHLC)).unwrap();
    assert!(
        s2["bars"].as_u64().unwrap() as usize <= on_disk.len(),
        "the page shows what the file holds"
    );
    let header = b
        .exec(
            "return document.getElementById('header').textContent;",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    for part in ["GEN", "5s", "rows/s", "2024-01-01", "running", "s old"] {
        assert!(header.contains(part), "header {header:?} lacks {part:?}");
    }

    // The heatmap and footprint follow the stream too: fetched once when
    // switched on, then grown by diffs with no refetch.
    let toggle = |b: &Browser| {
        b.exec(
            "for (const v of ['heatmap', 'footprint']) document.querySelector(`[data-view='${v}']`).click();",
            json!([]),
        )
    };
    let view_fetches = |b: &Browser| {
        b.exec(
            "return performance.getEntriesByType('resource').filter(e => /\\/api\\/series\\/GEN\\/(footprint|heatmap)/.test(e.name)).length;",
            json!([]),
        )
        .as_u64()
        .unwrap()
    };
    toggle(&b);
    let drawn = b.wait_state("views drawn", T, |s| {
        s["heatColumns"].as_u64() >= Some(3) && s["viewFetches"].as_u64() >= Some(1)
    });
    let fetches = view_fetches(&b);
    let columns = drawn["heatColumns"].as_u64().unwrap();
    b.wait_state("views grown by stream diffs", T, |s| {
        s["heatColumns"].as_u64() >= Some(columns + 3) && s["viewEvents"].as_u64() >= Some(6)
    });
    assert_eq!(view_fetches(&b), fetches, "no view refetch while following");
    toggle(&b);
    b.wait_state("views off", T, |s| s["heatColumns"] == 0.0);

    // Pan away from the live edge (arrow key), so bars hold still, then
    // hover an older bar, which the processor no longer changes.
    b.exec(
        "window.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowLeft'}));",
        json!([]),
    );
    b.wait_state("paused", T, |s| s["following"] == false);
    let rows: Vec<OhlcRow> = ipc::read_json(&out.join(files::OHLC)).unwrap();
    let old = rows[rows.len().saturating_sub(4)].ts;
    check_hover_values(&b, &out, old);
    // Wheel zoom and double-click back to following.
    let d = b.state()["draws"].as_u64().unwrap();
    b.exec("document.getElementById('overlay').dispatchEvent(new WheelEvent('wheel', {deltaY: 200, clientX: 400, clientY: 300, bubbles: true, cancelable: true}));", json!([]));
    b.wait_state("redraw after zoom", T, |s| s["draws"].as_u64() > Some(d));
    b.exec("document.getElementById('overlay').dispatchEvent(new MouseEvent('dblclick', {bubbles: true}));", json!([]));
    b.wait_state("following again", T, |s| s["following"] == true);

    // SIGKILL the viewer; the replay goes on; restart; the page catches up.
    let before = b.state();
    v.kill9();
    let s = b.wait_state("reconnecting", T, |s| s["connection"] == "reconnecting");
    assert!(
        s["bars"].as_u64() >= before["bars"].as_u64(),
        "the last chart stays"
    );
    b.exec("window.__notReloaded = true;", json!([]));
    let last_before = s["lastBarTs"].as_i64().unwrap();
    let _v2 = ViewerProcess::start(&out, port);
    b.wait_state("live again with newer bars", T, |s| {
        s["connection"] == "live" && s["lastBarTs"].as_i64() > Some(last_before + 10_000)
    });
    assert_eq!(
        b.exec("return window.__notReloaded === true;", json!([])),
        Value::Bool(true),
        "no reload"
    );
    if let Some(d) = option_env!("CARGO_TARGET_TMPDIR") {
        b.screenshot(&Path::new(d).join("viewer-processor.png"));
    }
}

#[test]
fn viewer_page_downsamples_when_bars_outnumber_pixels() {
    let Some(b) = Browser::start(700, 500) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _w = write_initial(dir.path(), 1000);
    let v = ViewerProcess::start(dir.path(), 0);
    b.goto(&v.url());
    let s = b.wait_state("drawn", T, |s| {
        s["bars"] == 1000 && s["connection"] == "live"
    });
    assert_eq!(
        s["downsampled"], false,
        "120 bars on screen: one candle each"
    );
    // Zoom all the way out: 1000 bars on a ~450 px wide plot.
    b.exec(
        "for (let i = 0; i < 30; i++) window.dispatchEvent(new KeyboardEvent('keydown', {key: '-'}));",
        json!([]),
    );
    let s = b.wait_state("downsampled", T, |s| s["downsampled"] == true);
    let width = b
        .exec("return document.getElementById('main').width;", json!([]))
        .as_u64()
        .unwrap();
    let drawn = s["drawnCandles"].as_u64().unwrap();
    assert!(
        drawn < 1000 && drawn <= width,
        "{drawn} candles on a {width} px canvas"
    );
    assert_eq!(s["bars"], 1000);
}

#[test]
fn viewer_page_pauses_steps_and_speeds_up_the_replay() {
    let Some(b) = Browser::start(1600, 900) else {
        return;
    };
    let (_dir, db, out) = generated_replay(100);
    let v = ViewerProcess::start(&out, 0);
    b.goto(&v.url());
    let _processor = replay_5s_bars(&db, &out);
    b.wait_state("bars forming", T, |s| {
        s["bars"].as_u64() >= Some(4) && s["speed"] == 25.0
    });
    let click = |what: &str| {
        b.exec(
            &format!("document.querySelector('button[data-control=\"{what}\"]').click();"),
            json!([]),
        )
    };
    click("pause");
    // Accepted (the POST's answer) and obeyed (status.json).
    b.wait_state("paused", T, |s| {
        s["paused"] == true && s["control"]["ok"] == true
    });
    // Held: once the page has caught up (a heartbeat later), the newest
    // bar stays while more heartbeats come in.
    let status = |b: &Browser| {
        b.exec(
            "return fetch('/api/status').then(r => r.json());",
            json!([]),
        )
    };
    let next_beat = |b: &Browser| {
        let beat = status(b)["heartbeat_ms"].clone();
        crate::harness::wait_until("a heartbeat", T, || {
            let s = status(b);
            (s["heartbeat_ms"] != beat && s["paused"] == true).then_some(())
        });
    };
    next_beat(&b);
    let held = b.wait_state("the last bar drawn", T, |s| s["lastBarTs"].is_i64());
    next_beat(&b);
    next_beat(&b);
    assert_eq!(
        b.state()["lastBarTs"],
        held["lastBarTs"],
        "a paused replay draws no new bar"
    );
    // One step: exactly one more bar.
    click("step");
    let want = held["lastBarTs"].as_i64().unwrap() + 5_000;
    b.wait_state("one more bar", T, |s| s["lastBarTs"].as_i64() == Some(want));
    // Speed from the selector, then play again.
    b.exec(
        "const s = document.querySelector('select[data-control=\"speed\"]'); s.value = '100'; \
         s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    b.wait_state("100x", T, |s| s["speed"] == 100.0);
    click("resume");
    b.wait_state("playing again", T, |s| {
        s["paused"] == false && s["lastBarTs"].as_i64() > Some(want + 10_000)
    });
    let header = b
        .exec(
            "return document.getElementById('h-replay').textContent;",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(header, "playing · 100×");
}
