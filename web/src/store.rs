//! What the chart shows when the output has a series store: the chosen
//! series, the reference instrument overlaid on it, and the whole run's
//! history strip.
//!
//! Each series is a [`Series`] (fetched range + live tail). The overlay
//! is held at the primary's window so the two line up bar for bar. The
//! chart's [`Data`] is rebuilt from here after each change: typed OHLC
//! and metric rows of the shown bars, the overlay's closes. Pure, tested
//! on the host; the page's JavaScript only moves bytes between the
//! network and these calls.

use crate::data::{Data, MetricRow, OhlcRow};
use crate::series::{Bar, Series};

/// The reference instrument drawn over the price pane.
#[derive(Clone, Debug)]
pub struct Overlay {
    pub name: String,
    pub series: Series,
}

/// The series shown, in store mode.
#[derive(Clone, Debug)]
pub struct Store {
    pub primary: Series,
    pub overlay: Option<Overlay>,
    /// The whole run's closes `(bar start, close)` for the history strip.
    pub strip: Vec<(f64, f64)>,
    pub strip_window_ms: f64,
}

impl Store {
    /// A store view of a series with timeframe `base_ms`.
    pub fn new(base_ms: f64) -> Store {
        Store {
            primary: Series::new(base_ms),
            overlay: None,
            strip: Vec::new(),
            strip_window_ms: base_ms,
        }
    }

    /// The series `which` names: 0 the primary, 1 the overlay.
    pub fn series_mut(&mut self, which: u32) -> Option<&mut Series> {
        match which {
            0 => Some(&mut self.primary),
            1 => self.overlay.as_mut().map(|o| &mut o.series),
            _ => None,
        }
    }

    /// The history strip from the whole run's bars at `window_ms`.
    pub fn set_strip(&mut self, bars: &[Bar], window_ms: f64) {
        self.strip = closes(bars);
        self.strip_window_ms = window_ms;
    }

    /// Stream bars of the primary series into the strip: each lands in
    /// its strip window, whose close is the close of its newest bar.
    /// (A diff only changes the newest bars; one that reaches back into
    /// an older strip window leaves it, the strip being an outline.)
    pub fn strip_upsert(&mut self, bars: &[Bar]) {
        let k = self.strip_window_ms;
        for (ts, close) in closes(bars) {
            let w = crate::series::window_start(ts, k);
            match self.strip.last_mut() {
                Some(last) if last.0 == w => last.1 = close,
                Some(last) if last.0 > w => {}
                _ => self.strip.push((w, close)),
            }
        }
    }

    /// Rebuilds what the chart draws from the held series.
    pub fn fill(&self, data: &mut Data) {
        let bars = self.primary.bars();
        data.ohlc = bars
            .iter()
            .filter_map(|b| {
                b.ohlc.map(|[open, high, low, close]| OhlcRow {
                    ts: b.ts,
                    open,
                    high,
                    low,
                    close,
                    volume: b.volume,
                })
            })
            .collect();
        data.metrics = bars
            .iter()
            .map(|b| MetricRow {
                ts: b.ts,
                obi: b.obi,
                cvd: Some(b.cvd),
            })
            .collect();
        data.window_ms = self.primary.window_ms();
        data.extent = self.primary.extent();
        match &self.overlay {
            Some(o) => {
                data.overlay = closes(o.series.bars());
                data.overlay_name = o.name.clone();
            }
            None => {
                data.overlay.clear();
                data.overlay_name.clear();
            }
        }
    }
}

/// `(ts, close)` of the bars with a price.
fn closes(bars: &[Bar]) -> Vec<(f64, f64)> {
    bars.iter()
        .filter_map(|b| b.ohlc.map(|p| (b.ts, p[3])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_bars_become_rows_and_the_overlay_its_closes() {
        let bar = |ts: f64, p: Option<f64>| Bar {
            ts,
            ohlc: p.map(|p| [p, p, p, p]),
            volume: 1.0,
            obi: [0.1; 4],
            cvd: [2.0; 4],
        };
        let mut s = Store::new(1000.0);
        s.primary.set_tail(vec![
            bar(0.0, Some(5.0)),
            bar(1000.0, None),
            bar(2000.0, Some(6.0)),
        ]);
        let mut o = Series::new(1000.0);
        o.set_tail(vec![bar(0.0, Some(50.0)), bar(2000.0, Some(49.0))]);
        s.overlay = Some(Overlay {
            name: "ETH-USDT".into(),
            series: o,
        });
        let mut d = Data::default();
        s.fill(&mut d);
        assert_eq!(d.ohlc.len(), 2, "the book-only window has no candle");
        assert_eq!(d.metrics.len(), 3, "but it has OBI and CVD");
        assert_eq!(d.metrics[1].cvd_close(), Some(2.0));
        assert_eq!(d.overlay, vec![(0.0, 50.0), (2000.0, 49.0)]);
        assert_eq!(d.extent, Some((0.0, 2000.0)));
        s.overlay = None;
        s.fill(&mut d);
        assert!(d.overlay.is_empty() && d.overlay_name.is_empty());
    }

    #[test]
    fn stream_bars_extend_the_strip_by_its_windows() {
        let bar = |ts: f64, c: f64| Bar {
            ts,
            ohlc: Some([c, c, c, c]),
            volume: 1.0,
            obi: [0.0; 4],
            cvd: [0.0; 4],
        };
        let mut s = Store::new(1000.0);
        s.set_strip(&[bar(0.0, 1.0), bar(10_000.0, 2.0)], 10_000.0);
        s.strip_upsert(&[bar(14_000.0, 3.0), bar(19_000.0, 4.0), bar(20_000.0, 5.0)]);
        assert_eq!(s.strip, vec![(0.0, 1.0), (10_000.0, 4.0), (20_000.0, 5.0)]);
        s.strip_upsert(&[bar(5_000.0, 9.0)]);
        assert_eq!(s.strip[0], (0.0, 1.0), "older windows stay");
    }
}
