//! The panes, drawn with plotters on a `<canvas>`: candles with volume,
//! OBI candles, CVD, all on one time axis, and the cumulative depth chart.
//!
//! Where things go is [`crate::layout`]'s (pure, tested on the host); this
//! module only draws. Each pane's content is a [`Plot`]: its value range,
//! its drawing and its title, so a new pane or view is one more `Plot`
//! and the frame around it (grid, axis labels, title plate, time axis)
//! stays the same. Axis ticks and labels are drawn here rather than by
//! plotters' mesh: the mesh measures every label through a DOM element
//! (a layout flush per label), which alone would cost more than the
//! whole frame budget.

use crate::batch;
use crate::data::Data;
use crate::fmt;
use crate::layout::{self, padded, Layout, Pane, PaneKind, Visible};
use crate::theme::*;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_canvas::CanvasBackend;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

type Area = DrawingArea<CanvasBackend, Shift>;
type DErr = DrawingAreaErrorKind<<CanvasBackend as DrawingBackend>::ErrorType>;
type Cartesian<'a> = ChartContext<'a, CanvasBackend, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

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

/// What a pane draws on: the plotters root, the raw 2d context (for the
/// batched candles) and the layout.
pub struct Canvas<'a> {
    root: &'a Area,
    ctx: &'a CanvasRenderingContext2d,
    layout: &'a Layout,
}

impl Canvas<'_> {
    /// Value coordinates over `pane`'s rectangle.
    fn chart(&self, pane: &Pane) -> Result<Cartesian<'static>, String> {
        let l = self.layout;
        let area = self.root.clone().shrink(
            (l.left, pane.top),
            ((l.right - l.left) as u32, (pane.bottom - pane.top) as u32),
        );
        ChartBuilder::on(&area)
            .build_cartesian_2d(l.x0..l.x1, pane.y0..pane.y1)
            .map_err(err)
    }
}

/// One pane's content.
pub trait Plot {
    fn kind(&self) -> PaneKind;
    /// The values it needs to show.
    fn range(&self) -> (f64, f64);
    fn draw(&self, c: &Canvas, pane: &Pane) -> Result<(), String>;
    /// The title drawn at its top left.
    fn title(&self) -> String;
    /// A value to tag on the axis (the last price), with its text for
    /// ticks `ystep` apart and its colour.
    fn tag(&self, _ystep: f64) -> Option<(f64, String, RGBColor)> {
        None
    }
}

struct PricePlot<'a> {
    v: &'a Visible,
    data: &'a Data,
    /// What the views drew (for the layout's counts).
    shown: std::cell::Cell<layout::ViewsShown>,
}

/// Footprint cells narrower or shorter than this (CSS px) are not drawn.
const FOOT_MIN_W: f64 = 44.0;
const FOOT_MIN_H: f64 = 11.0;
/// A footprint row is an imbalance when one side is this many times the other.
const IMBALANCE: f64 = 3.0;

impl PricePlot<'_> {
    /// The heatmap columns in view, at most one per two pixel columns.
    fn heat_columns(&self, l: &Layout) -> Vec<crate::views::HeatColumn> {
        let views = &self.data.views;
        let w = views.window_ms;
        let cols: Vec<&crate::views::HeatColumn> = views
            .heat
            .iter()
            .filter(|c| c.ts + w > l.x0 && c.ts < l.x1)
            .collect();
        let room = ((l.right - l.left) as usize / 2).max(1);
        let every = cols.len().div_ceil(room).max(1);
        cols.into_iter().step_by(every).cloned().collect()
    }

    /// The footprints to draw inside the candles, when zoomed in far enough.
    fn footprints(&self, l: &Layout, pane: &Pane) -> Option<(Vec<crate::views::Footprint>, f64)> {
        let (views, k) = (&self.data.views, self.data.window_ms);
        let step = self.row_step(pane, FOOT_MIN_H * l.dpr);
        let whole = views.window_ms > 0.0 && (k / views.window_ms).fract() == 0.0;
        let cell_w = l.px_of(l.x0 + k) - l.px_of(l.x0);
        // Rows of many ticks over a few candles' range are not a footprint.
        let rows = (pane.y1 - pane.y0) / step;
        let on =
            views.show_foot && step > 0.0 && whole && cell_w >= FOOT_MIN_W * l.dpr && rows >= 4.0;
        on.then(|| {
            (
                crate::views::merged_footprints(&views.foot, k, step, l.x0, l.x1),
                step,
            )
        })
    }
}

