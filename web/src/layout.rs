//! Where everything goes, computed before anything is drawn: the visible
//! bars (downsampled with M4 when they outnumber pixel columns), each
//! pane's rectangle and value range, the plot's time range. Pure: no
//! canvas, no browser, unit-tested on the host. The drawing ([`crate::draw`])
//! and the crosshair map through the [`Layout`] this leaves.

use crate::data::Data;
use crate::m4::{m4, m4_line, Candle};

/// The panes of the main canvas, top to bottom.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PaneKind {
    Price,
    Volume,
    Obi,
    Cvd,
}

/// Each pane's share of the height.
pub const PANES: [(PaneKind, f64); 4] = [
    (PaneKind::Price, 0.52),
    (PaneKind::Volume, 0.12),
    (PaneKind::Obi, 0.17),
    (PaneKind::Cvd, 0.19),
];

/// One pane's plotting rectangle (device px) and value range.
#[derive(Clone, Debug, PartialEq)]
pub struct Pane {
    pub kind: PaneKind,
    pub top: i32,
    pub bottom: i32,
    pub y0: f64,
    pub y1: f64,
}

impl Pane {
    pub fn value_at(&self, py: f64) -> f64 {
        self.y1
            - (py - self.top as f64) / f64::from(self.bottom - self.top).max(1.0)
                * (self.y1 - self.y0)
    }
    pub fn y_of(&self, v: f64) -> f64 {
        self.bottom as f64 - (v - self.y0) / (self.y1 - self.y0) * f64::from(self.bottom - self.top)
    }
}

/// What the last full redraw laid out, for drawing and the crosshair.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub x0: f64,
    pub x1: f64,
    pub left: i32,
    pub right: i32,
    /// Top of the first pane and bottom of the last (the time axis is below).
    pub top: i32,
    pub bottom: i32,
    pub panes: Vec<Pane>,
    pub dpr: f64,
    pub width: i32,
    pub height: i32,
    /// Candles drawn (after M4, if it applied).
    pub drawn: usize,
    /// Whether M4 merged bars into pixel columns.
    pub downsampled: bool,
    /// What the orderflow views drew.
    pub views: ViewsShown,
}

/// What the orderflow views drew in a redraw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ViewsShown {
    pub heat_columns: usize,
    pub footprints: usize,
    /// The footprint rows' price step.
    pub foot_step: f64,
    pub profile_rows: usize,
    /// The profile rows' price step.
    pub profile_step: f64,
    /// The volume profile's point of control (its row's price).
    pub poc: Option<f64>,
}

impl Layout {
    pub fn px_of(&self, x: f64) -> f64 {
        self.left as f64 + (x - self.x0) / (self.x1 - self.x0) * f64::from(self.right - self.left)
    }
    pub fn x_at(&self, px: f64) -> f64 {
        self.x0
            + (px - self.left as f64) / f64::from(self.right - self.left).max(1.0)
                * (self.x1 - self.x0)
    }
    /// Device px for `css` CSS px.
    pub fn s(&self, css: f64) -> i32 {
        (css * self.dpr).round() as i32
    }
}

/// The bars in view, as drawn: candles (x at the bar's centre), OBI
/// candles and the CVD line, after M4.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Visible {
    pub candles: Vec<Candle>,
    pub obi: Vec<Candle>,
    pub cvd: Vec<(f64, f64)>,
    /// The overlay's % change from its first visible close, and the range
    /// of its own scale.
    pub overlay: Vec<(f64, f64)>,
    pub overlay_range: (f64, f64),
    pub downsampled: bool,
    /// Candle body width, device px.
    pub body_px: f64,
}

/// Index range of rows sorted by ts whose bars overlap `[x0, x1]`.
pub fn visible_range<T>(
    rows: &[T],
    ts: impl Fn(&T) -> f64,
    x0: f64,
    x1: f64,
    w: f64,
) -> std::ops::Range<usize> {
    let a = rows.partition_point(|r| ts(r) + w < x0);
    let b = rows.partition_point(|r| ts(r) <= x1);
    a..b.max(a)
}

