//! Segment bookkeeping shared by every kind of stored series: which
//! segment is open, which were sealed since the writer last took them,
//! what changed, and the index figures (first and last bar, bar count,
//! segment starts).
//!
//! A segment holds the bars of [`SEGMENT_WINDOWS`] consecutive windows,
//! aligned to `1000 × W` (docs/formats.md, "Segments"). It is sealed when
//! market time reaches its end or the run finishes; a row for a sealed
//! segment is left out and counted (`late_rows`), so no sealed file ever
//! changes. The bar type is the caller's: 14-column bars
//! ([`super::recorder`]), footprints and heatmaps ([`super::views`]).
//! Pure state, serialised into the checkpoint, all but the sealed segments
//! waiting for the writer: a flush puts those on disk before the
//! checkpoint that no longer holds them.

use super::format::{self, SEGMENT_WINDOWS};
use serde::{Deserialize, Serialize};

/// A bar that belongs to one window.
pub trait Windowed {
    /// Start of its window, ms.
    fn ts(&self) -> i64;
}

/// The bars of one segment, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment<B> {
    pub start_ms: i64,
    pub bars: Vec<B>,
}

/// The segments of one series being recorded at windows of `window_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segments<B> {
    window_ms: i64,
    pub(super) open: Option<Segment<B>>,
    /// Sealed since the last flush, not yet handed to the writer. Not in
    /// the checkpoint: a flush writes them before it (docs/formats.md,
    /// "Writing and crash safety").
    #[serde(skip_serializing, default = "Vec::new")]
    pub(super) sealed: Vec<Segment<B>>,
    /// The open segment changed since it was last handed to the writer.
    pub(super) changed: bool,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    bars: u64,
    segments: Vec<i64>,
    late_rows: u64,
}

impl<B: Windowed> Segments<B> {
    pub fn new(window_ms: i64) -> Segments<B> {
        Segments {
            window_ms,
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

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Rows left out because their segment was already sealed.
    pub fn late_rows(&self) -> u64 {
        self.late_rows
    }

    /// The bar of the window holding market time `ts`: `update`d when it
    /// exists, else made by `new` (given the window start). Opening a
    /// later segment seals the open one. A row for a sealed segment is
    /// counted and left out.
    #[inline]
    pub fn upsert(&mut self, ts: i64, new: impl FnOnce(i64) -> B, update: impl FnOnce(&mut B)) {
        let w = self.window_ms;
        // Nearly every row falls in the newest bar's window (bars start at
        // multiples of `w`, and that bar is in the open segment): no
        // division needed for those.
        if let Some(last) = self.open.as_mut().and_then(|seg| seg.bars.last_mut()) {
            let t = last.ts();
            if ts >= t && ts < t.saturating_add(w) {
                self.changed = true;
                return update(last);
            }
        }
        let window = ts.div_euclid(w) * w;
        let start = format::segment_start(ts, w);
        let is_open = self.open.as_ref().is_some_and(|seg| seg.start_ms == start);
        if !is_open {
            if self.segments.last().is_some_and(|&n| start <= n) {
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
            Some(last) if last.ts() == window => return update(last),
            Some(last) if last.ts() > window => {
                // Earlier window of the same segment (a file going back in
                // time): update or insert in order.
                match seg.bars.binary_search_by_key(&window, |b| b.ts()) {
                    Ok(i) => update(&mut seg.bars[i]),
                    Err(i) => {
                        seg.bars.insert(i, new(window));
                        self.bars += 1;
                        self.first_ts = Some(self.first_ts.map_or(window, |f| f.min(window)));
                    }
                }
                return;
            }
            _ => {}
        }
        seg.bars.push(new(window));
        self.bars += 1;
        self.first_ts.get_or_insert(window);
        self.last_ts = Some(window);
    }

    /// End (exclusive) of the segment starting at `start_ms`.
    fn end_of(&self, start_ms: i64) -> i64 {
        start_ms + self.window_ms * SEGMENT_WINDOWS
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

    /// Marks the open segment as to be written again (the run resumed).
    pub fn touch(&mut self) {
        self.changed = self.open.is_some();
    }

    /// Segments sealed and not yet handed to the writer.
    pub fn sealed_waiting(&self) -> usize {
        self.sealed.len()
    }

    /// The segments to write now, with whether each is sealed: the newly
    /// sealed ones, oldest first, then the open one if it changed.
    pub fn to_write(&self) -> impl Iterator<Item = (&Segment<B>, bool)> + '_ {
        let sealed = self.sealed.iter().map(|seg| (seg, true));
        let open = self
            .open
            .iter()
            .filter(|_| self.changed)
            .map(|seg| (seg, false));
        sealed.chain(open)
    }

    /// The writer has everything [`Segments::to_write`] gave.
    pub fn handed(&mut self) {
        self.sealed.clear();
        self.changed = false;
    }

    /// The writer has the sealed segments (and not the open one).
    pub fn handed_sealed(&mut self) {
        self.sealed.clear();
    }

    /// The same bookkeeping with no bars (what a checkpoint holds of a
    /// view whose bars are read back from their files).
    pub fn without_bars(&self) -> Segments<B> {
        let empty = |s: &Segment<B>| Segment {
            start_ms: s.start_ms,
            bars: Vec::new(),
        };
        Segments {
            window_ms: self.window_ms,
            open: self.open.as_ref().map(empty),
            sealed: self.sealed.iter().map(empty).collect(),
            changed: self.changed,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            bars: self.bars,
            segments: self.segments.clone(),
            late_rows: self.late_rows,
        }
    }

    /// Gives the open segment these bars (read back from its file).
    pub fn set_open_bars(&mut self, bars: Vec<B>) {
        if let Some(seg) = &mut self.open {
            seg.bars = bars;
        }
    }

    /// The open segment.
    pub fn open(&self) -> Option<&Segment<B>> {
        self.open.as_ref()
    }

    pub fn first_ts(&self) -> Option<i64> {
        self.first_ts
    }

    pub fn last_ts(&self) -> Option<i64> {
        self.last_ts
    }

    /// Bars recorded.
    pub fn bars(&self) -> u64 {
        self.bars
    }

    /// Start of every segment opened, oldest first.
    pub fn segments(&self) -> &[i64] {
        &self.segments
    }
}
