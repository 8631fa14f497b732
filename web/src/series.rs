//! One series of the store as the page holds it: a fetched range plus the
//! live tail, shown at one resolution.
//!
//! The page never holds a whole run. It holds
//! - a *range*: the bars of `[from, to)` fetched from `/api/series` at a
//!   window `K` (a whole multiple of the series' timeframe `W`, chosen by
//!   the server so the range fits the screen's width), and
//! - a *tail*: the newest bars at `W` from `/api/stream` (its snapshot,
//!   then every diff), complete from `tail_from` on.
//!
//! What is shown is the range's bars before the first `K` window the tail
//! covers whole, then the tail merged exactly into `K` windows ([`merge`]:
//! open of the first, extremes, close of the last, summed volume; OBI and
//! CVD likewise, as the store merges them). So live diffs land in coarse
//! bars exactly, without refetching. [`Series::wanted`] says which range
//! to fetch when the view leaves what is held or needs a finer window.
//! Pure: no browser, unit-tested on the host.

/// Numbers per bar in the flat arrays the page hands in.
pub const COLS: usize = 14;
/// Tail bars kept; older ones are folded into the range.
pub const TAIL_MAX: usize = 20_000;
/// Windows a stream snapshot covers, the newest included (the viewer's
/// `SNAPSHOT_BARS`).
pub const SNAPSHOT_BARS: usize = 1000;

/// A bar of the store: `[ts, open, high, low, close, volume, obi o h l c,
/// cvd o h l c]`, with no price for a window without trades.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub ts: f64,
    /// Open, high, low, close; `None` when the window had only book rows.
    pub ohlc: Option<[f64; 4]>,
    pub volume: f64,
    pub obi: [f64; 4],
    pub cvd: [f64; 4],
}

fn ohlc_merge(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [a[0], a[1].max(b[1]), a[2].min(b[2]), b[3]]
}

impl Bar {
    /// Bars from 14 numbers each (NaN for a null price); a trailing
    /// partial bar is ignored.
    pub fn from_flat(flat: &[f64]) -> Vec<Bar> {
        flat.chunks_exact(COLS)
            .map(|r| Bar {
                ts: r[0],
                ohlc: r[1].is_finite().then_some([r[1], r[2], r[3], r[4]]),
                volume: if r[5].is_finite() { r[5] } else { 0.0 },
                obi: [r[6], r[7], r[8], r[9]],
                cvd: [r[10], r[11], r[12], r[13]],
            })
            .collect()
    }

    /// The 14 numbers of the bar (NaN for a null price).
    pub fn to_flat(&self) -> [f64; COLS] {
        let p = self.ohlc.unwrap_or([f64::NAN; 4]);
        let (o, c) = (self.obi, self.cvd);
        [
            self.ts,
            p[0],
            p[1],
            p[2],
            p[3],
            self.volume,
            o[0],
            o[1],
            o[2],
            o[3],
            c[0],
            c[1],
            c[2],
            c[3],
        ]
    }

    /// Extends this bar with the bar of a later window; the timestamp
    /// stays this bar's.
    pub fn absorb(&mut self, later: &Bar) {
        self.ohlc = match (self.ohlc, later.ohlc) {
            (Some(a), Some(b)) => Some(ohlc_merge(a, b)),
            (a, b) => a.or(b),
        };
        // The store sums sizes in fixed point; this keeps the sum of a
        // few decimals free of binary noise.
        self.volume = ((self.volume + later.volume) * 1e9).round() / 1e9;
        self.obi = ohlc_merge(self.obi, later.obi);
        self.cvd = ohlc_merge(self.cvd, later.cvd);
    }
}

/// Start of the window of `k` ms holding `ts`.
pub fn window_start(ts: f64, k: f64) -> f64 {
    (ts / k).floor() * k
}

/// `bars` (oldest first) merged exactly into windows of `k` ms.
pub fn merge(bars: &[Bar], k: f64) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    for b in bars {
        let ts = window_start(b.ts, k);
        match out.last_mut() {
            Some(last) if last.ts == ts => last.absorb(b),
            _ => out.push(Bar { ts, ..*b }),
        }
    }
    out
}

