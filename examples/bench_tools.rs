//! Tools for `scripts/bench`: generate data, time a bare scan (the floor),
//! run a command while sampling its anonymous resident memory and taking
//! its CPU time, time atomic writes, time level parsing. Not part of the product; run with
//! `cargo run --release --example bench_tools -- <command>`.

use anyhow::{bail, Context};
use orderflow::ipc::{write_atomic, OhlcRow};
use orderflow::synth::{write_days, LevelFormat, SynthConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // gen DIR INSTRUMENT DATE HOURS [okx|json|python [SEED]]
        Some("gen") if (5..=7).contains(&args.len()) => {
            let day = chrono::NaiveDate::parse_from_str(&args[3], "%Y-%m-%d").context("DATE")?;
            let hours: f64 = args[4].parse().context("HOURS")?;
            let mut template = SynthConfig::new(0, 0);
            template.format = match args.get(5).map(String::as_str) {
                None | Some("okx") => LevelFormat::OkxStrings,
                Some("json") => LevelFormat::JsonNumbers,
                Some("python") => LevelFormat::Python,
                Some(other) => bail!("FORMAT {other:?}: use okx, json or python"),
            };
            if let Some(seed) = args.get(6) {
                template.seed = seed.parse().context("SEED")?;
            }
            let paths = write_days(Path::new(&args[1]), &args[2], day, 1, hours, &template)?;
            for p in paths {
                println!("{}", p.display());
            }
        }
        Some("scan") if args.len() >= 2 => {
            let start = Instant::now();
            let mut rows = 0;
            for f in &args[1..] {
                let (n, sum) = bare_scan(Path::new(f))?;
                rows += n;
                std::hint::black_box(sum);
            }
            let secs = start.elapsed().as_secs_f64();
            println!("{rows} {secs:.6}");
        }
        Some("measure") if args.len() >= 3 && args[1] == "--" => {
            let (secs, peak_kib) = measure(&args[2..])?;
            let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
            let cpu = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            println!("{secs:.6} {peak_kib} {:.6}", cpu(usage.user_time()) + cpu(usage.system_time()));
        }
        Some("atomic-write") if args.len() == 3 => {
            let dir = PathBuf::from(&args[1]);
            let n: usize = args[2].parse().context("N")?;
            std::fs::create_dir_all(&dir)?;
            let rows: Vec<OhlcRow> = (0..1000)
                .map(|i| OhlcRow {
                    ts: 1_700_000_000_000 + i * 60_000,
                    open: 30_000.5 + i as f64,
                    high: 30_010.25 + i as f64,
                    low: 29_990.0 + i as f64,
                    close: 30_001.75 + i as f64,
                    volume: 12.345_678,
                })
                .collect();
            let mut times = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                let bytes = serde_json::to_vec(&rows)?;
                write_atomic(&dir, "ohlc_data.json", &bytes)?;
                times.push(start.elapsed());
            }
            times.sort();
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
            println!("{:.3} {:.3}", at(0.5), at(0.99));
        }
        Some("fixed") if args.len() == 3 => {
            let n: usize = args[2].parse()?;
            let mut total = 0i64;
            for _ in 0..n {
                total = total.wrapping_add(orderflow::model::Fixed::parse(std::hint::black_box(&args[1])).map_or(0, |f| f.raw()));
            }
            println!("{total}");
        }
        Some("parse-one") if args.len() == 3 => {
            let n: usize = args[2].parse()?;
            let mut out = Vec::with_capacity(64);
            let mut total = 0;
            for _ in 0..n {
                orderflow::source::levels::parse_levels(std::hint::black_box(&args[1]), &mut out)?;
                total += out.len();
            }
            println!("{total}");
        }
        Some("parse") if args.len() == 2 => {
            // Level parsing alone, on every book row of FILE held in memory.
            let conn = rusqlite::Connection::open(&args[1])?;
            let mut stmt = conn.prepare("SELECT bids, asks FROM book ORDER BY id")?;
            let texts: Vec<(String, String)> =
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            // Best of five passes each: the machine is shared.
            let mut out = Vec::new();
            let mut levels = 0usize;
            let mut secs = f64::MAX;
            for _ in 0..5 {
                levels = 0;
                let start = Instant::now();
                for (b, a) in &texts {
                    for t in [b, a] {
                        orderflow::source::levels::parse_levels(t, &mut out)?;
                        levels += out.len();
                    }
                }
                secs = secs.min(start.elapsed().as_secs_f64());
            }
            let parsed: Vec<(Vec<_>, Vec<_>)> = texts
                .iter()
                .map(|(b, a)| {
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    let _ = orderflow::source::levels::parse_levels(b, &mut x);
                    let _ = orderflow::source::levels::parse_levels(a, &mut y);
                    (x, y)
                })
                .collect();
            let mut apply = f64::MAX;
            for _ in 0..5 {
                let mut book = orderflow::model::Book::new();
                let start = Instant::now();
                for (b, a) in &parsed {
                    book.apply_all(orderflow::model::Side::Bid, b);
                    book.apply_all(orderflow::model::Side::Ask, a);
                    std::hint::black_box(book.imbalance(None));
                }
                apply = apply.min(start.elapsed().as_secs_f64());
            }
            println!(
                "{} rows {levels} levels: parse {:.1} ms ({:.0} ns/level), apply {:.1} ms ({:.0} ns/level)",
                texts.len(),
                secs * 1e3,
                secs * 1e9 / levels as f64,
                apply * 1e3,
                apply * 1e9 / levels as f64
            );
        }
        Some("atomic-file") if args.len() == 4 => {
            let bytes = std::fs::read(&args[1]).context("FILE")?;
            let dir = PathBuf::from(&args[2]);
            let n: usize = args[3].parse().context("N")?;
            std::fs::create_dir_all(&dir)?;
            let mut times = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                write_atomic(&dir, "checkpoint.json", &bytes)?;
                times.push(start.elapsed());
            }
            times.sort();
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
            println!("{:.3} {:.3}", at(0.5), at(0.99));
        }
        _ => bail!(
            "usage: bench_tools gen DIR INSTRUMENT YYYY-MM-DD HOURS | scan FILE… | measure -- CMD… | atomic-write DIR N | atomic-file FILE DIR N"
        ),
    }
    Ok(())
}