impl PricePlot<'_> {
    /// The price step of footprint or profile rows: the chosen grouping,
    /// grown until a row is `min_px` tall.
    fn row_step(&self, pane: &Pane, min_px: f64) -> f64 {
        let v = &self.data.views;
        let tick_px = (pane.y_of(pane.y0) - pane.y_of(pane.y0 + v.tick)).abs();
        v.tick * crate::views::row_ticks(v.group, tick_px, min_px)
    }
}

impl Plot for PricePlot<'_> {
    fn kind(&self) -> PaneKind {
        PaneKind::Price
    }
    fn range(&self) -> (f64, f64) {
        layout::value_range(PaneKind::Price, self.v)
    }
    fn draw(&self, c: &Canvas, pane: &Pane) -> Result<(), String> {
        let (l, views) = (c.layout, &self.data.views);
        let mut shown = layout::ViewsShown::default();
        if views.show_heat {
            let cols = self.heat_columns(l);
            let max =
                crate::views::heat_max(&cols, f64::NEG_INFINITY, f64::INFINITY, pane.y0, pane.y1);
            batch::heatmap(
                c.ctx,
                l,
                pane,
                &cols,
                views.window_ms,
                views.tick.max(1e-12),
                max,
            )?;
            shown.heat_columns = cols.len();
        }
        let foot = self.footprints(l, pane);
        if foot.is_some() {
            // The candle becomes a thin bar at the cell's left edge.
            let shift = self.data.window_ms * 0.44;
            let thin: Vec<_> = self
                .v
                .candles
                .iter()
                .map(|k| crate::m4::Candle {
                    x: k.x - shift,
                    ..*k
                })
                .collect();
            batch::candles(c.ctx, l, pane, &thin, 3.0 * l.dpr, UP, DOWN)?;
        } else {
            batch::candles(c.ctx, l, pane, &self.v.candles, self.v.body_px, UP, DOWN)?;
        }
        if let Some((f, step)) = &foot {
            batch::footprints(c.ctx, l, pane, f, self.data.window_ms, *step, IMBALANCE)?;
            shown.footprints = f.len();
            shown.foot_step = *step;
        }
        if views.show_profile && views.tick > 0.0 {
            let step = self.row_step(pane, 3.0 * l.dpr);
            let (rows, poc) = crate::views::profile(&views.foot, step, l.x0, l.x1);
            batch::profile(c.ctx, l, pane, &rows, poc, step)?;
            shown.profile_rows = rows.len();
            shown.profile_step = step;
            shown.poc = poc.and_then(|i| rows.get(i)).map(|r| r[0]);
        }
        self.shown.set(shown);
        batch::overlay(
            c.ctx,
            l,
            pane,
            &self.v.overlay,
            self.v.overlay_range,
            &self.data.overlay_name,
        )
    }
    fn title(&self) -> String {
        self.data.title.clone()
    }
    fn tag(&self, ystep: f64) -> Option<(f64, String, RGBColor)> {
        let last = self.v.candles.last()?;
        let color = if last.close >= last.open { UP } else { DOWN };
        let text = format!("{:.*}", fmt::decimals_for(ystep) + 1, last.close);
        Some((last.close, text, color))
    }
}

struct VolumePlot<'a>(&'a Visible);

impl Plot for VolumePlot<'_> {
    fn kind(&self) -> PaneKind {
        PaneKind::Volume
    }
    fn range(&self) -> (f64, f64) {
        layout::value_range(PaneKind::Volume, self.0)
    }
    fn draw(&self, c: &Canvas, pane: &Pane) -> Result<(), String> {
        batch::volume(c.ctx, c.layout, pane, &self.0.candles, self.0.body_px)
    }
    fn title(&self) -> String {
        match self.0.candles.last() {
            Some(c) => format!("Volume {}", fmt::compact(c.volume)),
            None => "Volume".into(),
        }
    }
}

struct ObiPlot<'a>(&'a Visible);

