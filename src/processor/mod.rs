//! The processor: capture rows → [`Engine`] → the files in `OUT`.
//!
//! [`Processor::open`] does everything that can fail before a single output
//! file is touched: it finds and checks the inputs, takes the directory's
//! writer lock, sweeps stale temp files and loads or refuses the
//! checkpoint. [`Processor::run`] then merges the book and trade streams of
//! each file by `(timestamp)`, book first on ties, applies them to the
//! engine, paces the replay for `--speed`, and flushes checkpoint, data
//! files and status at most every `--flush-ms` (status at least once a
//! second, as the heartbeat the supervisor watches).
//!
//! This module owns the pipeline's control flow; the numbers are the
//! model's, the reading is the source's, the file writing is ipc's.

pub mod checkpoint;
pub mod config;
pub mod flusher;
pub mod progress;

pub use config::{Args, Config, ConfigError, Inputs, Job};

use crate::ipc::{self, files, DirLock, IpcError, RunState, Status};
use crate::model::{Engine, EngineConfig};
use crate::source::{
    self, BookRow, FileInfo, InputFile, Next, Position, SourceError, StreamSpec, StreamStop,
    TableStream, TradeRow,
};
use checkpoint::{Checkpoint, Cursor, Fingerprint, Table};
use flusher::{json, write_rows, Batch, Flusher};
use progress::{market_time, Progress};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Status is refreshed at least this often, whatever `--flush-ms` is.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long to wait on a busy reader before refreshing the heartbeat.
const POLL: Duration = Duration::from_millis(200);
/// Skipped rows reported one by one before only counting them.
const REPORTED_SKIPS: u64 = 10;

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
enum Head {
    Row(Position),
    End,
    /// Nothing yet: poll again.
    Wait,
    /// The file is re-read (sorted, or from the start).
    Restart,
}

/// Which output files changed since the last flush.
#[derive(Clone, Copy, Debug)]
struct Dirty {
    ohlc: bool,
    metrics: bool,
    depth: bool,
}

/// A run ready to go: inputs checked, directory locked, state loaded.
pub struct Processor {
    config: Config,
    files: Vec<InputFile>,
    rows_total: u64,
    _lock: DirLock,
    st: Checkpoint,
    /// The engine at the start of the current file, to re-read it sorted.
    file_start: Option<Engine>,
    dirty: Dirty,
    started: Instant,
    started_ms: i64,
    rows_at_start: u64,
    last_flush: Instant,
    last_status: Instant,
    pace: Option<(Instant, i64)>,
    progress: Progress,
    notes: Vec<String>,
    flusher: Flusher,
    rows_since_tick: u32,
    /// Newest bar already in the data files when the run had to start
    /// over: the data files are not replaced before the run gets there.
    hold_until: Option<i64>,
}

