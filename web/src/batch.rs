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

/// The heatmap behind the candles: each column's levels as cells one tick
/// tall, brighter for more resting size (square root of `size / max`, in
/// ten steps, one path each), and its legend at the pane's top right.
pub fn heatmap(
    ctx: &CanvasRenderingContext2d,
    l: &Layout,
    p: &Pane,
    cols: &[crate::views::HeatColumn],
    window_ms: f64,
    tick: f64,
    max: f64,
) -> Result<(), String> {
    if cols.is_empty() || max <= 0.0 {
        return Ok(());
    }
    const STEPS: usize = 10;
    let mut paths: Vec<Vec<(f64, f64, f64, f64)>> = vec![Vec::new(); STEPS];
    let cell_h = |price: f64| (p.y_of(price) - p.y_of(price + tick)).abs().max(1.0);
    for c in cols {
        let (a, b) = (l.px_of(c.ts), l.px_of(c.ts + window_ms));
        if b < l.left as f64 || a > l.right as f64 {
            continue;
        }
        let w = (b - a).max(1.0);
        for lv in c.bids.iter().chain(&c.asks) {
            let (price, size) = (lv[0], lv[1]);
            if price < p.y0 || price > p.y1 || size <= 0.0 {
                continue;
            }
            let k = (((size / max).sqrt() * STEPS as f64) as usize).min(STEPS - 1);
            let h = cell_h(price);
            paths[k].push((a, p.y_of(price) - h / 2.0, w, h));
        }
    }
    clip(ctx, l, p);
    for (k, rects) in paths.iter().enumerate() {
        if rects.is_empty() {
            continue;
        }
        ctx.begin_path();
        for &(x, y, w, h) in rects {
            ctx.rect(x, y, w, h);
        }
        ctx.set_fill_style_str(&css(
            crate::theme::HEAT,
            0.08 + 0.8 * (k as f64 + 1.0) / STEPS as f64,
        ));
        ctx.fill();
    }
    ctx.restore();
    // Legend: the scale from nothing to the largest size in view.
    let (w, h) = (90.0 * l.dpr, 8.0 * l.dpr);
    let (x, y) = (
        l.right as f64 - w - 8.0 * l.dpr,
        p.top as f64 + 22.0 * l.dpr,
    );
    for k in 0..STEPS {
        ctx.set_fill_style_str(&css(
            crate::theme::HEAT,
            0.08 + 0.8 * (k as f64 + 1.0) / STEPS as f64,
        ));
        ctx.fill_rect(
            x + w * k as f64 / STEPS as f64,
            y,
            w / STEPS as f64 + 0.5,
            h,
        );
    }
    let font = (crate::theme::FONT_PX * l.dpr).round();
    ctx.set_font(&format!("{font}px {}", crate::theme::FONT));
    ctx.set_text_baseline("middle");
    ctx.set_text_align("end");
    ctx.set_fill_style_str(&css(crate::theme::TEXT, 1.0));
    ctx.fill_text(
        &format!("resting 0–{}", crate::fmt::compact(max)),
        x - 6.0 * l.dpr,
        y + h / 2.0,
    )
    .map_err(|_| "heatmap legend failed".to_string())
}