/// `[lo, hi]` widened by `pad` of its span (a flat range gets some room).
pub fn padded(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= 0.0 {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.001 };
        return (lo - d, hi + d);
    }
    (lo - span * pad, hi + span * pad)
}

/// The bars of `data` in `[x0, x1]` on a plot `plot_w` device px wide.
pub fn visible(data: &Data, x0: f64, x1: f64, plot_w: usize, dpr: f64) -> Visible {
    let wms = data.window_or_default();
    let half = wms / 2.0;
    let ohlc = &data.ohlc[visible_range(&data.ohlc, |r| r.ts, x0, x1, wms)];
    let metrics = &data.metrics[visible_range(&data.metrics, |r| r.ts, x0, x1, wms)];
    let mut candles: Vec<Candle> = ohlc
        .iter()
        .map(|r| Candle {
            x: r.ts + half,
            open: r.open,
            high: r.high,
            low: r.low,
            close: r.close,
            volume: r.volume,
        })
        .collect();
    let mut obi: Vec<Candle> = metrics
        .iter()
        .map(|r| Candle {
            x: r.ts + half,
            open: r.obi[0],
            high: r.obi[1],
            low: r.obi[2],
            close: r.obi[3],
            volume: 0.0,
        })
        .collect();
    let mut cvd: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|r| r.cvd_close().map(|c| (r.ts + half, c)))
        .collect();
    let over = &data.overlay[visible_range(&data.overlay, |p| p.0, x0, x1, wms)];
    let base = over.first().map_or(1.0, |p| p.1);
    let mut overlay: Vec<(f64, f64)> = over
        .iter()
        .map(|&(ts, c)| (ts + half, (c / base - 1.0) * 100.0))
        .collect();
    let overlay_range = {
        let (lo, hi) = overlay
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.1), hi.max(p.1))
            });
        padded(lo, hi, 0.06)
    };
    let downsampled = candles.len() > plot_w || obi.len() > plot_w;
    if downsampled {
        candles = m4(&candles, x0, x1, plot_w);
        obi = m4(&obi, x0, x1, plot_w);
        cvd = m4_line(&cvd, x0, x1, plot_w);
    }
    if overlay.len() > plot_w {
        overlay = m4_line(&overlay, x0, x1, plot_w);
    }
    let px_per_bar = plot_w as f64 / ((x1 - x0) / wms);
    let body_px = if downsampled {
        1.0
    } else {
        (px_per_bar * 0.72).clamp(1.0, 40.0 * dpr)
    };
    Visible {
        candles,
        obi,
        cvd,
        overlay,
        overlay_range,
        downsampled,
        body_px,
    }
}

/// The value range each pane needs for `v`, before room for its title.
pub fn value_range(kind: PaneKind, v: &Visible) -> (f64, f64) {
    let lo_hi = |it: &mut dyn Iterator<Item = (f64, f64)>| {
        it.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (l, h)| {
            (lo.min(l), hi.max(h))
        })
    };
    match kind {
        PaneKind::Price => {
            let (lo, hi) = lo_hi(&mut v.candles.iter().map(|c| (c.low, c.high)));
            padded(lo, hi, 0.06)
        }
        PaneKind::Volume => (
            0.0,
            v.candles
                .iter()
                .map(|c| c.volume)
                .fold(0.0, f64::max)
                .max(1e-12)
                * 1.12,
        ),
        PaneKind::Obi => {
            let (lo, hi) = lo_hi(&mut v.obi.iter().map(|c| (c.low, c.high)));
            padded(lo, hi, 0.08)
        }
        PaneKind::Cvd => {
            let (lo, hi) = lo_hi(&mut v.cvd.iter().map(|p| (p.1, p.1)));
            padded(lo, hi, 0.08)
        }
    }
}

/// Margins, CSS px.
const AXIS_W: f64 = crate::theme::AXIS_W;
const XLABEL_H: f64 = crate::theme::XLABEL_H;

