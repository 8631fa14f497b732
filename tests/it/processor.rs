//! The processor binary on small hand-computed fixtures, bad input, and
//! concurrent readers.

use crate::harness::{
    fast_tempdir, json, processor, replay, temp_files, wait_for, Capture, KillOnDrop, TestCommand,
};
use orderflow::model::{Fixed, Level};
use orderflow::synth::{format_levels, LevelFormat, SynthConfig};
use serde_json::json as j;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// 2024-01-01 00:00:00 UTC.
const DAY: i64 = 1_704_067_200_000;

fn levels(pairs: &[(&str, &str)], format: LevelFormat) -> String {
    let l: Vec<Level> = pairs
        .iter()
        .map(|(p, s)| Level::new(Fixed::parse(p).unwrap(), Fixed::parse(s).unwrap()))
        .collect();
    format_levels(&l, format)
}

/// The fixture whose bars are computed by hand below.
fn fixture(path: &Path, format: LevelFormat) {
    let c = Capture::create(path);
    let f = |p: &[(&str, &str)]| levels(p, format);
    c.book(
        DAY + 1000,
        &f(&[("100", "2"), ("99", "1")]),
        &f(&[("101", "1"), ("102", "3")]),
    );
    c.trade(DAY + 1200, 101.0, 0.5, "buy");
    c.book(DAY + 1500, &f(&[("100", "0")]), &f(&[("101", "2")]));
    c.trade(DAY + 1500, 100.0, 0.25, "sell");
    c.book(DAY + 2100, &f(&[("99.5", "3")]), &f(&[]));
    c.trade(DAY + 2500, 99.5, 1.0, "block");
}

fn run_fixture(db: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    replay(
        "FIX-USDT",
        db,
        out,
        &[&["--window-seconds", "1"], extra].concat(),
    )
    .output()
    .unwrap()
}

#[test]
fn hand_computed_files_for_every_level_format() {
    // Window 1000: after book 1 B=3 A=4 → OBI −1/7; trade +0.5; book 2 B=1
    // A=5 → −2/3; trade −0.25 (book first on the tie at 1500).
    // Window 2000: book 3 B=4 A=5 → −1/9; a trade of unknown side.
    let w1 = DAY + 1000;
    let w2 = DAY + 2000;
    let ohlc = j!([
        [w1, 101.0, 101.0, 100.0, 100.0, 0.75],
        [w2, 99.5, 99.5, 99.5, 99.5, 1.0]
    ]);
    let metrics = j!([
        [
            w1,
            -1.0 / 7.0,
            -1.0 / 7.0,
            -2.0 / 3.0,
            -2.0 / 3.0,
            0.0,
            0.5,
            0.0,
            0.25
        ],
        [
            w2,
            -1.0 / 9.0,
            -1.0 / 9.0,
            -1.0 / 9.0,
            -1.0 / 9.0,
            0.25,
            0.25,
            0.25,
            0.25
        ]
    ]);
    let depth = j!({"bids": [[99.5, 3.0], [99.0, 1.0]], "asks": [[101.0, 2.0], [102.0, 3.0]]});
    for format in LevelFormat::ALL {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fix.db");
        fixture(&db, format);
        let out = dir.path().join("out");
        let run = run_fixture(&db, &out, &[]);
        assert!(
            run.status.success(),
            "{format:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let num = |v: serde_json::Value| serde_json::to_string(&v).unwrap();
        assert_eq!(
            num(json(&out.join("ohlc_data.json"))),
            num(ohlc.clone()),
            "{format:?}"
        );
        assert_eq!(
            num(json(&out.join("metrics_data.json"))),
            num(metrics.clone()),
            "{format:?}"
        );
        assert_eq!(
            num(json(&out.join("depth_data.json"))),
            num(depth.clone()),
            "{format:?}"
        );
        let status = json(&out.join("status.json"));
        assert_eq!(status["state"], "finished");
        assert_eq!(status["rows_done"], 6);
        assert_eq!(status["warnings"], 1, "the unknown side is a warning");
        assert_eq!(temp_files(&out), Vec::<String>::new());
    }
}

#[test]
fn depth_and_obi_levels_limit_what_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fix.db");
    fixture(&db, LevelFormat::JsonNumbers);
    let out = dir.path().join("out");
    let run = run_fixture(&db, &out, &["--depth-levels", "1", "--obi-levels", "1"]);
    assert!(run.status.success());
    assert_eq!(
        json(&out.join("depth_data.json")),
        j!({"bids": [[99.5, 3.0]], "asks": [[101.0, 2.0]]})
    );
    // Best level only: after book 1 B=2 A=1 → 1/3.
    assert_eq!(json(&out.join("metrics_data.json"))[0][1], j!(1.0 / 3.0));
}

