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

/// The reference overlay on the price pane: a line of `% change` points
/// on its own scale `range` (labels at the pane's left edge), and its
/// name with the last change at the top right of the pane.
pub fn overlay(
    ctx: &CanvasRenderingContext2d,
    l: &Layout,
    p: &Pane,
    pts: &[(f64, f64)],
    (lo, hi): (f64, f64),
    name: &str,
) -> Result<(), String> {
    if pts.is_empty() || hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return Ok(());
    }
    let y_of = |v: f64| {
        p.bottom as f64
            - (v - lo) / (hi - lo) * f64::from(p.bottom - p.top) * 0.8
            - f64::from(p.bottom - p.top) * 0.05
    };
    let color = css(crate::theme::OVERLAY, 0.9);
    clip(ctx, l, p);
    ctx.begin_path();
    for (i, &(x, v)) in pts.iter().enumerate() {
        let (px, py) = (l.px_of(x), y_of(v));
        if i == 0 {
            ctx.move_to(px, py);
        } else {
            ctx.line_to(px, py);
        }
    }
    ctx.set_line_width((1.5 * l.dpr).max(1.0));
    ctx.set_stroke_style_str(&color);
    ctx.stroke();
    // Its own scale, at the left edge.
    let font = (crate::theme::FONT_PX * l.dpr).round();
    ctx.set_font(&format!("{font}px {}", crate::theme::FONT));
    ctx.set_text_baseline("middle");
    ctx.set_text_align("start");
    ctx.set_fill_style_str(&color);
    let (step, ticks) = crate::fmt::nice_ticks(lo, hi, 4);
    let dec = crate::fmt::decimals_for(step);
    for v in ticks {
        let y = y_of(v);
        if y > p.top as f64 + 24.0 * l.dpr && y < p.bottom as f64 - 8.0 * l.dpr {
            ctx.fill_text(&format!("{v:+.dec$}%"), l.left as f64 + 6.0 * l.dpr, y)
                .map_err(|_| "overlay label failed".to_string())?;
        }
    }
    if let Some(&(_, last)) = pts.last() {
        ctx.set_text_align("end");
        ctx.fill_text(
            &format!("{name} {last:+.2}%"),
            l.right as f64 - 8.0 * l.dpr,
            p.top as f64 + 10.0 * l.dpr,
        )
        .map_err(|_| "overlay label failed".to_string())?;
    }
    ctx.restore();
    Ok(())
}

/// The history strip: the whole run's close across the canvas, the part
/// in view shaded and framed. `run` is `[first, last]` of the run, `view`
/// the visible `[x0, x1]`; widths in device px.
pub fn strip(
    ctx: &CanvasRenderingContext2d,
    (w, h): (f64, f64),
    plot_w: f64,
    pts: &[(f64, f64)],
    run: (f64, f64),
    view: (f64, f64),
    dpr: f64,
) {
    use crate::theme::{BG, GRID, PANE_BG, TEXT};
    ctx.set_fill_style_str(&css(BG, 1.0));
    ctx.fill_rect(0.0, 0.0, w, h);
    ctx.set_fill_style_str(&css(PANE_BG, 1.0));
    ctx.fill_rect(0.0, 0.0, plot_w, h);
    let span = (run.1 - run.0).max(1.0);
    let x_of = |t: f64| (t - run.0) / span * plot_w;
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if pts.len() > 1 && hi >= lo {
        let pad = 4.0 * dpr;
        let y_of = |v: f64| {
            if hi > lo {
                h - pad - (v - lo) / (hi - lo) * (h - 2.0 * pad)
            } else {
                h / 2.0
            }
        };
        ctx.begin_path();
        ctx.move_to(x_of(pts[0].0), h);
        for &(t, v) in pts {
            ctx.line_to(x_of(t), y_of(v));
        }
        ctx.line_to(x_of(pts[pts.len() - 1].0), h);
        ctx.close_path();
        ctx.set_fill_style_str(&css(TEXT, 0.12));
        ctx.fill();
        ctx.begin_path();
        for (i, &(t, v)) in pts.iter().enumerate() {
            if i == 0 {
                ctx.move_to(x_of(t), y_of(v));
            } else {
                ctx.line_to(x_of(t), y_of(v));
            }
        }
        ctx.set_line_width(dpr.max(1.0));
        ctx.set_stroke_style_str(&css(TEXT, 0.8));
        ctx.stroke();
    }
    // The view, at least a few pixels wide so it can be grabbed.
    let (a, b) = (x_of(view.0).max(0.0), x_of(view.1).min(plot_w));
    let (a, b) = if b - a < 6.0 * dpr {
        let m = (a + b) / 2.0;
        (m - 3.0 * dpr, m + 3.0 * dpr)
    } else {
        (a, b)
    };
    ctx.set_fill_style_str(&css(crate::theme::CROSS, 0.18));
    ctx.fill_rect(a, 0.0, b - a, h);
    ctx.set_line_width(dpr.max(1.0));
    ctx.set_stroke_style_str(&css(crate::theme::CROSS, 0.9));
    ctx.stroke_rect(a + 0.5, 0.5, (b - a - 1.0).max(1.0), h - 1.0);
    ctx.set_stroke_style_str(&css(GRID, 1.0));
    ctx.stroke_rect(0.5, 0.5, plot_w - 1.0, h - 1.0);
}
