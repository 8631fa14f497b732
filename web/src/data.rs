//! What the chart shows: typed rows of the data files and the depth.
//!
//! The page hands rows in as flat `Float64Array`s (six numbers per OHLC
//! row, nine per metrics row, as in the files); they become named fields
//! here once, so no drawing code indexes `r[8]`. Pure, tested on the host.
//! (These mirror `orderflow::ipc::OhlcRow`/`MetricRow` on purpose: this
//! crate is compiled to wasm32 on its own and cannot depend on the main
//! crate, which brings SQLite and tokio.)

/// `[ts, open, high, low, close, volume]` of `ohlc_data.json`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OhlcRow {
    pub ts: f64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// `[ts, obi o, h, l, c, cvd o, h, l, c]` of `metrics_data.json`; the CVD
/// is `None` in the older five-column form (NaN in the flat array).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricRow {
    pub ts: f64,
    pub obi: [f64; 4],
    pub cvd: Option<[f64; 4]>,
}

impl OhlcRow {
    /// Rows from six numbers each (a trailing partial row is ignored).
    pub fn from_flat(flat: &[f64]) -> Vec<OhlcRow> {
        flat.chunks_exact(6)
            .map(|r| OhlcRow {
                ts: r[0],
                open: r[1],
                high: r[2],
                low: r[3],
                close: r[4],
                volume: r[5],
            })
            .collect()
    }
}

impl MetricRow {
    /// Rows from nine numbers each.
    pub fn from_flat(flat: &[f64]) -> Vec<MetricRow> {
        flat.chunks_exact(9)
            .map(|r| MetricRow {
                ts: r[0],
                obi: [r[1], r[2], r[3], r[4]],
                cvd: r[8].is_finite().then_some([r[5], r[6], r[7], r[8]]),
            })
            .collect()
    }

    pub fn cvd_close(&self) -> Option<f64> {
        self.cvd.map(|c| c[3])
    }
}

/// Depth levels `[price, size]` from two numbers each.
pub fn levels_from_flat(flat: &[f64]) -> Vec<[f64; 2]> {
    flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
}

/// Everything the chart draws.
#[derive(Default)]
pub struct Data {
    pub ohlc: Vec<OhlcRow>,
    pub metrics: Vec<MetricRow>,
    /// Depth levels `[price, size]`, best first.
    pub bids: Vec<[f64; 2]>,
    pub asks: Vec<[f64; 2]>,
    pub window_ms: f64,
    pub title: String,
    /// The whole run's first and last bar start, when the bars shown are
    /// only part of it (a series store); else the bars are the run.
    pub extent: Option<(f64, f64)>,
    /// A reference instrument's `(bar start, close)`, drawn over the price
    /// pane as % change, and its name.
    pub overlay: Vec<(f64, f64)>,
    pub overlay_name: String,
    /// Heatmap, footprints and volume profile.
    pub views: crate::views::Views,
}

impl Data {
    /// The run's first bar start: of the extent, else of the bars.
    pub fn first_ts(&self) -> Option<f64> {
        let a = self.ohlc.first().map(|r| r.ts);
        let b = self.metrics.first().map(|r| r.ts);
        let c = self.extent.map(|e| e.0);
        [a, b, c].into_iter().flatten().reduce(f64::min)
    }

    /// The newest bar start, of the bars or the extent.
    pub fn last_ts(&self) -> Option<f64> {
        let a = self.ohlc.last().map(|r| r.ts);
        let b = self.metrics.last().map(|r| r.ts);
        let c = self.extent.map(|e| e.1);
        [a, b, c].into_iter().flatten().reduce(f64::max)
    }

    /// The metrics row of the bar starting at `ts`.
    pub fn metric_at(&self, ts: f64) -> Option<&MetricRow> {
        let i = self.metrics.partition_point(|m| m.ts < ts);
        self.metrics.get(i).filter(|m| m.ts == ts)
    }

    /// The bar length, or a minute before it is known.
    pub fn window_or_default(&self) -> f64 {
        if self.window_ms > 0.0 {
            self.window_ms
        } else {
            60_000.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_rows_become_named_fields() {
        let o = OhlcRow::from_flat(&[1.0, 2.0, 3.0, 0.5, 2.5, 9.0, 99.0]);
        assert_eq!(o.len(), 1, "a partial row is left out");
        assert_eq!((o[0].ts, o[0].high, o[0].volume), (1.0, 3.0, 9.0));
        let m = MetricRow::from_flat(&[
            5.0,
            0.1,
            0.2,
            -0.1,
            0.0,
            1.0,
            2.0,
            0.5,
            1.5, //
            6.0,
            0.1,
            0.2,
            -0.1,
            0.0,
            f64::NAN,
            f64::NAN,
            f64::NAN,
            f64::NAN,
        ]);
        assert_eq!(m[0].cvd_close(), Some(1.5));
        assert_eq!(m[1].cvd, None);
        let d = Data {
            ohlc: o,
            metrics: m,
            ..Data::default()
        };
        assert_eq!((d.first_ts(), d.last_ts()), (Some(1.0), Some(6.0)));
        assert_eq!(d.window_or_default(), 60_000.0);
    }
}
