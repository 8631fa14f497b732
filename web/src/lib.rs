//! The orderflow chart, compiled to `wasm32-unknown-unknown`.
//!
//! [`Chart`] is the only thing the page's JavaScript sees: it hands in
//! bars as flat `Float64Array`s, asks for a full redraw at most once per
//! animation frame, and forwards mouse and keys. The chart has two
//! sources: the rolling files (`set_ohlc`, `set_metrics`), or the series
//! store (`store_mode`, then ranges and stream diffs into a
//! [`store::Store`]; [`Chart::wanted`] says which range to fetch next).
//! All drawing is here, in Rust with plotters: the panes on the main
//! canvas ([`draw`]), the crosshair on a separate overlay canvas so that
//! moving the mouse never redraws the candles, and the history strip.
//! Fetching, SSE and the header stay in JavaScript, which owns the
//! network and the DOM text.

pub mod batch;
pub mod data;
pub mod draw;
pub mod fmt;
pub mod layout;
pub mod m4;
pub mod series;
pub mod store;
pub mod theme;
pub mod view;
pub mod views;

use data::{Data, MetricRow, OhlcRow};
use layout::Layout;
use series::Bar;
use store::{Overlay, Store};
use theme::*;
use view::View;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

fn canvas(id: &str) -> Result<HtmlCanvasElement, JsValue> {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))?;
    doc.get_element_by_id(id)
        .ok_or_else(|| JsValue::from_str(&format!("no element #{id}")))?
        .dyn_into::<HtmlCanvasElement>()
        .map_err(|_| JsValue::from_str(&format!("#{id} is not a canvas")))
}

/// The chart on three canvases: main panes, crosshair overlay, depth.
#[wasm_bindgen]
pub struct Chart {
    main: HtmlCanvasElement,
    overlay: HtmlCanvasElement,
    /// Fetched once: a crosshair move must cost as little as possible.
    overlay_ctx: CanvasRenderingContext2d,
    depth: HtmlCanvasElement,
    strip: HtmlCanvasElement,
    data: Data,
    /// The series store's view, when the chart shows the store.
    store: Option<Store>,
    view: View,
    layout: Option<Layout>,
    dpr: f64,
    mouse: Option<(f64, f64)>,
}

#[wasm_bindgen]
impl Chart {
    #[wasm_bindgen(constructor)]
    pub fn new(
        main_id: &str,
        overlay_id: &str,
        depth_id: &str,
        strip_id: &str,
    ) -> Result<Chart, JsValue> {
        let overlay = canvas(overlay_id)?;
        Ok(Chart {
            main: canvas(main_id)?,
            overlay_ctx: batch::context(&overlay).map_err(|e| JsValue::from_str(&e))?,
            overlay,
            depth: canvas(depth_id)?,
            strip: canvas(strip_id)?,
            data: Data {
                window_ms: 60_000.0,
                ..Data::default()
            },
            store: None,
            view: View::default(),
            layout: None,
            dpr: 1.0,
            mouse: None,
        })
    }

    /// Sizes the canvases' backing stores to CSS size × devicePixelRatio,
    /// so lines and text are sharp on HiDPI screens.
    #[allow(clippy::too_many_arguments)]
    pub fn resize(
        &mut self,
        main_w: f64,
        main_h: f64,
        depth_w: f64,
        depth_h: f64,
        strip_w: f64,
        strip_h: f64,
        dpr: f64,
    ) {
        let dpr = if dpr.is_finite() && dpr > 0.0 {
            dpr
        } else {
            1.0
        };
        self.dpr = dpr;
        let px = |v: f64| (v * dpr).round().max(1.0) as u32;
        for c in [&self.main, &self.overlay] {
            c.set_width(px(main_w));
            c.set_height(px(main_h));
        }
        self.depth.set_width(px(depth_w));
        self.depth.set_height(px(depth_h));
        self.strip.set_width(px(strip_w));
        self.strip.set_height(px(strip_h));
    }

