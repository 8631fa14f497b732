//! [`VizWriter`]: the public way for any Rust program to feed the viewer.
//!
//! It offers the operations of the original `viz_io` helper (add, upsert
//! and clear OHLC bars and metric bars, set depth) on an in-memory rolling
//! window of `max_bars`, and [`VizWriter::flush`] writes every changed file
//! with the atomic replace. It takes the directory's writer lock, so two
//! writers cannot interleave their files.

use super::formats::{Depth, MetricRow, OhlcRow};
use super::{atomic, files, lock::DirLock, IpcError};
use crate::model::Rolling;
use std::path::{Path, PathBuf};

/// A locked writer of `ohlc_data.json`, `metrics_data.json` and
/// `depth_data.json`.
#[derive(Debug)]
pub struct VizWriter {
    dir: PathBuf,
    _lock: DirLock,
    ohlc: Rolling<OhlcRow>,
    metrics: Rolling<MetricRow>,
    depth: Depth,
    dirty: [bool; 3],
}

impl VizWriter {
    /// Creates `dir` if needed, takes its writer lock and sweeps temp files
    /// left by dead writers. Keeps at most `max_bars` bars per file.
    pub fn open(dir: &Path, max_bars: usize) -> Result<VizWriter, IpcError> {
        std::fs::create_dir_all(dir).map_err(|source| IpcError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = DirLock::acquire(dir, files::WRITER_LOCK, "writer")?;
        atomic::sweep_stale_temp_files(dir)?;
        Ok(VizWriter {
            dir: dir.to_path_buf(),
            _lock: lock,
            ohlc: Rolling::new(max_bars),
            metrics: Rolling::new(max_bars),
            depth: Depth::default(),
            dirty: [false; 3],
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a new OHLC bar (replacing one with the same timestamp).
    pub fn add_ohlc(&mut self, row: OhlcRow) {
        self.ohlc.add(row);
        self.dirty[0] = true;
    }

    /// Replaces the OHLC bar with the same timestamp, or inserts it.
    pub fn upsert_ohlc(&mut self, row: OhlcRow) {
        self.ohlc.upsert(row);
        self.dirty[0] = true;
    }

    pub fn clear_ohlc(&mut self) {
        self.ohlc.clear();
        self.dirty[0] = true;
    }

    /// Appends a new metric bar (replacing one with the same timestamp).
    pub fn add_metric(&mut self, row: MetricRow) {
        self.metrics.add(row);
        self.dirty[1] = true;
    }

    /// Replaces the metric bar with the same timestamp, or inserts it.
    pub fn upsert_metric(&mut self, row: MetricRow) {
        self.metrics.upsert(row);
        self.dirty[1] = true;
    }

    pub fn clear_metrics(&mut self) {
        self.metrics.clear();
        self.dirty[1] = true;
    }

    pub fn set_depth(&mut self, depth: Depth) {
        self.depth = depth;
        self.dirty[2] = true;
    }

    /// Writes every file changed since the last flush, atomically.
    pub fn flush(&mut self) -> Result<(), IpcError> {
        if self.dirty[0] {
            let rows: Vec<&OhlcRow> = self.ohlc.iter().collect();
            self.write(files::OHLC, &rows)?;
            self.dirty[0] = false;
        }
        if self.dirty[1] {
            let rows: Vec<&MetricRow> = self.metrics.iter().collect();
            self.write(files::METRICS, &rows)?;
            self.dirty[1] = false;
        }
        if self.dirty[2] {
            let depth = std::mem::take(&mut self.depth);
            let result = self.write(files::DEPTH, &depth);
            self.depth = depth;
            result?;
            self.dirty[2] = false;
        }
        Ok(())
    }

    /// Serialises `value` and writes it atomically as `dir/name`.
    pub fn write<T: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), IpcError> {
        write_json(&self.dir, name, value)
    }
}

/// Serialises `value` and writes it atomically as `dir/name`.
pub fn write_json<T: serde::Serialize + ?Sized>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<(), IpcError> {
    let bytes = serde_json::to_vec(value).map_err(|e| IpcError::Write {
        path: dir.join(name),
        source: std::io::Error::other(e),
    })?;
    atomic::write_atomic(dir, name, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::read_json;

    fn bar(ts: i64, close: f64) -> OhlcRow {
        OhlcRow {
            ts,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close,
            volume: 3.0,
        }
    }

    #[test]
    fn viz_io_operations_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = VizWriter::open(dir.path(), 2).unwrap();
        w.add_ohlc(bar(0, 1.0));
        w.upsert_ohlc(bar(0, 1.5));
        w.add_ohlc(bar(60_000, 1.0));
        w.add_ohlc(bar(120_000, 1.0));
        w.add_metric(MetricRow {
            ts: 0,
            obi: [0.0; 4],
            cvd: None,
        });
        w.set_depth(Depth {
            bids: vec![[99.0, 1.0]],
            asks: vec![[101.0, 2.0]],
        });
        w.flush().unwrap();
        let ohlc: Vec<OhlcRow> = read_json(&dir.path().join(files::OHLC)).unwrap();
        assert_eq!(ohlc, [bar(60_000, 1.0), bar(120_000, 1.0)]);
        let metrics: Vec<MetricRow> = read_json(&dir.path().join(files::METRICS)).unwrap();
        assert_eq!(metrics.len(), 1);
        let depth: Depth = read_json(&dir.path().join(files::DEPTH)).unwrap();
        assert_eq!(depth.asks, [[101.0, 2.0]]);
        w.clear_ohlc();
        w.clear_metrics();
        w.flush().unwrap();
        let ohlc: Vec<OhlcRow> = read_json(&dir.path().join(files::OHLC)).unwrap();
        assert!(ohlc.is_empty());
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _w = VizWriter::open(dir.path(), 10).unwrap();
        let err = VizWriter::open(dir.path(), 10).unwrap_err().to_string();
        assert!(err.contains("already in use"), "{err}");
    }
}
