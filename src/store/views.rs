//! The orderflow views' data: per window of the run, the traded volume at
//! each price split into buys and sells (the *footprint*) and the book's
//! best levels at the window's close (the *heatmap*), recorded segment by
//! segment beside the series (docs/formats.md, "Footprint and heatmap").
//!
//! Footprint prices are bucketed to a tick: `--footprint-tick`, or by
//! default the smallest price step seen in the instrument's trades (the
//! greatest common divisor of their fixed-point prices, so each price is
//! its own bucket and the segment says which step that is). Trades whose
//! side is neither `buy` nor `sell` are left out, so a window's buy − sell
//! is exactly its CVD change.
//!
//! A heatmap bar is the book after the window's last row: taken when the
//! instrument's first row of a later window arrives (before it is
//! applied), and for the newest window at every flush. Heatmap bars are
//! many (every window's book), so the checkpoint does not hold them: their
//! segment files are written before the checkpoint that covers them, and a
//! resumed run reads its open segment back from its file
//! ([`ViewsRecorder::restore_heatmap`]). Rewriting a heatmap bar replaces
//! it, so a file newer than the checkpoint ends the same.

use super::format;
use super::segments::{Segment, Segments, Windowed};
use crate::model::{Book, Fixed, Level, TradeSide};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use std::path::{Path, PathBuf};

/// The two views, by directory name.
pub const FOOTPRINT: &str = "footprint";
pub const HEATMAP: &str = "heatmap";

/// One window's footprint: `[price, buy, sell]` per price bucket, prices
/// ascending, raw fixed-point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FootBar {
    pub ts: i64,
    pub levels: Vec<[i64; 3]>,
}

/// One window's book at its close: `[price, size]` raw fixed-point, bids
/// best first, asks best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeatBar {
    pub ts: i64,
    pub bids: Vec<[i64; 2]>,
    pub asks: Vec<[i64; 2]>,
}

impl Windowed for FootBar {
    fn ts(&self) -> i64 {
        self.ts
    }
}

impl Windowed for HeatBar {
    fn ts(&self) -> i64 {
        self.ts
    }
}

fn dec(raw: i64) -> f64 {
    Fixed::from_raw(raw).to_f64()
}

impl FootBar {
    /// Adds `size` bought (or sold) at bucket `price`.
    fn add(&mut self, price: i64, size: i64, buy: bool) {
        let i = match self.levels.binary_search_by_key(&price, |l| l[0]) {
            Ok(i) => i,
            Err(i) => {
                self.levels.insert(i, [price, 0, 0]);
                i
            }
        };
        let slot = if buy { 1 } else { 2 };
        self.levels[i][slot] = self.levels[i][slot].saturating_add(size);
    }
}

/// Footprint bars in their public form: `[ts, [[price, buy, sell], …]]`.
pub struct FootFile<'a>(pub &'a [FootBar]);

impl Serialize for FootFile<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for b in self.0 {
            let levels: Vec<[f64; 3]> = b
                .levels
                .iter()
                .map(|l| [dec(l[0]), dec(l[1]), dec(l[2])])
                .collect();
            seq.serialize_element(&(b.ts, levels))?;
        }
        seq.end()
    }
}

/// Heatmap bars in their public form: `[ts, [[price, size], …bids],
/// [[price, size], …asks]]`.
pub struct HeatFile<'a>(pub &'a [HeatBar]);

impl Serialize for HeatFile<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let side = |v: &[[i64; 2]]| -> Vec<[f64; 2]> {
            v.iter().map(|l| [dec(l[0]), dec(l[1])]).collect()
        };
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for b in self.0 {
            seq.serialize_element(&(b.ts, side(&b.bids), side(&b.asks)))?;
        }
        seq.end()
    }
}

/// A heatmap bar as read back: `[ts, bids, asks]`.
type HeatRow = (i64, Vec<[f64; 2]>, Vec<[f64; 2]>);

/// Heatmap bars as read back from a segment file.
#[derive(Deserialize)]
struct HeatFileIn {
    bars: Vec<HeatRow>,
}

/// `series/<INSTRUMENT>/<VIEW>`, relative to `OUT`.
pub fn view_dir(instrument: &str, view: &str) -> PathBuf {
    format::instrument_dir(instrument).join(view)
}

