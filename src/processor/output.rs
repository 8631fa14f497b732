//! What a flush writes, and when: the batch of files built from the
//! processor's state (checkpoint, rolling files, store segments, depths,
//! index, status, in the order they must reach the disk), the heartbeat
//! and flush cadence, and holding the rolling files back after a start
//! over. The replay loop is in the parent module; the fsync-heavy half of
//! every write is [`super::flusher`]'s thread.

use super::flusher::{json, write_rows, Batch};
use super::progress::market_time;
use super::{
    counters, Dirty, Processor, ProcessorError, HEARTBEAT, MAX_SEALED_WAITING, SEALED_BATCH,
};
use super::{FLUSH_COST_SHARE, MAX_FLUSH_INTERVAL};
use crate::ipc::{self, files, IpcError, RunState, Status};
use crate::model::{Engine, Level};
use crate::store;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The time from one flush to the next: `--flush-ms` (`floor`), or more
/// when the last flush took `cost` to build (see [`FLUSH_COST_SHARE`]).
fn flush_interval(floor: Duration, cost: Duration) -> Duration {
    let by_cost = cost
        .saturating_mul(FLUSH_COST_SHARE)
        .min(MAX_FLUSH_INTERVAL);
    floor.max(by_cost)
}

impl Processor {
    /// Flushes when due, or refreshes the heartbeat. Waits for the writer
    /// when too many sealed segments are held.
    pub(super) fn tick(&mut self) -> Result<(), ProcessorError> {
        self.steer(false);
        let waiting: usize = self.st.lanes.iter().map(|l| l.store.sealed_waiting()).sum();
        if waiting > MAX_SEALED_WAITING {
            while !self.flusher.ready()? {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // A paced replay waits for market time anyway: the flush cost only
        // matters while it runs flat out.
        let cost = match self.steering.speed {
            Some(_) => Duration::ZERO,
            None => self.flush_cost,
        };
        let interval = flush_interval(self.config.flush, cost);
        let due = self.last_flush.elapsed() >= interval || waiting > MAX_SEALED_WAITING;
        if !due && waiting >= SEALED_BATCH && self.flusher.ready()? {
            self.flush_sealed()?;
        } else if due {
            if self.flusher.ready()? {
                let began = Instant::now();
                self.prepare_flush()?;
                if self.flusher.offer(self.batch(RunState::Running, None))? {
                    self.flush_cost = began.elapsed();
                    self.flushed();
                }
            }
        } else if self.last_status.elapsed() >= HEARTBEAT && self.flusher.ready()? {
            let status = self.status(RunState::Running, None);
            if self
                .flusher
                .offer(Batch::one(files::STATUS.into(), json(status)))?
            {
                self.last_status = Instant::now();
            }
        }
        Ok(())
    }

    /// Sealed segments on their own, between flushes: memory holds few of
    /// them, and the writer, idle between flushes, spreads their fsyncs
    /// over the run. No checkpoint or index (docs/adr/0009).
    fn flush_sealed(&mut self) -> Result<(), ProcessorError> {
        self.prepare_dirs()?;
        let mut batch = Batch::new();
        let now = ipc::now_ms();
        for l in &self.st.lanes {
            for write in l.store.sealed_writes() {
                self.push_segment(&mut batch, write, now);
            }
        }
        if self.flusher.offer(batch)? {
            for lane in &mut self.st.lanes {
                lane.store.handed_sealed();
            }
        }
        Ok(())
    }

    /// Writes the last state and waits until it is on disk.
    pub(super) fn flush_final(
        &mut self,
        state: RunState,
        message: Option<String>,
    ) -> Result<(), ProcessorError> {
        self.prepare_flush()?;
        let written = self.flusher.write(self.batch(state, message))?;
        self.flusher.finish(written)?;
        self.flushed();
        Ok(())
    }

    /// Before a batch is built: seals segments market time has passed,
    /// replaces the old store on a fresh start, makes the directories the
    /// batch writes into, and (resumed) looks once at each segment file it
    /// is about to write for one sealed on disk already.
    pub(super) fn prepare_flush(&mut self) -> Result<(), ProcessorError> {
        for lane in &mut self.st.lanes {
            lane.snapshot_views();
        }
        if let Some(ts) = self.market_ms() {
            for lane in &mut self.st.lanes {
                lane.store.seal_through(ts);
            }
        }
        self.prepare_dirs()
    }

    /// Before any segment is written: replaces the old store on a fresh
    /// start, makes the directories, and (resumed) looks up which of the
    /// segments to write are sealed on disk already.
    fn prepare_dirs(&mut self) -> Result<(), ProcessorError> {
        let root = self.config.out.join(store::format::DIR);
        if self.clear_store {
            // Renamed aside at once, deleted while the replay goes on.
            let pending =
                ipc::discard::discard(&self.config.out, store::format::DIR).map_err(|source| {
                    ProcessorError::ClearStore {
                        path: root.clone(),
                        source,
                    }
                })?;
            self.discarding.extend(pending);
            self.clear_store = false;
            self.made_dirs.clear();
            self.sealed_on_disk.clear();
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for lane in &self.st.lanes {
            dirs.push(store::format::instrument_dir(lane.store.instrument()));
            dirs.extend(lane.store.dirs());
        }
        if self.resumed {
            let mut rels = Vec::new();
            for lane in &self.st.lanes {
                let writes = lane.store.heatmap_writes().into_iter();
                rels.extend(
                    writes
                        .chain(lane.store.writes())
                        .map(|w| w.dir.join(&w.name)),
                );
            }
            for rel in rels {
                if !self.sealed_on_disk.contains_key(&rel) {
                    let sealed = sealed_on_disk(&self.config.out.join(&rel));
                    self.sealed_on_disk.insert(rel, sealed);
                }
            }
        }
        for dir in dirs {
            if !self.made_dirs.contains(&dir) {
                let path = self.config.out.join(&dir);
                std::fs::create_dir_all(&path).map_err(|source| IpcError::CreateDir {
                    path: path.clone(),
                    source,
                })?;
                self.made_dirs.insert(dir);
            }
        }
        Ok(())
    }

    /// Checkpoint, changed data files, store files and status, serialised
    /// from the same state, in the order they must reach the disk.
    pub(super) fn batch(&self, state: RunState, message: Option<String>) -> Batch<'_> {
        let mut batch = Batch::new();
        let now = ipc::now_ms();
        // Heatmap segments and every sealed segment first: the checkpoint
        // holds neither (a resumed run reads the open heatmap back, and
        // never rewrites a sealed file; crate::store::views).
        let mut open = Vec::with_capacity(self.st.lanes.len());
        for l in &self.st.lanes {
            for write in l.store.heatmap_writes() {
                self.push_segment(&mut batch, write, now);
            }
            let (sealed, rest): (Vec<_>, Vec<_>) =
                l.store.writes().into_iter().partition(|w| w.sealed);
            for write in sealed {
                self.push_segment(&mut batch, write, now);
            }
            open.push(rest);
        }
        batch.barrier();
        if self.config.checkpoint() {
            batch.push(files::CHECKPOINT.into(), json(&self.st));
        }
        batch.barrier();
        // After starting over, the rolling files are kept until the run
        // has something newer (the store, replaced, is written as usual).
        let hold = self.holding() && state != RunState::Finished;
        let engine = &self.st.lanes[0].engine;
        if self.dirty.ohlc && !hold {
            let rows = engine.ohlc().iter().map(ipc::OhlcRow::from);
            batch.push(files::OHLC.into(), Box::new(move |w| write_rows(w, rows)));
        }
        if self.dirty.metrics && !hold {
            let rows = engine.metrics().iter().map(ipc::MetricRow::from);
            batch.push(
                files::METRICS.into(),
                Box::new(move |w| write_rows(w, rows)),
            );
        }
        if self.dirty.depth && !hold {
            batch.push(
                files::DEPTH.into(),
                json(depth(engine, self.config.depth_levels)),
            );
        }
        for ((lane, l), writes) in self.st.lanes.iter().enumerate().zip(open) {
            for write in writes {
                self.push_segment(&mut batch, write, now);
            }
            if self.dirty.lane_depth[lane] {
                let dir = store::format::instrument_dir(l.store.instrument());
                batch.push(
                    dir.join(store::format::DEPTH),
                    json(depth(&l.engine, self.config.depth_levels)),
                );
            }
        }
        if self.dirty.store {
            let index = store::Index {
                updated_ms: now,
                series: self
                    .st
                    .lanes
                    .iter()
                    .flat_map(|l| l.store.index_entries())
                    .collect(),
                views: self
                    .st
                    .lanes
                    .iter()
                    .flat_map(|l| l.store.view_entries())
                    .collect(),
            };
            batch.push(
                PathBuf::from(store::format::DIR).join(store::format::INDEX),
                json(index),
            );
        }
        // The status last, alone: it says "finished" only once all else is
        // on disk.
        batch.barrier();
        batch.push(files::STATUS.into(), json(self.status(state, message)));
        batch
    }

    /// A segment file into the batch; a resumed run never rewrites one
    /// sealed on disk, whether its state has it sealed yet or not (see
    /// [`Processor::prepare_flush`]).
    fn push_segment<'a>(&self, batch: &mut Batch<'a>, write: store::SegmentWrite<'a>, now: i64) {
        let rel = write.dir.join(&write.name);
        if self.sealed_on_disk.get(&rel) == Some(&true) {
            return;
        }
        batch.push(rel, Box::new(move |w| write.write(w, now)));
    }

    /// Whether the data files still show more than this run has reached
    /// (after starting over), so they must not be replaced yet.
    pub(super) fn holding(&self) -> bool {
        let engine = &self.st.lanes[0].engine;
        self.hold_until
            .is_some_and(|ts| engine.last_ts().is_none_or(|t| engine.window_start(t) < ts))
    }

    /// Bookkeeping after a batch was handed over.
    pub(super) fn flushed(&mut self) {
        self.last_flush = Instant::now();
        self.last_status = self.last_flush;
        for lane in &mut self.st.lanes {
            lane.store.handed();
        }
        let lanes = self.st.lanes.len();
        if self.holding() && !self.st.finished {
            // The rolling files were not written: they stay due.
            self.dirty.store = false;
            self.dirty.lane_depth = vec![false; lanes];
        } else {
            self.hold_until = None;
            self.dirty = Dirty::none(lanes);
        }
        let s = self.status(RunState::Running, None);
        self.progress.update(
            s.rows_done,
            s.rows_total,
            s.rows_per_second,
            &market_time(s.market_time_ms),
        );
    }

    pub(super) fn status(&self, state: RunState, message: Option<String>) -> Status {
        let counters = counters(&self.st);
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
            market_time_ms: self.market_ms(),
            skipped_rows: counters.skipped(),
            warnings: counters.unknown_side_trades,
            speed: self.steering.speed,
            paused: self.steering.paused,
            run_id: self.steering.run_id().to_string(),
            pid: std::process::id(),
            heartbeat_ms: ipc::now_ms(),
            started_ms: self.started_ms,
            message,
        }
    }
}

