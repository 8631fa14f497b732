//! The processor's half of the store: every series of one instrument built
//! row by row, segment by segment.
//!
//! Pure state (no I/O, no clock), serialised into the checkpoint, so a
//! resumed run holds exactly the open segments the killed one had. Only
//! each series' open segment is held, plus the segments sealed since the
//! last flush until the writer has them ([`InstrumentRecorder::handed`]).
//!
//! A segment is sealed when market time reaches its end (the next row is in
//! a later segment, or [`InstrumentRecorder::seal_through`] at a flush), or
//! when the run finishes ([`InstrumentRecorder::seal_all`]). A row older
//! than the open segment (possible only when a later input file of the
//! instrument goes back in time) cannot change a sealed file: it is left
//! out of the store and counted (`late_rows`).

use super::bar::{Sample, SeriesBar};
use super::format::{self, IndexEntry, SegmentOut, SEGMENT_WINDOWS};
use super::timeframe::Timeframe;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;

/// The bars of one segment, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start_ms: i64,
    pub bars: Vec<SeriesBar>,
}

/// One series (instrument × timeframe) being recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecorder {
    timeframe: Timeframe,
    open: Option<Segment>,
    /// Sealed since the last flush, not yet handed to the writer.
    sealed: Vec<Segment>,
    /// The open segment changed since it was last handed to the writer.
    changed: bool,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    bars: u64,
    segments: Vec<i64>,
    late_rows: u64,
}

impl SeriesRecorder {
    pub fn new(timeframe: Timeframe) -> SeriesRecorder {
        SeriesRecorder {
            timeframe,
            open: None,
            sealed: Vec::new(),
            changed: false,
            first_ts: None,
            last_ts: None,
            bars: 0,
            segments: Vec::new(),
            late_rows: 0,
        }
    }

    pub fn timeframe(&self) -> Timeframe {
        self.timeframe
    }

    /// Rows left out because their segment was already sealed.
    pub fn late_rows(&self) -> u64 {
        self.late_rows
    }

    /// Adds one row's sample at market time `ts`.
    pub fn record(&mut self, ts: i64, s: &Sample) {
        let w = self.timeframe.ms();
        let window = ts.div_euclid(w) * w;
        let start = format::segment_start(ts, w);
        let newest = self.segments.last().copied();
        let is_open = self.open.as_ref().is_some_and(|seg| seg.start_ms == start);
        if !is_open {
            if newest.is_some_and(|n| start <= n) {
                // Its segment is sealed (or older still).
                self.late_rows += 1;
                return;
            }
            if let Some(done) = self.open.take() {
                self.sealed.push(done);
            }
            self.open = Some(Segment {
                start_ms: start,
                bars: Vec::with_capacity(SEGMENT_WINDOWS as usize),
            });
            self.segments.push(start);
        }
        let Some(seg) = self.open.as_mut() else {
            return;
        };
        self.changed = true;
        match seg.bars.last_mut() {
            Some(last) if last.ts == window => return last.add(s),
            Some(last) if last.ts > window => {
                // Earlier window of the same segment (a file going back in
                // time): update or insert in order.
                match seg.bars.binary_search_by_key(&window, |b| b.ts) {
                    Ok(i) => seg.bars[i].add(s),
                    Err(i) => {
                        seg.bars.insert(i, SeriesBar::new(window, s));
                        self.bars += 1;
                        self.first_ts = Some(self.first_ts.map_or(window, |f| f.min(window)));
                    }
                }
                return;
            }
            _ => {}
        }
        seg.bars.push(SeriesBar::new(window, s));
        self.bars += 1;
        self.first_ts.get_or_insert(window);
        self.last_ts = Some(window);
    }

    /// End (exclusive) of the segment starting at `start_ms`.
    fn end_of(&self, start_ms: i64) -> i64 {
        start_ms + self.timeframe.ms() * SEGMENT_WINDOWS
    }

    /// Seals the open segment if market time `ts` has reached its end.
    pub fn seal_through(&mut self, ts: i64) {
        if let Some(seg) = &self.open {
            if ts >= self.end_of(seg.start_ms) {
                self.seal_all();
            }
        }
    }

    /// Seals the open segment (the run finished).
    pub fn seal_all(&mut self) {
        if let Some(seg) = self.open.take() {
            self.sealed.push(seg);
        }
    }

    /// Marks everything as to be written again (the run went back to an
    /// earlier state, or resumed).
    pub fn touch(&mut self) {
        self.changed = self.open.is_some();
    }

    pub fn index_entry(&self, instrument: &str) -> IndexEntry {
        IndexEntry {
            id: format::series_id(instrument, self.timeframe),
            instrument: instrument.to_string(),
            timeframe: self.timeframe,
            window_ms: self.timeframe.ms(),
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            bars: self.bars,
            segments: self.segments.clone(),
        }
    }
}

/// A segment file to write at a flush.
pub struct SegmentWrite<'a> {
    /// Directory relative to `OUT`.
    pub dir: PathBuf,
    pub name: String,
    pub series: String,
    pub window_ms: i64,
    pub segment: &'a Segment,
    pub sealed: bool,
}

impl SegmentWrite<'_> {
    /// Writes the segment's JSON, stamped `written_ms`.
    pub fn write(&self, w: &mut dyn Write, written_ms: i64) -> std::io::Result<()> {
        let start = self.segment.start_ms;
        let out = SegmentOut {
            series: &self.series,
            window_ms: self.window_ms,
            start_ms: start,
            end_ms: start + self.window_ms * SEGMENT_WINDOWS,
            sealed: self.sealed,
            written_ms,
            bars: &self.segment.bars,
        };
        serde_json::to_writer(w, &out).map_err(std::io::Error::other)
    }
}