/// Output files before a run that must not touch them.
fn seed_output(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::create_dir_all(out).unwrap();
    [
        "ohlc_data.json",
        "metrics_data.json",
        "depth_data.json",
        "status.json",
    ]
    .iter()
    .map(|n| {
        let p = out.join(n);
        let bytes = format!("[\"kept {n}\"]").into_bytes();
        std::fs::write(&p, &bytes).unwrap();
        (p, bytes)
    })
    .collect()
}

fn assert_fails_leaving_output(args: &[&str], out: &Path, message: &str) {
    let seeded = seed_output(out);
    let run = processor(args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "should fail: {args:?}");
    assert!(
        stderr.contains(message),
        "stderr should say {message:?}: {stderr}"
    );
    for (p, bytes) in seeded {
        assert_eq!(
            std::fs::read(&p).unwrap(),
            bytes,
            "{} must be left as it was",
            p.display()
        );
    }
}

#[test]
fn bad_rows_are_skipped_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let c = Capture::create(&db);
    c.book(DAY + 10, "[[100, 1]]", "[[101, 1]]");
    c.book(DAY + 20, "[[100, 1", "[]"); // unparseable
    c.book(DAY + 30, "[[NaN, 1]]", "[]"); // non-finite price
    c.book(DAY + 40, "[]", "[[-101, 1]]"); // negative price
    c.conn // a price that is not a number, and an infinite one
        .execute_batch(&format!(
            "INSERT INTO trades(trade_id, price, size, side, timestamp) VALUES (1, 'abc', 1, 'buy', {});
             INSERT INTO trades(trade_id, price, size, side, timestamp) VALUES (1, 9e999, 1, 'buy', {});",
            DAY + 50,
            DAY + 55
        ))
        .unwrap();
    c.trade(DAY + 60, -5.0, 1.0, "buy"); // negative trade price
    c.trade(DAY + 70, 100.0, 2.0, "BUY"); // unknown side: kept, warned
    c.book(DAY + 80, "[[100, 3]]", "[]");
    let out = dir.path().join("out");
    let run = run_fixture(&db, &out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("book row id 2") && stderr.contains("byte"),
        "{stderr}"
    );
    assert!(
        stderr.contains("book row id 3") && stderr.contains("not a finite number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("book row id 4") && stderr.contains("negative price"),
        "{stderr}"
    );
    assert!(stderr.contains("trades row id 1: price NaN"), "{stderr}");
    assert!(stderr.contains("trades row id 2: price inf"), "{stderr}");
    assert!(stderr.contains("trades row id 3: price -5"), "{stderr}");
    let status = json(&out.join("status.json"));
    assert_eq!(status["skipped_rows"], 6, "{status}");
    assert_eq!(status["warnings"], 1);
    // The good rows are all there: the unknown-side trade is a bar, the
    // book ended with bid 3 @ 100 and ask 1 @ 101.
    assert_eq!(
        json(&out.join("ohlc_data.json")),
        j!([[DAY, 100.0, 100.0, 100.0, 100.0, 2.0]])
    );
    assert_eq!(
        json(&out.join("depth_data.json")),
        j!({"bids": [[100.0, 3.0]], "asks": [[101.0, 1.0]]})
    );
    assert_eq!(json(&out.join("metrics_data.json"))[0][4], j!(0.5));
}