/// Footprints inside the candles: per price row `sell × buy`, imbalances
/// (one side at least `ratio` times the other) in the candle colours, each
/// row's total as a faint bar.
pub fn footprints(
    ctx: &CanvasRenderingContext2d,
    l: &Layout,
    p: &Pane,
    foots: &[crate::views::Footprint],
    window_ms: f64,
    step: f64,
    ratio: f64,
) -> Result<(), String> {
    use crate::theme::{DOWN, TEXT, UP};
    clip(ctx, l, p);
    let font = (10.0 * l.dpr).round();
    ctx.set_font(&format!("{font}px {}", crate::theme::FONT));
    ctx.set_text_baseline("middle");
    ctx.set_text_align("center");
    let max = foots
        .iter()
        .flat_map(|f| &f.levels)
        .map(|r| r[1] + r[2])
        .fold(0.0, f64::max)
        .max(1e-12);
    for f in foots {
        let (a, b) = (l.px_of(f.ts), l.px_of(f.ts + window_ms));
        let (cx, w) = ((a + b) / 2.0, (b - a) * 0.9);
        for r in &f.levels {
            let (y0, y1) = (p.y_of(r[0] + step), p.y_of(r[0]));
            let h = (y1 - y0).abs();
            ctx.set_fill_style_str(&css(TEXT, 0.10));
            ctx.fill_rect(
                cx - w / 2.0,
                y0 + 1.0,
                w * (r[1] + r[2]) / max,
                (h - 2.0).max(1.0),
            );
            let color = match crate::views::imbalance(r[1], r[2], ratio) {
                1 => css(UP, 1.0),
                -1 => css(DOWN, 1.0),
                _ => css(TEXT, 1.0),
            };
            ctx.set_fill_style_str(&color);
            let text = format!(
                "{} × {}",
                crate::fmt::compact(r[2]),
                crate::fmt::compact(r[1])
            );
            ctx.fill_text(&text, cx, (y0 + y1) / 2.0)
                .map_err(|_| "footprint text failed".to_string())?;
        }
    }
    ctx.restore();
    Ok(())
}

/// The volume profile of the visible range at the pane's right edge: a bar
/// per price row (buys and sells stacked), the point of control marked
/// across the pane.
pub fn profile(
    ctx: &CanvasRenderingContext2d,
    l: &Layout,
    p: &Pane,
    rows: &[[f64; 3]],
    poc: Option<usize>,
    step: f64,
) -> Result<(), String> {
    use crate::theme::{DOWN, POC, UP};
    let max = rows.iter().map(|r| r[1] + r[2]).fold(0.0, f64::max);
    if rows.is_empty() || max <= 0.0 {
        return Ok(());
    }
    clip(ctx, l, p);
    let width = f64::from(l.right - l.left) * 0.16;
    let right = l.right as f64;
    for (buy, color) in [(true, UP), (false, DOWN)] {
        ctx.begin_path();
        for r in rows {
            let (y0, y1) = (p.y_of(r[0] + step), p.y_of(r[0]));
            let h = ((y1 - y0).abs() - 1.0).max(1.0);
            let (wb, ws) = (width * r[1] / max, width * r[2] / max);
            let (x, w) = if buy {
                (right - wb, wb)
            } else {
                (right - wb - ws, ws)
            };
            ctx.rect(x, y0.min(y1) + 0.5, w, h);
        }
        ctx.set_fill_style_str(&css(color, 0.35));
        ctx.fill();
    }
    if let Some(r) = poc.and_then(|i| rows.get(i)) {
        let y = p.y_of(r[0] + step / 2.0).round() + 0.5;
        ctx.set_stroke_style_str(&css(POC, 0.9));
        ctx.set_line_width(l.dpr.max(1.0));
        let dash = js_sys::Array::of2(&(3.0 * l.dpr).into(), &(3.0 * l.dpr).into());
        ctx.set_line_dash(&dash)
            .map_err(|_| "dash failed".to_string())?;
        ctx.begin_path();
        ctx.move_to(l.left as f64, y);
        ctx.line_to(right, y);
        ctx.stroke();
        ctx.set_line_dash(&js_sys::Array::new())
            .map_err(|_| "dash failed".to_string())?;
        let font = (crate::theme::FONT_PX * l.dpr).round();
        ctx.set_font(&format!("{font}px {}", crate::theme::FONT));
        ctx.set_text_baseline("bottom");
        ctx.set_text_align("end");
        ctx.set_fill_style_str(&css(POC, 1.0));
        ctx.fill_text(
            &format!("POC {}", r[0]),
            right - width - 6.0 * l.dpr,
            y - 2.0,
        )
        .map_err(|_| "POC label failed".to_string())?;
    }
    ctx.restore();
    Ok(())
}