impl Plot for ObiPlot<'_> {
    fn kind(&self) -> PaneKind {
        PaneKind::Obi
    }
    fn range(&self) -> (f64, f64) {
        layout::value_range(PaneKind::Obi, self.0)
    }
    fn draw(&self, c: &Canvas, pane: &Pane) -> Result<(), String> {
        if pane.y0 < 0.0 && pane.y1 > 0.0 {
            let l = c.layout;
            c.chart(pane)?
                .draw_series(std::iter::once(PathElement::new(
                    vec![(l.x0, 0.0), (l.x1, 0.0)],
                    AXIS.stroke_width(l.s(1.0) as u32),
                )))
                .map_err(err)?;
        }
        batch::candles(
            c.ctx,
            c.layout,
            pane,
            &self.0.obi,
            self.0.body_px,
            OBI_UP,
            OBI_DOWN,
        )
    }
    fn title(&self) -> String {
        match self.0.obi.last() {
            Some(c) => format!("OBI {:.4}", c.close),
            None => "OBI".into(),
        }
    }
}

struct CvdPlot<'a>(&'a Visible);

impl Plot for CvdPlot<'_> {
    fn kind(&self) -> PaneKind {
        PaneKind::Cvd
    }
    fn range(&self) -> (f64, f64) {
        layout::value_range(PaneKind::Cvd, self.0)
    }
    fn draw(&self, c: &Canvas, pane: &Pane) -> Result<(), String> {
        let base = 0f64.clamp(pane.y0, pane.y1);
        let line = CVD.stroke_width(c.layout.s(1.5).max(1) as u32);
        c.chart(pane)?
            .draw_series(
                AreaSeries::new(self.0.cvd.iter().copied(), base, CVD.mix(0.12)).border_style(line),
            )
            .map_err(err)?;
        Ok(())
    }
    fn title(&self) -> String {
        match self.0.cvd.last() {
            Some(p) => format!("CVD {}", fmt::compact(p.1)),
            None => "CVD".into(),
        }
    }
}