#[test]
fn files_that_cannot_be_read_stop_the_run_and_keep_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    // Missing table.
    let db = dir.path().join("notrades.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE book(id INTEGER PRIMARY KEY, bids TEXT, asks TEXT, timestamp INTEGER);",
        )
        .unwrap();
    let d = db.to_str().unwrap();
    assert_fails_leaving_output(
        &["X", "2024-01-01", "2024-01-01", "--db", d, "--out", o],
        &out,
        "has no table `trades`",
    );
    // Not SQLite at all.
    let text = dir.path().join("text.db");
    std::fs::write(&text, "hello, this is not a database\n".repeat(200)).unwrap();
    let t = text.to_str().unwrap();
    assert_fails_leaving_output(
        &["X", "2024-01-01", "2024-01-01", "--db", t, "--out", o],
        &out,
        "is not an SQLite database",
    );
    // Truncated.
    let full = dir.path().join("full.db");
    let mut cfg = SynthConfig::new(DAY, 120_000);
    cfg.levels_per_side = 50;
    orderflow::synth::write_file(&full, &cfg).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let c = cut.to_str().unwrap();
    assert_fails_leaving_output(
        &["X", "2024-01-01", "2024-01-01", "--db", c, "--out", o],
        &out,
        "truncated",
    );
    // Missing file.
    let gone = dir.path().join("gone.db");
    let g = gone.to_str().unwrap();
    assert_fails_leaving_output(
        &["X", "2024-01-01", "2024-01-01", "--db", g, "--out", o],
        &out,
        "gone.db",
    );
}

#[test]
fn arguments_and_selection_errors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    fixture(
        &root.join("FIX-USDT-2024-01-01.db"),
        LevelFormat::OkxStrings,
    );
    let r = root.to_str().unwrap();
    assert_fails_leaving_output(
        &[
            "FIX-USDT",
            "2024-01-02",
            "2024-01-01",
            "--data-root",
            r,
            "--out",
            o,
        ],
        &out,
        "END_DATE 2024-01-01 is before START_DATE 2024-01-02",
    );
    assert_fails_leaving_output(
        &[
            "FIX-USDT-SWAP",
            "2024-01-01",
            "2024-01-01",
            "--data-root",
            r,
            "--out",
            o,
        ],
        &out,
        "no capture file for FIX-USDT-SWAP",
    );
    assert_fails_leaving_output(
        &[
            "FIX-USDT",
            "2024-02-01",
            "2024-02-03",
            "--data-root",
            r,
            "--out",
            o,
        ],
        &out,
        "no capture file for FIX-USDT from 2024-02-01 to 2024-02-03",
    );
    assert_fails_leaving_output(
        &[
            "FIX-USDT",
            "2024-01-01",
            "2024-01-01",
            "--data-root",
            "/nonexistent",
            "--out",
            o,
        ],
        &out,
        "ORDERFLOW_DATA_ROOT",
    );
    // The environment variable is the default data root.
    let run = TestCommand::processor()
        .args(["FIX-USDT", "2024-01-01", "2024-01-01", "--out", o])
        .env("ORDERFLOW_DATA_ROOT", r)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn a_locked_or_unwritable_output_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fix.db");
    fixture(&db, LevelFormat::OkxStrings);
    let d = db.to_str().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let lock =
        orderflow::ipc::DirLock::acquire(&out, orderflow::ipc::files::WRITER_LOCK, "test writer")
            .unwrap();
    assert_fails_leaving_output(
        &["X", "2024-01-01", "2024-01-01", "--db", d, "--out", o],
        &out,
        "already in use",
    );
    drop(lock);
    // A directory that cannot be created (its parent is a file).
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("out");
    let run = processor(&[
        "X",
        "2024-01-01",
        "2024-01-01",
        "--db",
        d,
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("cannot create output directory") && stderr.contains("plain-file/out"),
        "{stderr}"
    );
}

