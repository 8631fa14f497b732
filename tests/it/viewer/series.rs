//! The series API and the live stream against a real viewer: every range
//! of every series equals the segment files, merged timeframes equal an
//! independent merge, `max_bars` picks the smallest window that fits, bad
//! requests are named; stream subscribers (and one that never reads)
//! rebuild the final store from snapshot + diffs, also after reconnecting
//! with `Last-Event-ID`.

use super::browser::ViewerProcess;
use super::client::{get, wait_for, Sse};
use super::http::TestViewer;
use crate::harness::{fast_tempdir, json, PROCESSOR};
use crate::store::{args, generate, run_ok, OTHER, PRIMARY};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every stored bar of `id`, read from the segment files.
fn segment_bars(out: &Path, id: &str) -> Vec<Value> {
    let index = json(&out.join("series/index.json"));
    let entry = index["series"]
        .as_array()
        .unwrap()
        .iter()
        .chain(index["views"].as_array().unwrap())
        .find(|e| e["id"] == id)
        .unwrap()
        .clone();
    let mut bars = Vec::new();
    for s in entry["segments"].as_array().unwrap() {
        let seg = json(&out.join(format!("series/{id}/{s}.json")));
        bars.extend(seg["bars"].as_array().unwrap().iter().cloned());
    }
    bars
}

/// Merges 14-column bars into windows of `w` ms, written out plainly.
fn merge(bars: &[Value], w: i64) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for b in bars {
        let ts = b[0].as_i64().unwrap().div_euclid(w) * w;
        let same = out.last().is_some_and(|l| l[0].as_i64() == Some(ts));
        if !same {
            let mut first = b.clone();
            first[0] = json!(ts);
            out.push(first);
            continue;
        }
        let m = out.last_mut().unwrap();
        let f = |v: &Value| v.as_f64().unwrap();
        if !b[1].is_null() {
            if m[1].is_null() {
                for i in 1..=4 {
                    m[i] = b[i].clone();
                }
            } else {
                m[2] = json!(f(&m[2]).max(f(&b[2])));
                m[3] = json!(f(&m[3]).min(f(&b[3])));
                m[4] = b[4].clone();
            }
        }
        // Sums of f64 would drift; the store sums exactly, so sum the
        // decimals as integers of 1e-8.
        let units = |v: &Value| (f(v) * 1e8).round() as i64;
        m[5] = json!((units(&m[5]) + units(&b[5])) as f64 / 1e8);
        for base in [6, 10] {
            m[base + 1] = json!(f(&m[base + 1]).max(f(&b[base + 1])));
            m[base + 2] = json!(f(&m[base + 2]).min(f(&b[base + 2])));
            m[base + 3] = b[base + 3].clone();
        }
    }
    out
}

