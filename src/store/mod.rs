//! The series store: every bar of the run, for every instrument, at every
//! stored timeframe, in `OUT/series/` (docs/formats.md, "Series store").
//!
//! The rolling files of [`crate::ipc`] keep the last bars of one instrument
//! at one window; the store keeps the whole run, segment by segment, so a
//! reader can fetch any range without the processor ever rewriting more
//! than each series' newest segment. This module is the store's one home:
//!
//! - [`timeframe`]: window lengths (`1s`, `5m`, `1d`) and their names;
//! - [`bar`]: the 14-column bar, exact, and exact merging into longer windows;
//! - [`format`](mod@format): paths, the segment object, the index;
//! - [`json`]: the bars of a segment written by hand, fast and byte for
//!   byte as serde_json writes them;
//! - [`segments`]: which segment is open, sealed, changed, for any bar;
//! - [`recorder`]: the processor's side, building segments row by row;
//! - [`views`]: the footprint and heatmap of every window, recorded beside;
//! - [`reader`]: the viewer's side, a bounded cache of segments and range
//!   queries at any multiple of a stored timeframe, merged exactly.
//!
//! It writes nothing itself (the processor's writer thread does, with the
//! atomic replace of [`crate::ipc`]) and knows nothing of SQLite or HTTP.

pub mod bar;
pub mod format;
pub mod json;
pub mod reader;
pub mod recorder;
pub mod segments;
pub mod timeframe;
pub mod views;

pub use bar::{merge_into, FileBar, Sample, SeriesBar};
pub use format::{Index, IndexEntry, SegmentFile, SegmentHeader};
pub use reader::{QueryError, RangeAnswer, RangeQuery, StoreError, StoreReader, ViewSegment};
pub use recorder::{InstrumentRecorder, Segment, SegmentWrite, SeriesRecorder};
pub use timeframe::{Timeframe, TimeframeError};

/// The timeframes stored when none are asked for.
pub const DEFAULT_TIMEFRAMES: &str = "1s,1m,1h,1d";