/// A view in the index: `{"id", "instrument", "view", "window_ms",
/// "first_ts", "last_ts", "bars", "segments"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewEntry {
    pub id: String,
    pub instrument: String,
    pub view: String,
    pub window_ms: i64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    pub bars: u64,
    pub segments: Vec<i64>,
}

/// The heatmap's checkpointed part: everything but the bars.
mod heat_checkpoint {
    use super::{HeatBar, Segments};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(h: &Segments<HeatBar>, s: S) -> Result<S::Ok, S::Error> {
        h.without_bars().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Segments<HeatBar>, D::Error> {
        Segments::<HeatBar>::deserialize(d)
    }
}

/// The views of one instrument being recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewsRecorder {
    instrument: String,
    depth_levels: usize,
    /// `--footprint-tick`, raw; `None`: the smallest step seen.
    tick: Option<i64>,
    /// Greatest common divisor of the trade prices seen, raw (0: none yet).
    step: i64,
    footprint: Segments<FootBar>,
    #[serde(with = "heat_checkpoint")]
    heatmap: Segments<HeatBar>,
    /// The window of the instrument's newest row (its heatmap bar is taken
    /// when a row of a later window arrives).
    heat_window: Option<i64>,
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    (a, b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn levels(it: impl Iterator<Item = Level>, n: usize) -> Vec<[i64; 2]> {
    it.take(n).map(|l| [l.price.raw(), l.size.raw()]).collect()
}

impl ViewsRecorder {
    pub fn new(
        instrument: &str,
        window_ms: i64,
        depth_levels: usize,
        tick: Option<Fixed>,
    ) -> ViewsRecorder {
        ViewsRecorder {
            instrument: instrument.to_string(),
            depth_levels,
            tick: tick.map(Fixed::raw).filter(|&t| t > 0),
            step: 0,
            footprint: Segments::new(window_ms),
            heatmap: Segments::new(window_ms),
            heat_window: None,
        }
    }

    /// Before a row of the instrument at `ts` is applied to `book`: the
    /// window it leaves gets its heatmap bar.
    #[inline]
    pub fn before_row(&mut self, ts: i64, book: &Book) {
        let w = self.heatmap.window_ms();
        // Nearly every row is in the newest row's window: no division.
        if self
            .heat_window
            .is_some_and(|h| ts >= h && ts < h.saturating_add(w))
        {
            return;
        }
        let window = ts.div_euclid(w) * w;
        if self.heat_window != Some(window) {
            if let Some(prev) = self.heat_window {
                self.take_heat(prev, book);
            }
            self.heat_window = Some(window);
        }
    }

    /// The newest window's heatmap bar, from `book` as it is now (a flush,
    /// or the end of the run).
    pub fn snapshot(&mut self, book: &Book) {
        if let Some(w) = self.heat_window {
            self.take_heat(w, book);
        }
    }

    fn take_heat(&mut self, window: i64, book: &Book) {
        let bar = HeatBar {
            ts: window,
            bids: levels(book.bids(), self.depth_levels),
            asks: levels(book.asks(), self.depth_levels),
        };
        // Unchanged (a flush while the book stood still): nothing to write.
        let newest = self.heatmap.open().and_then(|s| s.bars.last());
        if newest == Some(&bar) {
            return;
        }
        let update = bar.clone();
        self.heatmap.upsert(window, |_| bar, |b| *b = update);
    }

    /// A trade at `ts`: its size lands in its price bucket, bought or sold.
    pub fn trade(&mut self, ts: i64, price: Fixed, size: Fixed, side: TradeSide) {
        let p = price.raw();
        self.step = gcd(self.step, p);
        let buy = match side {
            TradeSide::Buy => true,
            TradeSide::Sell => false,
            TradeSide::Unknown => return,
        };
        let bucket = match self.tick {
            Some(t) => p.div_euclid(t) * t,
            None => p,
        };
        let size = size.raw();
        self.footprint.upsert(
            ts,
            |window| {
                let mut b = FootBar {
                    ts: window,
                    levels: Vec::new(),
                };
                b.add(bucket, size, buy);
                b
            },
            |b| b.add(bucket, size, buy),
        );
    }

    /// The bucket size the footprint's prices are on (`null` before the
    /// first trade when none was given).
    pub fn tick(&self) -> Option<f64> {
        match (self.tick, self.step) {
            (Some(t), _) => Some(dec(t)),
            (None, 0) => None,
            (None, s) => Some(dec(s)),
        }
    }

    pub fn seal_through(&mut self, ts: i64) {
        self.footprint.seal_through(ts);
        self.heatmap.seal_through(ts);
    }

    pub fn seal_all(&mut self) {
        self.footprint.seal_all();
        self.heatmap.seal_all();
    }

    pub fn touch(&mut self) {
        self.footprint.touch();
        self.heatmap.touch();
    }

    pub fn sealed_waiting(&self) -> usize {
        self.footprint.sealed_waiting() + self.heatmap.sealed_waiting()
    }

    pub fn handed(&mut self) {
        self.footprint.handed();
        self.heatmap.handed();
    }

    /// The writer has the sealed segments.
    pub fn handed_sealed(&mut self) {
        self.footprint.handed_sealed();
        self.heatmap.handed_sealed();
    }

    /// The directories its segments go in, relative to `OUT`.
    pub fn dirs(&self) -> [PathBuf; 2] {
        [
            view_dir(&self.instrument, FOOTPRINT),
            view_dir(&self.instrument, HEATMAP),
        ]
    }

    /// Footprint segments to write now (sealed ones first).
    pub fn footprint_writes(&self) -> impl Iterator<Item = (&Segment<FootBar>, bool)> + '_ {
        self.footprint.to_write()
    }

    /// Heatmap segments to write now; they go before the checkpoint.
    pub fn heatmap_writes(&self) -> impl Iterator<Item = (&Segment<HeatBar>, bool)> + '_ {
        self.heatmap.to_write()
    }