/// Something held by its window's start: a bar, a heatmap column, a
/// footprint.
pub trait Timed: Clone {
    fn ts(&self) -> f64;
}

impl Timed for Bar {
    fn ts(&self) -> f64 {
        self.ts
    }
}

/// Replaces or inserts each of `new` (oldest first) in `into` by `ts`.
pub fn upsert<T: Timed>(into: &mut Vec<T>, new: &[T]) {
    for b in new {
        match into.last() {
            Some(last) if last.ts() < b.ts() => into.push(b.clone()),
            None => into.push(b.clone()),
            _ => match into.binary_search_by(|x| x.ts().total_cmp(&b.ts())) {
                Ok(i) => into[i] = b.clone(),
                Err(i) => into.insert(i, b.clone()),
            },
        }
    }
}

/// A range to fetch: `from ≤ ts < to`, at most `max_bars` bars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Want {
    pub from: f64,
    pub to: f64,
    pub max_bars: usize,
}

/// One series as the page holds it (see the module docs).
#[derive(Clone, Debug)]
pub struct Series {
    /// The series' timeframe `W`, ms.
    base_ms: f64,
    /// The fetched range: its window `K`, bounds and bars.
    range_ms: f64,
    range_from: f64,
    range_to: f64,
    range: Vec<Bar>,
    loaded: bool,
    /// Newest bars at `W`, complete from `tail_from` on (+∞: no tail yet).
    tail_from: f64,
    tail: Vec<Bar>,
    /// The whole run's first and last bar (index and tail).
    first: f64,
    last: f64,
    /// A diff changed a window shown from the range: fetch it again.
    stale: bool,
    /// What is shown: at `shown_ms`.
    shown_ms: f64,
    shown: Vec<Bar>,
}

impl Series {
    pub fn new(base_ms: f64) -> Series {
        Series {
            base_ms,
            range_ms: base_ms,
            range_from: f64::INFINITY,
            range_to: f64::INFINITY,
            range: Vec::new(),
            loaded: false,
            tail_from: f64::INFINITY,
            tail: Vec::new(),
            first: f64::INFINITY,
            last: f64::NEG_INFINITY,
            stale: false,
            shown_ms: base_ms,
            shown: Vec::new(),
        }
    }

    pub fn base_ms(&self) -> f64 {
        self.base_ms
    }

    /// The window of the shown bars.
    pub fn window_ms(&self) -> f64 {
        self.shown_ms
    }

    /// The shown bars, oldest first.
    pub fn bars(&self) -> &[Bar] {
        &self.shown
    }

    /// The whole run's first and last bar start, when known.
    pub fn extent(&self) -> Option<(f64, f64)> {
        (self.first <= self.last).then_some((self.first, self.last))
    }

    /// The whole run spans `[first, last]` (from the store's index).
    pub fn set_extent(&mut self, first: f64, last: f64) {
        if first.is_finite() && last.is_finite() && first <= last {
            self.first = first;
            self.last = self.last.max(last);
        }
    }

    /// A fetched range: `bars` at `window_ms` for `[from, to)`.
    pub fn set_range(&mut self, bars: Vec<Bar>, window_ms: f64, from: f64, to: f64) {
        self.range = bars;
        self.range_ms = if window_ms > 0.0 {
            window_ms
        } else {
            self.base_ms
        };
        self.range_from = from;
        self.range_to = to;
        self.loaded = true;
        self.stale = false;
        self.rebuild();
    }

    /// A stream snapshot or reset: the bars of the newest
    /// [`SNAPSHOT_BARS`] windows at `W` (those with rows), replacing the
    /// tail, which is then complete from the first of those windows.
    pub fn set_tail(&mut self, bars: Vec<Bar>) {
        self.tail_from = bars.last().map_or(f64::INFINITY, |b| {
            b.ts - (SNAPSHOT_BARS as f64 - 1.0) * self.base_ms
        });
        self.tail = bars;
        self.note_last();
        self.stale = self.loaded;
        self.rebuild();
    }