    /// `ohlc_data.json` rows flattened, 6 numbers each.
    pub fn set_ohlc(&mut self, flat: &[f64]) {
        self.data.ohlc = OhlcRow::from_flat(flat);
    }

    /// `metrics_data.json` rows flattened, 9 numbers each (NaN for a
    /// missing CVD).
    pub fn set_metrics(&mut self, flat: &[f64]) {
        self.data.metrics = MetricRow::from_flat(flat);
    }

    /// Depth levels flattened `[price, size]`, best first per side.
    pub fn set_depth(&mut self, bids: &[f64], asks: &[f64]) {
        self.data.bids = data::levels_from_flat(bids);
        self.data.asks = data::levels_from_flat(asks);
    }

    pub fn set_window_ms(&mut self, ms: f64) {
        if ms.is_finite() && ms > 0.0 && self.store.is_none() {
            self.data.window_ms = ms;
            self.view.set_limits(ms, f64::NAN);
        }
    }

    pub fn set_title(&mut self, title: String) {
        self.data.title = title;
    }

    /// Full redraw of every pane, the depth chart and the history strip,
    /// then the crosshair.
    pub fn draw(&mut self) -> Result<(), JsValue> {
        let xs = self.visible_range();
        let layout = draw::draw_main(&self.main, &self.data, xs, self.dpr)
            .map_err(|e| JsValue::from_str(&e))?;
        self.layout = Some(layout);
        draw::draw_depth(&self.depth, &self.data, self.dpr).map_err(|e| JsValue::from_str(&e))?;
        if let Some(store) = &self.store {
            let run = store.primary.extent().unwrap_or(xs);
            draw::draw_strip(&self.strip, &store.strip, run, xs, self.dpr)
                .map_err(|e| JsValue::from_str(&e))?;
        }
        self.draw_overlay()?;
        Ok(())
    }

    // ---- the series store ---------------------------------------------

    /// Shows the series store: a series of timeframe `base_ms`, nothing
    /// held yet (ranges and stream bars follow). Keeps the view's right
    /// edge; the span goes back to the timeframe's default.
    pub fn store_mode(&mut self, base_ms: f64) {
        let base = if base_ms > 0.0 { base_ms } else { 60_000.0 };
        let overlay = self
            .store
            .as_mut()
            .and_then(|s| s.overlay.take())
            .map(|o| Overlay {
                name: o.name,
                series: series::Series::new(base),
            });
        let mut store = Store::new(base);
        store.overlay = overlay;
        self.store = Some(store);
        self.view.reset_span();
        self.view.set_limits(base, f64::NAN);
        self.data.bids.clear();
        self.data.asks.clear();
        self.refill();
    }

    /// Back to the rolling files.
    pub fn files_mode(&mut self) {
        self.store = None;
        self.data.extent = None;
        self.data.overlay.clear();
        self.data.overlay_name.clear();
    }

    /// The whole run of the primary series spans `[first, last]`.
    pub fn set_extent(&mut self, first: f64, last: f64) {
        if let Some(s) = &mut self.store {
            s.primary.set_extent(first, last);
        }
        self.refill();
    }

    /// Overlays `name`'s series (same timeframe); `""` removes it.
    pub fn set_overlay(&mut self, name: String) {
        if let Some(s) = &mut self.store {
            s.overlay = (!name.is_empty()).then(|| Overlay {
                name,
                series: series::Series::new(s.primary.base_ms()),
            });
        }
        self.refill();
    }

    /// A fetched range of series `which` (0 primary, 1 overlay): 14
    /// numbers a bar, at `window_ms`, for `[from, to)`.
    pub fn set_range(&mut self, which: u32, flat: &[f64], window_ms: f64, from: f64, to: f64) {
        if let Some(s) = self.store.as_mut().and_then(|s| s.series_mut(which)) {
            s.set_range(Bar::from_flat(flat), window_ms, from, to);
        }
        self.refill();
    }