/// The best `n` levels per side of an engine's book.
fn depth(engine: &Engine, n: usize) -> ipc::Depth {
    let side = |it: &mut dyn Iterator<Item = Level>| -> Vec<[f64; 2]> {
        it.take(n)
            .map(|l| [l.price.to_f64(), l.size.to_f64()])
            .collect()
    };
    ipc::Depth {
        bids: side(&mut engine.book().bids()),
        asks: side(&mut engine.book().asks()),
    }
}

/// Whether `path` is a sealed segment already (a resumed run never
/// rewrites one).
fn sealed_on_disk(path: &Path) -> bool {
    ipc::read_json::<store::SegmentHeader>(path).is_ok_and(|h| h.sealed)
}

/// The newest bar timestamp in the data files of `out`, if they parse.
pub(super) fn newest_bar(out: &Path) -> Option<i64> {
    let ohlc = ipc::read_json::<Vec<ipc::OhlcRow>>(&out.join(files::OHLC)).ok();
    let metrics = ipc::read_json::<Vec<ipc::MetricRow>>(&out.join(files::METRICS)).ok();
    let a = ohlc.and_then(|v| v.last().map(|r| r.ts));
    let b = metrics.and_then(|v| v.last().map(|r| r.ts));
    a.max(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_slow_down_only_while_building_them_is_costly() {
        let ms = Duration::from_millis;
        // Cheap flushes keep the asked cadence.
        assert_eq!(flush_interval(ms(100), ms(0)), ms(100));
        assert_eq!(flush_interval(ms(100), ms(4)), ms(100));
        // A 12 ms flush is built at most every 240 ms (5 % of the loop).
        assert_eq!(flush_interval(ms(100), ms(12)), ms(240));
        // Never slower than once a second...
        assert_eq!(flush_interval(ms(100), ms(400)), ms(1000));
        // ...unless --flush-ms asks for it.
        assert_eq!(flush_interval(ms(5000), ms(400)), ms(5000));
    }
}
