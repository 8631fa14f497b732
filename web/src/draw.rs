//! The panes, drawn with plotters on a `<canvas>`: candles with volume,
//! OBI candles, CVD, all on one time axis, and the cumulative depth chart.
//!
//! Owns the full redraw and the [`Layout`] it leaves behind (pixel rects
//! and value ranges) so the crosshair can map the mouse without
//! redrawing. Axis ticks and labels are drawn here rather than by
//! plotters' mesh: the mesh measures every label through a DOM element
//! (a layout flush per label), which alone would cost more than the
//! whole frame budget.

use crate::batch;
use crate::fmt;
use crate::m4::{m4, m4_line, Candle};
use crate::theme::*;
use crate::view::View;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

/// The data the chart shows, as flat rows from the files.
#[derive(Default)]
pub struct Data {
    /// `[ts, open, high, low, close, volume]`.
    pub ohlc: Vec<[f64; 6]>,
    /// `[ts, obi o,h,l,c, cvd o,h,l,c]` (CVD NaN in the 5-column format).
    pub metrics: Vec<[f64; 9]>,
    pub bids: Vec<[f64; 2]>,
    pub asks: Vec<[f64; 2]>,
    pub window_ms: f64,
    pub title: String,
}

impl Data {
    pub fn first_ts(&self) -> Option<f64> {
        let a = self.ohlc.first().map(|r| r[0]);
        let b = self.metrics.first().map(|r| r[0]);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn last_ts(&self) -> Option<f64> {
        let a = self.ohlc.last().map(|r| r[0]);
        let b = self.metrics.last().map(|r| r[0]);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PaneKind {
    Price,
    Volume,
    Obi,
    Cvd,
}

/// One pane's plotting rectangle (device px) and value range.
#[derive(Clone, Debug)]
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

/// What the last full redraw laid out, for the crosshair.
#[derive(Clone, Debug)]
pub struct Layout {
    pub x0: f64,
    pub x1: f64,
    pub left: i32,
    pub right: i32,
    pub panes: Vec<Pane>,
    pub dpr: f64,
    pub width: i32,
    pub height: i32,
    /// Candles drawn (after M4, if it applied).
    pub drawn: usize,
    /// Whether M4 merged bars into pixel columns.
    pub downsampled: bool,
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
}

type Area = DrawingArea<CanvasBackend, Shift>;
type DErr = DrawingAreaErrorKind<<CanvasBackend as DrawingBackend>::ErrorType>;

fn err(e: DErr) -> String {
    format!("drawing failed: {e:?}")
}

fn text_style(dpr: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle {
        font: (FONT, FONT_PX * dpr).into_font(),
        color: color.to_backend_color(),
        pos: Pos::new(h, v),
    }
}

/// Visible index range of rows sorted by ts: bars overlapping `[x0, x1]`.
fn visible<T>(
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

fn padded(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
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

/// Redraws the main canvas: price, volume, OBI, CVD.
pub fn draw_main(
    canvas: &HtmlCanvasElement,
    data: &Data,
    view: &View,
    dpr: f64,
) -> Result<Layout, String> {
    let backend =
        CanvasBackend::with_canvas_object(canvas.clone()).ok_or("the canvas has no 2d context")?;
    let ctx = batch::context(canvas)?;
    let root: Area = backend.into_drawing_area();
    root.fill(&BG).map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let s = |v: f64| (v * dpr).round() as i32;
    let axis_w = s(AXIS_W);
    let left = s(6.0);
    let right = (w - axis_w).max(left + 10);
    let top = s(6.0);
    let bottom = (h - s(XLABEL_H)).max(top + 40);
    let wms = if data.window_ms > 0.0 {
        data.window_ms
    } else {
        60_000.0
    };
    let (x0, x1) = view.fitted_range(data.first_ts(), data.last_ts(), wms);
    let plot_w = (right - left).max(1) as usize;
    let px_per_bar = plot_w as f64 / ((x1 - x0) / wms);

    // Visible candles, downsampled when bars outnumber pixel columns.
    let vis = visible(&data.ohlc, |r| r[0], x0, x1, wms);
    let mut candles: Vec<Candle> = data.ohlc[vis.clone()]
        .iter()
        .map(|r| Candle {
            x: r[0] + wms / 2.0,
            open: r[1],
            high: r[2],
            low: r[3],
            close: r[4],
            volume: r[5],
        })
        .collect();
    let mvis = visible(&data.metrics, |r| r[0], x0, x1, wms);
    let mrows = &data.metrics[mvis];
    let mut obi: Vec<Candle> = mrows
        .iter()
        .map(|r| Candle {
            x: r[0] + wms / 2.0,
            open: r[1],
            high: r[2],
            low: r[3],
            close: r[4],
            volume: 0.0,
        })
        .collect();
    let mut cvd: Vec<(f64, f64)> = mrows
        .iter()
        .filter(|r| r[8].is_finite())
        .map(|r| (r[0] + wms / 2.0, r[8]))
        .collect();
    let downsampled = candles.len() > plot_w || obi.len() > plot_w;
    if downsampled {
        candles = m4(&candles, x0, x1, plot_w);
        obi = m4(&obi, x0, x1, plot_w);
        cvd = m4_line(&cvd, x0, x1, plot_w);
    }
    let body_px = if downsampled {
        1.0
    } else {
        (px_per_bar * 0.72).clamp(1.0, 40.0 * dpr)
    };

    // Pane rectangles.
    let fracs = [
        (PaneKind::Price, 0.52),
        (PaneKind::Volume, 0.12),
        (PaneKind::Obi, 0.17),
        (PaneKind::Cvd, 0.19),
    ];
    let gap = s(4.0);
    let usable = f64::from(bottom - top - gap * 3);
    let mut y = top;
    let mut panes = Vec::new();
    for (i, (kind, f)) in fracs.iter().enumerate() {
        let ph = if i == fracs.len() - 1 {
            bottom - y
        } else {
            (usable * f).round() as i32
        };
        let (lo, hi) = match kind {
            PaneKind::Price => padded(
                candles.iter().map(|c| c.low).fold(f64::INFINITY, f64::min),
                candles
                    .iter()
                    .map(|c| c.high)
                    .fold(f64::NEG_INFINITY, f64::max),
                0.06,
            ),
            PaneKind::Volume => (
                0.0,
                candles
                    .iter()
                    .map(|c| c.volume)
                    .fold(0.0, f64::max)
                    .max(1e-12)
                    * 1.12,
            ),
            PaneKind::Obi => padded(
                obi.iter().map(|c| c.low).fold(f64::INFINITY, f64::min),
                obi.iter().map(|c| c.high).fold(f64::NEG_INFINITY, f64::max),
                0.08,
            ),
            PaneKind::Cvd => {
                let lo = cvd.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                let hi = cvd.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
                padded(lo, hi, 0.08)
            }
        };
        // Keep the top of each pane clear for its title (and the price
        // pane for the crosshair readout under it).
        let reserve = if *kind == PaneKind::Price { 50.0 } else { 18.0 } * dpr;
        let usable_h = (f64::from(ph) - reserve).max(f64::from(ph) * 0.5);
        let hi = hi + (hi - lo) * (f64::from(ph) - usable_h) / usable_h;
        panes.push(Pane {
            kind: *kind,
            top: y,
            bottom: y + ph,
            y0: lo,
            y1: hi,
        });
        y += ph + gap;
    }
    let layout = Layout {
        x0,
        x1,
        left,
        right,
        panes,
        dpr,
        width: w,
        height: h,
        drawn: candles.len(),
        downsampled,
    };

    let (tstep, tticks) = fmt::time_ticks(
        x0,
        x1,
        ((right - left) as f64 / (95.0 * dpr)).max(2.0) as usize,
    );
    let label = |c| text_style(dpr, c, HPos::Left, VPos::Center);
    for pane in &layout.panes {
        let area = root.clone().shrink(
            (left, pane.top),
            ((right - left) as u32, (pane.bottom - pane.top) as u32),
        );
        area.fill(&PANE_BG).map_err(err)?;
        let mut chart = ChartBuilder::on(&area)
            .build_cartesian_2d(x0..x1, pane.y0..pane.y1)
            .map_err(err)?;
        let grid = ShapeStyle::from(&GRID).stroke_width(s(1.0).max(1) as u32);
        chart
            .draw_series(
                tticks
                    .iter()
                    .map(|&t| PathElement::new(vec![(t, pane.y0), (t, pane.y1)], grid)),
            )
            .map_err(err)?;
        let (ystep, yticks) = fmt::nice_ticks(
            pane.y0,
            pane.y1,
            ((pane.bottom - pane.top) as f64 / (34.0 * dpr)).max(1.0) as usize,
        );
        chart
            .draw_series(
                yticks
                    .iter()
                    .map(|&v| PathElement::new(vec![(x0, v), (x1, v)], grid)),
            )
            .map_err(err)?;
        let dec = fmt::decimals_for(ystep);
        // Where the last-price tag will sit: tick labels under it give way,
        // as on a trading terminal, rather than show through half covered.
        let tag_py = match pane.kind {
            PaneKind::Price => candles.last().map(|c| pane.y_of(c.close).round() as i32),
            _ => None,
        };
        let under_tag =
            |py: i32| tag_py.is_some_and(|t| (py - t).abs() < s((TAG_H + FONT_PX) / 2.0));
        for &v in &yticks {
            let py = pane.y_of(v).round() as i32;
            if py < pane.top + s(6.0) || py > pane.bottom - s(6.0) || under_tag(py) {
                continue;
            }
            let text = match pane.kind {
                PaneKind::Price | PaneKind::Obi => format!("{v:.dec$}"),
                PaneKind::Volume | PaneKind::Cvd => fmt::compact(v),
            };
            root.draw(&Text::new(text, (right + s(8.0), py), label(TEXT)))
                .map_err(err)?;
        }

        let pane_title: String;
        match pane.kind {
            PaneKind::Price => {
                batch::candles(&ctx, &layout, pane, &candles, body_px, UP, DOWN)?;
                pane_title = data.title.clone();
                if let Some(last) = candles.last() {
                    let color = if last.close >= last.open { UP } else { DOWN };
                    tag(
                        &root,
                        &layout,
                        pane,
                        last.close,
                        &format!("{:.*}", fmt::decimals_for(ystep) + 1, last.close),
                        color,
                        dpr,
                    )?;
                }
            }
            PaneKind::Volume => {
                batch::volume(&ctx, &layout, pane, &candles, body_px)?;
                pane_title = match candles.last() {
                    Some(c) => format!("Volume {}", fmt::compact(c.volume)),
                    None => "Volume".into(),
                };
            }
            PaneKind::Obi => {
                if pane.y0 < 0.0 && pane.y1 > 0.0 {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(x0, 0.0), (x1, 0.0)],
                            AXIS.stroke_width(s(1.0) as u32),
                        )))
                        .map_err(err)?;
                }
                batch::candles(&ctx, &layout, pane, &obi, body_px, OBI_UP, OBI_DOWN)?;
                pane_title = match obi.last() {
                    Some(c) => format!("OBI {:.4}", c.close),
                    None => "OBI".into(),
                };
            }
            PaneKind::Cvd => {
                let base = 0f64.clamp(pane.y0, pane.y1);
                chart
                    .draw_series(
                        AreaSeries::new(cvd.iter().copied(), base, CVD.mix(0.12))
                            .border_style(CVD.stroke_width(s(1.5).max(1) as u32)),
                    )
                    .map_err(err)?;
                pane_title = match cvd.last() {
                    Some(p) => format!("CVD {}", fmt::compact(p.1)),
                    None => "CVD".into(),
                };
            }
        }
        // A backing plate so the title stays readable over the bars.
        let title_w = (pane_title.chars().count() as f64 * FONT_PX * 0.62 * dpr).round() as i32;
        root.draw(&Rectangle::new(
            [
                (left + s(4.0), pane.top + s(2.0)),
                (left + s(12.0) + title_w, pane.top + s(18.0)),
            ],
            PANE_BG.mix(0.85).filled(),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            pane_title,
            (left + s(8.0), pane.top + s(10.0)),
            text_style(dpr, TITLE, HPos::Left, VPos::Center),
        ))
        .map_err(err)?;
    }
    // Time labels under the last pane.
    let tl = text_style(dpr, TEXT, HPos::Center, VPos::Top);
    for &t in &tticks {
        let px = layout.px_of(t).round() as i32;
        if px < left + s(20.0) || px > right - s(20.0) {
            continue;
        }
        root.draw(&Text::new(
            fmt::time_tick(t, tstep),
            (px, bottom + s(5.0)),
            tl.clone(),
        ))
        .map_err(err)?;
    }
    root.draw(&Text::new(
        "UTC",
        (right + s(8.0), bottom + s(5.0)),
        text_style(dpr, TEXT, HPos::Left, VPos::Top),
    ))
    .map_err(err)?;
    if data.ohlc.is_empty() && data.metrics.is_empty() {
        root.draw(&Text::new(
            "waiting for data…",
            ((left + right) / 2, (top + bottom) / 2),
            TextStyle::from((FONT, 16.0 * dpr).into_font())
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(layout)
}

/// A value tag on the right axis.
fn tag(
    root: &Area,
    layout: &Layout,
    pane: &Pane,
    v: f64,
    text: &str,
    color: RGBColor,
    dpr: f64,
) -> Result<(), String> {
    let py = pane.y_of(v).round() as i32;
    if py < pane.top || py > pane.bottom {
        return Ok(());
    }
    let h = (TAG_H * dpr).round() as i32;
    let x = layout.right + 1;
    root.draw(&Rectangle::new(
        [(x, py - h / 2), (layout.width, py + h / 2)],
        color.filled(),
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        text.to_string(),
        (x + (6.0 * dpr) as i32, py),
        text_style(dpr, RGBColor(255, 255, 255), HPos::Left, VPos::Center),
    ))
    .map_err(err)
}

/// Redraws the depth canvas: cumulative bids (green) and asks (red).
pub fn draw_depth(canvas: &HtmlCanvasElement, data: &Data, dpr: f64) -> Result<(), String> {
    let backend =
        CanvasBackend::with_canvas_object(canvas.clone()).ok_or("the canvas has no 2d context")?;
    let root: Area = backend.into_drawing_area();
    root.fill(&BG).map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let s = |v: f64| (v * dpr).round() as i32;
    let (left, right, top, bottom) = (
        s(6.0),
        (w - s(64.0)).max(s(20.0)),
        s(28.0),
        (h - s(XLABEL_H)).max(s(60.0)),
    );
    let area = root.clone().shrink(
        (left, top),
        ((right - left).max(1) as u32, (bottom - top).max(1) as u32),
    );
    area.fill(&PANE_BG).map_err(err)?;
    let title = text_style(dpr, TITLE, HPos::Left, VPos::Center);
    let cum = |levels: &[[f64; 2]]| {
        let mut total = 0.0;
        let mut pts = Vec::with_capacity(levels.len() * 2);
        for (i, l) in levels.iter().enumerate() {
            if i > 0 {
                pts.push((l[0], total));
            }
            total += l[1];
            pts.push((l[0], total));
        }
        (pts, total)
    };
    let (bid_pts, bid_total) = cum(&data.bids);
    let (ask_pts, ask_total) = cum(&data.asks);
    if bid_pts.is_empty() && ask_pts.is_empty() {
        root.draw(&Text::new("Depth", (left + s(2.0), s(14.0)), title))
            .map_err(err)?;
        root.present().map_err(err)?;
        return Ok(());
    }
    let lo = data
        .bids
        .last()
        .map_or_else(|| data.asks.first().map_or(0.0, |a| a[0]), |b| b[0]);
    let hi = data
        .asks
        .last()
        .map_or_else(|| data.bids.first().map_or(1.0, |b| b[0]), |a| a[0]);
    let (x0, x1) = padded(lo, hi, 0.02);
    let y1 = bid_total.max(ask_total).max(1e-12) * 1.08;
    let mut chart = ChartBuilder::on(&area)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(err)?;
    let grid = ShapeStyle::from(&GRID).stroke_width(s(1.0).max(1) as u32);
    let (xstep, xticks) = fmt::nice_ticks(
        x0,
        x1,
        ((right - left) as f64 / (55.0 * dpr)).max(3.0) as usize,
    );
    let (_, yticks) = fmt::nice_ticks(
        0.0,
        y1,
        ((bottom - top) as f64 / (40.0 * dpr)).max(2.0) as usize,
    );
    chart
        .draw_series(
            xticks
                .iter()
                .map(|&t| PathElement::new(vec![(t, 0.0), (t, y1)], grid)),
        )
        .map_err(err)?;
    chart
        .draw_series(
            yticks
                .iter()
                .map(|&v| PathElement::new(vec![(x0, v), (x1, v)], grid)),
        )
        .map_err(err)?;
    let line_w = s(1.5).max(1) as u32;
    chart
        .draw_series(
            AreaSeries::new(bid_pts.iter().copied(), 0.0, BID.mix(0.25))
                .border_style(BID.stroke_width(line_w)),
        )
        .map_err(err)?;
    chart
        .draw_series(
            AreaSeries::new(ask_pts.iter().copied(), 0.0, ASK.mix(0.25))
                .border_style(ASK.stroke_width(line_w)),
        )
        .map_err(err)?;
    let map_x = |x: f64| left + ((x - x0) / (x1 - x0) * f64::from(right - left)).round() as i32;
    let map_y = |v: f64| bottom - (v / y1 * f64::from(bottom - top)).round() as i32;
    let dec = fmt::decimals_for(xstep);
    for &t in &xticks {
        let px = map_x(t);
        if px > left + s(24.0) && px < right - s(24.0) {
            root.draw(&Text::new(
                format!("{t:.dec$}"),
                (px, bottom + s(5.0)),
                text_style(dpr, TEXT, HPos::Center, VPos::Top),
            ))
            .map_err(err)?;
        }
    }
    for &v in &yticks {
        let py = map_y(v);
        if py > top + s(6.0) && py < bottom - s(4.0) {
            root.draw(&Text::new(
                fmt::compact(v),
                (right + s(8.0), py),
                text_style(dpr, TEXT, HPos::Left, VPos::Center),
            ))
            .map_err(err)?;
        }
    }
    let head = match (data.bids.first(), data.asks.first()) {
        (Some(b), Some(a)) => {
            let pd = (dec + 1).clamp(2, 8);
            format!(
                "Depth  mid {:.pd$}  spread {:.pd$}",
                (a[0] + b[0]) / 2.0,
                a[0] - b[0]
            )
        }
        _ => "Depth".into(),
    };
    root.draw(&Text::new(head, (left + s(2.0), s(14.0)), title))
        .map_err(err)?;
    let legend = |c, t: &str, x| {
        Text::new(
            t.to_string(),
            (x, top + s(12.0)),
            text_style(dpr, c, HPos::Left, VPos::Center),
        )
    };
    root.draw(&legend(
        BID,
        &format!("bids {}", fmt::compact(bid_total)),
        left + s(8.0),
    ))
    .map_err(err)?;
    root.draw(&legend(
        ASK,
        &format!("asks {}", fmt::compact(ask_total)),
        (left + right) / 2 + s(8.0),
    ))
    .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
