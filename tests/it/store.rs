//! The series store (docs/formats.md, "Series store"): every bar of every
//! series against an independent computation from the SQLite files, the
//! index and each instrument's depth; the rolling files unchanged by
//! reference instruments; SIGKILL at random instants while a reader
//! hashes every sealed segment; bad `--timeframes` and `--with`.

use crate::harness::{fast_tempdir, json, processor, KillOnDrop, PROCESSOR};
use orderflow::model::Fixed;
use orderflow::synth::{LevelFormat, SynthConfig};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: i64 = 1_704_067_200_000;
pub const PRIMARY: &str = "GEN-USDT";
pub const OTHER: &str = "ALT-USDT";
pub const TIMEFRAMES: [(&str, i64); 5] = [
    ("1s", 1_000),
    ("7s", 7_000),
    ("1m", 60_000),
    ("1h", 3_600_000),
    ("1d", 86_400_000),
];

/// Two instruments' captures, in two level formats, `minutes` long.
pub fn generate(dir: &Path, minutes: i64) -> (PathBuf, PathBuf) {
    let mut a = SynthConfig::new(DAY, minutes * 60_000);
    a.levels_per_side = 120;
    let mut b = a.clone();
    b.format = LevelFormat::JsonNumbers;
    b.mid = Fixed::from_int(2_000);
    b.tick = Fixed::from_raw(1_000_000);
    b.seed = 7;
    b.book_per_second = 6.0;
    b.trades_per_second = 0.7;
    let pa = dir.join(format!("{PRIMARY}-2024-01-01.db"));
    let pb = dir.join(format!("{OTHER}-2024-01-01.db"));
    orderflow::synth::write_file(&pa, &a).unwrap();
    orderflow::synth::write_file(&pb, &b).unwrap();
    (pa, pb)
}

