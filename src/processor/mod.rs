//! The processor: capture rows → [`Engine`]s and the series store → the
//! files in `OUT`.
//!
//! [`Processor::open`] does everything that can fail before a single output
//! file is touched: it finds and checks the inputs of every instrument,
//! takes the directory's writer lock, sweeps stale temp files and loads or
//! refuses the checkpoint. [`Processor::run`] then merges the book and
//! trade streams of every instrument's current file by timestamp (book
//! first on ties, then instrument order), applies each row to its
//! instrument's engine and series, paces the replay for `--speed`, and
//! flushes checkpoint, data files, store files and status at most every
//! `--flush-ms`, less often when building a flush would take more than a
//! twentieth of an unpaced loop's time (status at least once a second, as the
//! heartbeat the supervisor watches).
//!
//! This module owns the pipeline's control flow (opening, the merge loop,
//! pacing, steering); `output` what each flush writes and when; the
//! numbers are the model's, the series are the store's, the reading is the
//! source's, the file writing is ipc's.

pub mod checkpoint;
pub mod config;
pub mod flusher;
mod output;
pub mod progress;
pub mod steering;

pub use config::{Args, Checkpointing, Config, ConfigError, Inputs, Job, Start};

use crate::ipc::{self, files, DirLock, IpcError, RunState, Status};
use crate::model::{Counters, Engine, EngineConfig, Level};
use crate::source::{
    self, BookRow, FileInfo, InputFile, Next, Position, SourceError, StreamSpec, StreamStop, Table,
    TableStream, TradeRow,
};
use crate::store::{self, InstrumentRecorder};
use checkpoint::{Checkpoint, Cursor, Fingerprint, Sorted};
use flusher::{json, Flusher};
use output::newest_bar;
use progress::Progress;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use steering::{Gate, Steering};

/// Status is refreshed at least this often, whatever `--flush-ms` is.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long to wait on a busy reader before refreshing the heartbeat.
const POLL: Duration = Duration::from_millis(200);
/// Skipped rows reported one by one before only counting them.
const REPORTED_SKIPS: u64 = 10;
/// At `--speed max`, a flush is due no sooner than this many times the
/// time the last one took to build, so that building flushes stays under a
/// twentieth of the replay loop's time however large the checkpoint and
/// open segments grow (`--flush-ms` is a floor on the interval, not a
/// promise).
const FLUSH_COST_SHARE: u32 = 20;
/// The interval between flushes never grows past this.
const MAX_FLUSH_INTERVAL: Duration = Duration::from_millis(1000);
/// Sealed segments held for the writer before the replay waits for it
/// (keeps memory bounded when the disk is slower than the replay).
const MAX_SEALED_WAITING: usize = 32;
/// Sealed segments that are written on their own, between flushes, as
/// soon as the writer is free (a day of `1s` bars seals one every 1000
/// seconds of market time: dozens between two flushes at full speed).
const SEALED_BATCH: usize = 4;

