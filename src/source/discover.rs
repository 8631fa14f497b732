//! Finding the capture files of an instrument and a range of UTC days.
//!
//! A file belongs to instrument `I` and day `D` when its name is exactly
//! `I-D.ext`, or when it lies under a directory named exactly `I` and a
//! path component below that directory holds `D`. Names are matched
//! exactly so that `BTC-USDT-SWAP-…` never counts as `BTC-USDT`.

use super::SourceError;
use chrono::NaiveDate;
use std::path::{Path, PathBuf};

/// Extensions of SQLite capture files.
pub const EXTENSIONS: [&str; 3] = ["db", "sqlite", "sqlite3"];

/// One input file and the UTC day it holds (when known).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InputFile {
    pub day: Option<NaiveDate>,
    pub path: PathBuf,
}

/// All files of `instrument` for days in `[start, end]` under `root`,
/// searched recursively, in day order (then path order).
pub fn discover(
    root: &Path,
    instrument: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<InputFile>, SourceError> {
    if !root.is_dir() {
        return Err(SourceError::DataRoot {
            root: root.to_path_buf(),
        });
    }
    let mut found = Vec::new();
    walk(root, &mut |path| {
        if let Some(day) = match_file(root, path, instrument) {
            if day >= start && day <= end {
                found.push(InputFile {
                    day: Some(day),
                    path: path.to_path_buf(),
                });
            }
        }
    })
    .map_err(|source| SourceError::Walk {
        root: root.to_path_buf(),
        source,
    })?;
    found.sort();
    found.dedup();
    if found.is_empty() {
        return Err(SourceError::NoFiles {
            root: root.to_path_buf(),
            instrument: instrument.to_string(),
            start,
            end,
        });
    }
    Ok(found)
}

/// Files given explicitly (`--db`), in day order like discovered ones
/// (the spec processes files in day order, and CVD carries from one to the
/// next): when every file's day is known, from a date in its name or its
/// directory's name, they are sorted by it; files of one day, or files
/// without a date, keep the order given. A file given twice is read once
/// (its trades would otherwise count twice).
pub fn explicit(paths: &[PathBuf]) -> Vec<InputFile> {
    let mut files: Vec<InputFile> = Vec::with_capacity(paths.len());
    let mut seen: Vec<PathBuf> = Vec::with_capacity(paths.len());
    for p in paths {
        let id = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        let date_in =
            |part: Option<&std::ffi::OsStr>| part.and_then(|n| n.to_str()).and_then(find_date);
        files.push(InputFile {
            day: date_in(p.file_name()).or_else(|| date_in(p.parent().and_then(Path::file_name))),
            path: p.clone(),
        });
    }
    if files.iter().all(|f| f.day.is_some()) {
        files.sort_by_key(|f| f.day);
    }
    files
}

/// Which of `instruments` an explicit file belongs to by the naming rules
/// (`I-D.ext`, or a directory named exactly `I` above it), if any.
pub fn owner(path: &Path, instruments: &[&str]) -> Option<usize> {
    let root = Path::new(if path.is_absolute() { "/" } else { "" });
    instruments
        .iter()
        .position(|i| match_file(root, path, i).is_some())
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, f)?;
        } else if kind.is_file() || kind.is_symlink() {
            f(&path);
        }
    }
    Ok(())
}