pub fn args(files: &(PathBuf, PathBuf), out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        PRIMARY,
        "2024-01-01",
        "2024-01-01",
        "--with",
        OTHER,
        "--timeframes",
        "1s,7s,1m,1h,1d",
        "--window-seconds",
        "10",
        "--db",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(files.0.display().to_string());
    v.push(files.1.display().to_string());
    v.push("--out".into());
    v.push(out.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn run_ok(args: &[String]) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = processor(&a);
    assert!(
        run.status.success(),
        "orderflow-processor {a:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

// ---- an independent computation of §3 at each timeframe ----

/// Decimal text or JSON number → raw 10⁻⁸ units (through the decimal text).
fn raw(v: &Value) -> i64 {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a number: {other}"),
    };
    Fixed::parse(&text)
        .unwrap_or_else(|| panic!("bad number {text}"))
        .raw()
}

fn levels(text: &str) -> Vec<(i64, i64)> {
    let v: Value = serde_json::from_str(text).expect("level text is JSON in these captures");
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| (raw(&l[0]), raw(&l[1])))
        .collect()
}

#[derive(Default)]
struct RefBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

impl RefBook {
    fn apply(side: &mut BTreeMap<i64, i64>, levels: Vec<(i64, i64)>) {
        for (p, s) in levels {
            if s <= 0 {
                side.remove(&p);
            } else {
                side.insert(p, s);
            }
        }
    }

    fn obi(&self) -> f64 {
        let b: i128 = self.bids.values().map(|&s| s as i128).sum();
        let a: i128 = self.asks.values().map(|&s| s as i128).sum();
        if a + b == 0 {
            0.0
        } else {
            (b - a) as f64 / (b + a) as f64
        }
    }
}

/// A bar kept the plain way: `[ts, o, h, l, c, v, obi×4, cvd×4]`.
#[derive(Clone)]
pub struct RefBar {
    ts: i64,
    price: Option<[i64; 4]>,
    volume: i64,
    obi: [f64; 4],
    cvd: [i64; 4],
}

impl RefBar {
    pub fn json(&self) -> Value {
        let f = |r: i64| r as f64 / 1e8;
        let p = |i: usize| self.price.map(|p| f(p[i]));
        json!([
            self.ts,
            p(0),
            p(1),
            p(2),
            p(3),
            f(self.volume),
            self.obi[0],
            self.obi[1],
            self.obi[2],
            self.obi[3],
            f(self.cvd[0]),
            f(self.cvd[1]),
            f(self.cvd[2]),
            f(self.cvd[3])
        ])
    }
}

pub struct Reference {
    /// Per timeframe label: bars oldest first.
    pub bars: HashMap<&'static str, Vec<RefBar>>,
    book: RefBook,
    /// Per window of [`VIEW_MS`] with trades: `[price, buy, sell]` by price
    /// (raw), buy and sell trades only.
    pub footprint: Vec<(i64, RefFoot)>,
    /// Per window of [`VIEW_MS`] with rows: the best 50 levels per side
    /// after its last row.
    pub heatmap: Vec<Value>,
}

/// One window's footprint: `(buy, sell)` by price, raw.
pub type RefFoot = BTreeMap<i64, (i64, i64)>;

/// The run's window in [`args`]: footprint and heatmap are at it.
pub const VIEW_MS: i64 = 10_000;

/// Replays one capture file: book and trades by `(timestamp, id)`, book
/// first on equal timestamps.
pub fn reference(db: &Path) -> Reference {
    let conn = rusqlite::Connection::open(db).unwrap();
    // (ts, kind 0 = book / 1 = trade, id, payload)
    let mut rows: Vec<(i64, u8, i64, Value)> = Vec::new();
    let mut q = conn
        .prepare("SELECT id, timestamp, bids, asks FROM book")
        .unwrap();
    let it = q
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(1)?,
                0u8,
                r.get::<_, i64>(0)?,
                json!([r.get::<_, String>(2)?, r.get::<_, String>(3)?]),
            ))
        })
        .unwrap();
    rows.extend(it.map(Result::unwrap));
    let mut q = conn
        .prepare("SELECT id, timestamp, price, size, side FROM trades")
        .unwrap();
    let it = q
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(1)?,
                1u8,
                r.get::<_, i64>(0)?,
                json!([
                    r.get::<_, f64>(2)?,
                    r.get::<_, f64>(3)?,
                    r.get::<_, String>(4)?
                ]),
            ))
        })
        .unwrap();
    rows.extend(it.map(Result::unwrap));
    rows.sort_by_key(|r| (r.0, r.1, r.2));

    let mut book = RefBook::default();
    let mut cvd = 0i64;
    let mut bars: HashMap<&'static str, Vec<RefBar>> = HashMap::new();
    let mut footprint: Vec<(i64, RefFoot)> = Vec::new();
    let mut heatmap: Vec<Value> = Vec::new();
    let mut view_window: Option<i64> = None;
    let heat = |book: &RefBook, w: i64| {
        json!([w, best(&book.bids, true, 50), best(&book.asks, false, 50)])
    };
    for (ts, kind, _, payload) in rows {
        let window = ts.div_euclid(VIEW_MS) * VIEW_MS;
        if view_window != Some(window) {
            if let Some(w) = view_window {
                heatmap.push(heat(&book, w));
            }
            view_window = Some(window);
        }
        let mut trade = None;
        if kind == 0 {
            RefBook::apply(&mut book.bids, levels(payload[0].as_str().unwrap()));
            RefBook::apply(&mut book.asks, levels(payload[1].as_str().unwrap()));
        } else {
            let (p, s) = (
                Fixed::from_f64(payload[0].as_f64().unwrap()).unwrap().raw(),
                Fixed::from_f64(payload[1].as_f64().unwrap()).unwrap().raw(),
            );
            let side = payload[2].as_str().unwrap();
            match side {
                "buy" => cvd += s,
                "sell" => cvd -= s,
                _ => {}
            }
            if side == "buy" || side == "sell" {
                if footprint.last().is_none_or(|f| f.0 != window) {
                    footprint.push((window, BTreeMap::new()));
                }
                let at = footprint.last_mut().unwrap().1.entry(p).or_default();
                if side == "buy" {
                    at.0 += s;
                } else {
                    at.1 += s;
                }
            }
            trade = Some((p, s));
        }
        let obi = book.obi();
        for (label, w) in TIMEFRAMES {
            let window = ts.div_euclid(w) * w;
            let list = bars.entry(label).or_default();
            if list.last().is_none_or(|b| b.ts != window) {
                list.push(RefBar {
                    ts: window,
                    price: None,
                    volume: 0,
                    obi: [obi; 4],
                    cvd: [cvd; 4],
                });
            }
            let bar = list.last_mut().unwrap();
            if let Some((p, s)) = trade {
                bar.price = Some(match bar.price {
                    None => [p; 4],
                    Some([o, h, l, _]) => [o, h.max(p), l.min(p), p],
                });
                bar.volume += s;
            }
            bar.obi = [bar.obi[0], bar.obi[1].max(obi), bar.obi[2].min(obi), obi];
            bar.cvd = [bar.cvd[0], bar.cvd[1].max(cvd), bar.cvd[2].min(cvd), cvd];
        }
    }
    if let Some(w) = view_window {
        heatmap.push(heat(&book, w));
    }
    Reference {
        bars,
        book,
        footprint,
        heatmap,
    }
}