/// Every series of one instrument.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstrumentRecorder {
    instrument: String,
    series: Vec<SeriesRecorder>,
}

impl InstrumentRecorder {
    pub fn new(instrument: &str, timeframes: &[Timeframe]) -> InstrumentRecorder {
        InstrumentRecorder {
            instrument: instrument.to_string(),
            series: timeframes
                .iter()
                .map(|&tf| SeriesRecorder::new(tf))
                .collect(),
        }
    }

    pub fn instrument(&self) -> &str {
        &self.instrument
    }

    pub fn series(&self) -> &[SeriesRecorder] {
        &self.series
    }

    /// Adds one row's sample to every series.
    pub fn record(&mut self, ts: i64, s: &Sample) {
        for series in &mut self.series {
            series.record(ts, s);
        }
    }

    /// Seals every open segment whose end market time `ts` has reached.
    pub fn seal_through(&mut self, ts: i64) {
        for series in &mut self.series {
            series.seal_through(ts);
        }
    }

    /// Seals every open segment (the run finished).
    pub fn seal_all(&mut self) {
        for series in &mut self.series {
            series.seal_all();
        }
    }

    pub fn touch(&mut self) {
        for series in &mut self.series {
            series.touch();
        }
    }

    /// The directories its segments go in, relative to `OUT`.
    pub fn dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.series
            .iter()
            .map(|s| format::series_dir(&self.instrument, s.timeframe))
    }

    /// Segments sealed and not yet handed to the writer.
    pub fn sealed_waiting(&self) -> usize {
        self.series.iter().map(|s| s.sealed.len()).sum()
    }

    /// The segment files to write now: the newly sealed ones, oldest
    /// first, then each changed open one.
    pub fn writes(&self) -> Vec<SegmentWrite<'_>> {
        let mut out = Vec::new();
        for s in &self.series {
            let sealed = s.sealed.iter().map(|seg| (seg, true));
            let open = s.open.iter().filter(|_| s.changed).map(|seg| (seg, false));
            for (segment, sealed) in sealed.chain(open) {
                out.push(SegmentWrite {
                    dir: format::series_dir(&self.instrument, s.timeframe),
                    name: format::segment_name(segment.start_ms),
                    series: format::series_id(&self.instrument, s.timeframe),
                    window_ms: s.timeframe.ms(),
                    segment,
                    sealed,
                });
            }
        }
        out
    }

    /// The writer has everything [`InstrumentRecorder::writes`] returned.
    pub fn handed(&mut self) {
        for s in &mut self.series {
            s.sealed.clear();
            s.changed = false;
        }
    }

    pub fn index_entries(&self) -> impl Iterator<Item = IndexEntry> + '_ {
        self.series.iter().map(|s| s.index_entry(&self.instrument))
    }

    /// Rows left out of the store because their segment was sealed.
    pub fn late_rows(&self) -> u64 {
        self.series
            .iter()
            .map(SeriesRecorder::late_rows)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fixed;

    fn s(cvd: i64) -> Sample {
        Sample {
            trade: None,
            obi: 0.0,
            cvd: Fixed::from_raw(cvd),
        }
    }

    #[test]
    fn segments_hold_1000_windows_and_seal_when_market_time_passes() {
        let tf: Timeframe = "1s".parse().unwrap();
        let mut r = InstrumentRecorder::new("X", &[tf]);
        r.record(500, &s(1));
        r.record(999_999, &s(2));
        assert_eq!(r.writes().len(), 1);
        assert!(!r.writes()[0].sealed);
        r.handed();
        assert!(r.writes().is_empty(), "nothing changed since");
        // A row in the next segment seals the first.
        r.record(1_000_000, &s(3));
        let w = r.writes();
        assert_eq!(
            w.iter()
                .map(|w| (w.name.as_str(), w.sealed, w.segment.bars.len()))
                .collect::<Vec<_>>(),
            [("0.json", true, 2), ("1000000.json", false, 1)]
        );
        assert_eq!(w[0].dir, PathBuf::from("series/X/1s"));
        r.handed();
        // Market time alone seals too.
        r.seal_through(1_999_999);
        assert!(r.writes().is_empty());
        r.seal_through(2_000_000);
        assert_eq!(r.writes().len(), 1);
        assert!(r.writes()[0].sealed);
        r.handed();
        // Late rows never touch a sealed segment.
        r.record(10, &s(4));
        assert_eq!(r.late_rows(), 1);
        let e = r.index_entries().next().unwrap();
        assert_eq!(e.id, "X/1s");
        assert_eq!(
            (e.first_ts, e.last_ts, e.bars),
            (Some(0), Some(1_000_000), 3)
        );
        assert_eq!(e.segments, [0, 1_000_000]);
    }

    #[test]
    fn a_segment_file_has_the_documented_fields() {
        let tf: Timeframe = "1m".parse().unwrap();
        let mut r = InstrumentRecorder::new("BTC-USDT", &[tf]);
        r.record(61_000, &s(5));
        let mut buf = Vec::new();
        r.writes()[0].write(&mut buf, 42).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"series\":\"BTC-USDT/1m\",\"window_ms\":60000,\"start_ms\":0,\"end_ms\":60000000,\
             \"sealed\":false,\"written_ms\":42,\"bars\":[[60000,null,null,null,null,0.0,0.0,0.0,0.0,0.0,\
             5e-8,5e-8,5e-8,5e-8]]}"
        );
    }
}