#[test]
fn tables_out_of_timestamp_order_give_the_sorted_result() {
    let dir = tempfile::tempdir().unwrap();
    // The same rows, once in timestamp order and once shuffled by id.
    let sorted = dir.path().join("sorted.db");
    let shuffled = dir.path().join("shuffled.db");
    let rows: Vec<(i64, String, String)> = (0..300)
        .map(|i| {
            let p = 100 + (i * 7919) % 13;
            (
                DAY + i * 37,
                format!("[[{p}, {}]]", 1 + i % 5),
                format!("[[{}, {}]]", p + 20, 1 + i % 3),
            )
        })
        .collect();
    let trades: Vec<(i64, f64, &str)> = (0..200)
        .map(|i| {
            (
                DAY + i * 53 + 1,
                100.0 + (i % 9) as f64,
                if i % 3 == 0 { "sell" } else { "buy" },
            )
        })
        .collect();
    let a = Capture::create(&sorted);
    for (ts, b, s) in &rows {
        a.book(*ts, b, s);
    }
    for (ts, p, side) in &trades {
        a.trade(*ts, *p, 0.5, side);
    }
    let b = Capture::create(&shuffled);
    // Same first (snapshot) row; the rest out of order by id.
    b.book(rows[0].0, &rows[0].1, &rows[0].2);
    let mut rest: Vec<usize> = (1..rows.len()).collect();
    rest.sort_by_key(|i| (i * 7) % 11);
    for i in rest {
        b.book(rows[i].0, &rows[i].1, &rows[i].2);
    }
    for (ts, p, side) in trades.iter().rev() {
        b.trade(*ts, *p, 0.5, side);
    }
    let out_a = dir.path().join("a");
    let out_b = dir.path().join("b");
    for (db, out) in [(&sorted, &out_a), (&shuffled, &out_b)] {
        let run = run_fixture(db, out, &[]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    for f in ["ohlc_data.json", "metrics_data.json", "depth_data.json"] {
        assert_eq!(json(&out_a.join(f)), json(&out_b.join(f)), "{f}");
    }
}

#[test]
fn readers_never_see_a_partial_file_while_the_processor_rewrites_them() {
    let dir = fast_tempdir();
    let db = dir.path().join("gen.db");
    let mut cfg = SynthConfig::new(DAY, 20 * 60_000);
    cfg.levels_per_side = 100;
    orderflow::synth::write_file(&db, &cfg).unwrap();
    let out = dir.path().join("out");
    // Flush every millisecond at 200× market speed: thousands of rewrites.
    let spawn = |extra: &[&str]| {
        let every_ms = [
            "--window-seconds",
            "5",
            "--flush-ms",
            "1",
            "--speed",
            "200",
            "--max-bars",
            "50",
        ];
        let child = replay("GEN", &db, &out, &[&every_ms[..], extra].concat())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        KillOnDrop(child)
    };
    let child = spawn(&[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = [
        "ohlc_data.json",
        "metrics_data.json",
        "depth_data.json",
        "status.json",
    ]
    .into_iter()
    .map(|name| {
        let path = out.join(name);
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut reads, mut failures, mut changes) = (0u64, 0u64, 0u64);
            let mut last = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        reads += 1;
                        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
                            failures += 1;
                        }
                        if bytes != last {
                            changes += 1;
                            last = bytes;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("{e}"),
                }
            }
            (reads, failures, changes)
        })
    })
    .collect();
    // Run to the end (a few seconds), counting the rewrites the readers saw.
    let finished = wait_for(Duration::from_secs(60), || {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("status.json")).ok()?).ok()?;
        (s["state"] == "finished").then_some(())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(finished.is_some(), "the processor finished");
    let (mut total, mut changes) = (0, 0);
    for r in readers {
        let (reads, failures, changed) = r.join().unwrap();
        assert_eq!(failures, 0, "partial or mixed files seen");
        total += reads;
        changes += changed;
    }
    assert!(
        changes >= 2000,
        "readers saw only {changes} rewrites in {total} reads"
    );
    // Killed mid-run (a second run, SIGKILLed): every file still parses.
    drop(child);
    let mut child = spawn(&["--fresh"]);
    wait_for(Duration::from_secs(20), || {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("status.json")).ok()?).ok()?;
        (s["state"] == "running" && s["rows_done"].as_u64()? > 2000).then_some(())
    })
    .expect("the second run got going");
    // SIGKILL mid-run: every file still parses.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    for name in [
        "ohlc_data.json",
        "metrics_data.json",
        "depth_data.json",
        "status.json",
        "checkpoint.json",
    ] {
        json(&out.join(name));
    }
    // A stray temp file of a dead writer does not survive the next start.
    std::fs::write(out.join(".ohlc_data.json.2147483632.1.tmp"), b"[1,").unwrap();
    let run = replay(
        "GEN",
        &db,
        &out,
        &["--window-seconds", "5", "--max-bars", "50"],
    )
    .output()
    .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(temp_files(&out), Vec::<String>::new());
}

