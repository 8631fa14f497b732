//! The processor's half of the store: every series of one instrument built
//! row by row, segment by segment.
//!
//! Pure state (no I/O, no clock), serialised into the checkpoint, so a
//! resumed run holds exactly the open segments the killed one had. Only
//! each series' open segment is held, plus the segments sealed since the
//! last flush until the writer has them ([`InstrumentRecorder::handed`]);
//! those are written before the checkpoint and left out of it
//! (docs/adr/0009-store-segments-before-the-checkpoint.md).
//!
//! A segment is sealed when market time reaches its end (the next row is in
//! a later segment, or [`InstrumentRecorder::seal_through`] at a flush), or
//! when the run finishes ([`InstrumentRecorder::seal_all`]). A row older
//! than the open segment (possible only when a later input file of the
//! instrument goes back in time) cannot change a sealed file: it is left
//! out of the store and counted (`late_rows`).

use super::bar::{Sample, SeriesBar};
use super::format::{self, IndexEntry, SegmentOut, SEGMENT_WINDOWS};
use super::json;
use super::segments::{Segments, Windowed};
use super::timeframe::Timeframe;
use super::views::{FootBar, HeatBar, ViewEntry, ViewsRecorder};
use crate::model::Fixed;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;

/// The bars of one segment of a 14-column series.
pub type Segment = super::segments::Segment<SeriesBar>;

impl Windowed for SeriesBar {
    fn ts(&self) -> i64 {
        self.ts
    }
}

/// One series (instrument × timeframe) being recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecorder {
    timeframe: Timeframe,
    segments: Segments<SeriesBar>,
}

impl SeriesRecorder {
    pub fn new(timeframe: Timeframe) -> SeriesRecorder {
        SeriesRecorder {
            timeframe,
            segments: Segments::new(timeframe.ms()),
        }
    }

    pub fn timeframe(&self) -> Timeframe {
        self.timeframe
    }

    /// Rows left out because their segment was already sealed.
    pub fn late_rows(&self) -> u64 {
        self.segments.late_rows()
    }

    /// Adds one row's sample at market time `ts`.
    pub fn record(&mut self, ts: i64, s: &Sample) {
        self.segments
            .upsert(ts, |window| SeriesBar::new(window, s), |bar| bar.add(s));
    }

    /// Seals the open segment if market time `ts` has reached its end.
    pub fn seal_through(&mut self, ts: i64) {
        self.segments.seal_through(ts);
    }

    /// Seals the open segment (the run finished).
    pub fn seal_all(&mut self) {
        self.segments.seal_all();
    }

    /// Marks everything as to be written again (the run went back to an
    /// earlier state, or resumed).
    pub fn touch(&mut self) {
        self.segments.touch();
    }

    pub fn index_entry(&self, instrument: &str) -> IndexEntry {
        let s = &self.segments;
        IndexEntry {
            id: format::series_id(instrument, self.timeframe),
            instrument: instrument.to_string(),
            timeframe: self.timeframe,
            window_ms: self.timeframe.ms(),
            first_ts: s.first_ts(),
            last_ts: s.last_ts(),
            bars: s.bars(),
            segments: s.segments().to_vec(),
        }
    }
}

/// What a segment file holds.
pub enum Body<'a> {
    /// 14-column bars.
    Series(&'a Segment),
    /// Footprint bars, on price buckets of `tick`.
    Footprint(&'a super::segments::Segment<FootBar>, Option<f64>),
    /// Heatmap bars.
    Heatmap(&'a super::segments::Segment<HeatBar>),
}

/// A segment file to write at a flush.
pub struct SegmentWrite<'a> {
    /// Directory relative to `OUT`.
    pub dir: PathBuf,
    pub name: String,
    pub series: String,
    pub window_ms: i64,
    pub body: Body<'a>,
    pub sealed: bool,
}

impl SegmentWrite<'_> {
    /// The segment's first window.
    pub fn start_ms(&self) -> i64 {
        match &self.body {
            Body::Series(s) => s.start_ms,
            Body::Footprint(s, _) => s.start_ms,
            Body::Heatmap(s) => s.start_ms,
        }
    }

    /// Bars it holds.
    pub fn bars(&self) -> usize {
        match &self.body {
            Body::Series(s) => s.bars.len(),
            Body::Footprint(s, _) => s.bars.len(),
            Body::Heatmap(s) => s.bars.len(),
        }
    }

    /// Writes the segment's JSON, stamped `written_ms`: the object as
    /// [`SegmentOut`] serialises it, its bars written by [`super::json`]
    /// (the same bytes, several times faster).
    pub fn write(&self, w: &mut dyn Write, written_ms: i64) -> std::io::Result<()> {
        let tick = match &self.body {
            Body::Footprint(_, tick) => Some(*tick),
            _ => None,
        };
        let start = self.start_ms();
        let head = SegmentOut {
            series: &self.series,
            window_ms: self.window_ms,
            start_ms: start,
            end_ms: start + self.window_ms * SEGMENT_WINDOWS,
            sealed: self.sealed,
            written_ms,
            tick,
            bars: [(); 0],
        };
        let mut out = Vec::with_capacity(2 * json::CHUNK);
        serde_json::to_writer(&mut out, &head).map_err(std::io::Error::other)?;
        // `…,"bars":[]}`: the bars go between the brackets.
        debug_assert!(out.ends_with(b"[]}"));
        out.truncate(out.len() - b"[]}".len());
        match &self.body {
            Body::Series(s) => json::array_to(w, &mut out, &s.bars, json::series_bar)?,
            Body::Footprint(s, _) => json::array_to(w, &mut out, &s.bars, json::foot_bar)?,
            Body::Heatmap(s) => json::array_to(w, &mut out, &s.bars, json::heat_bar)?,
        }
        out.push(b'}');
        w.write_all(&out)
    }
}

