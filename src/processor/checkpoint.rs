//! The checkpoint: the processor's full state and input position, so a run
//! killed at any instant resumes exactly where its last flush left it.
//!
//! It is written with the atomic replace at every flush, *before* the data
//! files and from the same state, so the data files a reader sees are never
//! ahead of the checkpoint: after a crash the resumed run re-derives the
//! same or newer files, never older ones. The [`Fingerprint`] ties it to
//! the arguments and the exact input files (path, size, mtime); a run with
//! other arguments refuses it unless started with `--fresh`.
//!
//! It holds one [`Lane`] per instrument: input position, engine and the
//! series store's open segments (plus segments sealed since the last
//! flush, so a crash between checkpoint and segment write loses none).

use super::config::Config;
use crate::model::{Engine, Level};
use crate::source::{InputFile, Order, Position, Table, Trade};
use crate::store::{InstrumentRecorder, Sample, Timeframe};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Format version; a checkpoint of another version is not resumed.
pub const VERSION: u32 = 3;

/// What a checkpoint is valid for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub instrument: String,
    pub with: Vec<String>,
    pub timeframes: Vec<Timeframe>,
    /// `--footprint-tick`, raw fixed-point.
    pub footprint_tick: Option<i64>,
    pub start_date: String,
    pub end_date: String,
    pub window_seconds: u64,
    pub obi_levels: Option<usize>,
    pub max_bars: usize,
    pub depth_levels: usize,
    /// Each instrument's input files, in processing order.
    pub files: Vec<Vec<FileStamp>>,
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
    pub fn of(config: &Config, files: &[Vec<InputFile>]) -> std::io::Result<Fingerprint> {
        Ok(Fingerprint {
            instrument: config.instrument.clone(),
            with: config.with.clone(),
            timeframes: config.timeframes.clone(),
            footprint_tick: config.footprint_tick.map(crate::model::Fixed::raw),
            start_date: config.start.to_string(),
            end_date: config.end.to_string(),
            window_seconds: config.window_seconds,
            obi_levels: config.obi_levels,
            max_bars: config.max_bars,
            depth_levels: config.depth_levels,
            files: files
                .iter()
                .map(|lane| lane.iter().map(|f| FileStamp::of(&f.path)).collect())
                .collect::<Result<_, _>>()?,
        })
    }

    /// A stable id of the run: the same arguments and input files give
    /// the same id (so `control.json` survives a restart), others another.
    pub fn run_id(&self) -> String {
        // FNV-1a over the fingerprint's JSON.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }

    /// A sentence naming the first difference from `other` (this run).
    pub fn difference(&self, run: &Fingerprint) -> Option<String> {
        let args = |f: &Fingerprint| {
            let with: String = f.with.iter().map(|w| format!(" --with {w}")).collect();
            let tfs: Vec<String> = f.timeframes.iter().map(|t| t.to_string()).collect();
            format!(
                "{} {}..{}{with} window {}s obi-levels {} max-bars {} depth-levels {} timeframes {}",
                f.instrument,
                f.start_date,
                f.end_date,
                f.window_seconds,
                f.obi_levels.map_or("all".to_string(), |n| n.to_string()),
                f.max_bars,
                f.depth_levels,
                tfs.join(",")
            )
        };
        let (a, b) = (args(self), args(run));
        if a != b {
            return Some(format!("it is for `{a}`, this run is `{b}`"));
        }
        let flat = |f: &Fingerprint| f.files.iter().flatten().cloned().collect::<Vec<_>>();
        let (mine, theirs) = (flat(self), flat(run));
        if self
            .files
            .iter()
            .map(Vec::len)
            .ne(run.files.iter().map(Vec::len))
            || mine.iter().zip(&theirs).any(|(x, y)| x.path != y.path)
        {
            return Some(format!(
                "it was made from {} other input file(s) ({} now)",
                mine.len(),
                theirs.len()
            ));
        }
        mine.iter()
            .zip(&theirs)
            .find(|(x, y)| x != y)
            .map(|(x, _)| format!("input file {} changed since it was made", x.path.display()))
    }
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

/// One instrument's part of the replay: where it is in its files, its
/// book, CVD and bars, and its series being recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lane {
    /// Index of the file being read (the number of files when done).
    pub file_index: usize,
    pub book: Cursor,
    pub trades: Cursor,
    pub engine: Engine,
    pub store: InstrumentRecorder,
}

