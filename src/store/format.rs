//! The store's files and their JSON (docs/formats.md, "Series store"):
//! where each file lives under `OUT/series/`, the segment object, the
//! index, and series ids.
//!
//! ```text
//! OUT/series/index.json                          every series: range, bar count, segments
//! OUT/series/<INSTRUMENT>/depth.json             that instrument's depth (as depth_data.json)
//! OUT/series/<INSTRUMENT>/<TF>/<START>.json      bars of 1000 windows from START
//! ```

use super::bar::{FileBar, SeriesBar};
use super::timeframe::Timeframe;
use serde::{Deserialize, Serialize, Serializer};
use std::path::PathBuf;

/// The store's directory in `OUT`.
pub const DIR: &str = "series";
/// The index, in [`DIR`].
pub const INDEX: &str = "index.json";
/// Each instrument's depth, in its directory.
pub const DEPTH: &str = "depth.json";
/// Windows per segment.
pub const SEGMENT_WINDOWS: i64 = 1000;

/// `INSTRUMENT/TF`, e.g. `BTC-USDT/1m`.
pub fn series_id(instrument: &str, tf: Timeframe) -> String {
    format!("{instrument}/{tf}")
}

/// The start of the segment holding `ts` for windows of `window_ms`.
pub fn segment_start(ts: i64, window_ms: i64) -> i64 {
    let span = window_ms * SEGMENT_WINDOWS;
    ts.div_euclid(span) * span
}

/// `series/<INSTRUMENT>`, relative to `OUT`.
pub fn instrument_dir(instrument: &str) -> PathBuf {
    PathBuf::from(DIR).join(instrument)
}

/// `series/<INSTRUMENT>/<TF>`, relative to `OUT`.
pub fn series_dir(instrument: &str, tf: Timeframe) -> PathBuf {
    instrument_dir(instrument).join(tf.to_string())
}

/// The file name of the segment starting at `start_ms`.
pub fn segment_name(start_ms: i64) -> String {
    format!("{start_ms}.json")
}

/// A segment as written: bars serialised in their public form as they are
/// read from the state (no converted copy). `tick` only in footprint
/// segments.
#[derive(Serialize)]
pub struct SegmentOut<'a, B: Serialize> {
    pub series: &'a str,
    pub window_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub sealed: bool,
    pub written_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick: Option<Option<f64>>,
    pub bars: B,
}

/// 14-column bars in their public form.
pub struct FileBars<'a>(pub &'a [SeriesBar]);

impl Serialize for FileBars<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|b| FileBar(*b)))
    }
}

/// A segment as read.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SegmentFile {
    pub series: String,
    pub window_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub sealed: bool,
    pub written_ms: i64,
    pub bars: Vec<FileBar>,
}

/// A segment's header, its bars skipped.
#[derive(Clone, Debug, Deserialize)]
pub struct SegmentHeader {
    pub series: String,
    pub start_ms: i64,
    pub sealed: bool,
    #[serde(default)]
    pub bars: serde::de::IgnoredAny,
}

/// `series/index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub updated_ms: i64,
    pub series: Vec<IndexEntry>,
    /// Footprint and heatmap of each instrument.
    #[serde(default)]
    pub views: Vec<super::views::ViewEntry>,
}

/// One series in the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    pub instrument: String,
    pub timeframe: Timeframe,
    pub window_ms: i64,
    /// Oldest and newest bar (`null` before the first).
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    pub bars: u64,
    /// Start of every segment written, oldest first.
    pub segments: Vec<i64>,
}