/// Every series of one instrument.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstrumentRecorder {
    instrument: String,
    series: Vec<SeriesRecorder>,
    /// Footprint and heatmap at the run's window, when recorded.
    #[serde(default)]
    views: Option<ViewsRecorder>,
}

impl InstrumentRecorder {
    pub fn new(instrument: &str, timeframes: &[Timeframe]) -> InstrumentRecorder {
        InstrumentRecorder {
            instrument: instrument.to_string(),
            series: timeframes
                .iter()
                .map(|&tf| SeriesRecorder::new(tf))
                .collect(),
            views: None,
        }
    }

    /// Records the footprint and heatmap too, at windows of `window_ms`
    /// (the book's best `depth_levels` per side; footprint buckets of
    /// `tick`, or the smallest price step seen).
    pub fn with_views(
        mut self,
        window_ms: i64,
        depth_levels: usize,
        tick: Option<Fixed>,
    ) -> InstrumentRecorder {
        self.views = Some(ViewsRecorder::new(
            &self.instrument,
            window_ms,
            depth_levels,
            tick,
        ));
        self
    }

    /// The footprint and heatmap recorder, when there is one.
    pub fn views_mut(&mut self) -> Option<&mut ViewsRecorder> {
        self.views.as_mut()
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
        if let Some(v) = &mut self.views {
            v.seal_through(ts);
        }
    }

    /// Seals every open segment (the run finished).
    pub fn seal_all(&mut self) {
        for series in &mut self.series {
            series.seal_all();
        }
        if let Some(v) = &mut self.views {
            v.seal_all();
        }
    }

    pub fn touch(&mut self) {
        for series in &mut self.series {
            series.touch();
        }
        if let Some(v) = &mut self.views {
            v.touch();
        }
    }