/// The layout of a `width` × `height` device-px canvas showing `[x0, x1]`,
/// each pane with its value range from `range` (room added at the top for
/// its title, and for the readout in the price pane).
pub fn layout(
    width: i32,
    height: i32,
    dpr: f64,
    (x0, x1): (f64, f64),
    range: impl Fn(PaneKind) -> (f64, f64),
) -> Layout {
    let s = |v: f64| (v * dpr).round() as i32;
    let left = s(6.0);
    let right = (width - s(AXIS_W)).max(left + 10);
    let top = s(6.0);
    let bottom = (height - s(XLABEL_H)).max(top + 40);
    let gap = s(4.0);
    let usable = f64::from(bottom - top - gap * (PANES.len() as i32 - 1));
    let mut y = top;
    let mut panes = Vec::with_capacity(PANES.len());
    for (i, &(kind, share)) in PANES.iter().enumerate() {
        let ph = if i == PANES.len() - 1 {
            bottom - y
        } else {
            (usable * share).round() as i32
        };
        let (lo, hi) = range(kind);
        let reserve = if kind == PaneKind::Price { 50.0 } else { 18.0 } * dpr;
        let usable_h = (f64::from(ph) - reserve).max(f64::from(ph) * 0.5);
        let hi = hi + (hi - lo) * (f64::from(ph) - usable_h) / usable_h;
        panes.push(Pane {
            kind,
            top: y,
            bottom: y + ph,
            y0: lo,
            y1: hi,
        });
        y += ph + gap;
    }
    Layout {
        x0,
        x1,
        left,
        right,
        top,
        bottom,
        panes,
        dpr,
        width,
        height,
        drawn: 0,
        downsampled: false,
        views: ViewsShown::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::OhlcRow;

    fn data(n: usize) -> Data {
        Data {
            ohlc: (0..n)
                .map(|i| OhlcRow {
                    ts: i as f64 * 1000.0,
                    open: 10.0,
                    high: 12.0 + (i % 3) as f64,
                    low: 9.0,
                    close: 11.0,
                    volume: i as f64,
                })
                .collect(),
            window_ms: 1000.0,
            ..Data::default()
        }
    }

    #[test]
    fn panes_stack_top_to_bottom_with_gaps_and_fill_the_plot() {
        let l = layout(1600, 900, 2.0, (0.0, 10.0), |_| (0.0, 10.0));
        assert_eq!(l.panes.len(), 4);
        assert_eq!(l.panes[0].top, l.top);
        assert_eq!(l.panes[3].bottom, l.bottom);
        for w in l.panes.windows(2) {
            assert_eq!(w[1].top - w[0].bottom, 8, "4 CSS px at dpr 2");
        }
        assert!(l.panes[0].bottom - l.panes[0].top > l.panes[1].bottom - l.panes[1].top);
        // Room above the data for the titles: the range grows upwards only.
        assert!(l.panes.iter().all(|p| p.y0 == 0.0 && p.y1 > 10.0));
        let p = &l.panes[0];
        assert!((p.value_at(p.y_of(3.5)) - 3.5).abs() < 1e-9);
        assert!((l.x_at(l.px_of(7.25)) - 7.25).abs() < 1e-9);
    }

    #[test]
    fn bars_in_view_are_downsampled_only_when_they_outnumber_columns() {
        let d = data(1000);
        let all = visible(&d, 0.0, 1_000_000.0, 2000, 1.0);
        assert!(!all.downsampled);
        assert_eq!(all.candles.len(), 1000);
        let few = visible(&d, 0.0, 1_000_000.0, 100, 1.0);
        assert!(few.downsampled);
        assert!(few.candles.len() <= 100 * 4);
        assert_eq!(few.body_px, 1.0);
        // Only bars overlapping the range.
        let part = visible(&d, 10_500.0, 20_000.0, 2000, 1.0);
        assert_eq!(part.candles.first().map(|c| c.x), Some(10_500.0));
        assert_eq!(part.candles.len(), 11);
        let (lo, hi) = value_range(PaneKind::Price, &all);
        assert!(lo < 9.0 && hi > 14.0);
        assert_eq!(value_range(PaneKind::Volume, &all).0, 0.0);
        assert_eq!(padded(f64::NAN, 1.0, 0.1), (0.0, 1.0));
        assert_eq!(padded(5.0, 5.0, 0.1), (4.995, 5.005));
    }
}
