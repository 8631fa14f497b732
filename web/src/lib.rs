//! The orderflow chart, compiled to `wasm32-unknown-unknown`.
//!
//! [`Chart`] is the only thing the page's JavaScript sees: it hands in
//! the rows of the data files as flat `Float64Array`s, asks for a full
//! redraw at most once per animation frame, and forwards mouse and keys.
//! All drawing is here, in Rust with plotters: the panes on the main
//! canvas ([`draw`]), the crosshair on a separate overlay canvas so that
//! moving the mouse never redraws the candles. Fetching, SSE and the
//! header stay in JavaScript, which owns the network and the DOM text.

pub mod batch;
pub mod data;
pub mod draw;
pub mod fmt;
pub mod layout;
pub mod m4;
pub mod theme;
pub mod view;

use data::{Data, MetricRow, OhlcRow};
use layout::Layout;
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
    data: Data,
    view: View,
    layout: Option<Layout>,
    dpr: f64,
    mouse: Option<(f64, f64)>,
}

#[wasm_bindgen]
impl Chart {
    #[wasm_bindgen(constructor)]
    pub fn new(main_id: &str, overlay_id: &str, depth_id: &str) -> Result<Chart, JsValue> {
        let overlay = canvas(overlay_id)?;
        Ok(Chart {
            main: canvas(main_id)?,
            overlay_ctx: batch::context(&overlay).map_err(|e| JsValue::from_str(&e))?,
            overlay,
            depth: canvas(depth_id)?,
            data: Data {
                window_ms: 60_000.0,
                ..Data::default()
            },
            view: View::default(),
            layout: None,
            dpr: 1.0,
            mouse: None,
        })
    }

    /// Sizes the canvases' backing stores to CSS size × devicePixelRatio,
    /// so lines and text are sharp on HiDPI screens.
    pub fn resize(&mut self, main_w: f64, main_h: f64, depth_w: f64, depth_h: f64, dpr: f64) {
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
        if ms.is_finite() && ms > 0.0 {
            self.data.window_ms = ms;
        }
    }

    pub fn set_title(&mut self, title: String) {
        self.data.title = title;
    }

    /// Full redraw of every pane and the depth chart, then the crosshair.
    pub fn draw(&mut self) -> Result<(), JsValue> {
        let layout = draw::draw_main(&self.main, &self.data, &self.view, self.dpr)
            .map_err(|e| JsValue::from_str(&e))?;
        self.layout = Some(layout);
        draw::draw_depth(&self.depth, &self.data, self.dpr).map_err(|e| JsValue::from_str(&e))?;
        self.draw_overlay()?;
        Ok(())
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
        self.view
            .zoom(factor, anchor, self.data.last_ts(), self.data.window_ms);
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
        self.view
            .pan(fraction, self.data.last_ts(), self.data.window_ms);
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
    fn settle(&mut self) {
        let first = self.data.first_ts();
        self.view
            .settle(first, self.data.last_ts(), self.data.window_ms);
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
