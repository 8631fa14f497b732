//! The viewer benchmark (ignored in normal runs; `scripts/bench-viewer`
//! runs it): change-to-page latency, full redraw time, crosshair move
//! time, and the viewer's memory while serving, in headless Chromium.

use super::browser::{write_initial, ViewerProcess};
use super::http::{bar, metric};
use super::webdriver::Browser;
use orderflow::ipc::{self, files, OhlcRow};
use serde_json::json;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Writes `rows` as `ohlc_data.json` the atomic way and returns the wall
/// clock at the rename (temp file already written and fsynced).
fn write_timed(dir: &Path, rows: &[OhlcRow]) -> f64 {
    let tmp = dir.join(format!(".{}.{}.bench.tmp", files::OHLC, std::process::id()));
    let mut f = File::create(&tmp).unwrap();
    f.write_all(&serde_json::to_vec(rows).unwrap()).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let t = wall_ms();
    std::fs::rename(&tmp, dir.join(files::OHLC)).unwrap();
    t
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
#[ignore = "benchmark: run by scripts/bench-viewer"]
fn viewer_bench() {
    let Some(b) = Browser::start(1600, 900) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let w = write_initial(dir.path(), 1000);
    let v = ViewerProcess::start(dir.path(), 0);
    b.goto(&v.url());
    b.wait_state("1000 bars drawn", Duration::from_secs(30), |s| {
        s["bars"] == 1000 && s["connection"] == "live"
    });
    // Show all 1000 bars in all panes.
    b.exec("for (let i = 0; i < 12; i++) window.dispatchEvent(new KeyboardEvent('keydown', {key: '-'}));", json!([]));
    b.wait_state("redraw", Duration::from_secs(10), |s| {
        s["draws"].as_u64() >= Some(2)
    });

    // Full redraw of 1000 bars at 1600×900.
    let redraws: Vec<f64> = serde_json::from_value(b.exec(
        "const t = []; for (let i = 0; i < 60; i++) t.push(window.orderflowRedraw()); return t;",
        json!([]),
    ))
    .unwrap();
    let redraws = sorted(redraws[10..].to_vec());

    // Crosshair moves across the chart.
    let hovers: Vec<f64> = serde_json::from_value(b.exec(
        "const ov = document.getElementById('overlay'); const r = ov.getBoundingClientRect(); const t = [];
         for (let i = 0; i < 300; i++) {
           ov.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 20 + (i * 37) % (r.width - 120), clientY: r.top + r.height * 0.3, bubbles: true}));
           t.push(window.orderflowState.lastHoverMs);
         }
         return t;",
        json!([]),
    ))
    .unwrap();
    let hovers = sorted(hovers[20..].to_vec());
    b.exec(
        "document.getElementById('overlay').dispatchEvent(new MouseEvent('mouseleave'));",
        json!([]),
    );

    // Change-to-page: rename of ohlc_data.json → redraw finished, both on
    // the wall clock (browser: performance.timeOrigin + now()).
    drop(w);
    let mut rows: Vec<OhlcRow> = ipc::read_json(&dir.path().join(files::OHLC)).unwrap();
    let _ = metric; // metrics unchanged: only the OHLC file changes here
    let mut latencies = Vec::new();
    for i in 1000..1060 {
        rows.remove(0);
        rows.push(bar(i));
        let ts = bar(i).ts;
        let t_rename = write_timed(dir.path(), &rows);
        let done = b.wait_state("the new bar drawn", Duration::from_secs(10), |s| {
            s["lastBarTs"].as_i64() == Some(ts)
        });
        let log = done["drawLog"].as_array().unwrap();
        let entry = log
            .iter()
            .find(|e| e["lastBarTs"].as_i64() == Some(ts))
            .unwrap();
        latencies.push(entry["doneMs"].as_f64().unwrap() - t_rename);
    }
    let latencies = sorted(latencies[5..].to_vec());
    let rss = rss_kib(v.child.id()).unwrap_or(0);

    println!("viewer bench (1600x900, 1000 bars, headless Chromium, median of runs):");
    println!("  change-to-page latency   median {:6.1} ms   p99 {:6.1} ms   (n={}; target median < 50, p99 < 150)", pct(&latencies, 0.5), pct(&latencies, 0.99), latencies.len());
    println!(
        "  full redraw, all panes   median {:6.2} ms   p99 {:6.2} ms   (n={}; target median < 16)",
        pct(&redraws, 0.5),
        pct(&redraws, 0.99),
        redraws.len()
    );
    println!(
        "  crosshair move           median {:6.3} ms   p99 {:6.3} ms   (n={}; target < 2)",
        pct(&hovers, 0.5),
        pct(&hovers, 0.99),
        hovers.len()
    );
    println!("  viewer RSS while serving {:6.1} MiB", rss as f64 / 1024.0);
    if let Some(d) = option_env!("CARGO_TARGET_TMPDIR") {
        b.screenshot(&Path::new(d).join("viewer-bench.png"));
    }
}
