//! The demo data set: generated once, deterministically, with
//! [`crate::synth`], then replayed by `orderflow demo`.
//!
//! This module owns the demo's choices (instrument, day, length, where the
//! file goes, the replay's job) and nothing else; generation itself is
//! [`crate::synth`]'s, the replay the processor's.
//! A file already there is kept, because the generator is deterministic:
//! the second `orderflow demo` starts at once. Each length has its own
//! folder (`1h/`, `0.5h/`), so asking for another length never replays a
//! file of the old one.

use crate::processor::Job;
use crate::synth::{self, SynthConfig, SynthError};
use chrono::NaiveDate;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The demo's instrument.
pub const INSTRUMENT: &str = "BTC-USDT";
/// The reference instrument replayed beside it (`--with`).
pub const REFERENCE: &str = "ETH-USDT";

/// The demo's day.
pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, 1).unwrap_or_default()
}

/// The demo day as the processor's date argument.
pub fn day_arg() -> String {
    day().format("%Y-%m-%d").to_string()
}

/// Writes (once) the demo captures under `dir/<hours>h/`, `hours` of
/// market from midnight UTC, and returns their paths: [`INSTRUMENT`]'s,
/// then [`REFERENCE`]'s (an ETH-like market of its own).
pub fn ensure_data(dir: &Path, hours: f64) -> Result<Vec<PathBuf>, SynthError> {
    let dir = dir.join(format!("{hours}h"));
    let btc = SynthConfig::new(0, 0);
    let mut eth = SynthConfig::new(0, 0);
    eth.mid = crate::model::Fixed::from_int(3_000);
    eth.tick = crate::model::Fixed::from_raw(1_000_000);
    eth.levels_per_side = 300;
    eth.book_per_second = 8.0;
    eth.trades_per_second = 4.0;
    eth.seed = 101;
    let mut paths = Vec::new();
    for (instrument, template) in [(INSTRUMENT, &btc), (REFERENCE, &eth)] {
        let written = synth::write_days(&dir, instrument, day(), 1, hours, template)?;
        paths.push(
            written
                .into_iter()
                .next()
                .unwrap_or_else(|| dir.join(format!("{instrument}-{}.db", day_arg()))),
        );
    }
    Ok(paths)
}

/// The processor's job for the demo: the demo day of [`INSTRUMENT`] with
/// [`REFERENCE`] beside it, from `dbs`, in `window_seconds` bars, replayed
/// at `speed` (`max` or a factor).
pub fn job(dbs: &[PathBuf], window_seconds: u64, speed: &str) -> Result<Job, clap::Error> {
    let day = day_arg();
    let mut argv = vec![
        OsString::from(INSTRUMENT),
        day.clone().into(),
        day.into(),
        "--window-seconds".into(),
        window_seconds.to_string().into(),
        "--speed".into(),
        speed.into(),
        "--with".into(),
        REFERENCE.into(),
        "--db".into(),
    ];
    argv.extend(dbs.iter().map(|p| p.clone().into_os_string()));
    Job::from_argv(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_replays_the_demo_day_of_the_file() {
        let dbs = [PathBuf::from("d/1h/x.db"), PathBuf::from("d/1h/y.db")];
        let argv = job(&dbs, 10, "20").unwrap().to_argv();
        let text: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = text.join(" ");
        assert!(
            joined.starts_with("BTC-USDT 2024-03-01 2024-03-01 --window-seconds 10"),
            "{joined}"
        );
        assert!(joined.contains("--speed 20"), "{joined}");
        assert!(joined.contains("--with ETH-USDT"), "{joined}");
        assert!(joined.ends_with("--db d/1h/x.db d/1h/y.db"), "{joined}");
        assert!(job(&dbs, 10, "fast").is_ok(), "checked later");
    }

    #[test]
    fn generates_once_and_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ensure_data(dir.path(), 0.01).unwrap();
        assert_eq!(
            paths,
            [
                dir.path().join("0.01h/BTC-USDT-2024-03-01.db"),
                dir.path().join("0.01h/ETH-USDT-2024-03-01.db")
            ]
        );
        let path = paths[0].clone();
        let first = std::fs::metadata(&path).unwrap().modified().unwrap();
        let again = ensure_data(dir.path(), 0.01).unwrap();
        assert_eq!(again, paths);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), first);
        // Another length is another file, not the old one replayed.
        let longer = ensure_data(dir.path(), 0.02).unwrap()[0].clone();
        assert_eq!(longer, dir.path().join("0.02h/BTC-USDT-2024-03-01.db"));
        assert!(
            std::fs::metadata(&longer).unwrap().len() > std::fs::metadata(&path).unwrap().len()
        );
    }
}