    /// A stream diff: bars at `W` that changed or were added.
    pub fn upsert_tail(&mut self, bars: &[Bar]) {
        let cut = self.cut();
        if bars.iter().any(|b| b.ts < cut && b.ts >= self.range_from) {
            self.stale = true;
        }
        if self.tail_from == f64::INFINITY {
            // Diffs before any snapshot: complete from their first bar.
            self.tail_from = bars.first().map_or(f64::INFINITY, |b| b.ts);
        }
        upsert(&mut self.tail, bars);
        self.trim();
        self.note_last();
        self.rebuild();
    }

    /// Whether a diff changed a window shown from the fetched range.
    pub fn stale(&self) -> bool {
        self.stale
    }

    fn note_last(&mut self) {
        if let (Some(a), Some(b)) = (self.tail.first(), self.tail.last()) {
            self.first = self.first.min(a.ts);
            self.last = self.last.max(b.ts);
        }
    }

    /// The window `K` the shown bars have.
    fn k(&self) -> f64 {
        if self.loaded {
            self.range_ms
        } else {
            self.base_ms
        }
    }

    /// The first `K` window the tail covers whole.
    fn cut(&self) -> f64 {
        if self.tail_from.is_infinite() {
            return self.tail_from;
        }
        let k = self.k();
        (self.tail_from / k).ceil() * k
    }

    /// Keeps the tail under [`TAIL_MAX`]: its oldest whole `K` windows go
    /// into the range when the range reaches them, else they are dropped
    /// (a later fetch brings them back).
    fn trim(&mut self) {
        if self.tail.len() <= TAIL_MAX {
            return;
        }
        let k = self.k();
        let keep_from = window_start(self.tail[self.tail.len() - TAIL_MAX / 2].ts, k);
        let n = self.tail.partition_point(|b| b.ts < keep_from);
        let old: Vec<Bar> = self.tail.drain(..n).collect();
        let cut = self.cut();
        if self.loaded && self.range_to >= self.tail_from {
            self.range_from = self.range_from.min(cut);
            self.range.retain(|b| b.ts < cut);
            let from = old.partition_point(|b| b.ts < cut);
            self.range.extend(merge(&old[from..], k));
            self.range_to = keep_from;
        }
        self.tail_from = keep_from;
    }

    fn rebuild(&mut self) {
        let k = self.k();
        let cut = self.cut();
        let mut shown: Vec<Bar> = if self.loaded {
            let n = self.range.partition_point(|b| b.ts < cut);
            self.range[..n].to_vec()
        } else {
            Vec::new()
        };
        let from = self.tail.partition_point(|b| b.ts < cut);
        let tail = &self.tail[from..];
        if k == self.base_ms {
            shown.extend_from_slice(tail);
        } else {
            shown.extend(merge(tail, k));
        }
        self.shown_ms = k;
        self.shown = shown;
    }

    /// Whether `[a, b)` is held (or holds nothing: before the run's first
    /// bar or after its last).
    pub fn covers(&self, a: f64, b: f64) -> bool {
        let a = a.max(self.first);
        let b = b.min(self.last + self.base_ms);
        if a >= b || a >= self.tail_from {
            return true;
        }
        self.loaded
            && self.range_from <= a
            && (self.range_to >= b || self.range_to >= self.tail_from)
    }

