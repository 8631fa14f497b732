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

/// The demo's day.
pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, 1).unwrap_or_default()
}

/// The demo day as the processor's date argument.
pub fn day_arg() -> String {
    day().format("%Y-%m-%d").to_string()
}

/// Writes (once) the demo capture under `dir/<hours>h/`, `hours` of
/// market from midnight UTC, and returns its path.
pub fn ensure_data(dir: &Path, hours: f64) -> Result<PathBuf, SynthError> {
    let template = SynthConfig::new(0, 0);
    let dir = dir.join(format!("{hours}h"));
    let paths = synth::write_days(&dir, INSTRUMENT, day(), 1, hours, &template)?;
    Ok(paths
        .into_iter()
        .next()
        .unwrap_or_else(|| dir.join(format!("{INSTRUMENT}-{}.db", day_arg()))))
}

/// The processor's job for the demo: the demo day of [`INSTRUMENT`] from
/// `db` in `window_seconds` bars, replayed at `speed` (`max` or a factor).
pub fn job(db: &Path, window_seconds: u64, speed: &str) -> Result<Job, clap::Error> {
    let day = day_arg();
    Job::from_argv([
        OsString::from(INSTRUMENT),
        day.clone().into(),
        day.into(),
        "--window-seconds".into(),
        window_seconds.to_string().into(),
        "--speed".into(),
        speed.into(),
        "--db".into(),
        db.into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_replays_the_demo_day_of_the_file() {
        let argv = job(Path::new("d/1h/x.db"), 10, "20").unwrap().to_argv();
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
        assert!(joined.ends_with("--db d/1h/x.db"), "{joined}");
        assert!(job(Path::new("x.db"), 10, "fast").is_ok(), "checked later");
    }

    #[test]
    fn generates_once_and_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = ensure_data(dir.path(), 0.01).unwrap();
        assert_eq!(path, dir.path().join("0.01h/BTC-USDT-2024-03-01.db"));
        let first = std::fs::metadata(&path).unwrap().modified().unwrap();
        let again = ensure_data(dir.path(), 0.01).unwrap();
        assert_eq!(again, path);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), first);
        // Another length is another file, not the old one replayed.
        let longer = ensure_data(dir.path(), 0.02).unwrap();
        assert_eq!(longer, dir.path().join("0.02h/BTC-USDT-2024-03-01.db"));
        assert!(
            std::fs::metadata(&longer).unwrap().len() > std::fs::metadata(&path).unwrap().len()
        );
    }
}