/// The entry `id` of the index's list `list` (`series` or `views`).
fn index_entry(out: &Path, list: &str, id: &str) -> Value {
    let index = json(&out.join("series/index.json"));
    index[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the index: {index}"))
        .clone()
}

/// Every bar of an instrument's footprint or heatmap, read segment by
/// segment as the index lists them, with each segment's tick.
pub fn stored_view(out: &Path, instrument: &str, view: &str) -> (Vec<Value>, Vec<Value>) {
    let id = format!("{instrument}/{view}");
    let entry = index_entry(out, "views", &id);
    assert_eq!(entry["window_ms"], VIEW_MS);
    let (mut bars, mut ticks) = (Vec::new(), Vec::new());
    for start in entry["segments"].as_array().unwrap() {
        let start = start.as_i64().unwrap();
        let seg = json(&out.join(format!("series/{instrument}/{view}/{start}.json")));
        assert_eq!(seg["series"], id.as_str());
        assert_eq!(seg["start_ms"], start);
        assert_eq!(seg["end_ms"], start + 1000 * VIEW_MS);
        assert_eq!(seg["sealed"], true);
        ticks.push(seg["tick"].clone());
        bars.extend(seg["bars"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(entry["bars"].as_u64(), Some(bars.len() as u64));
    (bars, ticks)
}

/// Every bar of a series, read segment by segment as the index lists them,
/// checking each segment's fields.
pub fn stored_bars(out: &Path, instrument: &str, tf: &str, window_ms: i64) -> Vec<Value> {
    let id = format!("{instrument}/{tf}");
    let entry = index_entry(out, "series", &id);
    assert_eq!(entry["instrument"], instrument);
    assert_eq!(entry["timeframe"], tf);
    assert_eq!(entry["window_ms"], window_ms);
    let mut bars = Vec::new();
    for start in entry["segments"].as_array().unwrap() {
        let start = start.as_i64().unwrap();
        let seg = json(&out.join(format!("series/{instrument}/{tf}/{start}.json")));
        assert_eq!(seg["series"], id.as_str());
        assert_eq!(seg["window_ms"], window_ms);
        assert_eq!(seg["start_ms"], start);
        assert_eq!(seg["end_ms"], start + 1000 * window_ms);
        assert_eq!(seg["sealed"], true, "a finished run seals every segment");
        assert!(seg["written_ms"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(
            start % (1000 * window_ms),
            0,
            "segments align to 1000 windows"
        );
        for b in seg["bars"].as_array().unwrap() {
            let ts = b[0].as_i64().unwrap();
            assert!(
                ts >= start && ts < start + 1000 * window_ms,
                "{id}: bar {ts} outside {start}"
            );
            bars.push(b.clone());
        }
    }
    assert_eq!(entry["bars"], bars.len(), "{id}: index bar count");
    assert_eq!(
        entry["first_ts"],
        bars.first().map(|b| b[0].clone()).unwrap_or(Value::Null)
    );
    assert_eq!(
        entry["last_ts"],
        bars.last().map(|b| b[0].clone()).unwrap_or(Value::Null)
    );
    bars
}

fn best(side: &BTreeMap<i64, i64>, descending: bool, n: usize) -> Value {
    let f = |r: i64| r as f64 / 1e8;
    let it: Box<dyn Iterator<Item = (&i64, &i64)>> = if descending {
        Box::new(side.iter().rev())
    } else {
        Box::new(side.iter())
    };
    Value::Array(it.take(n).map(|(&p, &s)| json!([f(p), f(s)])).collect())
}

#[test]
fn every_bar_of_every_series_matches_an_independent_replay() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 25);
    let out = dir.path().join("out");
    run_ok(&args(&files, &out, &[]));
    let index = json(&out.join("series/index.json"));
    assert_eq!(
        index["series"].as_array().unwrap().len(),
        10,
        "2 instruments × 5 timeframes"
    );
    for (instrument, db) in [(PRIMARY, &files.0), (OTHER, &files.1)] {
        let r = reference(db);
        for (tf, w) in TIMEFRAMES {
            let want: Vec<Value> = r.bars[tf].iter().map(RefBar::json).collect();
            let got = stored_bars(&out, instrument, tf, w);
            assert_eq!(got.len(), want.len(), "{instrument}/{tf}: bar count");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "{instrument}/{tf}");
            }
        }
        // 25 minutes of 1 s bars need two segments; both are written.
        let one_s = r.bars["1s"].len();
        assert!(one_s > 1000, "{one_s} one-second bars");
        let depth = json(&out.join(format!("series/{instrument}/depth.json")));
        assert_eq!(
            depth["bids"],
            best(&r.book.bids, true, 50),
            "{instrument} bids"
        );
        assert_eq!(
            depth["asks"],
            best(&r.book.asks, false, 50),
            "{instrument} asks"
        );
    }
    // Windows with only book rows have null prices and zero volume.
    let alt = stored_bars(&out, OTHER, "1s", 1000);
    assert!(alt.iter().any(|b| b[1].is_null() && b[5] == json!(0.0)));
}

#[test]
fn reference_instruments_leave_the_rolling_files_as_they_were() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 6);
    let with = dir.path().join("with");
    run_ok(&args(&files, &with, &[]));
    let alone = dir.path().join("alone");
    let a = [
        PRIMARY,
        "2024-01-01",
        "2024-01-01",
        "--window-seconds",
        "10",
        "--db",
        files.0.to_str().unwrap(),
        "--out",
        alone.to_str().unwrap(),
    ];
    let run = processor(&a);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for f in ["ohlc_data.json", "metrics_data.json", "depth_data.json"] {
        assert_eq!(
            std::fs::read(with.join(f)).unwrap(),
            std::fs::read(alone.join(f)).unwrap(),
            "{f}"
        );
    }
    // The default timeframes.
    let index = json(&alone.join("series/index.json"));
    let ids: Vec<&str> = index["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["GEN-USDT/1s", "GEN-USDT/1m", "GEN-USDT/1h", "GEN-USDT/1d"]
    );
}

