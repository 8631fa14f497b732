//! Colours and sizes of the dark theme, in one place.

use plotters::style::RGBColor;

pub const BG: RGBColor = RGBColor(0x13, 0x17, 0x22);
pub const PANE_BG: RGBColor = RGBColor(0x16, 0x1a, 0x25);
pub const GRID: RGBColor = RGBColor(0x23, 0x28, 0x36);
pub const AXIS: RGBColor = RGBColor(0x36, 0x3c, 0x4e);
pub const TEXT: RGBColor = RGBColor(0x9a, 0xa0, 0xb0);
pub const TITLE: RGBColor = RGBColor(0xd1, 0xd4, 0xdc);
pub const UP: RGBColor = RGBColor(0x26, 0xa6, 0x9a);
pub const DOWN: RGBColor = RGBColor(0xef, 0x53, 0x50);
pub const OBI_UP: RGBColor = RGBColor(0x64, 0xb5, 0xf6);
pub const OBI_DOWN: RGBColor = RGBColor(0x28, 0x5c, 0xc4);
pub const CVD: RGBColor = RGBColor(0xff, 0xb7, 0x4d);
/// The reference instrument's line on the price pane.
pub const OVERLAY: RGBColor = RGBColor(0xce, 0x93, 0xd8);
/// Resting liquidity on the heatmap (alpha scales with size).
pub const HEAT: RGBColor = RGBColor(0xff, 0xc1, 0x07);
/// The volume profile's point of control.
pub const POC: RGBColor = RGBColor(0xff, 0xeb, 0x3b);
pub const BID: RGBColor = RGBColor(0x26, 0xa6, 0x9a);
pub const ASK: RGBColor = RGBColor(0xef, 0x53, 0x50);
pub const CROSS: RGBColor = RGBColor(0x9a, 0xa0, 0xb0);
pub const TAG_BG: RGBColor = RGBColor(0x36, 0x3c, 0x4e);

pub const FONT: &str = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
/// CSS px.
pub const FONT_PX: f64 = 11.0;
/// Height of a value tag on the right axis (last price, crosshair), CSS px.
pub const TAG_H: f64 = 16.0;
pub const AXIS_W: f64 = 78.0;
pub const XLABEL_H: f64 = 20.0;

/// `rgba(...)` for direct canvas calls.
pub fn css(c: RGBColor, alpha: f64) -> String {
    format!("rgba({},{},{},{alpha})", c.0, c.1, c.2)
}