impl Lane {
    /// Applies a book row to the instrument's engine and its series.
    pub fn apply_book(&mut self, ts: i64, bids: &[Level], asks: &[Level]) {
        if let Some(v) = self.store.views_mut() {
            v.before_row(ts, self.engine.book());
        }
        let (obi, cvd) = self.engine.apply_book(ts, bids, asks);
        self.store.record(
            ts,
            &Sample {
                trade: None,
                obi,
                cvd,
            },
        );
    }

    /// Applies a trade to the instrument's engine and its series.
    pub fn apply_trade(&mut self, ts: i64, t: &Trade) {
        if let Some(v) = self.store.views_mut() {
            v.before_row(ts, self.engine.book());
            v.trade(ts, t.price, t.size, t.side);
        }
        let (obi, cvd) = self.engine.apply_trade(ts, t.price, t.size, t.side);
        self.store.record(
            ts,
            &Sample {
                trade: Some((t.price, t.size)),
                obi,
                cvd,
            },
        );
    }

    /// The heatmap's newest window from the book as it is now (before a
    /// flush or at the end of the run).
    pub fn snapshot_views(&mut self) {
        if let Some(v) = self.store.views_mut() {
            v.snapshot(self.engine.book());
        }
    }

    /// Whether the current file is untouched so far.
    pub fn at_file_start(&self) -> bool {
        self.book.after.is_none() && self.trades.after.is_none()
    }
}

/// Tables whose timestamps go backwards, read in `(timestamp, id)` order:
/// `(lane, file, table)`.
pub type Sorted = BTreeSet<(usize, usize, Table)>;

/// The processor's complete state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub fingerprint: Fingerprint,
    /// One per instrument, the primary first.
    pub lanes: Vec<Lane>,
    pub sorted: Sorted,
    /// What of `control.json` has been carried out.
    #[serde(default)]
    pub steering: super::steering::Progress,
    pub finished: bool,
}

impl Checkpoint {
    /// The state before the first row: each lane's engine and recorder as
    /// given, at the start of its first file.
    pub fn fresh(
        fingerprint: Fingerprint,
        lanes: Vec<(Engine, InstrumentRecorder)>,
        sorted: Sorted,
    ) -> Checkpoint {
        let mut c = Checkpoint {
            version: VERSION,
            fingerprint,
            lanes: lanes
                .into_iter()
                .map(|(engine, store)| Lane {
                    file_index: 0,
                    book: Cursor::start(Order::Id),
                    trades: Cursor::start(Order::Id),
                    engine,
                    store,
                })
                .collect(),
            sorted,
            steering: Default::default(),
            finished: false,
        };
        for lane in 0..c.lanes.len() {
            c.start_file(lane, 0);
        }
        c
    }

    /// Moves lane `lane` to the start of its file `index`, with an empty book.
    pub fn start_file(&mut self, lane: usize, index: usize) {
        let book = self.order(lane, index, Table::Book);
        let trades = self.order(lane, index, Table::Trades);
        let l = &mut self.lanes[lane];
        l.file_index = index;
        l.book = Cursor::start(book);
        l.trades = Cursor::start(trades);
        l.engine.reset_book();
    }

    /// Moves lane `lane` past its current file: to the start of the next
    /// one, or to the end (keeping the last file's book, which the depth
    /// shows).
    pub fn next_file(&mut self, lane: usize) {
        let next = self.lanes[lane].file_index + 1;
        if next < self.files(lane) {
            self.start_file(lane, next);
        } else {
            self.lanes[lane].file_index = self.files(lane);
        }
    }

    /// Whether lane `lane` has read all its files.
    pub fn lane_done(&self, lane: usize) -> bool {
        self.lanes[lane].file_index >= self.files(lane)
    }

    fn files(&self, lane: usize) -> usize {
        self.fingerprint.files.get(lane).map_or(0, Vec::len)
    }

    fn order(&self, lane: usize, file: usize, table: Table) -> Order {
        if self.sorted.contains(&(lane, file, table)) {
            Order::Time
        } else {
            Order::Id
        }
    }
}