/// Runs `cmd`, sampling `RssAnon` every 2 ms; returns wall seconds and the
/// peak in KiB (the caller reads the CPU time of the reaped child). Fails
/// if the command fails.
fn measure(cmd: &[String]) -> anyhow::Result<(f64, u64)> {
    let start = Instant::now();
    let mut child = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", cmd[0]))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = text
                .lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{} failed: {status}", cmd[0]);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok((start.elapsed().as_secs_f64(), peak))
}

/// The floor for throughput: reads every row of both tables in `id` order
/// with the processor's SQLite settings (`orderflow::source::sqlite::open`)
/// and only touches each level text's bytes. Returns the rows read and a
/// checksum of the bytes (so the work is not optimised away).
fn bare_scan(path: &Path) -> anyhow::Result<(u64, u64)> {
    use rusqlite::types::ValueRef;
    let conn = orderflow::source::sqlite::open(path)?;
    let mut rows_read = 0u64;
    let mut sum = 0u64;
    for sql in [
        "SELECT id, timestamp, bids, asks FROM book ORDER BY id",
        "SELECT id, timestamp, price, size, side FROM trades ORDER BY id",
    ] {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            rows_read += 1;
            for i in 0..row.as_ref().column_count() {
                match row.get_ref(i)? {
                    ValueRef::Text(t) => {
                        sum = sum.wrapping_add(t.iter().map(|&b| b as u64).sum::<u64>())
                    }
                    ValueRef::Integer(v) => sum = sum.wrapping_add(v as u64),
                    ValueRef::Real(v) => sum = sum.wrapping_add(v.to_bits()),
                    _ => {}
                }
            }
        }
    }
    Ok((rows_read, sum))
}