    /// The directories its segments go in, relative to `OUT`.
    pub fn dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        let views = self.views.iter().flat_map(|v| v.dirs());
        self.series
            .iter()
            .map(|s| format::series_dir(&self.instrument, s.timeframe))
            .chain(views)
    }

    /// Segments sealed and not yet handed to the writer.
    pub fn sealed_waiting(&self) -> usize {
        let views = self.views.as_ref().map_or(0, ViewsRecorder::sealed_waiting);
        self.series
            .iter()
            .map(|s| s.segments.sealed_waiting())
            .sum::<usize>()
            + views
    }

    /// The heatmap segments to write now: they go before the checkpoint,
    /// which does not hold their bars (see [`super::views`]).
    pub fn heatmap_writes(&self) -> Vec<SegmentWrite<'_>> {
        let Some(v) = &self.views else {
            return Vec::new();
        };
        v.heatmap_writes()
            .map(|(segment, sealed)| SegmentWrite {
                dir: super::views::view_dir(&self.instrument, super::views::HEATMAP),
                name: format::segment_name(segment.start_ms),
                series: format!("{}/{}", self.instrument, super::views::HEATMAP),
                window_ms: v.window_ms(),
                body: Body::Heatmap(segment),
                sealed,
            })
            .collect()
    }

    /// The segment files to write now: the newly sealed ones, oldest
    /// first, then each changed open one.
    pub fn writes(&self) -> Vec<SegmentWrite<'_>> {
        let mut out = Vec::new();
        for s in &self.series {
            for (segment, sealed) in s.segments.to_write() {
                out.push(SegmentWrite {
                    dir: format::series_dir(&self.instrument, s.timeframe),
                    name: format::segment_name(segment.start_ms),
                    series: format::series_id(&self.instrument, s.timeframe),
                    window_ms: s.timeframe.ms(),
                    body: Body::Series(segment),
                    sealed,
                });
            }
        }
        if let Some(v) = &self.views {
            for (segment, sealed) in v.footprint_writes() {
                out.push(SegmentWrite {
                    dir: super::views::view_dir(&self.instrument, super::views::FOOTPRINT),
                    name: format::segment_name(segment.start_ms),
                    series: format!("{}/{}", self.instrument, super::views::FOOTPRINT),
                    window_ms: v.window_ms(),
                    body: Body::Footprint(segment, v.tick()),
                    sealed,
                });
            }
        }
        out
    }

    /// The writer has everything [`InstrumentRecorder::writes`] returned.
    pub fn handed(&mut self) {
        for s in &mut self.series {
            s.segments.handed();
        }
        if let Some(v) = &mut self.views {
            v.handed();
        }
    }

    /// The writer has the sealed segments of every series and view (a
    /// flush of those alone: [`InstrumentRecorder::sealed_writes`]).
    pub fn handed_sealed(&mut self) {
        for s in &mut self.series {
            s.segments.handed_sealed();
        }
        if let Some(v) = &mut self.views {
            v.handed_sealed();
        }
    }

    /// The sealed segments waiting, of every series and view.
    pub fn sealed_writes(&self) -> Vec<SegmentWrite<'_>> {
        let mut out = self.heatmap_writes();
        out.extend(self.writes());
        out.retain(|w| w.sealed);
        out
    }

    pub fn index_entries(&self) -> impl Iterator<Item = IndexEntry> + '_ {
        self.series.iter().map(|s| s.index_entry(&self.instrument))
    }

    /// The footprint and heatmap in the index.
    pub fn view_entries(&self) -> impl Iterator<Item = ViewEntry> + '_ {
        self.views.iter().flat_map(|v| v.index_entries())
    }

    /// Rows left out of the store because their segment was sealed.
    pub fn late_rows(&self) -> u64 {
        let views = self.views.as_ref().map_or(0, ViewsRecorder::late_rows);
        self.series
            .iter()
            .map(SeriesRecorder::late_rows)
            .max()
            .unwrap_or(0)
            .max(views)
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

    /// What serde_json writes for a segment through the bars' `Serialize`
    /// forms: the reference for [`SegmentWrite::write`].
    fn reference(w: &SegmentWrite, written_ms: i64) -> Vec<u8> {
        fn out<B: serde::Serialize>(
            w: &SegmentWrite,
            written_ms: i64,
            tick: Option<Option<f64>>,
            bars: B,
        ) -> Vec<u8> {
            let start = w.start_ms();
            serde_json::to_vec(&SegmentOut {
                series: &w.series,
                window_ms: w.window_ms,
                start_ms: start,
                end_ms: start + w.window_ms * SEGMENT_WINDOWS,
                sealed: w.sealed,
                written_ms,
                tick,
                bars,
            })
            .unwrap()
        }
        match &w.body {
            Body::Series(s) => out(w, written_ms, None, format::FileBars(&s.bars)),
            Body::Footprint(s, t) => out(
                w,
                written_ms,
                Some(*t),
                super::super::views::FootFile(&s.bars),
            ),
            Body::Heatmap(s) => out(w, written_ms, None, super::super::views::HeatFile(&s.bars)),
        }
    }

    #[test]
    fn segment_files_are_written_byte_for_byte_as_serde_json_writes_them() {
        let tfs: Vec<Timeframe> = ["1s", "1m"].iter().map(|t| t.parse().unwrap()).collect();
        let mut r = InstrumentRecorder::new("X", &tfs);
        let mut writes = 0;
        for i in 0..3_000i64 {
            let sample = Sample {
                trade: (i % 3 != 0).then(|| {
                    (
                        Fixed::from_raw(3_000_000_000_000 + i * 7_919 % 100_000),
                        Fixed::from_raw(i * 1_234_567),
                    )
                }),
                obi: (i as f64 * 0.37).sin(),
                cvd: Fixed::from_raw(i * 98_765 - 40_000_000),
            };
            r.record(i * 700, &sample);
            if i % 500 == 499 {
                for w in r.writes() {
                    let mut ours = Vec::new();
                    w.write(&mut ours, 1_234).unwrap();
                    assert_eq!(
                        String::from_utf8(ours).unwrap(),
                        String::from_utf8(reference(&w, 1_234)).unwrap()
                    );
                    writes += 1;
                }
                r.handed();
            }
        }
        assert!(writes >= 8, "{writes}");
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
                .map(|w| (w.name.as_str(), w.sealed, w.bars()))
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