/// Errors that stop a run. Each names the file or argument to fix.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Output(#[from] IpcError),
    #[error("cannot create output directory {path}: {source}")]
    OutDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot stat input file: {0}")]
    Stat(std::io::Error),
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "the checkpoint in {path} does not match this run: {reason}; \
         run with --fresh to start over, or use another --out"
    )]
    CheckpointMismatch { path: PathBuf, reason: String },
    #[error("cannot replace the series store {path}: {source}")]
    ClearStore {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read back the heatmap of the run to resume in {path}: {source}; run with --fresh to start over")]
    RestoreViews {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every row processed; the files hold the final result.
    Finished(Status),
    /// The checkpoint says this exact run already finished; nothing written.
    AlreadyFinished,
    /// Stopped by the shutdown flag; the checkpoint allows a resume.
    Stopped(Status),
}

/// What the merge loop does next with a stream.
#[derive(Clone, Copy)]
enum Head {
    Row(Position),
    End,
    /// Nothing yet: poll again.
    Wait,
    /// The run went back to an earlier state (a table is re-read sorted):
    /// every stream is opened again.
    Restart,
}

impl Head {
    fn row(self) -> Option<Position> {
        match self {
            Head::Row(p) => Some(p),
            _ => None,
        }
    }
}

/// The two tables of one instrument's current file, being read.
struct Streams {
    book: TableStream<BookRow>,
    trades: TableStream<TradeRow>,
}

/// Which output files changed since the last flush.
#[derive(Clone, Debug)]
struct Dirty {
    ohlc: bool,
    metrics: bool,
    /// `depth_data.json` (the primary's depth).
    depth: bool,
    /// Each instrument's `series/<I>/depth.json`.
    lane_depth: Vec<bool>,
    /// Anything in the store (the index is rewritten).
    store: bool,
}

impl Dirty {
    fn all(lanes: usize) -> Dirty {
        Dirty {
            ohlc: true,
            metrics: true,
            depth: true,
            lane_depth: vec![true; lanes],
            store: true,
        }
    }

    fn none(lanes: usize) -> Dirty {
        Dirty {
            ohlc: false,
            metrics: false,
            depth: false,
            lane_depth: vec![false; lanes],
            store: false,
        }
    }
}

/// A run ready to go: inputs checked, directory locked, state loaded.
pub struct Processor {
    config: Config,
    /// Each instrument's input files, in processing order.
    files: Vec<Vec<InputFile>>,
    /// What [`source::inspect`] found in each of `files`.
    infos: Vec<Vec<FileInfo>>,
    /// Reader threads per book table: every instrument's tables are read
    /// at once, so the cores are shared between them.
    book_readers: usize,
    rows_total: u64,
    _lock: DirLock,
    st: Checkpoint,
    dirty: Dirty,
    /// Started from a checkpoint: sealed segments may already be on disk
    /// and are then not written again.
    resumed: bool,
    /// The store starts over: its directory is replaced before the first
    /// flush.
    clear_store: bool,
    /// Store directories known to exist.
    made_dirs: HashSet<PathBuf>,
    /// Stores of earlier runs being deleted in the background
    /// ([`ipc::discard`]); waited for when the run ends.
    discarding: Vec<ipc::discard::Discarding>,
    /// A resumed run's segment files (relative to `OUT`) by whether they
    /// were found sealed on disk: a flush of the killed run may have
    /// written them before the checkpoint it did not live to write. Those
    /// found sealed are never written again.
    sealed_on_disk: HashMap<PathBuf, bool>,
    started: Instant,
    started_ms: i64,
    rows_at_start: u64,
    last_flush: Instant,
    /// How long building the last flush took (see [`FLUSH_COST_SHARE`]).
    flush_cost: Duration,
    last_status: Instant,
    pace: Option<(Instant, i64)>,
    progress: Progress,
    notes: Vec<String>,
    flusher: Flusher,
    rows_since_tick: u32,
    /// Newest bar already in the data files when the run had to start
    /// over: the data files are not replaced before the run gets there.
    hold_until: Option<i64>,
    /// `control.json`: pause, speed, step, jump.
    steering: Steering,
    /// Space held for a last `status.json` when the disk fills.
    reserve: ipc::Reserve,
}

/// What waiting for a row's market time ended with.
enum Paced {
    Due,
    Shutdown,
    /// The steering changed (paused, new speed): decide again.
    Changed,
}

impl Processor {
    /// Checks inputs, locks `OUT`, loads the checkpoint. Writes nothing.
    pub fn open(config: &Config) -> Result<Processor, ProcessorError> {
        let files = find_inputs(config)?;
        let infos: Vec<Vec<FileInfo>> = files
            .iter()
            .map(|lane| lane.iter().map(|f| source::inspect(&f.path)).collect())
            .collect::<Result<_, _>>()?;
        let rows_total = infos
            .iter()
            .flatten()
            .map(FileInfo::rows_estimate)
            .fold(0u64, u64::saturating_add);
        std::fs::create_dir_all(&config.out).map_err(|source| ProcessorError::OutDir {
            path: config.out.clone(),
            source,
        })?;
        let lock = DirLock::acquire(&config.out, files::WRITER_LOCK, "processor")?;
        ipc::sweep_stale_temp_files(&config.out)?;
        let reserve = ipc::Reserve::hold(&config.out);
        ipc::sweep_stale_temp_files_below(&config.out.join(store::format::DIR))?;
        let fingerprint = Fingerprint::of(config, &files).map_err(ProcessorError::Stat)?;
        let mut notes = Vec::new();
        let mut hold_until = None;
        let path = config.out.join(files::CHECKPOINT);
        let fresh = || Checkpoint::fresh(fingerprint.clone(), new_lanes(config), Sorted::new());
        let resume = config.checkpoint() && !config.fresh() && path.exists();
        let st = if resume {
            match ipc::read_json::<Checkpoint>(&path) {
                Ok(c) if c.version == checkpoint::VERSION && c.lanes.len() == files.len() => {
                    if let Some(reason) = c.fingerprint.difference(&fingerprint) {
                        return Err(ProcessorError::CheckpointMismatch { path, reason });
                    }
                    notes.push(if c.finished {
                        "this run already finished; nothing to do".to_string()
                    } else {
                        let at: Vec<String> = c
                            .lanes
                            .iter()
                            .zip(&files)
                            .map(|(l, f)| {
                                format!("file {} of {}", (l.file_index + 1).min(f.len()), f.len())
                            })
                            .collect();
                        format!("resuming from the checkpoint at {}", at.join(", "))
                    });
                    Some(c)
                }
                Ok(_) | Err(_) => {
                    notes.push(format!(
                        "the checkpoint {} is unreadable or of another version; starting over \
                         (the data files are kept until there is something newer)",
                        path.display()
                    ));
                    hold_until = newest_bar(&config.out);
                    None
                }
            }
        } else {
            None
        };
        let resumed = st.is_some();
        let mut st = st.unwrap_or_else(fresh);
        for lane in &mut st.lanes {
            lane.store.touch();
            if resumed {
                if let Some(v) = lane.store.views_mut() {
                    v.restore_heatmap(&config.out).map_err(|source| {
                        ProcessorError::RestoreViews {
                            path: config.out.join(store::format::DIR),
                            source,
                        }
                    })?;
                }
            }
        }
        let label = format!("{} {}s", config.instrument, config.window_seconds);
        let lanes = st.lanes.len();
        let steering = Steering::new(
            config.out.join(files::CONTROL),
            fingerprint.run_id(),
            config.speed,
        );
        Ok(Processor {
            config: config.clone(),
            book_readers: (std::thread::available_parallelism().map_or(2, usize::from)
                / files.len())
            .max(1),
            files,
            infos,
            rows_total,
            _lock: lock,
            rows_at_start: counters(&st).rows(),
            st,
            dirty: Dirty::all(lanes),
            resumed,
            clear_store: !resumed,
            made_dirs: HashSet::new(),
            discarding: ipc::discard::sweep(&config.out, store::format::DIR)
                .into_iter()
                .collect(),
            sealed_on_disk: HashMap::new(),
            started: Instant::now(),
            started_ms: ipc::now_ms(),
            last_flush: Instant::now(),
            flush_cost: Duration::ZERO,
            last_status: Instant::now(),
            pace: None,
            progress: Progress::new(&label),
            notes,
            flusher: Flusher::start(config.out.clone()).map_err(ProcessorError::Thread)?,
            rows_since_tick: 0,
            hold_until,
            steering,
            reserve,
        })
    }

    /// Notes from opening (resume, corrupt checkpoint) for the log.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Whether the checkpoint says this run already finished.
    pub fn is_finished(&self) -> bool {
        self.st.finished
    }

    /// The input files of every instrument, in processing order.
    pub fn files(&self) -> impl Iterator<Item = &InputFile> {
        self.files.iter().flatten()
    }

    /// Runs to the end or until `shutdown` is set. On an error the status
    /// file says `failed` with the reason; the data files keep their last
    /// good flush.
    pub fn run(mut self, shutdown: &AtomicBool) -> Result<Outcome, ProcessorError> {
        if self.st.finished {
            return Ok(Outcome::AlreadyFinished);
        }
        // A restarted processor obeys the control file as it is; a fresh
        // run takes its pause and speed, not the steps and jumps it records.
        if self.rows_at_start == 0 && self.st.steering == steering::Progress::default() {
            self.steering.adopt(&mut self.st.steering);
        }
        self.steer(true);
        let result = self.replay(shutdown).and_then(|done| {
            self.progress.finish();
            if done {
                self.st.finished = true;
                for lane in &mut self.st.lanes {
                    lane.snapshot_views();
                    lane.store.seal_all();
                }
                self.dirty.store = true;
                self.flush_final(RunState::Finished, None)?;
                Ok(Outcome::Finished(self.status(RunState::Finished, None)))
            } else {
                let note = "stopped by a signal; start again with the same arguments to resume";
                self.flush_final(RunState::Stopped, Some(note.to_string()))?;
                Ok(Outcome::Stopped(
                    self.status(RunState::Stopped, Some(note.to_string())),
                ))
            }
        });
        for pending in std::mem::take(&mut self.discarding) {
            for (path, e) in pending.wait() {
                self.progress.println(&format!(
                    "note: could not delete the old series store {}: {e}; delete it by hand",
                    path.display()
                ));
            }
        }
        match result {
            Ok(outcome) => {
                self.reserve.release();
                Ok(outcome)
            }
            Err(e) => {
                self.progress.finish();
                self.record_failure(&e);
                Err(e)
            }
        }
    }

    /// Says in `status.json` why the run failed, whenever that can still
    /// be written: the space reserved for it is given back first, so a
    /// full disk has room for this one small file. The other files keep
    /// their last good state.
    fn record_failure(&mut self, e: &ProcessorError) {
        self.reserve.release();
        let status = self.status(RunState::Failed, Some(crate::report::chain(e)));
        if let Ok(written) = self
            .flusher
            .write(flusher::Batch::one(files::STATUS.into(), json(status)))
        {
            let _ = self.flusher.finish(written);
        }
    }

    /// `Ok(true)` at the end of the input, `Ok(false)` on shutdown.
    fn replay(&mut self, shutdown: &AtomicBool) -> Result<bool, ProcessorError> {
        let mut streams = self.open_streams();
        'rows: loop {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(false);
            }
            // The next row: smallest (timestamp, book before trade, lane).
            let mut next: Option<(i64, bool, usize)> = None;
            for lane in 0..streams.len() {
                while let Some(s) = streams[lane].as_mut() {
                    // Trades are polled only when the book stream has a row
                    // or ended (a restart replaces every stream).
                    let b = self.head(lane, &mut s.book)?;
                    let t = match b {
                        Head::Row(_) | Head::End => self.head(lane, &mut s.trades)?,
                        other => other,
                    };
                    let heads = match (b, t) {
                        (Head::Restart, _) | (_, Head::Restart) => {
                            streams = self.open_streams();
                            continue 'rows;
                        }
                        (Head::Wait, _) | (_, Head::Wait) => continue 'rows,
                        (b, t) => (b.row(), t.row()),
                    };
                    let key = match heads {
                        (None, None) => {
                            // This lane's file is done: on to its next.
                            self.st.next_file(lane);
                            streams[lane] = self.open_lane(lane);
                            continue;
                        }
                        (Some(b), Some(t)) if b.ts <= t.ts => (b.ts, false, lane),
                        (Some(b), None) => (b.ts, false, lane),
                        (_, Some(t)) => (t.ts, true, lane),
                    };
                    if next.is_none_or(|n| key < n) {
                        next = Some(key);
                    }
                    break;
                }
            }
            let Some((ts, is_trade, lane)) = next else {
                return Ok(true);
            };
            loop {
                match self.steering.gate(&mut self.st.steering, ts) {
                    Gate::Paced => match self.pace(ts, shutdown)? {
                        Paced::Due => break,
                        Paced::Shutdown => return Ok(false),
                        Paced::Changed => continue,
                    },
                    Gate::Now => {
                        // Pacing starts again after the step or jump.
                        self.pace = None;
                        break;
                    }
                    Gate::Wait => {
                        if shutdown.load(Ordering::Relaxed) {
                            return Ok(false);
                        }
                        self.pace = None;
                        self.tick()?;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            let Some(s) = streams[lane].as_mut() else {
                continue;
            };
            if is_trade {
                if let Some(row) = s.trades.take() {
                    self.apply_trade(lane, row);
                }
            } else if let Some(row) = s.book.take() {
                self.apply_book(lane, row, s.book.levels());
            }
            // The clock is read every few rows, not on each.
            self.rows_since_tick += 1;
            if self.rows_since_tick >= 32 {
                self.rows_since_tick = 0;
                self.tick()?;
            }
        }
    }

    /// Opens every lane's current file.
    fn open_streams(&mut self) -> Vec<Option<Streams>> {
        (0..self.st.lanes.len())
            .map(|l| self.open_lane(l))
            .collect()
    }

    /// Opens lane `lane`'s current file (`None` when it has read them all).
    fn open_lane(&mut self, lane: usize) -> Option<Streams> {
        if self.st.lane_done(lane) {
            return None;
        }
        let l = &self.st.lanes[lane];
        let info = self.infos[lane][l.file_index];
        let spec = |cursor: Cursor, ids| StreamSpec {
            readers: self.book_readers,
            path: self.files[lane][l.file_index].path.clone(),
            order: cursor.order,
            ids,
            after: cursor.after,
            window: self.config.bounds_ms(),
        };
        Some(Streams {
            book: TableStream::start(spec(l.book, info.book)),
            trades: TableStream::start(spec(l.trades, info.trades)),
        })
    }

    /// The next row of a stream, refreshing the heartbeat while it is busy
    /// and handling an early stop.
    fn head<R: source::sqlite::TableRow>(
        &mut self,
        lane: usize,
        stream: &mut TableStream<R>,
    ) -> Result<Head, ProcessorError> {
        Ok(match stream.poll(POLL) {
            Next::Row(p) => Head::Row(p),
            Next::End => Head::End,
            Next::Pending => {
                self.tick()?;
                Head::Wait
            }
            Next::Stopped => {
                self.stopped(lane, stream.take_stop())?;
                Head::Restart
            }
        })
    }

    fn current_file(&self, lane: usize) -> &Path {
        let l = &self.st.lanes[lane];
        self.files[lane]
            .get(l.file_index)
            .map_or(Path::new(""), |f| f.path.as_path())
    }

    /// A reader stopped: re-read a disordered table sorted, or fail.
    fn stopped(&mut self, lane: usize, stop: Option<StreamStop>) -> Result<(), ProcessorError> {
        let path = self.current_file(lane).to_path_buf();
        match stop {
            None => Err(ProcessorError::Source(SourceError::Corrupt {
                path,
                detail: "the reader stopped without a reason".to_string(),
            })),
            Some(StreamStop::Failed(e)) => Err(ProcessorError::Source(e)),
            Some(StreamStop::Disorder { table, at, prev_ts }) => {
                self.progress.println(&format!(
                    "{}: {table} timestamps go backwards at id {} ({} after {}); \
                     re-reading the file in (timestamp, id) order",
                    path.display(),
                    at.id,
                    at.ts,
                    prev_ts
                ));
                // Rows of this and the other instruments already went into
                // bars, sealed segments included: the run starts over with
                // the table read sorted, and the store is replaced (readers
                // see a new `series/` and start over too).
                let file = self.st.lanes[lane].file_index;
                let mut sorted = self.st.sorted.clone();
                sorted.insert((lane, file, table));
                let steering = self.st.steering;
                self.st =
                    Checkpoint::fresh(self.st.fingerprint.clone(), new_lanes(&self.config), sorted);
                self.st.steering = steering;
                self.clear_store = true;
                self.resumed = false;
                self.dirty = Dirty::all(self.st.lanes.len());
                Ok(())
            }
        }
    }

    fn apply_book(&mut self, lane: usize, row: BookRow, buffer: &[Level]) {
        let l = &mut self.st.lanes[lane];
        l.book.after = Some(row.pos);
        match row.levels {
            Ok(levels) => {
                let (bids, asks) = levels.sides(buffer);
                l.apply_book(row.pos.ts, bids, asks);
                if lane == 0 {
                    self.dirty.metrics = true;
                    self.dirty.depth = true;
                }
                self.dirty.lane_depth[lane] = true;
                self.dirty.store = true;
            }
            Err(e) => {
                l.engine.skip_book_row();
                self.report_skip(lane, Table::Book, row.pos, &e.to_string());
            }
        }
    }

    fn apply_trade(&mut self, lane: usize, row: TradeRow) {
        let l = &mut self.st.lanes[lane];
        l.trades.after = Some(row.pos);
        match row.trade {
            Ok(t) => {
                l.apply_trade(row.pos.ts, &t);
                if lane == 0 {
                    self.dirty.ohlc = true;
                    self.dirty.metrics = true;
                }
                self.dirty.store = true;
            }
            Err(e) => {
                l.engine.skip_trade();
                self.report_skip(lane, Table::Trades, row.pos, &e.to_string());
            }
        }
    }

    fn report_skip(&self, lane: usize, table: Table, pos: Position, why: &str) {
        let n = counters(&self.st).skipped();
        if n <= REPORTED_SKIPS {
            self.progress.println(&format!(
                "skipped {}: {table} row id {}: {why}{}",
                self.current_file(lane).display(),
                pos.id,
                if n == REPORTED_SKIPS {
                    " (further skipped rows are only counted in status.json)"
                } else {
                    ""
                }
            ));
        }
    }

    /// Waits until market time `ts` is due at the replay speed.
    fn pace(&mut self, ts: i64, shutdown: &AtomicBool) -> Result<Paced, ProcessorError> {
        let Some(speed) = self.steering.speed else {
            return Ok(Paced::Due);
        };
        let (wall0, ts0) = *self.pace.get_or_insert((Instant::now(), ts));
        // `None`: further away than a clock can say, so never due (only a
        // shutdown or new steering ends the wait).
        let due = Duration::try_from_secs_f64((ts - ts0).max(0) as f64 / 1000.0 / speed)
            .ok()
            .and_then(|d| wall0.checked_add(d));
        loop {
            let now = Instant::now();
            let wait = match due {
                Some(due) if now >= due => return Ok(Paced::Due),
                Some(due) => due - now,
                None => Duration::MAX,
            };
            if shutdown.load(Ordering::Relaxed) {
                return Ok(Paced::Shutdown);
            }
            self.tick()?;
            if self.pace.is_none() {
                return Ok(Paced::Changed);
            }
            std::thread::sleep(wait.min(Duration::from_millis(20)));
        }
    }

    /// Looks at `control.json` (at most every 40 ms unless `force`).
    fn steer(&mut self, force: bool) {
        let market = self.market_ms();
        let changed = self.steering.poll(
            &mut self.st.steering,
            market,
            self.config.window_ms(),
            force,
        );
        if changed.pace {
            self.pace = None;
        }
        if changed.status {
            // Show it in status.json at the next tick.
            self.last_status = Instant::now()
                .checked_sub(HEARTBEAT)
                .unwrap_or(self.last_status);
        }
        for note in self.steering.take_notes() {
            self.progress.println(&note);
        }
    }

    /// Market time: the newest row applied, over every instrument.
    fn market_ms(&self) -> Option<i64> {
        self.st
            .lanes
            .iter()
            .filter_map(|l| l.engine.last_ts())
            .max()
    }
}

/// Each instrument's input files: discovered under the data root, or the
/// `--db` files given, each to the instrument its name says (the primary
/// when it names none).
fn find_inputs(config: &Config) -> Result<Vec<Vec<InputFile>>, ProcessorError> {
    let instruments: Vec<&str> = config.instruments().collect();
    match &config.inputs {
        Inputs::Discover(root) => Ok(instruments
            .iter()
            .map(|i| source::discover(root, i, config.start, config.end))
            .collect::<Result<_, _>>()?),
        Inputs::Files(paths) => {
            let mut lanes: Vec<Vec<PathBuf>> = vec![Vec::new(); instruments.len()];
            for p in paths {
                let lane = source::owner(p, &instruments).unwrap_or(0);
                lanes[lane].push(p.clone());
            }
            lanes
                .iter()
                .zip(&instruments)
                .map(|(paths, i)| {
                    if paths.is_empty() {
                        Err(ProcessorError::Source(SourceError::NoExplicitFiles {
                            instrument: i.to_string(),
                        }))
                    } else {
                        Ok(source::explicit(paths))
                    }
                })
                .collect()
        }
    }
}

/// Each instrument's engine and recorder before the first row. Reference
/// instruments keep no rolling bars of their own (their bars are in the
/// store), so their engine holds just one.
fn new_lanes(config: &Config) -> Vec<(Engine, InstrumentRecorder)> {
    config
        .instruments()
        .enumerate()
        .map(|(i, name)| {
            let engine = Engine::new(EngineConfig {
                window_ms: config.window_ms(),
                obi_levels: config.obi_levels,
                max_bars: if i == 0 { config.max_bars } else { 1 },
            });
            let store = InstrumentRecorder::new(name, &config.timeframes).with_views(
                config.window_ms(),
                config.depth_levels,
                config.footprint_tick,
            );
            (engine, store)
        })
        .collect()
}

/// Row counters over every instrument.
fn counters(st: &Checkpoint) -> Counters {
    st.lanes.iter().fold(Counters::default(), |mut sum, l| {
        let c = l.engine.counters();
        sum.book_rows += c.book_rows;
        sum.trades += c.trades;
        sum.skipped_book_rows += c.skipped_book_rows;
        sum.skipped_trades += c.skipped_trades;
        sum.unknown_side_trades += c.unknown_side_trades;
        sum
    })
}