fn range(addr: std::net::SocketAddr, path: &str) -> Value {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn series_api_serves_every_range_exactly() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 25);
    let out = dir.path().join("out");
    run_ok(&args(&files, &out, &[]));
    let v = TestViewer::start(&out);
    let addr = v.addr;
    assert_eq!(
        range(addr, "/api/series"),
        json(&out.join("series/index.json"))
    );

    let index = json(&out.join("series/index.json"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for e in index["series"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        let stored = segment_bars(&out, id);
        let all = range(addr, &format!("/api/series/{id}"));
        assert_eq!(all["series"], id);
        assert_eq!(all["window_ms"], e["window_ms"]);
        assert_eq!(
            all["bars"].as_array().unwrap(),
            &stored,
            "{id}: whole range"
        );
        let (first, last) = (
            e["first_ts"].as_i64().unwrap(),
            e["last_ts"].as_i64().unwrap(),
        );
        for _ in 0..15 {
            let a = rng.gen_range(first - 5_000..=last + 5_000);
            let b = rng.gen_range(a..=last + 10_000);
            let got = range(addr, &format!("/api/series/{id}?from={a}&to={b}"));
            let want: Vec<Value> = stored
                .iter()
                .filter(|x| (a..b).contains(&x[0].as_i64().unwrap()))
                .cloned()
                .collect();
            assert_eq!(got["bars"].as_array().unwrap(), &want, "{id} {a}..{b}");
            assert_eq!(
                (got["from"].as_i64(), got["to"].as_i64()),
                (Some(a), Some(b))
            );
        }
    }
    // Timeframes merged from stored ones, checked against a plain merge of
    // the stored 1 s bars: whole windows from `from` on.
    let one_s = segment_bars(&out, &format!("{PRIMARY}/1s"));
    for (tf, w) in [
        ("5m", 300_000),
        ("3s", 3_000),
        ("14s", 14_000),
        ("2m", 120_000),
    ] {
        let got = range(addr, &format!("/api/series/{PRIMARY}/{tf}"));
        assert_eq!(got["window_ms"], w, "{tf}");
        assert_eq!(got["bars"].as_array().unwrap(), &merge(&one_s, w), "{tf}");
        let (a, b) = (DAY + 61_000, DAY + 1_000_000);
        let got = range(addr, &format!("/api/series/{PRIMARY}/{tf}?from={a}&to={b}"));
        let lo = (a + w - 1).div_euclid(w) * w;
        let hi = (b + w - 1).div_euclid(w) * w;
        let inside: Vec<Value> = one_s
            .iter()
            .filter(|x| (lo..hi).contains(&x[0].as_i64().unwrap()))
            .cloned()
            .collect();
        assert_eq!(
            got["bars"].as_array().unwrap(),
            &merge(&inside, w),
            "{tf} {a}..{b}"
        );
    }
    // max_bars: the smallest multiple of the timeframe whose bars fit.
    for max in [100usize, 333, 1499] {
        let got = range(addr, &format!("/api/series/{PRIMARY}/1s?max_bars={max}"));
        let w = got["window_ms"].as_i64().unwrap();
        assert_eq!(w % 1000, 0);
        let bars = got["bars"].as_array().unwrap();
        assert!(bars.len() <= max, "{} bars > {max}", bars.len());
        assert_eq!(bars, &merge(&one_s, w));
        if w > 1000 {
            assert!(
                merge(&one_s, w - 1000).len() > max,
                "{} would fit {max}",
                w - 1000
            );
        }
    }
    // Bad requests, named.
    for (path, code, says) in [
        ("/api/series/NOPE/1m", 404, "unknown series NOPE/1m"),
        ("/api/series/GEN-USDT/7x", 400, "\"7x\" is not a timeframe"),
        (
            "/api/series/GEN-USDT/1m?from=abc",
            400,
            "from \"abc\" is not a whole number",
        ),
        (
            "/api/series/GEN-USDT/1m?from=10&to=5",
            400,
            "to (5) is before from (10)",
        ),
        (
            "/api/series/GEN-USDT/1m?max_bars=0",
            400,
            "max_bars must be from 1 to 100000",
        ),
        (
            "/api/series/GEN-USDT/1m?max_bars=100000000",
            400,
            "max_bars must be from 1 to 100000",
        ),
        ("/api/stream?series=NOPE/1m", 404, "unknown series NOPE/1m"),
        (
            "/api/stream?series=NOPE-USDT/heatmap",
            404,
            "no heatmap of NOPE-USDT",
        ),
        (
            "/api/stream?series=GEN-USDT",
            400,
            "is not INSTRUMENT/TIMEFRAME",
        ),
        ("/api/stream", 400, "names no series"),
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, code, "{path}: {}", r.text());
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
}

const DAY: i64 = 1_704_067_200_000;

/// Upserts the bars of a `snapshot`, `reset` or `bars` event.
fn apply(state: &mut BTreeMap<String, BTreeMap<i64, Value>>, ev: &Value) {
    let series = ev["series"].as_str().unwrap().to_string();
    if series.ends_with("/footprint") && ev["bars"].as_array().is_some_and(|b| !b.is_empty()) {
        assert!(ev["tick"].as_f64().is_some_and(|t| t > 0.0), "{ev}");
        assert_eq!(ev["window_ms"], crate::store::VIEW_MS, "{ev}");
    }
    let bars = state.entry(series).or_default();
    for b in ev["bars"].as_array().unwrap() {
        bars.insert(b[0].as_i64().unwrap(), b.clone());
    }
}

/// Stored, merged, and the footprint and heatmap (stored as they are).
const SUBSCRIBED: [&str; 5] = [
    "GEN-USDT/1s",
    "ALT-USDT/1m",
    "GEN-USDT/5m",
    "GEN-USDT/footprint",
    "ALT-USDT/heatmap",
];

/// Whether `state` holds exactly the final bars of every subscribed series
/// (or view) from its first bar on.
fn rebuilt(addr: std::net::SocketAddr, state: &BTreeMap<String, BTreeMap<i64, Value>>) -> bool {
    SUBSCRIBED.iter().all(|id| {
        let Some(mine) = state.get(*id) else {
            return false;
        };
        let Some((&first, _)) = mine.iter().next() else {
            return false;
        };
        let want = range(addr, &format!("/api/series/{id}?from={first}"));
        let got: Vec<&Value> = mine.values().collect();
        want["bars"].as_array().unwrap().iter().collect::<Vec<_>>() == got
    })
}

#[test]
fn stream_subscribers_rebuild_the_store_from_snapshot_and_diffs() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 8);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // `--out out`, relative, as users type it: the store's watch must
    // still match the paths it reports.
    let viewer = ViewerProcess::start_in(dir.path(), Path::new("out"), 0);
    let addr = viewer.addr;
    let argv = args(&files, &out, &["--speed", "120", "--flush-ms", "20"]);
    let mut proc = crate::harness::KillOnDrop(
        std::process::Command::new(PROCESSOR)
            .args(&argv)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Subscriptions name series the store has: wait for its index.
    wait_for("the store's index", Duration::from_secs(20), || {
        let r = get(addr, "/api/series");
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        (v["series"].as_array()?.len() == 10).then_some(())
    });
    let path = format!("/api/stream?series={}", SUBSCRIBED.join(","));
    let clients: Vec<Sse> = (0..100).map(|_| Sse::connect_to(addr, &path, "")).collect();
    // One that never reads a byte.
    let mut stuck = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stuck,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
        addr.port()
    )
    .unwrap();
    // One that goes away and comes back with Last-Event-ID.
    let leaving = Sse::connect_to(addr, &path, "");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut states: Vec<BTreeMap<String, BTreeMap<i64, Value>>> =
        vec![BTreeMap::new(); clients.len()];
    let mut statuses = 0;
    let mut live_bars = 0;
    let mut first_names = Vec::new();
    // The leaving client: its snapshot and a few events, then it is gone.
    let mut left_state = BTreeMap::new();
    let mut last_id = None;
    for _ in 0..6 {
        let ev = leaving.next(deadline).expect("events before leaving");
        if ev.name != "status" {
            apply(&mut left_state, &ev.data);
        }
        last_id = ev.id.clone();
    }
    drop(leaving);
    let finished = loop {
        for (c, state) in clients.iter().zip(states.iter_mut()) {
            while let Some(ev) = c.next(Instant::now() + Duration::from_millis(1)) {
                if first_names.len() < SUBSCRIBED.len() {
                    first_names.push(ev.name.clone());
                }
                match ev.name.as_str() {
                    "status" => statuses += 1,
                    "bars" => {
                        live_bars += 1;
                        apply(state, &ev.data)
                    }
                    "snapshot" | "reset" => apply(state, &ev.data),
                    other => panic!("unexpected event {other}"),
                }
            }
        }
        if let Some(s) = proc.0.try_wait().unwrap() {
            assert!(s.success());
            break true;
        }
        assert!(Instant::now() < deadline, "the replay did not finish");
    };
    assert!(finished);
    assert_eq!(first_names, ["snapshot"; SUBSCRIBED.len()]);
    // Diffs arrive as the replay writes (about 650 a subscriber here), not
    // only from the backup poll once it goes quiet (10 a subscriber when
    // the watch's paths did not match a relative --out).
    assert!(
        live_bars >= 50 * clients.len(),
        "{live_bars} bars events during the replay"
    );
    // After the last write, every subscriber catches up.
    for (i, (c, state)) in clients.iter().zip(states.iter_mut()).enumerate() {
        wait_for(
            &format!("subscriber {i} to rebuild the store"),
            Duration::from_secs(10),
            || {
                while let Some(ev) = c.next(Instant::now() + Duration::from_millis(5)) {
                    match ev.name.as_str() {
                        "status" => statuses += 1,
                        _ => apply(state, &ev.data),
                    }
                }
                rebuilt(addr, state).then_some(())
            },
        );
    }
    assert!(statuses > 0, "status events");
    // The one that left: what it missed, by Last-Event-ID.
    let id = last_id.expect("event ids");
    let back = Sse::connect_to(addr, &path, &format!("Last-Event-ID: {id}\r\n"));
    wait_for(
        "the returning subscriber to rebuild the store",
        Duration::from_secs(10),
        || {
            while let Some(ev) = back.next(Instant::now() + Duration::from_millis(5)) {
                assert_ne!(ev.name, "snapshot", "a resume is not a new subscription");
                if ev.name != "status" {
                    apply(&mut left_state, &ev.data);
                }
            }
            rebuilt(addr, &left_state).then_some(())
        },
    );
    // An id from another viewer process gets a reset.
    let other = Sse::connect_to(addr, &path, "Last-Event-ID: someone-else-7\r\n");
    let ev = other
        .next(Instant::now() + Duration::from_secs(5))
        .expect("an event");
    assert_eq!(ev.name, "reset");
    // The stuck subscriber held nothing up and grew nothing.
    let rss = std::fs::read_to_string(format!("/proc/{}/status", viewer.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
        .unwrap();
    let kib: u64 = rss.trim_end_matches(" kB").trim().parse().unwrap();
    assert!(kib < 100 * 1024, "viewer RSS {kib} KiB");
    drop(stuck);
    let _ = OTHER;
}

#[test]
fn the_python_example_follows_the_stream() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: python3 is not installed");
        return;
    }
    let dir = fast_tempdir();
    let files = generate(dir.path(), 3);
    let out = dir.path().join("out");
    run_ok(&args(&files, &out, &[]));
    let v = TestViewer::start(&out);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/follow_stream.py");
    // The first `n` lines the example prints for `series`.
    let follow = |series: &str, n: usize| -> Vec<String> {
        let mut child = crate::harness::KillOnDrop(
            std::process::Command::new("python3")
                .arg(&script)
                .args(["--url", &format!("http://{}", v.addr), "--series", series])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        std::io::BufRead::lines(std::io::BufReader::new(stdout))
            .take(n)
            .map(Result::unwrap)
            .collect()
    };
    let want = segment_bars(&out, "ALT-USDT/1m");
    let lines = follow("ALT-USDT/1m", want.len());
    assert_eq!(lines.len(), want.len());
    for (line, bar) in lines.iter().zip(&want) {
        assert!(line.starts_with("snapshot ALT-USDT/1m"), "{line}");
        let close = if bar[4].is_null() {
            "no trades".to_string()
        } else {
            format!("C {}", bar[4])
        };
        assert!(line.contains(&close), "{line} lacks {close}");
        assert!(line.contains(&format!("CVD {}", bar[13])), "{line}");
    }
    // Views print a line per window: the footprint's prices, the heatmap's
    // book sides.
    let want = segment_bars(&out, "ALT-USDT/footprint");
    assert!(!want.is_empty(), "the run traded");
    let lines = follow("ALT-USDT/footprint", want.len());
    assert_eq!(lines.len(), want.len());
    for (line, bar) in lines.iter().zip(&want) {
        assert!(line.starts_with("snapshot ALT-USDT/footprint"), "{line}");
        let prices = bar[1].as_array().unwrap().len();
        assert!(line.contains(&format!(" {prices} prices (tick ")), "{line}");
    }
    let want = segment_bars(&out, "ALT-USDT/heatmap");
    let lines = follow("ALT-USDT/heatmap", want.len());
    assert_eq!(lines.len(), want.len());
    for (line, bar) in lines.iter().zip(&want) {
        let (bids, asks) = (bar[1].as_array().unwrap(), bar[2].as_array().unwrap());
        let sides = format!(
            "{} bids, {} asks  best {} / {}",
            bids.len(),
            asks.len(),
            bids[0][0],
            asks[0][0]
        );
        assert!(line.contains(&sides), "{line} lacks {sides}");
    }
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// `scripts/bench`: range queries on a whole-day store (`BENCH_STORE`, an
/// `OUT` with two instruments × 24 h of `1s` bars; a 2 h one is made when
/// unset) and stream delivery to 100 subscribers (rename → event).
#[test]
#[ignore = "benchmark: run by scripts/bench"]
fn series_bench() {
    let dir = fast_tempdir();
    let out = match std::env::var_os("BENCH_STORE") {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let files = generate(dir.path(), 120);
            let out = dir.path().join("out");
            run_ok(&args(&files, &out, &[]));
            out
        }
    };
    let v = TestViewer::start(&out);
    let index = range(v.addr, "/api/series");
    let one_s: Vec<(String, i64, i64)> = index["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["timeframe"] == "1s")
        .map(|e| {
            (
                e["instrument"].as_str().unwrap().to_string(),
                e["first_ts"].as_i64().unwrap(),
                e["last_ts"].as_i64().unwrap(),
            )
        })
        .collect();
    let bars: i64 = index["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["timeframe"] == "1s")
        .map(|e| e["bars"].as_i64().unwrap())
        .sum();
    // Cold: the first whole-day query parses every segment.
    let (inst, first, last) = &one_s[0];
    let t = Instant::now();
    range(
        v.addr,
        &format!(
            "/api/series/{inst}/1s?from={first}&to={}&max_bars=2000",
            last + 1000
        ),
    );
    let cold = t.elapsed().as_secs_f64() * 1e3;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut times = Vec::new();
    let mut whole = Vec::new();
    for i in 0..300 {
        let (inst, first, last) = &one_s[i % one_s.len()];
        let tf = ["1s", "1s", "1m", "5m", "15m", "1h"][rng.gen_range(0..6)];
        let (a, b, max) = if i % 5 == 0 {
            (*first, last + 1000, 2000)
        } else {
            let a = rng.gen_range(*first..*last);
            (a, rng.gen_range(a..=*last + 1000), rng.gen_range(200..3000))
        };
        let t = Instant::now();
        let got = range(
            v.addr,
            &format!("/api/series/{inst}/{tf}?from={a}&to={b}&max_bars={max}"),
        );
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(got["bars"].as_array().unwrap().len() <= max);
        if i % 5 == 0 {
            whole.push(ms);
        }
        times.push(ms);
    }
    println!(
        "series bench: store of {bars} 1s bars in {} series",
        one_s.len()
    );
    println!(
        "  range query: p50 {:.2} ms, p99 {:.2} ms (300 random, max_bars 200-3000; whole day p50 {:.2} ms, p99 {:.2} ms; first cold whole day {cold:.1} ms)",
        percentile(times.clone(), 0.5),
        percentile(times, 0.99),
        percentile(whole.clone(), 0.5),
        percentile(whole, 0.99)
    );
    drop(v);

    // Stream: 100 subscribers, 200 writes of a segment, rename → event.
    let live = dir.path().join("live");
    let tf: orderflow::store::Timeframe = "1s".parse().unwrap();
    let write = |n: i64| -> Instant {
        let mut r = orderflow::store::InstrumentRecorder::new("LIVE-USDT", &[tf]);
        for i in 0..=n {
            let s = orderflow::store::Sample {
                trade: Some((
                    orderflow::model::Fixed::from_int(100),
                    orderflow::model::Fixed::from_raw(i + 1),
                )),
                obi: 0.0,
                cvd: orderflow::model::Fixed::ZERO,
            };
            r.record(DAY + i * 1000, &s);
        }
        let w = &r.writes()[0];
        let d = live.join(&w.dir);
        std::fs::create_dir_all(&d).unwrap();
        let mut bytes = Vec::new();
        w.write(&mut bytes, orderflow::ipc::now_ms()).unwrap();
        orderflow::ipc::write_atomic(&d, &w.name, &bytes).unwrap();
        let at = Instant::now();
        let index = orderflow::store::Index {
            updated_ms: 0,
            series: r.index_entries().collect(),
            views: Vec::new(),
        };
        orderflow::ipc::write_atomic(
            &live.join("series"),
            "index.json",
            &serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        at
    };
    write(0);
    let v = TestViewer::start(&live);
    let path = "/api/stream?series=LIVE-USDT/1s";
    let subs: Vec<Sse> = (0..100)
        .map(|_| Sse::connect_to(v.addr, path, ""))
        .collect();
    for s in &subs {
        assert_eq!(
            s.next(Instant::now() + Duration::from_secs(10))
                .unwrap()
                .name,
            "snapshot"
        );
    }
    let mut written = Vec::new();
    for n in 1..=200 {
        written.push(write(n));
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut lat = Vec::new();
    for s in &subs {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(ev) = s.next(deadline) {
            if ev.name != "bars" {
                continue;
            }
            // The new bar's volume says which write it came from.
            let n = ev.data["bars"].as_array().unwrap().last().unwrap()[5]
                .as_f64()
                .unwrap();
            let n = (n * 1e8).round() as usize - 1;
            lat.push(
                ev.at
                    .saturating_duration_since(written[n - 1])
                    .as_secs_f64()
                    * 1e3,
            );
            if n == 200 {
                break;
            }
        }
    }
    println!(
        "  stream, 100 subscribers: rename to event p50 {:.2} ms, p99 {:.2} ms ({} events)",
        percentile(lat.clone(), 0.5),
        percentile(lat.clone(), 0.99),
        lat.len()
    );
}

#[test]
fn a_store_replaced_by_a_fresh_run_is_served_anew_and_subscribers_reset() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 3);
    let out = dir.path().join("out");
    run_ok(&args(&files, &out, &[]));
    let v = TestViewer::start(&out);
    let id = format!("{PRIMARY}/1s");
    let old = range(v.addr, &format!("/api/series/{id}"));
    assert_eq!(old["bars"].as_array().unwrap(), &segment_bars(&out, &id));
    let sub = Sse::connect_to(v.addr, &format!("/api/stream?series={id}"), "");
    assert_eq!(
        sub.next(Instant::now() + Duration::from_secs(10))
            .unwrap()
            .name,
        "snapshot"
    );
    // Other data under the same names, replayed afresh.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let files2 = generate(&other, 4);
    for (a, b) in [(&files2.0, &files.0), (&files2.1, &files.1)] {
        std::fs::copy(a, b).unwrap();
    }
    run_ok(&args(&files, &out, &["--fresh"]));
    let new = segment_bars(&out, &id);
    assert_ne!(new, *old["bars"].as_array().unwrap(), "the runs differ");
    wait_for("the new store served", Duration::from_secs(10), || {
        let got = range(v.addr, &format!("/api/series/{id}"));
        (got["bars"].as_array().unwrap() == &new).then_some(())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let reset = loop {
        let ev = sub.next(deadline).expect("a reset");
        if ev.name == "reset" {
            break ev;
        }
    };
    assert_eq!(reset.data["series"], id.as_str());
}

/// `GET /api/series/<I>/footprint|heatmap`: the stored bars by range, no
/// merging, against the segment files; and the errors.
#[test]
fn views_api_serves_footprint_and_heatmap_by_range() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 25);
    let out = dir.path().join("out");
    run_ok(&args(&files, &out, &[]));
    let v = TestViewer::start(&out);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for instrument in [PRIMARY, OTHER] {
        for view in ["footprint", "heatmap"] {
            let (stored, ticks) = crate::store::stored_view(&out, instrument, view);
            let all = range(v.addr, &format!("/api/series/{instrument}/{view}"));
            assert_eq!(all["series"], format!("{instrument}/{view}"));
            assert_eq!(all["window_ms"], crate::store::VIEW_MS);
            assert_eq!(all["bars"].as_array().unwrap(), &stored);
            if view == "footprint" {
                assert_eq!(Some(&all["tick"]), ticks.last());
            } else {
                assert!(all.get("tick").is_none());
            }
            for _ in 0..10 {
                let a = stored[rng.gen_range(0..stored.len())][0].as_i64().unwrap();
                let b = a + rng.gen_range(0..200) * crate::store::VIEW_MS + 1;
                let got = range(
                    v.addr,
                    &format!("/api/series/{instrument}/{view}?from={a}&to={b}"),
                );
                let want: Vec<&Value> = stored
                    .iter()
                    .filter(|x| (a..b).contains(&x[0].as_i64().unwrap()))
                    .collect();
                let got: Vec<&Value> = got["bars"].as_array().unwrap().iter().collect();
                assert_eq!(got, want, "{instrument}/{view} from {a} to {b}");
            }
        }
    }
    for (path, status, says) in [
        (
            "/api/series/NOPE-USDT/footprint",
            404,
            "no footprint of NOPE-USDT",
        ),
        ("/api/series/GEN-USDT/heatmap?from=x", 400, "from \"x\""),
        (
            "/api/series/GEN-USDT/heatmap?from=10&to=5",
            400,
            "before from",
        ),
    ] {
        let r = get(v.addr, path);
        assert_eq!(r.status, status, "{path}");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
}