    /// A stream snapshot or reset of series `which`.
    pub fn set_tail(&mut self, which: u32, flat: &[f64]) {
        if let Some(s) = self.store.as_mut().and_then(|s| s.series_mut(which)) {
            s.set_tail(Bar::from_flat(flat));
        }
        self.refill();
    }

    /// A stream diff of series `which`.
    pub fn upsert_tail(&mut self, which: u32, flat: &[f64]) {
        if let Some(s) = self.store.as_mut().and_then(|s| s.series_mut(which)) {
            s.upsert_tail(&Bar::from_flat(flat));
        }
        self.refill();
    }

    /// The history strip: the whole run's bars at `window_ms`.
    pub fn set_strip(&mut self, flat: &[f64], window_ms: f64) {
        if let Some(s) = &mut self.store {
            s.set_strip(&Bar::from_flat(flat), window_ms);
        }
    }

    /// Stream bars of the primary series into the history strip.
    pub fn strip_upsert(&mut self, flat: &[f64]) {
        if let Some(s) = &mut self.store {
            s.strip_upsert(&Bar::from_flat(flat));
        }
    }

    /// The range of the primary series to fetch for what is on screen,
    /// `[from, to, max_bars]`, or `[]` when what is held does.
    pub fn wanted(&self) -> Vec<f64> {
        let (Some(s), Some(l)) = (&self.store, &self.layout) else {
            return vec![];
        };
        let (x0, x1) = self.visible_range();
        let px = (l.right - l.left).max(1) as f64 / l.dpr;
        match s.primary.wanted(x0, x1, px.round() as usize) {
            Some(w) => vec![w.from, w.to, w.max_bars as f64],
            None => vec![],
        }
    }