    pub fn window_ms(&self) -> i64 {
        self.footprint.window_ms()
    }

    pub fn instrument(&self) -> &str {
        &self.instrument
    }

    /// Rows left out because their segment was already sealed.
    pub fn late_rows(&self) -> u64 {
        self.footprint.late_rows().max(self.heatmap.late_rows())
    }

    pub fn index_entries(&self) -> [ViewEntry; 2] {
        let entry = |view: &str, first, last, bars, segments: &[i64]| ViewEntry {
            id: format!("{}/{view}", self.instrument),
            instrument: self.instrument.clone(),
            view: view.to_string(),
            window_ms: self.window_ms(),
            first_ts: first,
            last_ts: last,
            bars,
            segments: segments.to_vec(),
        };
        let (f, h) = (&self.footprint, &self.heatmap);
        [
            entry(FOOTPRINT, f.first_ts(), f.last_ts(), f.bars(), f.segments()),
            entry(HEATMAP, h.first_ts(), h.last_ts(), h.bars(), h.segments()),
        ]
    }

    /// After a resume: the heatmap's open segment (its bars are not in the
    /// checkpoint) is read back from its file under `out`, and segments
    /// sealed since the checkpoint's previous flush are on disk already
    /// (written before it). A missing file is a segment not written yet.
    pub fn restore_heatmap(&mut self, out: &Path) -> std::io::Result<()> {
        self.heatmap.handed();
        let Some(start) = self.heatmap.open().map(|s| s.start_ms) else {
            return Ok(());
        };
        let path = out
            .join(view_dir(&self.instrument, HEATMAP))
            .join(format::segment_name(start));
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let file: HeatFileIn = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
        let raw = |v: Vec<[f64; 2]>| -> Vec<[i64; 2]> {
            v.into_iter()
                .map(|l| {
                    let raw = |v: f64| Fixed::from_f64(v).map_or(0, Fixed::raw);
                    [raw(l[0]), raw(l[1])]
                })
                .collect()
        };
        // The file may be ahead of the checkpoint (written before one that
        // was never written): windows after the checkpoint's newest are
        // left for the replay to make again, so they are counted once.
        let newest = self.heatmap.last_ts();
        let bars = file
            .bars
            .into_iter()
            .filter(|(ts, _, _)| newest.is_some_and(|n| *ts <= n))
            .map(|(ts, b, a)| HeatBar {
                ts,
                bids: raw(b),
                asks: raw(a),
            })
            .collect();
        self.heatmap.set_open_bars(bars);
        self.heatmap.touch();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Side;

    fn lvl(p: i64, s: i64) -> Level {
        Level::new(Fixed::from_int(p), Fixed::from_int(s))
    }

    fn r(units: i64) -> i64 {
        Fixed::from_int(units).raw()
    }

    #[test]
    fn a_heatmap_bar_is_the_book_after_its_windows_last_row() {
        let mut book = Book::new();
        let mut v = ViewsRecorder::new("X", 1000, 2, None);
        // Window 0: a book row, then a trade, then the book changes again.
        v.before_row(100, &book);
        book.apply_all(Side::Bid, &[lvl(99, 1), lvl(98, 2), lvl(97, 3)]);
        book.apply_all(Side::Ask, &[lvl(101, 4)]);
        v.before_row(500, &book);
        v.trade(
            500,
            Fixed::from_int(101),
            Fixed::from_int(1),
            TradeSide::Buy,
        );
        v.before_row(900, &book);
        book.apply(Side::Bid, lvl(98, 0));
        // Window 3's first row: window 0's bar is the book before it.
        v.before_row(3_200, &book);
        book.apply(Side::Ask, lvl(102, 5));
        let open = v.heatmap.open().unwrap();
        assert_eq!(
            open.bars,
            [HeatBar {
                ts: 0,
                bids: vec![[r(99), r(1)], [r(97), r(3)]],
                asks: vec![[r(101), r(4)]],
            }]
        );
        // The newest window at a flush: the book as it is now.
        v.snapshot(&book);
        let open = v.heatmap.open().unwrap();
        assert_eq!(open.bars.len(), 2);
        assert_eq!(open.bars[1].ts, 3_000);
        assert_eq!(open.bars[1].asks, vec![[r(101), r(4)], [r(102), r(5)]]);
    }

    #[test]
    fn footprints_bucket_by_side_and_the_default_tick_is_the_finest_step() {
        let mut v = ViewsRecorder::new("X", 1000, 2, None);
        let p = |x: &str| Fixed::parse(x).unwrap();
        v.trade(10, p("100.5"), p("1"), TradeSide::Buy);
        v.trade(20, p("100.5"), p("2"), TradeSide::Sell);
        v.trade(30, p("101"), p("3"), TradeSide::Buy);
        v.trade(40, p("101"), p("9"), TradeSide::Unknown);
        assert_eq!(v.tick(), Some(0.5));
        let bar = &v.footprint.open().unwrap().bars[0];
        assert_eq!(
            bar.levels,
            vec![
                [p("100.5").raw(), p("1").raw(), p("2").raw()],
                [p("101").raw(), p("3").raw(), 0]
            ]
        );
        let mut out = Vec::new();
        serde_json::to_writer(&mut out, &FootFile(std::slice::from_ref(bar))).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[[0,[[100.5,1.0,2.0],[101.0,3.0,0.0]]]]"
        );
        // A given tick buckets down to its multiples.
        let mut v = ViewsRecorder::new("X", 1000, 2, Some(p("2")));
        v.trade(10, p("101.5"), p("1"), TradeSide::Buy);
        v.trade(10, p("100"), p("1"), TradeSide::Buy);
        assert_eq!(v.tick(), Some(2.0));
        assert_eq!(
            v.footprint.open().unwrap().bars[0].levels,
            vec![[p("100").raw(), p("2").raw(), 0]]
        );
    }