impl Processor {
    /// Checks inputs, locks `OUT`, loads the checkpoint. Writes nothing.
    pub fn open(config: &Config) -> Result<Processor, ProcessorError> {
        let files = match &config.inputs {
            Inputs::Discover(root) => {
                source::discover(root, &config.instrument, config.start, config.end)?
            }
            Inputs::Files(paths) => source::explicit(paths),
        };
        let infos: Vec<FileInfo> = files
            .iter()
            .map(|f| source::inspect(&f.path))
            .collect::<Result<_, _>>()?;
        let rows_total = infos
            .iter()
            .map(FileInfo::rows_estimate)
            .fold(0u64, u64::saturating_add);
        std::fs::create_dir_all(&config.out).map_err(|source| ProcessorError::OutDir {
            path: config.out.clone(),
            source,
        })?;
        let lock = DirLock::acquire(&config.out, files::WRITER_LOCK, "processor")?;
        ipc::sweep_stale_temp_files(&config.out)?;
        let fingerprint = Fingerprint::of(config, &files).map_err(ProcessorError::Stat)?;
        let engine = Engine::new(EngineConfig {
            window_ms: config.window_ms(),
            obi_levels: config.obi_levels,
            max_bars: config.max_bars,
        });
        let mut notes = Vec::new();
        let mut hold_until = None;
        let path = config.out.join(files::CHECKPOINT);
        let st = match (config.checkpoint && !config.fresh, path.exists()) {
            (true, true) => match ipc::read_json::<Checkpoint>(&path) {
                Ok(c) if c.version == checkpoint::VERSION => {
                    if let Some(reason) = c.fingerprint.difference(&fingerprint) {
                        return Err(ProcessorError::CheckpointMismatch { path, reason });
                    }
                    notes.push(if c.finished {
                        "this run already finished; nothing to do".to_string()
                    } else {
                        format!(
                            "resuming from the checkpoint at file {} of {}",
                            c.file_index + 1,
                            files.len()
                        )
                    });
                    c
                }
                Ok(_) | Err(_) => {
                    notes.push(format!(
                        "the checkpoint {} is unreadable or of another version; starting over \
                         (the data files are kept until there is something newer)",
                        path.display()
                    ));
                    hold_until = newest_bar(&config.out);
                    Checkpoint::fresh(fingerprint, engine, BTreeSet::new())
                }
            },
            _ => Checkpoint::fresh(fingerprint, engine, BTreeSet::new()),
        };
        let label = format!("{} {}s", config.instrument, config.window_seconds);
        Ok(Processor {
            config: config.clone(),
            files,
            rows_total,
            _lock: lock,
            rows_at_start: st.engine.counters().rows(),
            file_start: if st.at_file_start() {
                Some(st.engine.clone())
            } else {
                None
            },
            st,
            dirty: Dirty {
                ohlc: true,
                metrics: true,
                depth: true,
            },
            started: Instant::now(),
            started_ms: ipc::now_ms(),
            last_flush: Instant::now(),
            last_status: Instant::now(),
            pace: None,
            progress: Progress::new(&label),
            notes,
            flusher: Flusher::start(config.out.clone()).map_err(ProcessorError::Thread)?,
            rows_since_tick: 0,
            hold_until,
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

    /// The input files, in processing order.
    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    /// Runs to the end or until `shutdown` is set. On an error the status
    /// file says `failed` with the reason; the data files keep their last
    /// good flush.
    pub fn run(mut self, shutdown: &AtomicBool) -> Result<Outcome, ProcessorError> {
        if self.st.finished {
            return Ok(Outcome::AlreadyFinished);
        }
        let result = self.replay(shutdown);
        self.progress.finish();
        match result {
            Ok(true) => {
                self.st.finished = true;
                self.flush_final(RunState::Finished, None)?;
                Ok(Outcome::Finished(self.status(RunState::Finished, None)))
            }
            Ok(false) => {
                let note = "stopped by a signal; start again with the same arguments to resume";
                self.flush_final(RunState::Stopped, Some(note.to_string()))?;
                Ok(Outcome::Stopped(
                    self.status(RunState::Stopped, Some(note.to_string())),
                ))
            }
            Err(e) => {
                let status = self.status(RunState::Failed, Some(e.to_string()));
                if let Ok(written) = self.flusher.write(vec![(files::STATUS, json(status))]) {
                    let _ = self.flusher.finish(written);
                }
                Err(e)
            }
        }
    }

    /// `Ok(true)` at the end of the input, `Ok(false)` on shutdown.
    fn replay(&mut self, shutdown: &AtomicBool) -> Result<bool, ProcessorError> {
        'files: while self.st.file_index < self.files.len() {
            let fi = self.st.file_index;
            if self.st.at_file_start() {
                self.st.engine.reset_book();
                self.file_start = Some(self.st.engine.clone());
            }
            let mut book = TableStream::<BookRow>::start(self.spec(fi, self.st.book));
            let mut trades = TableStream::<TradeRow>::start(self.spec(fi, self.st.trades));
            loop {
                if shutdown.load(Ordering::Relaxed) {
                    return Ok(false);
                }
                let b = match self.head(fi, &mut book)? {
                    Head::Row(p) => Some(p),
                    Head::End => None,
                    Head::Wait => continue,
                    Head::Restart => continue 'files,
                };
                let t = match self.head(fi, &mut trades)? {
                    Head::Row(p) => Some(p),
                    Head::End => None,
                    Head::Wait => continue,
                    Head::Restart => continue 'files,
                };
                let take_book = match (b, t) {
                    (None, None) => break,
                    (Some(b), Some(t)) => b.ts <= t.ts,
                    (b, _) => b.is_some(),
                };
                let ts = if take_book { b } else { t }.map_or(0, |p| p.ts);
                if !self.pace(ts, shutdown)? {
                    return Ok(false);
                }
                if take_book {
                    if let Some(row) = book.take() {
                        self.apply_book(fi, row, book.levels());
                    }
                } else if let Some(row) = trades.take() {
                    self.apply_trade(fi, row);
                }
                // The clock is read every few rows, not on each.
                self.rows_since_tick += 1;
                if self.rows_since_tick >= 32 {
                    self.rows_since_tick = 0;
                    self.tick()?;
                }
            }
            self.st.next_file();
        }
        Ok(true)
    }

    /// The next row of a stream, refreshing the heartbeat while it is busy
    /// and handling an early stop.
    fn head<R: source::sqlite::TableRow>(
        &mut self,
        fi: usize,
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
                self.stopped(fi, stream.take_stop())?;
                Head::Restart
            }
        })
    }

    fn spec(&self, fi: usize, cursor: Cursor) -> StreamSpec {
        StreamSpec {
            path: self.files[fi].path.clone(),
            order: cursor.order,
            after: cursor.after,
            window: self.config.bounds_ms(),
        }
    }

    /// A reader stopped: re-read a disordered table sorted, or fail.
    fn stopped(&mut self, fi: usize, stop: Option<StreamStop>) -> Result<(), ProcessorError> {
        match stop {
            None => Err(ProcessorError::Source(SourceError::Corrupt {
                path: self.files[fi].path.clone(),
                detail: "the reader stopped without a reason".to_string(),
            })),
            Some(StreamStop::Failed(e)) => Err(ProcessorError::Source(e)),
            Some(StreamStop::Disorder { table, at, prev_ts }) => {
                let t = if table == "book" {
                    Table::Book
                } else {
                    Table::Trades
                };
                self.progress.println(&format!(
                    "{}: {table} timestamps go backwards at id {} ({} after {}); \
                     re-reading the file in (timestamp, id) order",
                    self.files[fi].path.display(),
                    at.id,
                    at.ts,
                    prev_ts
                ));
                self.st.sorted.insert((fi, t));
                match self.file_start.take() {
                    Some(engine) => {
                        self.st.engine = engine;
                        self.st.start_file(fi);
                    }
                    None => {
                        // Resumed inside this file: its starting state is
                        // gone, so replay from the first file.
                        let engine = Engine::new(*self.st.engine.config());
                        let sorted = std::mem::take(&mut self.st.sorted);
                        self.st = Checkpoint::fresh(self.st.fingerprint.clone(), engine, sorted);
                    }
                }
                self.dirty = Dirty {
                    ohlc: true,
                    metrics: true,
                    depth: true,
                };
                Ok(())
            }
        }
    }

    fn apply_book(&mut self, fi: usize, row: BookRow, buffer: &[crate::model::Level]) {
        match row.levels {
            Ok(levels) => {
                let (bids, asks) = levels.sides(buffer);
                self.st.engine.apply_book(row.pos.ts, bids, asks);
                self.dirty.metrics = true;
                self.dirty.depth = true;
            }
            Err(e) => {
                self.st.engine.skip_book_row();
                self.report_skip(fi, "book", row.pos, &e.to_string());
            }
        }
        self.st.book.after = Some(row.pos);
    }

    fn apply_trade(&mut self, fi: usize, row: TradeRow) {
        match row.trade {
            Ok(t) => {
                self.st
                    .engine
                    .apply_trade(row.pos.ts, t.price, t.size, t.side);
                self.dirty.ohlc = true;
                self.dirty.metrics = true;
            }
            Err(e) => {
                self.st.engine.skip_trade();
                self.report_skip(fi, "trades", row.pos, &e.to_string());
            }
        }
        self.st.trades.after = Some(row.pos);
    }

    fn report_skip(&self, fi: usize, table: &str, pos: Position, why: &str) {
        let n = self.st.engine.counters().skipped();
        if n <= REPORTED_SKIPS {
            self.progress.println(&format!(
                "skipped {}: {table} row id {}: {why}{}",
                self.files[fi].path.display(),
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
    /// `Ok(false)` when shut down while waiting.
    fn pace(&mut self, ts: i64, shutdown: &AtomicBool) -> Result<bool, ProcessorError> {
        let Some(speed) = self.config.speed else {
            return Ok(true);
        };
        let (wall0, ts0) = *self.pace.get_or_insert((Instant::now(), ts));
        // `None`: further away than a clock can say, so never due (only a
        // shutdown ends the wait).
        let due = Duration::try_from_secs_f64((ts - ts0).max(0) as f64 / 1000.0 / speed)
            .ok()
            .and_then(|d| wall0.checked_add(d));
        loop {
            let now = Instant::now();
            let wait = match due {
                Some(due) if now >= due => return Ok(true),
                Some(due) => due - now,
                None => Duration::MAX,
            };
            if shutdown.load(Ordering::Relaxed) {
                return Ok(false);
            }
            self.tick()?;
            std::thread::sleep(wait.min(Duration::from_millis(20)));
        }
    }

    /// Flushes when due, or refreshes the heartbeat.
    fn tick(&mut self) -> Result<(), ProcessorError> {
        if self.last_flush.elapsed() >= self.config.flush {
            if self.flusher.ready()? && self.flusher.offer(self.batch(RunState::Running, None))? {
                self.flushed();
            }
        } else if self.last_status.elapsed() >= HEARTBEAT && self.flusher.ready()? {
            let status = self.status(RunState::Running, None);
            if self.flusher.offer(vec![(files::STATUS, json(status))])? {
                self.last_status = Instant::now();
            }
        }
        Ok(())
    }

    /// Writes the last state and waits until it is on disk.
    fn flush_final(
        &mut self,
        state: RunState,
        message: Option<String>,
    ) -> Result<(), ProcessorError> {
        let written = self.flusher.write(self.batch(state, message))?;
        self.flusher.finish(written)?;
        self.flushed();
        Ok(())
    }

    /// Checkpoint, changed data files and status, serialised from the same
    /// state, in the order they must reach the disk.
    fn batch(&self, state: RunState, message: Option<String>) -> Batch<'_> {
        let mut batch = Batch::new();
        if self.config.checkpoint {
            batch.push((files::CHECKPOINT, json(&self.st)));
        }
        let engine = &self.st.engine;
        if self.holding() && state != RunState::Finished {
            batch.push((files::STATUS, json(self.status(state, message))));
            return batch;
        }
        if self.dirty.ohlc {
            let rows = engine.ohlc().iter().map(ipc::OhlcRow::from);
            batch.push((files::OHLC, Box::new(move |w| write_rows(w, rows))));
        }
        if self.dirty.metrics {
            let rows = engine.metrics().iter().map(ipc::MetricRow::from);
            batch.push((files::METRICS, Box::new(move |w| write_rows(w, rows))));
        }
        if self.dirty.depth {
            let n = self.config.depth_levels;
            let side = |it: &mut dyn Iterator<Item = crate::model::Level>| -> Vec<[f64; 2]> {
                it.take(n)
                    .map(|l| [l.price.to_f64(), l.size.to_f64()])
                    .collect()
            };
            let depth = ipc::Depth {
                bids: side(&mut engine.book().bids()),
                asks: side(&mut engine.book().asks()),
            };
            batch.push((files::DEPTH, json(depth)));
        }
        batch.push((files::STATUS, json(self.status(state, message))));
        batch
    }

    /// Whether the data files still show more than this run has reached
    /// (after starting over), so they must not be replaced yet.
    fn holding(&self) -> bool {
        let engine = &self.st.engine;
        self.hold_until
            .is_some_and(|ts| engine.last_ts().is_none_or(|t| engine.window_start(t) < ts))
    }

    /// Bookkeeping after a batch was handed over.
    fn flushed(&mut self) {
        self.last_flush = Instant::now();
        self.last_status = self.last_flush;
        if self.holding() && !self.st.finished {
            return;
        }
        self.hold_until = None;
        self.dirty = Dirty {
            ohlc: false,
            metrics: false,
            depth: false,
        };
        let s = self.status(RunState::Running, None);
        self.progress.update(
            s.rows_done,
            s.rows_total,
            s.rows_per_second,
            &market_time(s.market_time_ms),
        );
    }

    fn status(&self, state: RunState, message: Option<String>) -> Status {
        let counters = self.st.engine.counters();
        let done = counters.rows();
        let elapsed = self.started.elapsed().as_secs_f64();
        let progress = if state == RunState::Finished {
            1.0
        } else if self.rows_total > 0 {
            (done as f64 / self.rows_total as f64).min(1.0)
        } else {
            0.0
        };
        Status {
            state,
            instrument: self.config.instrument.clone(),
            start_date: self.config.start.to_string(),
            end_date: self.config.end.to_string(),
            window_seconds: self.config.window_seconds,
            progress,
            rows_done: done,
            rows_total: self.rows_total.max(done),
            rows_per_second: if elapsed > 0.0 {
                (done - self.rows_at_start.min(done)) as f64 / elapsed
            } else {
                0.0
            },
            market_time_ms: self.st.engine.last_ts(),
            skipped_rows: counters.skipped(),
            warnings: counters.unknown_side_trades,
            speed: self.config.speed,
            pid: std::process::id(),
            heartbeat_ms: ipc::now_ms(),
            started_ms: self.started_ms,
            message,
        }
    }
}

/// The newest bar timestamp in the data files of `out`, if they parse.
fn newest_bar(out: &std::path::Path) -> Option<i64> {
    let ohlc = ipc::read_json::<Vec<ipc::OhlcRow>>(&out.join(files::OHLC)).ok();
    let metrics = ipc::read_json::<Vec<ipc::MetricRow>>(&out.join(files::METRICS)).ok();
    let a = ohlc.and_then(|v| v.last().map(|r| r.ts));
    let b = metrics.and_then(|v| v.last().map(|r| r.ts));
    a.max(b)
}