    /// Whether the primary series' fetched range is stale (a diff landed
    /// in a window shown from it).
    pub fn stale(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.primary.stale())
    }

    /// The window of the bars drawn (the timeframe, or a multiple of it
    /// when the range is wider than the screen).
    pub fn window_ms(&self) -> f64 {
        self.data.window_ms
    }

    /// `[x0, x1]` of the visible time range, ms.
    pub fn visible(&self) -> Vec<f64> {
        let (a, b) = self.visible_range();
        vec![a, b]
    }

    /// The whole run's first and last bar start (store mode), or `[]`.
    pub fn extent(&self) -> Vec<f64> {
        match self.store.as_ref().and_then(|s| s.primary.extent()) {
            Some((a, b)) => vec![a, b],
            None => vec![],
        }
    }

    /// Shows the whole run and follows its newest bar.
    pub fn show_all(&mut self) {
        let bar = self.bar_ms();
        if let (Some(first), Some(last)) = (self.data.first_ts(), self.data.last_ts()) {
            self.view.show_all(first, last, bar);
        }
    }

    /// Centres the view on the time under CSS x of the history strip.
    pub fn strip_goto(&mut self, x: f64) {
        let Some(s) = &self.store else { return };
        let Some((first, last)) = s.primary.extent() else {
            return;
        };
        let plot_w = (f64::from(self.strip.width()) - (theme::AXIS_W * self.dpr).round()).max(1.0);
        let t = first + (x * self.dpr / plot_w).clamp(0.0, 1.0) * (last - first);
        self.settle();
        let bar = self.bar_ms();
        self.view.centre_on(t, self.data.last_ts(), bar);
    }

    // ---- orderflow views --------------------------------------------

    /// Heatmap columns `[ts, nb, na, p, s…]` at windows of `window_ms`,
    /// replacing those held.
    pub fn set_heat(&mut self, flat: &[f64], window_ms: f64) {
        self.data.views.heat = views::heat_from_flat(flat);
        self.data.views.window_ms = window_ms;
    }

    /// Footprints `[ts, n, p, buy, sell…]` on price buckets of `tick`,
    /// replacing those held.
    pub fn set_foot(&mut self, flat: &[f64], window_ms: f64, tick: f64) {
        self.data.views.foot = views::foot_from_flat(flat);
        self.data.views.window_ms = window_ms;
        if tick.is_finite() && tick > 0.0 {
            self.data.views.tick = tick;
        }
    }

    /// Heatmap columns from the stream, replacing or added to those held.
    pub fn upsert_heat(&mut self, flat: &[f64]) {
        series::upsert(&mut self.data.views.heat, &views::heat_from_flat(flat));
    }

    /// Footprints from the stream, replacing or added to those held.
    pub fn upsert_foot(&mut self, flat: &[f64], tick: f64) {
        series::upsert(&mut self.data.views.foot, &views::foot_from_flat(flat));
        if tick.is_finite() && tick > 0.0 {
            self.data.views.tick = tick;
        }
    }

    /// Which views are drawn, and the footprint rows' height in ticks.
    pub fn show_views(&mut self, heat: bool, foot: bool, profile: bool, group: f64) {
        let v = &mut self.data.views;
        (v.show_heat, v.show_foot, v.show_profile) = (heat, foot, profile);
        v.group = if group >= 1.0 { group.round() } else { 1.0 };
    }

    /// What the views drew in the last redraw: `[heatmap columns,
    /// footprints, profile rows, point of control (NaN: none), footprint
    /// row step, profile row step]`.
    pub fn views_drawn(&self) -> Vec<f64> {
        let v = self
            .layout
            .as_ref()
            .map_or_else(Default::default, |l| l.views);
        vec![
            v.heat_columns as f64,
            v.footprints as f64,
            v.profile_rows as f64,
            v.poc.unwrap_or(f64::NAN),
            v.foot_step,
            v.profile_step,
        ]
    }

    /// Overlay closes held.
    pub fn overlay_len(&self) -> usize {
        self.data.overlay.len()
    }

    /// Candle bars held (windows with trades).
    pub fn bars(&self) -> usize {
        self.data.ohlc.len()
    }

    /// Start of the newest candle, NaN without one.
    pub fn last_bar_ts(&self) -> f64 {
        self.data.ohlc.last().map_or(f64::NAN, |r| r.ts)
    }

    /// The hovered candle `i` and its metrics: 14 numbers as in the store
    /// (NaN where there is no metric row or no CVD), or `[]`.
    pub fn row(&self, i: usize) -> Vec<f64> {
        let Some(r) = self.data.ohlc.get(i) else {
            return vec![];
        };
        let mut out = vec![r.ts, r.open, r.high, r.low, r.close, r.volume];
        match self.data.metric_at(r.ts) {
            Some(m) => {
                out.extend(m.obi);
                out.extend(m.cvd.unwrap_or([f64::NAN; 4]));
            }
            None => out.extend([f64::NAN; 8]),
        }
        out
    }

    /// Moves the crosshair to CSS position `(x, y)` on the main canvas;
    /// redraws only the overlay. Returns the hovered OHLC row's index, or
    /// -1.
    pub fn hover(&mut self, x: f64, y: f64) -> Result<i32, JsValue> {
        self.mouse = Some((x, y));
        self.draw_overlay()?;
        Ok(self.hovered().map_or(-1, |i| i as i32))
    }

    /// The mouse left: clears the crosshair.
    pub fn leave(&mut self) -> Result<(), JsValue> {
        self.mouse = None;
        self.draw_overlay()
    }

    /// CSS x on the main canvas of the centre of the bar starting at `ts`
    /// (NaN before the first draw).
    pub fn bar_x(&self, ts: f64) -> f64 {
        match &self.layout {
            Some(l) => l.px_of(ts + self.data.window_ms / 2.0) / l.dpr,
            None => f64::NAN,
        }
    }

    /// CSS y range `[top, bottom]` of the price pane, for automation.
    pub fn price_pane_y(&self) -> Vec<f64> {
        match self
            .layout
            .as_ref()
            .and_then(|l| l.panes.first().map(|p| (p, l.dpr)))
        {
            Some((p, dpr)) => vec![p.top as f64 / dpr, p.bottom as f64 / dpr],
            None => vec![],
        }
    }

    /// Zooms by `factor` around CSS x (`NaN`: the right edge).
    pub fn zoom(&mut self, factor: f64, x: f64) {
        let anchor = match (&self.layout, x.is_finite()) {
            (Some(l), true) => (x * l.dpr - l.left as f64) / f64::from(l.right - l.left).max(1.0),
            _ => 1.0,
        };
        self.settle();
        let bar = self.bar_ms();
        self.view.zoom(factor, anchor, self.data.last_ts(), bar);
    }

    /// Pans by CSS pixels (drag to the right shows earlier bars).
    pub fn pan_px(&mut self, dx: f64) {
        if let Some(l) = &self.layout {
            let frac = -dx * l.dpr / f64::from(l.right - l.left).max(1.0);
            self.pan(frac);
        }
    }

    /// Pans by a fraction of the visible span (positive = later).
    pub fn pan(&mut self, fraction: f64) {
        self.settle();
        let bar = self.bar_ms();
        self.view.pan(fraction, self.data.last_ts(), bar);
    }

    /// Candles drawn in the last redraw (fewer than the visible bars when
    /// M4 downsampling applied).
    pub fn drawn_candles(&self) -> usize {
        self.layout.as_ref().map_or(0, |l| l.drawn)
    }

    pub fn downsampled(&self) -> bool {
        self.layout.as_ref().is_some_and(|l| l.downsampled)
    }

    /// Back to following the newest bar.
    pub fn follow(&mut self) {
        self.view.follow();
    }

    pub fn following(&self) -> bool {
        self.view.following()
    }
}