    #[test]
    fn the_checkpoint_holds_no_heatmap_bars_and_a_resume_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = Book::new();
        book.apply_all(Side::Bid, &[lvl(99, 1)]);
        let mut v = ViewsRecorder::new("X", 1000, 2, None);
        v.before_row(100, &book);
        v.before_row(1_100, &book);
        let text = serde_json::to_string(&v).unwrap();
        assert!(
            !text.contains(&r(99).to_string()),
            "no book levels in {text}"
        );
        // The open segment's file, as the flush writes it.
        let seg = v.heatmap.open().unwrap();
        let path = dir.path().join(view_dir("X", HEATMAP));
        std::fs::create_dir_all(&path).unwrap();
        let out = format::SegmentOut {
            series: "X/heatmap",
            window_ms: 1000,
            start_ms: 0,
            end_ms: 1_000_000,
            sealed: false,
            written_ms: 1,
            tick: None,
            bars: HeatFile(&seg.bars),
        };
        std::fs::write(path.join("0.json"), serde_json::to_vec(&out).unwrap()).unwrap();
        let mut back: ViewsRecorder = serde_json::from_str(&text).unwrap();
        assert!(back.heatmap.open().unwrap().bars.is_empty());
        back.restore_heatmap(dir.path()).unwrap();
        assert_eq!(back.heatmap, {
            let mut h = v.heatmap.clone();
            h.touch();
            h
        });
    }
}
