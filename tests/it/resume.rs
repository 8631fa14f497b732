//! Crash safety: a processor SIGKILLed at random instants and restarted
//! ends with the files of an uninterrupted run, and readers never see the
//! files go backwards; the checkpoint refuses other arguments.

use crate::harness::{fast_tempdir, json, processor, temp_files, KillOnDrop, TestCommand};
use orderflow::synth::SynthConfig;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: i64 = 1_704_067_200_000;
const DATA: [&str; 3] = ["ohlc_data.json", "metrics_data.json", "depth_data.json"];

fn generate(dir: &Path, hours: i64) -> String {
    let db = dir.join("GEN-USDT-2024-01-01.db");
    let mut cfg = SynthConfig::new(DAY, hours * 3_600_000);
    cfg.levels_per_side = 200;
    orderflow::synth::write_file(&db, &cfg).unwrap();
    db.to_str().unwrap().to_string()
}

fn args<'a>(db: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "GEN-USDT",
        "2024-01-01",
        "2024-01-01",
        "--db",
        db,
        "--out",
        out,
        "--window-seconds",
        "10",
        "--flush-ms",
        "20",
        "--max-bars",
        "500",
    ]
}

/// (bar count, newest timestamp) of the OHLC file, if it parses.
fn progress_of(out: &Path) -> Option<(usize, i64)> {
    let bytes = std::fs::read(out.join("ohlc_data.json")).ok()?;
    let v: Vec<Vec<f64>> = serde_json::from_slice(&bytes).expect("ohlc_data.json always parses");
    Some((v.len(), v.last().map_or(i64::MIN, |b| b[0] as i64)))
}

#[test]
fn twenty_sigkills_lose_nothing() {
    let dir = fast_tempdir();
    let db = generate(dir.path(), 3);
    // The uninterrupted reference, timed.
    let reference = dir.path().join("reference");
    let started = Instant::now();
    let run = processor(&args(&db, reference.to_str().unwrap()));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let total = started.elapsed();

    let out = dir.path().join("out");
    let o = out.to_str().unwrap().to_string();
    // A reader polling the files throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, out) = (stop.clone(), out.clone());
        std::thread::spawn(move || {
            let mut last = (0usize, i64::MIN);
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(now) = progress_of(&out) {
                    // Bar count may stay at the window's cap; newest never goes back.
                    assert!(now.1 >= last.1, "newest bar went back: {last:?} → {now:?}");
                    assert!(now.0 >= last.0, "bar count went back: {last:?} → {now:?}");
                    last = now;
                    reads += 1;
                }
            }
            reads
        })
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
    let mut kills = 0;
    let mut finished = false;
    for _ in 0..20 {
        let child = TestCommand::processor()
            .args(args(&db, &o))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let after = total.mul_f64(rng.gen_range(0.02..0.25));
        let deadline = Instant::now() + after;
        while Instant::now() < deadline {
            if child.0.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.0.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        kills += 1;
    }
    // Run to the end.
    let run = processor(&args(&db, &o));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(kills >= 15 || finished, "only {kills} kills landed mid-run");
    assert!(reads > 100, "the reader read {reads} times");
    for f in DATA {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(reference.join(f)).unwrap(),
            "{f} differs from the uninterrupted run after {kills} kills"
        );
    }
    let status = json(&out.join("status.json"));
    assert_eq!(status["state"], "finished");
    assert_eq!(
        status["rows_done"],
        json(&reference.join("status.json"))["rows_done"]
    );
    assert_eq!(temp_files(&out), Vec::<String>::new());
}

/// Every file in `dir` and below (the series store) but the lock: its
/// path, bytes and modification time.
fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

fn contents_and_mtimes(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".writer.lock")
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let mut out = Vec::new();
    for e in entries {
        if e.file_type().unwrap().is_dir() {
            out.extend(contents_and_mtimes(&e.path()));
        } else {
            out.push((
                e.path(),
                std::fs::read(e.path()).unwrap(),
                e.metadata().unwrap().modified().unwrap(),
            ));
        }
    }
    out
}

#[test]
fn a_finished_run_started_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = generate(dir.path(), 1);
    let out = dir.path().join("out");
    let a = args(&db, out.to_str().unwrap());
    assert!(processor(&a).status.success());
    let before = contents_and_mtimes(&out);
    let again = processor(&a);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    let after = contents_and_mtimes(&out);
    assert_eq!(before, after);
}

#[test]
fn a_checkpoint_for_other_arguments_is_refused_unless_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let db = generate(dir.path(), 1);
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    assert!(processor(&args(&db, o)).status.success());
    let reference = std::fs::read(out.join("ohlc_data.json")).unwrap();
    let mut other = args(&db, o);
    other[8] = "30"; // --window-seconds 30
    let run = processor(&other);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("does not match this run")
            && stderr.contains("window 10s")
            && stderr.contains("--fresh"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(out.join("ohlc_data.json")).unwrap(),
        reference,
        "left as it was"
    );
    other.push("--fresh");
    let old_store = inode(&out.join("series"));
    let run = processor(&other);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bars: Vec<Vec<f64>> = serde_json::from_value(json(&out.join("ohlc_data.json"))).unwrap();
    assert!(
        bars.windows(2).all(|w| w[1][0] - w[0][0] >= 30_000.0),
        "30 s bars after --fresh"
    );
    // The old run's store was replaced whole (renamed aside, deleted in
    // the background before the run ended): a new directory, no leftovers.
    assert_ne!(inode(&out.join("series")), old_store, "a new store");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("discarded"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Changed input data is refused as well.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "INSERT INTO trades(trade_id, price, size, side, timestamp) VALUES (1, 1, 1, 'buy', ?1)",
        [DAY + 5],
    )
    .unwrap();
    drop(c);
    let run = processor(&other[..other.len() - 1]);
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("changed since"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn a_corrupt_checkpoint_is_reported_and_the_run_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let db = generate(dir.path(), 1);
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    assert!(processor(&args(&db, o)).status.success());
    let reference: Vec<Vec<u8>> = DATA
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    std::fs::write(out.join("checkpoint.json"), b"{\"version\": 1, \"finger").unwrap();
    // While it starts over, the data files it had must not be replaced by
    // older ones.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, out) = (stop.clone(), out.clone());
        let first = progress_of(&out).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = progress_of(&out).unwrap();
                assert!(
                    now >= first,
                    "data files went back from {first:?} to {now:?}"
                );
            }
        })
    };
    let run = processor(&args(&db, o));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("checkpoint") && stderr.contains("starting over"),
        "{stderr}"
    );
    let again: Vec<Vec<u8>> = DATA
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    assert_eq!(again, reference);
}