impl Chart {
    /// The bar length the view counts in: the series' timeframe in store
    /// mode (not the coarser window a wide range may be drawn at).
    fn bar_ms(&self) -> f64 {
        match &self.store {
            Some(s) => s.primary.base_ms(),
            None => self.data.window_or_default(),
        }
    }

    fn visible_range(&self) -> (f64, f64) {
        self.view
            .fitted_range(self.data.first_ts(), self.data.last_ts(), self.bar_ms())
    }

    fn settle(&mut self) {
        let (first, last, bar) = (self.data.first_ts(), self.data.last_ts(), self.bar_ms());
        self.view.settle(first, last, bar);
    }

    /// Rebuilds the drawn rows from the store, and the view's limits from
    /// the run's length.
    fn refill(&mut self) {
        if let Some(s) = &self.store {
            s.fill(&mut self.data);
            let run = s.primary.extent().map_or(f64::NAN, |(a, b)| b - a);
            self.view.set_limits(s.primary.base_ms(), run);
        }
    }

    /// Index of the OHLC bar nearest the mouse, if the mouse is over the plot.
    fn hovered(&self) -> Option<usize> {
        let (mx, my) = self.mouse?;
        let l = self.layout.as_ref()?;
        let (px, py) = (mx * l.dpr, my * l.dpr);
        let inside_y = l.panes.first().map_or(0, |p| p.top) as f64 <= py
            && py <= l.panes.last().map_or(0, |p| p.bottom) as f64;
        if px < l.left as f64 || px > l.right as f64 || !inside_y || self.data.ohlc.is_empty() {
            return None;
        }
        let half = self.data.window_ms / 2.0;
        let t = l.x_at(px);
        let rows = &self.data.ohlc;
        let i = rows.partition_point(|r| r.ts + half < t);
        let best = [i.checked_sub(1), (i < rows.len()).then_some(i)]
            .into_iter()
            .flatten()
            .min_by(|&a, &b| {
                (rows[a].ts + half - t)
                    .abs()
                    .total_cmp(&(rows[b].ts + half - t).abs())
            })?;
        // Only when the mouse is within a bar's width of it.
        ((rows[best].ts + half - t).abs() <= self.data.window_ms).then_some(best)
    }