/// Every store file below `out/series`, parsed, with the wall-clock stamps
/// (`written_ms`, `updated_ms`) taken out.
fn store_files(out: &Path) -> BTreeMap<PathBuf, Value> {
    fn walk(dir: &Path, base: &Path, into: &mut BTreeMap<PathBuf, Value>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, into);
            } else {
                let mut v = json(&p);
                if let Some(o) = v.as_object_mut() {
                    o.remove("written_ms");
                    o.remove("updated_ms");
                }
                into.insert(p.strip_prefix(base).unwrap().to_path_buf(), v);
            }
        }
    }
    let mut all = BTreeMap::new();
    walk(&out.join("series"), out, &mut all);
    all
}

/// Hashes of the sealed segments under `out/series` (path → bytes).
fn sealed_segments(out: &Path, seen: &mut HashMap<PathBuf, Vec<u8>>) -> usize {
    let mut checked = 0;
    let Ok(instruments) = std::fs::read_dir(out.join("series")) else {
        return 0;
    };
    for i in instruments.flatten().filter(|e| e.path().is_dir()) {
        for tf in std::fs::read_dir(i.path()).into_iter().flatten().flatten() {
            for seg in std::fs::read_dir(tf.path()).into_iter().flatten().flatten() {
                let p = seg.path();
                if p.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&p) else {
                    continue;
                };
                let v: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{} is torn: {e}", p.display()));
                if v["sealed"] == true {
                    if let Some(before) = seen.get(&p) {
                        assert!(before == &bytes, "sealed {} changed", p.display());
                    }
                    seen.insert(p, bytes);
                    checked += 1;
                }
            }
        }
    }
    checked
}