/// Redraws the main canvas showing `xs` (ms): price, volume, OBI, CVD.
pub fn draw_main(
    canvas: &HtmlCanvasElement,
    data: &Data,
    xs: (f64, f64),
    dpr: f64,
) -> Result<Layout, String> {
    let backend =
        CanvasBackend::with_canvas_object(canvas.clone()).ok_or("the canvas has no 2d context")?;
    let ctx = batch::context(canvas)?;
    let root: Area = backend.into_drawing_area();
    root.fill(&BG).map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let frame = layout::layout(w, h, dpr, xs, |_| (0.0, 1.0));
    let plot_w = (frame.right - frame.left).max(1) as usize;
    let v = layout::visible(data, xs.0, xs.1, plot_w, dpr);
    let price = PricePlot {
        v: &v,
        data,
        shown: std::cell::Cell::new(layout::ViewsShown::default()),
    };
    let plots: [&dyn Plot; 4] = [&price, &VolumePlot(&v), &ObiPlot(&v), &CvdPlot(&v)];
    let mut l = layout::layout(w, h, dpr, xs, |kind| {
        plots
            .iter()
            .find(|p| p.kind() == kind)
            .map_or((0.0, 1.0), |p| p.range())
    });
    l.drawn = v.candles.len();
    l.downsampled = v.downsampled;
    let c = Canvas {
        root: &root,
        ctx: &ctx,
        layout: &l,
    };
    let (tstep, tticks) = fmt::time_ticks(
        l.x0,
        l.x1,
        ((l.right - l.left) as f64 / (95.0 * dpr)).max(2.0) as usize,
    );
    for (pane, plot) in l.panes.iter().zip(plots) {
        let ystep = pane_frame(&c, pane, plot, &tticks)?;
        plot.draw(&c, pane)?;
        if let Some((value, text, color)) = plot.tag(ystep) {
            tag(&root, &l, pane, value, &text, color, dpr)?;
        }
        title(&c, pane, plot.title())?;
    }
    time_axis(&c, tstep, &tticks)?;
    l.views = price.shown.get();
    if data.ohlc.is_empty() && data.metrics.is_empty() {
        root.draw(&Text::new(
            "waiting for data…",
            ((l.left + l.right) / 2, (l.top + l.bottom) / 2),
            TextStyle::from((FONT, 16.0 * dpr).into_font())
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(l)
}

/// A pane's background, its time and value grid lines, and its value
/// labels on the axis (leaving room for the plot's tag). Returns the value
/// tick step.
fn pane_frame(c: &Canvas, pane: &Pane, plot: &dyn Plot, tticks: &[f64]) -> Result<f64, String> {
    let l = c.layout;
    let area = c.root.clone().shrink(
        (l.left, pane.top),
        ((l.right - l.left) as u32, (pane.bottom - pane.top) as u32),
    );
    area.fill(&PANE_BG).map_err(err)?;
    let mut chart = c.chart(pane)?;
    let grid = ShapeStyle::from(&GRID).stroke_width(l.s(1.0).max(1) as u32);
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
        ((pane.bottom - pane.top) as f64 / (34.0 * l.dpr)).max(1.0) as usize,
    );
    chart
        .draw_series(
            yticks
                .iter()
                .map(|&v| PathElement::new(vec![(l.x0, v), (l.x1, v)], grid)),
        )
        .map_err(err)?;
    let dec = fmt::decimals_for(ystep);
    // Tick labels under the tag give way, as on a trading terminal,
    // rather than show through half covered.
    let tag_py = plot.tag(ystep).map(|(v, _, _)| pane.y_of(v).round() as i32);
    let under_tag = |py: i32| tag_py.is_some_and(|t| (py - t).abs() < l.s((TAG_H + FONT_PX) / 2.0));
    let label = text_style(l.dpr, TEXT, HPos::Left, VPos::Center);
    for &v in &yticks {
        let py = pane.y_of(v).round() as i32;
        if py < pane.top + l.s(6.0) || py > pane.bottom - l.s(6.0) || under_tag(py) {
            continue;
        }
        let text = match pane.kind {
            PaneKind::Price | PaneKind::Obi => format!("{v:.dec$}"),
            PaneKind::Volume | PaneKind::Cvd => fmt::compact(v),
        };
        c.root
            .draw(&Text::new(text, (l.right + l.s(8.0), py), label.clone()))
            .map_err(err)?;
    }
    Ok(ystep)
}

/// A pane's title on a backing plate, so it stays readable over the bars.
fn title(c: &Canvas, pane: &Pane, text: String) -> Result<(), String> {
    let l = c.layout;
    let title_w = (text.chars().count() as f64 * FONT_PX * 0.62 * l.dpr).round() as i32;
    c.root
        .draw(&Rectangle::new(
            [
                (l.left + l.s(4.0), pane.top + l.s(2.0)),
                (l.left + l.s(12.0) + title_w, pane.top + l.s(18.0)),
            ],
            PANE_BG.mix(0.85).filled(),
        ))
        .map_err(err)?;
    c.root
        .draw(&Text::new(
            text,
            (l.left + l.s(8.0), pane.top + l.s(10.0)),
            text_style(l.dpr, TITLE, HPos::Left, VPos::Center),
        ))
        .map_err(err)
}

/// Time labels under the last pane, and the time zone.
fn time_axis(c: &Canvas, tstep: f64, tticks: &[f64]) -> Result<(), String> {
    let l = c.layout;
    let style = text_style(l.dpr, TEXT, HPos::Center, VPos::Top);
    for &t in tticks {
        let px = l.px_of(t).round() as i32;
        if px < l.left + l.s(20.0) || px > l.right - l.s(20.0) {
            continue;
        }
        c.root
            .draw(&Text::new(
                fmt::time_tick(t, tstep),
                (px, l.bottom + l.s(5.0)),
                style.clone(),
            ))
            .map_err(err)?;
    }
    c.root
        .draw(&Text::new(
            "UTC",
            (l.right + l.s(8.0), l.bottom + l.s(5.0)),
            text_style(l.dpr, TEXT, HPos::Left, VPos::Top),
        ))
        .map_err(err)
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

/// Redraws the history strip: the whole run `run` with `view` marked.
pub fn draw_strip(
    canvas: &HtmlCanvasElement,
    pts: &[(f64, f64)],
    run: (f64, f64),
    view: (f64, f64),
    dpr: f64,
) -> Result<(), String> {
    let ctx = batch::context(canvas)?;
    let (w, h) = (f64::from(canvas.width()), f64::from(canvas.height()));
    let plot_w = (w - (AXIS_W * dpr).round()).max(1.0);
    batch::strip(&ctx, (w, h), plot_w, pts, run, view, dpr);
    Ok(())
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
