//! The checkpoint: the processor's full state and input position, so a run
//! killed at any instant resumes exactly where its last flush left it.
//!
//! It is written with the atomic replace at every flush, *before* the data
//! files and from the same state, so the data files a reader sees are never
//! ahead of the checkpoint: after a crash the resumed run re-derives the
//! same or newer files, never older ones. The [`Fingerprint`] ties it to
//! the arguments and the exact input files (path, size, mtime); a run with
//! other arguments refuses it unless started with `--fresh`.

use super::config::Config;
use crate::model::Engine;
use crate::source::{InputFile, Order, Position};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Format version; a checkpoint of another version is not resumed.
pub const VERSION: u32 = 1;

/// What a checkpoint is valid for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub instrument: String,
    pub start_date: String,
    pub end_date: String,
    pub window_seconds: u64,
    pub obi_levels: Option<usize>,
    pub max_bars: usize,
    pub depth_levels: usize,
    pub files: Vec<FileStamp>,
}

/// An input file as it was when the run started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileStamp {
    pub fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Ok(FileStamp {
            path: std::fs::canonicalize(path)?,
            size: meta.len(),
            mtime_ns,
        })
    }
}

impl Fingerprint {
    pub fn of(config: &Config, files: &[InputFile]) -> std::io::Result<Fingerprint> {
        Ok(Fingerprint {
            instrument: config.instrument.clone(),
            start_date: config.start.to_string(),
            end_date: config.end.to_string(),
            window_seconds: config.window_seconds,
            obi_levels: config.obi_levels,
            max_bars: config.max_bars,
            depth_levels: config.depth_levels,
            files: files
                .iter()
                .map(|f| FileStamp::of(&f.path))
                .collect::<Result<_, _>>()?,
        })
    }

    /// A sentence naming the first difference from `other` (this run).
    pub fn difference(&self, run: &Fingerprint) -> Option<String> {
        let args = |f: &Fingerprint| {
            format!(
                "{} {}..{} window {}s obi-levels {} max-bars {} depth-levels {}",
                f.instrument,
                f.start_date,
                f.end_date,
                f.window_seconds,
                f.obi_levels.map_or("all".to_string(), |n| n.to_string()),
                f.max_bars,
                f.depth_levels
            )
        };
        let (a, b) = (args(self), args(run));
        if a != b {
            return Some(format!("it is for `{a}`, this run is `{b}`"));
        }
        if self.files.len() != run.files.len()
            || self
                .files
                .iter()
                .zip(&run.files)
                .any(|(x, y)| x.path != y.path)
        {
            return Some(format!(
                "it was made from {} other input file(s) ({} now)",
                self.files.len(),
                run.files.len()
            ));
        }
        self.files
            .iter()
            .zip(&run.files)
            .find(|(x, y)| x != y)
            .map(|(x, _)| format!("input file {} changed since it was made", x.path.display()))
    }
}

/// Which table of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Book,
    Trades,
}

/// Where one table of the current file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub order: Order,
    /// The last row applied (or skipped); `None` at the file's start.
    pub after: Option<Position>,
}

impl Cursor {
    pub fn start(order: Order) -> Cursor {
        Cursor { order, after: None }
    }
}

/// The processor's complete state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub fingerprint: Fingerprint,
    /// Index of the file being read (`files.len()` when done).
    pub file_index: usize,
    pub book: Cursor,
    pub trades: Cursor,
    /// Tables whose timestamps go backwards, read in `(timestamp, id)` order.
    pub sorted: BTreeSet<(usize, Table)>,
    pub engine: Engine,
    pub finished: bool,
}

impl Checkpoint {
    /// The state before the first row.
    pub fn fresh(
        fingerprint: Fingerprint,
        engine: Engine,
        sorted: BTreeSet<(usize, Table)>,
    ) -> Checkpoint {
        let mut c = Checkpoint {
            version: VERSION,
            fingerprint,
            file_index: 0,
            book: Cursor::start(Order::Id),
            trades: Cursor::start(Order::Id),
            sorted,
            engine,
            finished: false,
        };
        c.start_file(0);
        c
    }

    /// Moves to the start of file `index`, with an empty book.
    pub fn start_file(&mut self, index: usize) {
        self.file_index = index;
        self.book = Cursor::start(self.order(index, Table::Book));
        self.trades = Cursor::start(self.order(index, Table::Trades));
        self.engine.reset_book();
    }

    /// Moves past the current file: to the start of the next one, or to
    /// the end (keeping the last file's book, which the depth shows).
    pub fn next_file(&mut self) {
        if self.file_index + 1 < self.fingerprint.files.len() {
            self.start_file(self.file_index + 1);
        } else {
            self.file_index = self.fingerprint.files.len();
        }
    }

    /// Whether the current file is untouched so far.
    pub fn at_file_start(&self) -> bool {
        self.book.after.is_none() && self.trades.after.is_none()
    }

    fn order(&self, file: usize, table: Table) -> Order {
        if self.sorted.contains(&(file, table)) {
            Order::Time
        } else {
            Order::Id
        }
    }
}
