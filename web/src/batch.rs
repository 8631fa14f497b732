//! Candles and volume bars drawn as one canvas path per colour.
//!
//! plotters-canvas turns every element into its own stroke or fill with
//! its own style string: three panes of 1000 bars is ~6000 canvas calls
//! with a state change each, ~20 ms a frame. Here each colour is one path
//! (`moveTo`/`lineTo` for wicks, `rect` for bodies) and one `stroke` or
//! `fill`, with the same pixel mapping as the plotters panes around it
//! ([`Layout`], [`Pane`]). Everything else stays plotters.

use crate::layout::{Layout, Pane};
use crate::m4::Candle;
use crate::theme::css;
use plotters::style::RGBColor;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

pub fn context(canvas: &HtmlCanvasElement) -> Result<CanvasRenderingContext2d, String> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        .ok_or_else(|| "the canvas has no 2d context".to_string())
}

/// Clips drawing to the pane's plotting rectangle until `restore`.
fn clip(ctx: &CanvasRenderingContext2d, l: &Layout, p: &Pane) {
    ctx.save();
    ctx.begin_path();
    ctx.rect(
        l.left as f64,
        p.top as f64,
        f64::from(l.right - l.left),
        f64::from(p.bottom - p.top),
    );
    ctx.clip();
}

/// Candlesticks: wick from high to low, body from open to close.
pub fn candles(
    ctx: &CanvasRenderingContext2d,
    l: &Layout,
    p: &Pane,
    cs: &[Candle],
    body_px: f64,
    up: RGBColor,
    down: RGBColor,
) -> Result<(), String> {
    clip(ctx, l, p);
    let line = l.dpr.round().max(1.0);
    let body = body_px.round().max(1.0);
    for (color, rising) in [(up, true), (down, false)] {
        let mine = || cs.iter().filter(move |c| (c.close >= c.open) == rising);
        ctx.begin_path();
        for c in mine() {
            // Centre of a device pixel column: crisp 1-px wicks.
            let x = l.px_of(c.x).floor() + line / 2.0;
            ctx.move_to(x, p.y_of(c.high).round());
            ctx.line_to(x, p.y_of(c.low).round());
        }
        ctx.set_line_width(line);
        ctx.set_stroke_style_str(&css(color, 1.0));
        ctx.stroke();
        if body > line {
            ctx.begin_path();
            for c in mine() {
                let x = (l.px_of(c.x).floor() + line / 2.0 - body / 2.0).round();
                let top = p.y_of(c.open.max(c.close)).round();
                let bottom = p.y_of(c.open.min(c.close)).round();
                ctx.rect(x, top, body, (bottom - top).max(line));
            }
            ctx.set_fill_style_str(&css(color, 1.0));
            ctx.fill();
        }
    }
    ctx.restore();
    Ok(())
}

/// Volume bars from zero, coloured by the candle's direction.
pub fn volume(
    ctx: &CanvasRenderingContext2d,
    l: &Layout,
    p: &Pane,
    cs: &[Candle],
    body_px: f64,
) -> Result<(), String> {
    clip(ctx, l, p);
    let line = l.dpr.round().max(1.0);
    let body = body_px.round().max(1.0);
    let zero = p.y_of(0.0).round();
    for (color, rising) in [(crate::theme::UP, true), (crate::theme::DOWN, false)] {
        ctx.begin_path();
        for c in cs.iter().filter(|c| (c.close >= c.open) == rising) {
            let x = (l.px_of(c.x).floor() + line / 2.0 - body / 2.0).round();
            let top = p.y_of(c.volume).round();
            ctx.rect(x, top, body, (zero - top).max(0.0));
        }
        ctx.set_fill_style_str(&css(color, 0.55));
        ctx.fill();
    }
    ctx.restore();
    Ok(())
}