#[test]
fn footprint_and_heatmap_match_an_independent_replay() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 25);
    let out = dir.path().join("out");
    run_ok(&args(&files, &out, &[]));
    let f = |r: i64| r as f64 / 1e8;
    for (instrument, db) in [(PRIMARY, &files.0), (OTHER, &files.1)] {
        let r = reference(db);
        // Footprint: traded volume by price and side in every window.
        let (got, ticks) = stored_view(&out, instrument, "footprint");
        let want: Vec<Value> = r
            .footprint
            .iter()
            .map(|(ts, levels)| {
                let l: Vec<Value> = levels
                    .iter()
                    .map(|(&p, &(b, s))| json!([f(p), f(b), f(s)]))
                    .collect();
                json!([ts, l])
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{instrument}: footprint bars");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{instrument} footprint");
        }
        // The default tick: the finest step of the prices traded.
        let step = r
            .footprint
            .iter()
            .flat_map(|(_, l)| l.keys())
            .fold(0i64, |g, &p| gcd(g, p));
        assert_eq!(ticks.last(), Some(&json!(f(step))), "{instrument} tick");
        // Heatmap: the book's best 50 per side after each window.
        let (got, _) = stored_view(&out, instrument, "heatmap");
        assert_eq!(got.len(), r.heatmap.len(), "{instrument}: heatmap bars");
        for (g, w) in got.iter().zip(&r.heatmap) {
            assert_eq!(g, w, "{instrument} heatmap");
        }
    }
    // Buy − sell of each footprint bar is that window's CVD change.
    let metrics: Vec<Value> = serde_json::from_value(json(&out.join("metrics_data.json"))).unwrap();
    let (foot, _) = stored_view(&out, PRIMARY, "footprint");
    let mut prev_cvd = 0.0;
    let mut checked = 0;
    for m in &metrics {
        let ts = m[0].as_i64().unwrap();
        let cvd = m[8].as_f64().unwrap();
        let delta: f64 = foot.iter().find(|b| b[0] == ts).map_or(0.0, |b| {
            b[1].as_array()
                .unwrap()
                .iter()
                .map(|l| l[1].as_f64().unwrap() - l[2].as_f64().unwrap())
                .sum()
        });
        assert!(
            (delta - (cvd - prev_cvd)).abs() < 1e-6,
            "window {ts}: footprint buy − sell {delta}, CVD change {}",
            cvd - prev_cvd
        );
        prev_cvd = cvd;
        checked += 1;
    }
    assert!(checked > 100, "{checked} windows");
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