    /// The range to fetch for a view of `[from, to)` on `px` pixel
    /// columns, if what is held does not do: it leaves the view, is
    /// coarser than two pixels a bar where finer bars exist, or is stale.
    /// The range asked is the view and one view's width each side, at
    /// most three bars a pixel column… of the three widths.
    pub fn wanted(&self, from: f64, to: f64, px: usize) -> Option<Want> {
        let span = to - from;
        // Before the stream's snapshot, what it will bring is unknown.
        let no_tail = self.tail_from == f64::INFINITY;
        if span.is_nan() || span <= 0.0 || px == 0 || self.extent().is_none() || no_tail {
            return None;
        }
        let k_need = ((span / (px as f64 * self.base_ms)).ceil().max(1.0)) * self.base_ms;
        let too_coarse = self.k() > self.base_ms && self.k() > 2.0 * k_need;
        if self.covers(from, to) && !too_coarse && !self.stale {
            return None;
        }
        Some(Want {
            from: window_start(from - span, self.base_ms),
            to: window_start(to + span, self.base_ms) + self.base_ms,
            max_bars: 3 * px,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bar at `ts` with price `p` (or none), volume `v`, OBI and CVD `m`.
    fn bar(ts: f64, p: Option<f64>, v: f64, m: f64) -> Bar {
        Bar {
            ts,
            ohlc: p.map(|p| [p, p + 1.0, p - 1.0, p + 0.5]),
            volume: v,
            obi: [m, m + 0.1, m - 0.1, m],
            cvd: [m * 10.0, m * 10.0 + 1.0, m * 10.0 - 1.0, m * 10.0],
        }
    }

    #[test]
    fn flat_bars_round_trip_with_null_prices() {
        let b = [bar(0.0, Some(5.0), 2.0, 0.1), bar(1000.0, None, 0.0, 0.2)];
        let flat: Vec<f64> = b.iter().flat_map(|b| b.to_flat()).collect();
        assert_eq!(Bar::from_flat(&flat), b.to_vec());
        assert_eq!(Bar::from_flat(&flat[..20]).len(), 1);
    }

    #[test]
    fn merge_is_exact_and_skips_priceless_windows_for_prices() {
        let bars = [
            bar(0.0, None, 0.0, 0.1),
            bar(1000.0, Some(10.0), 0.1, 0.3),
            bar(2000.0, Some(12.0), 0.2, -0.2),
            bar(3000.0, Some(9.0), 1.0, 0.0),
        ];
        let m = merge(&bars, 3000.0);
        assert_eq!(m.len(), 2);
        let a = m[0];
        assert_eq!(a.ts, 0.0);
        // Open of the first priced bar, extremes, close of the last.
        assert_eq!(a.ohlc, Some([10.0, 13.0, 9.0, 12.5]));
        assert_eq!(a.volume, 0.3, "0.1 + 0.2 without binary noise");
        assert_eq!(a.obi, [0.1, 0.4, bars[2].obi[2], -0.2]);
        assert_eq!(a.cvd, [1.0, 4.0, -3.0, -2.0]);
        assert_eq!(m[1].ts, 3000.0);
        assert_eq!(m[1].ohlc, bars[3].ohlc);
    }

    #[test]
    fn upsert_replaces_by_ts_and_keeps_order() {
        let mut v = vec![bar(0.0, None, 0.0, 0.0), bar(2000.0, None, 0.0, 0.0)];
        upsert(
            &mut v,
            &[
                bar(1000.0, Some(1.0), 1.0, 0.0),
                bar(2000.0, Some(2.0), 2.0, 0.0),
                bar(3000.0, None, 0.0, 0.0),
            ],
        );
        let ts: Vec<f64> = v.iter().map(|b| b.ts).collect();
        assert_eq!(ts, [0.0, 1000.0, 2000.0, 3000.0]);
        assert_eq!(v[2].volume, 2.0);
    }

    /// 1 s bars from 0 to `n` s, price rising by one each second.
    fn run(n: usize) -> Vec<Bar> {
        (0..n)
            .map(|i| bar(i as f64 * 1000.0, Some(i as f64), 1.0, i as f64 / n as f64))
            .collect()
    }

    #[test]
    fn the_tail_lands_in_coarse_windows_exactly() {
        let all = run(3000);
        let mut s = Series::new(1000.0);
        s.set_extent(0.0, 2999_000.0);
        // The snapshot: the newest 1000 bars, not yet the whole run.
        s.set_tail(all[2000..].to_vec());
        assert_eq!(s.bars().len(), 1000);
        assert_eq!(s.window_ms(), 1000.0);
        // A range of the whole run at 7 s (as the server merges it).
        s.set_range(merge(&all[..2500], 7000.0), 7000.0, 0.0, 2_500_000.0);
        assert!(!s.stale());
        // Shown: the range up to the first 7 s window the tail covers
        // whole (2 002 000), then the tail merged: the whole run at 7 s.
        assert_eq!(s.window_ms(), 7000.0);
        assert_eq!(s.bars(), merge(&all, 7000.0).as_slice());
        // A diff updates the newest bar and adds one: merged in exactly.
        let mut next = all.clone();
        next[2999].volume = 5.0;
        next.push(bar(3_000_000.0, Some(3000.0), 1.0, 1.0));
        s.upsert_tail(&next[2999..]);
        assert_eq!(s.bars(), merge(&next, 7000.0).as_slice());
        assert!(!s.stale(), "the diff is in windows the tail covers");
        // A diff inside the window that straddles the tail's start is
        // shown from the range: the range must be fetched again.
        s.upsert_tail(&[next[2000]]);
        assert!(s.stale());
    }

    #[test]
    fn a_short_snapshot_is_the_whole_series() {
        let all = run(300);
        let mut s = Series::new(1000.0);
        s.set_tail(all.clone());
        assert_eq!(s.extent(), Some((0.0, 299_000.0)));
        assert!(s.covers(-1e9, 1e12), "nothing else exists");
        assert_eq!(s.wanted(0.0, 300_000.0, 1000), None);
        // Zoomed out on 2 px: coarser bars are not needed (M4 draws them),
        // finer than held is impossible.
        assert_eq!(s.wanted(0.0, 300_000.0, 2), None);
    }

    #[test]
    fn a_sparse_snapshot_covers_its_windows_only() {
        // Bars in every other second: the newest 1000 windows hold 500.
        let all: Vec<Bar> = run(6000).into_iter().step_by(2).collect();
        let mut s = Series::new(1000.0);
        s.set_extent(0.0, 5_998_000.0);
        s.set_tail(all[2500..].to_vec());
        assert!(s.covers(5_000_000.0, 6_000_000.0));
        assert!(!s.covers(4_990_000.0, 5_100_000.0));
        assert!(s.wanted(4_000_000.0, 4_100_000.0, 500).is_some());
    }

    #[test]
    fn wanted_asks_for_what_the_view_lacks() {
        let all = run(5000);
        let mut s = Series::new(1000.0);
        s.set_extent(0.0, 4_999_000.0);
        s.set_tail(all[4000..].to_vec());
        // The newest 100 s: held by the tail.
        assert_eq!(s.wanted(4_900_000.0, 5_000_000.0, 800), None);
        // 1000 s further back: not held; the view ± its width, 3 bars/px.
        let w = s.wanted(3_000_000.0, 3_100_000.0, 800).unwrap();
        assert_eq!(
            w,
            Want {
                from: 2_900_000.0,
                to: 3_201_000.0,
                max_bars: 2400
            }
        );
        s.set_range(all[2900..3201].to_vec(), 1000.0, w.from, w.to);
        assert_eq!(s.wanted(3_000_000.0, 3_100_000.0, 800), None);
        // The whole run on 500 px: a range at a coarse window…
        let w = s.wanted(0.0, 5_000_000.0, 500).unwrap();
        s.set_range(merge(&all, 20_000.0), 20_000.0, w.from, w.to);
        assert_eq!(s.wanted(0.0, 5_000_000.0, 500), None);
        assert_eq!(s.window_ms(), 20_000.0);
        // … which zooming in 10× makes too coarse.
        assert!(s.wanted(2_000_000.0, 2_500_000.0, 500).is_some());
    }

    #[test]
    fn a_long_tail_is_folded_into_the_range() {
        let all = run(TAIL_MAX + 2000);
        let mut s = Series::new(1000.0);
        s.set_tail(all[..SNAPSHOT_BARS].to_vec());
        s.set_range(Vec::new(), 1000.0, -1e12, 1e12);
        for b in &all[SNAPSHOT_BARS..] {
            s.upsert_tail(std::slice::from_ref(b));
        }
        assert!(s.tail.len() <= TAIL_MAX);
        assert_eq!(s.bars(), all.as_slice(), "nothing lost in the fold");
    }
}