/// The day a file holds for `instrument`, if it belongs to it.
fn match_file(root: &Path, path: &Path, instrument: &str) -> Option<NaiveDate> {
    let name = path.file_name()?.to_str()?;
    let (stem, ext) = name.rsplit_once('.')?;
    if !EXTENSIONS.contains(&ext) {
        return None;
    }
    // `I-D.ext`
    if let Some(prefix) = stem.len().checked_sub(11).and_then(|i| stem.get(..i)) {
        if prefix == instrument && stem.as_bytes()[prefix.len()] == b'-' {
            if let Some(day) = parse_date(&stem[prefix.len() + 1..]) {
                return Some(day);
            }
        }
    }
    // `…/I/…D…/…`
    let rel = path.strip_prefix(root).ok()?;
    let components: Vec<&str> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    let at = components.iter().position(|c| *c == instrument)?;
    components[at + 1..].iter().find_map(|c| find_date(c))
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The first `YYYY-MM-DD` date in `text`.
fn find_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(9)).find_map(|i| {
        let w = &b[i..i + 10];
        let shape = w.iter().enumerate().all(|(j, c)| {
            if j == 4 || j == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
        if shape {
            parse_date(std::str::from_utf8(w).ok()?)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn explicit_files_are_matched_to_instruments_by_name() {
        let ins = ["BTC-USDT", "ETH-USDT"];
        let o = |p: &str| owner(Path::new(p), &ins);
        assert_eq!(o("/d/ETH-USDT-2024-01-01.db"), Some(1));
        assert_eq!(o("BTC-USDT-2024-01-01.sqlite"), Some(0));
        assert_eq!(o("x/ETH-USDT/2024-01-01/book.db"), Some(1));
        assert_eq!(o("/d/BTC-USDT-SWAP-2024-01-01.db"), None);
        assert_eq!(o("/d/capture.db"), None);
    }

    #[test]
    fn explicit_files_come_in_day_order_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let day2 = dir.path().join("X-2025-01-02.db");
        let day1 = dir.path().join("2025-01-01").join("book.db");
        std::fs::create_dir_all(day1.parent().unwrap()).unwrap();
        std::fs::write(&day1, b"").unwrap();
        std::fs::write(&day2, b"").unwrap();
        // The same file again, by another spelling of its path.
        let again = dir
            .path()
            .join("2025-01-01")
            .join("..")
            .join("X-2025-01-02.db");
        let files = explicit(&[day2.clone(), day1.clone(), again]);
        let got: Vec<_> = files.iter().map(|f| (f.day, f.path.clone())).collect();
        assert_eq!(
            got,
            [
                (Some(d("2025-01-01")), day1.clone()),
                (Some(d("2025-01-02")), day2.clone())
            ]
        );
        // A file without a date: the order given is kept.
        let plain = dir.path().join("capture.db");
        let files = explicit(&[day2.clone(), plain.clone(), day1.clone()]);
        let got: Vec<_> = files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(got, [day2, plain, day1]);
    }

    #[test]
    fn matches_names_and_directories_exactly() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for p in [
            "BTC-USDT-2025-01-01.db",
            "BTC-USDT-SWAP-2025-01-01.db",
            "x/BTC-USDT-2025-01-02.sqlite3",
            "BTC-USDT/2025-01-03/book.db",
            "BTC-USDT/2025-01-04.sqlite",
            "BTC-USDT-SWAP/2025-01-01/book.db",
            "BTC-USDT/2025-01-05/notes.txt",
            "BTC-USDT-2025-01-06.csv",
            "BTC-USDT-2025-01-10.db",
            "ETH-USDT-2025-01-01.db",
        ] {
            let path = r.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
        }
        let found = discover(r, "BTC-USDT", d("2025-01-01"), d("2025-01-05")).unwrap();
        let rel: Vec<String> = found
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(r)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            rel,
            [
                "BTC-USDT-2025-01-01.db",
                "x/BTC-USDT-2025-01-02.sqlite3",
                "BTC-USDT/2025-01-03/book.db",
                "BTC-USDT/2025-01-04.sqlite"
            ]
        );
        let swap = discover(r, "BTC-USDT-SWAP", d("2025-01-01"), d("2025-01-01")).unwrap();
        assert_eq!(swap.len(), 2);
        let err = discover(r, "SOL-USDT", d("2025-01-01"), d("2025-01-01"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SOL-USDT") && err.contains("2025-01-01"),
            "{err}"
        );
    }

    #[test]
    fn finds_dates_in_names() {
        assert_eq!(find_date("BTC-USDT-2022-05-13.db"), Some(d("2022-05-13")));
        assert_eq!(find_date("2022-13-13"), None);
        assert_eq!(find_date("book.db"), None);
    }
}