#[test]
fn a_footprint_tick_buckets_prices_and_bad_ones_are_refused() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 5);
    let out = dir.path().join("out");
    run_ok(&args(&files, &out, &["--footprint-tick", "0.5"]));
    let r = reference(&files.0);
    let (got, ticks) = stored_view(&out, PRIMARY, "footprint");
    assert!(ticks.iter().all(|t| t == &json!(0.5)));
    let half = 50_000_000;
    for ((ts, levels), g) in r.footprint.iter().zip(&got) {
        let mut bucketed: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for (&p, &(b, s)) in levels {
            let e = bucketed.entry(p.div_euclid(half) * half).or_default();
            e.0 += b;
            e.1 += s;
        }
        let want: Vec<Value> = bucketed
            .iter()
            .map(|(&p, &(b, s))| json!([p as f64 / 1e8, b as f64 / 1e8, s as f64 / 1e8]))
            .collect();
        assert_eq!(g, &json!([ts, want]));
    }
    for bad in ["0", "-1", "abc"] {
        let arg = format!("--footprint-tick={bad}");
        let a = args(&files, &dir.path().join("bad"), &[&arg]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let run = processor(&a);
        assert_eq!(run.status.code(), Some(1), "--footprint-tick {bad}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains("--footprint-tick"), "{err}");
        assert!(!dir.path().join("bad").join("series").exists());
    }
}

/// Three hours of two instruments, replayed uninterrupted into
/// `reference` (flushing every 20 ms): the files, the arguments for `out`,
/// and how long the uninterrupted run took.
fn kill_test_run(dir: &Path, out: &Path) -> (PathBuf, Vec<String>, Duration) {
    let files = generate(dir, 180);
    let reference = dir.join("reference");
    let started = Instant::now();
    run_ok(&args(&files, &reference, &["--flush-ms", "20"]));
    let total = started.elapsed();
    (reference, args(&files, out, &["--flush-ms", "20"]), total)
}

/// Starts the processor with `argv` and SIGKILLs it after `after`; `false`
/// when it finished first.
fn kill_after(argv: &[String], after: Duration) -> bool {
    let mut child = KillOnDrop(
        std::process::Command::new(PROCESSOR)
            .args(argv)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + after;
    while Instant::now() < deadline && child.0.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    if child.0.try_wait().unwrap().is_some() {
        return false;
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    true
}

/// The store in `out` is the one in `reference` (but for wall-clock stamps).
fn assert_same_store(out: &Path, reference: &Path, context: &str) {
    let (got, want) = (store_files(out), store_files(reference));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same store files"
    );
    for (path, v) in &want {
        assert!(&got[path] == v, "{} differs {context}", path.display());
    }
}

#[test]
fn sigkills_at_random_instants_leave_the_store_as_an_uninterrupted_run() {
    let dir = fast_tempdir();
    let out = dir.path().join("out");
    let (reference, argv, total) = kill_test_run(dir.path(), &out);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, out) = (stop.clone(), out.clone());
        std::thread::spawn(move || {
            let mut seen = HashMap::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sealed_segments(&out, &mut seen);
                reads += 1;
            }
            (reads, seen.len())
        })
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut kills = 0;
    for _ in 0..15 {
        if !kill_after(&argv, total.mul_f64(rng.gen_range(0.03..0.3))) {
            break;
        }
        kills += 1;
    }
    run_ok(&argv);
    stop.store(true, Ordering::Relaxed);
    let (reads, sealed_seen) = reader.join().unwrap();
    // Each start resumes, so the run may end before all 15 attempts.
    assert!(kills >= 5, "only {kills} kills landed mid-run");
    assert!(
        reads > 10 && sealed_seen > 0,
        "{reads} reads, {sealed_seen} sealed segments seen"
    );
    assert_same_store(&out, &reference, &format!("after {kills} kills"));
    // And the sealed files the reader saw never changed afterwards either.
    let mut seen = HashMap::new();
    sealed_segments(&out, &mut seen);
}

/// A flush writes the segments it seals before its checkpoint, which no
/// longer holds them. Killed between the two, the run resumes from the
/// previous checkpoint with those files already on disk: it must neither
/// rewrite them nor end differently.
#[test]
fn sealed_segments_written_before_a_lost_checkpoint_are_kept_as_they_are() {
    let dir = fast_tempdir();
    let out = dir.path().join("out");
    let (reference, argv, total) = kill_test_run(dir.path(), &out);
    let mut want_sealed = HashMap::new();
    sealed_segments(&reference, &mut want_sealed);

    // SIGKILL mid-run, early enough that segments are still to be sealed.
    let mut fraction = 0.3;
    let ahead: Vec<PathBuf> = loop {
        let _ = std::fs::remove_dir_all(&out);
        kill_after(&argv, total.mul_f64(fraction));
        let mut have = HashMap::new();
        sealed_segments(&out, &mut have);
        let ahead: Vec<PathBuf> = want_sealed
            .keys()
            .map(|p| p.strip_prefix(&reference).unwrap().to_path_buf())
            .filter(|rel| !have.contains_key(&out.join(rel)))
            .collect();
        if out.join("checkpoint.json").exists() && ahead.len() >= 3 {
            break ahead;
        }
        fraction *= 0.7;
        assert!(fraction > 0.001, "no kill landed before the last segments");
    };
    // The segments a later flush sealed, on disk before its checkpoint.
    for rel in &ahead {
        std::fs::copy(reference.join(rel), out.join(rel)).unwrap();
    }
    run_ok(&argv);
    for rel in &ahead {
        assert!(
            std::fs::read(out.join(rel)).unwrap() == want_sealed[&reference.join(rel)],
            "sealed {} was rewritten",
            rel.display()
        );
    }
    assert_same_store(&out, &reference, "after resuming");
}