#[test]
fn a_paced_replay_follows_market_time_and_keeps_its_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gen.db");
    // 60 s of market time at 30× must take at least 2 s of wall time.
    let mut cfg = SynthConfig::new(DAY, 60_000);
    cfg.levels_per_side = 50;
    orderflow::synth::write_file(&db, &cfg).unwrap();
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let child = replay(
        "GEN",
        &db,
        &out,
        &[
            "--speed",
            "30",
            "--window-seconds",
            "5",
            "--flush-ms",
            "2000",
        ],
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut child = KillOnDrop(child);
    // Watch the heartbeat: with --flush-ms 2000 it must still be refreshed
    // at least once a second, and market time must never run ahead of
    // wall time × speed.
    let mut beats = Vec::new();
    let mut first_market: Option<i64> = None;
    while child.0.try_wait().unwrap().is_none() {
        if let Ok(bytes) = std::fs::read(out.join("status.json")) {
            let s: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let beat = s["heartbeat_ms"].as_i64().unwrap();
            if beats.last() != Some(&beat) && s["state"] == "running" {
                beats.push(beat);
            }
            if let Some(m) = s["market_time_ms"].as_i64() {
                let m0 = *first_market.get_or_insert(m);
                let allowed = started.elapsed().as_millis() as i64 * 30 + 1_000;
                assert!(
                    m - m0 <= allowed,
                    "market time ran ahead: {} ms in {:?}",
                    m - m0,
                    started.elapsed()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.0.wait().unwrap().success());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "60 s at 30× took only {took:?}"
    );
    assert!(beats.len() >= 3, "heartbeats seen: {beats:?}");
    let max_gap = beats.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(max_gap <= 1000, "heartbeat gap {max_gap} ms");
    assert_eq!(json(&out.join("status.json"))["state"], "finished");
}

#[test]
fn an_absurdly_slow_replay_waits_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fix.db");
    fixture(&db, LevelFormat::OkxStrings);
    let out = dir.path().join("out");
    // The second row is due after more time than a clock can represent.
    let child = replay("FIX-USDT", &db, &out, &["--speed", "1e-300"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    wait_for(Duration::from_secs(10), || {
        let s = std::fs::read(out.join("status.json")).ok()?;
        let s: serde_json::Value = serde_json::from_slice(&s).ok()?;
        (s["state"] == "running" && s["rows_done"].as_u64() >= Some(1)).then_some(())
    })
    .expect("the replay runs and waits");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "it must still be waiting"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_for(Duration::from_secs(5), || child.0.try_wait().unwrap())
        .expect("it stops on SIGTERM");
    assert_eq!(status.code(), Some(130));
    let s = json(&out.join("status.json"));
    assert_eq!(s["state"], "stopped");
}