    fn draw_overlay(&self) -> Result<(), JsValue> {
        let ctx = &self.overlay_ctx;
        let (w, h) = (
            f64::from(self.overlay.width()),
            f64::from(self.overlay.height()),
        );
        ctx.clear_rect(0.0, 0.0, w, h);
        let (Some(l), Some((mx, my))) = (&self.layout, self.mouse) else {
            return Ok(());
        };
        let (px, py) = (mx * l.dpr, my * l.dpr);
        let dpr = l.dpr;
        let (Some(first), Some(last)) = (l.panes.first(), l.panes.last()) else {
            return Ok(());
        };
        if px < l.left as f64
            || px > l.right as f64
            || py < first.top as f64
            || py > last.bottom as f64
        {
            return Ok(());
        }
        let hovered = self.hovered();
        let x = match hovered {
            Some(i) => l.px_of(self.data.ohlc[i].ts + self.data.window_ms / 2.0),
            None => px,
        };
        let x = x.round() + 0.5;
        let dash = js_sys::Array::of2(&JsValue::from(4.0 * dpr), &JsValue::from(4.0 * dpr));
        ctx.set_line_dash(&dash)?;
        ctx.set_line_width(dpr.max(1.0));
        ctx.set_stroke_style_str(&css(CROSS, 0.7));
        ctx.begin_path();
        ctx.move_to(x, first.top as f64);
        ctx.line_to(x, last.bottom as f64);
        ctx.stroke();
        ctx.set_font(&format!("{}px {FONT}", (FONT_PX * dpr).round()));
        ctx.set_text_baseline("middle");
        let tag_h = (TAG_H * dpr).round();
        if let Some(pane) = l
            .panes
            .iter()
            .find(|p| p.top as f64 <= py && py <= p.bottom as f64)
        {
            let y = py.round() + 0.5;
            ctx.begin_path();
            ctx.move_to(l.left as f64, y);
            ctx.line_to(l.right as f64, y);
            ctx.stroke();
            let v = pane.value_at(py);
            let (_, ticks) = fmt::nice_ticks(pane.y0, pane.y1, 6);
            let step = if ticks.len() > 1 {
                ticks[1] - ticks[0]
            } else {
                1.0
            };
            let text = match pane.kind {
                layout::PaneKind::Price | layout::PaneKind::Obi => {
                    format!("{v:.*}", fmt::decimals_for(step) + 1)
                }
                _ => fmt::compact(v),
            };
            ctx.set_fill_style_str(&css(TAG_BG, 1.0));
            ctx.fill_rect(
                l.right as f64 + 1.0,
                y - tag_h / 2.0,
                w - l.right as f64,
                tag_h,
            );
            ctx.set_fill_style_str("#ffffff");
            ctx.set_text_align("start");
            ctx.fill_text(&text, l.right as f64 + 8.0 * dpr, y)?;
        }
        ctx.set_line_dash(&js_sys::Array::new())?;
        // Time tag under the axis.
        let t = match hovered {
            Some(i) => self.data.ohlc[i].ts,
            None => l.x_at(px),
        };
        let label = fmt::date_time(t);
        let tw = ctx.measure_text(&label)?.width() + 12.0 * dpr;
        let tx = (x - tw / 2.0).clamp(0.0, (w - tw).max(0.0));
        let ty = last.bottom as f64 + 2.0 * dpr;
        ctx.set_fill_style_str(&css(TAG_BG, 1.0));
        ctx.fill_rect(tx, ty, tw, tag_h);
        ctx.set_fill_style_str("#ffffff");
        ctx.set_text_align("center");
        ctx.fill_text(&label, tx + tw / 2.0, ty + tag_h / 2.0)?;
        Ok(())
    }
}