#[test]
fn bad_timeframes_and_reference_instruments_are_refused_before_anything_is_written() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 1);
    let out = dir.path().join("out");
    for (tf, why) in [
        (
            "7x",
            "\"7x\" is not a timeframe: it does not end in s, m, h or d",
        ),
        ("0s", "\"0s\" is not a timeframe: it is zero"),
        (
            "1.5s",
            "\"1.5s\" is not a timeframe: it does not start with a whole number",
        ),
    ] {
        let mut a = args(&files, &out, &[]);
        let at = a.iter().position(|x| x == "1s,7s,1m,1h,1d").unwrap();
        a[at] = tf.to_string();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let run = processor(&a);
        assert_eq!(run.status.code(), Some(1), "--timeframes {tf}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(&format!("--timeframes: {why}")), "{err}");
        assert!(!out.exists(), "nothing may be written for a bad argument");
    }
    // A reference instrument with no files for the dates, by discovery
    // and among explicit files: refused, nothing written.
    let root = dir.path().to_str().unwrap();
    let db = files.0.to_str().unwrap();
    for (inputs, says) in [
        (
            ["--data-root", root],
            "no capture file for NOPE-USDT from 2024-01-01",
        ),
        (["--db", db], "none of the --db files belongs to NOPE-USDT"),
    ] {
        let mut a = vec![PRIMARY, "2024-01-01", "2024-01-01", "--with", "NOPE-USDT"];
        a.extend(inputs);
        a.extend(["--out", out.to_str().unwrap()]);
        let run = processor(&a);
        assert_eq!(run.status.code(), Some(1));
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(says), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn a_table_found_out_of_order_after_segments_were_sealed_gives_the_sorted_store() {
    // 30 minutes of rows in id order, flushed (and 1 s segments sealed)
    // as the replay goes, then rows back in time: the run starts over
    // with the table read sorted, and the store ends as the sorted rows
    // give it, sealed segments included.
    let dir = fast_tempdir();
    let db = dir.path().join(format!("{PRIMARY}-2024-01-01.db"));
    let c = crate::harness::Capture::create(&db);
    c.book(DAY, "[[100.0, 1.0]]", "[[101.0, 2.0]]");
    for i in 1..1800i64 {
        let ts = DAY + i * 1000;
        c.book(ts, &format!("[[{}.0, {}.0]]", 100 - i % 3, 1 + i % 5), "[]");
        c.trade(ts + 1, 100.5, 0.25, if i % 2 == 0 { "buy" } else { "sell" });
    }
    // Back to minute 2: inside a segment sealed long before.
    for i in 0..5i64 {
        c.book(DAY + 120_500 + i, "[[99.5, 7.0]]", "[]");
    }
    drop(c);
    let out = dir.path().join("out");
    let run = processor(&[
        PRIMARY,
        "2024-01-01",
        "2024-01-01",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--timeframes",
        "1s,7s,1m,1h,1d",
        "--speed",
        "3000",
        "--flush-ms",
        "20",
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("timestamps go backwards"), "{err}");
    let r = reference(&db);
    for (tf, w) in TIMEFRAMES {
        let want: Vec<Value> = r.bars[tf].iter().map(RefBar::json).collect();
        assert_eq!(stored_bars(&out, PRIMARY, tf, w), want, "{tf}");
    }
}
