//! The visible time range: follow the newest bar, zoom, pan.
//!
//! Pure state with no browser dependency. The view is a span in bars and,
//! when not following, a right edge in market time; following keeps the
//! right edge just past the newest bar as bars arrive.

/// What part of the time axis is shown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// Bars across the plot width.
    pub span_bars: f64,
    /// Right edge (ms) when the user has panned/zoomed away; `None` follows.
    pub end: Option<f64>,
}

/// Empty bars kept right of the newest one while following.
pub const RIGHT_PAD_BARS: f64 = 3.0;
pub const MIN_SPAN_BARS: f64 = 10.0;
pub const MAX_SPAN_BARS: f64 = 20_000.0;

impl Default for View {
    fn default() -> View {
        View {
            span_bars: 120.0,
            end: None,
        }
    }
}

impl View {
    /// `[x0, x1]` in ms, given the newest bar's start and the bar length.
    pub fn range(&self, last_ts: Option<f64>, window_ms: f64) -> (f64, f64) {
        let follow_end = last_ts.map_or(0.0, |t| t + window_ms * (1.0 + RIGHT_PAD_BARS));
        let end = self.end.unwrap_or(follow_end);
        (end - self.span_bars * window_ms, end)
    }

    /// Like [`View::range`], but while following with fewer bars than the
    /// span, the span shrinks to the bars (no empty half screen at the
    /// start of a run). `first_ts` is the oldest bar's start.
    pub fn fitted_range(
        &self,
        first_ts: Option<f64>,
        last_ts: Option<f64>,
        window_ms: f64,
    ) -> (f64, f64) {
        let (x0, x1) = self.range(last_ts, window_ms);
        match (self.end, first_ts) {
            (None, Some(first)) if first - window_ms > x0 => {
                let min_span = MIN_SPAN_BARS * 3.0 * window_ms;
                ((first - window_ms).min(x1 - min_span), x1)
            }
            _ => (x0, x1),
        }
    }

    /// Makes the span what [`View::fitted_range`] shows, so zoom and pan
    /// start from what is on screen.
    pub fn settle(&mut self, first_ts: Option<f64>, last_ts: Option<f64>, window_ms: f64) {
        let (x0, x1) = self.fitted_range(first_ts, last_ts, window_ms);
        self.span_bars = ((x1 - x0) / window_ms).clamp(MIN_SPAN_BARS, MAX_SPAN_BARS);
    }

    /// Zooms by `factor` (<1 in, >1 out) keeping the time at `anchor`
    /// (0‒1 across the plot) in place.
    pub fn zoom(&mut self, factor: f64, anchor: f64, last_ts: Option<f64>, window_ms: f64) {
        let (x0, x1) = self.range(last_ts, window_ms);
        let anchor = anchor.clamp(0.0, 1.0);
        let at = x0 + (x1 - x0) * anchor;
        let span = (self.span_bars * factor).clamp(MIN_SPAN_BARS, MAX_SPAN_BARS);
        self.span_bars = span;
        if self.end.is_some() || anchor < 0.98 {
            self.end = Some(at + (1.0 - anchor) * span * window_ms);
        }
    }

    /// Pans by `fraction` of the visible span (positive = later).
    pub fn pan(&mut self, fraction: f64, last_ts: Option<f64>, window_ms: f64) {
        let (_, x1) = self.range(last_ts, window_ms);
        self.end = Some(x1 + fraction * self.span_bars * window_ms);
    }

    pub fn follow(&mut self) {
        self.end = None;
    }

    pub fn following(&self) -> bool {
        self.end.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_then_pans_and_zooms_around_the_anchor() {
        let mut v = View::default();
        let (x0, x1) = v.range(Some(60_000.0 * 200.0), 60_000.0);
        assert_eq!(x1, 60_000.0 * 204.0);
        assert_eq!(x1 - x0, 120.0 * 60_000.0);
        v.pan(-0.5, Some(60_000.0 * 200.0), 60_000.0);
        assert!(!v.following());
        let (a0, a1) = v.range(Some(60_000.0 * 500.0), 60_000.0);
        assert_eq!(a1, x1 - 60.0 * 60_000.0);
        let mid = (a0 + a1) / 2.0;
        v.zoom(0.5, 0.5, None, 60_000.0);
        let (b0, b1) = v.range(None, 60_000.0);
        assert!(((b0 + b1) / 2.0 - mid).abs() < 1e-6);
        assert_eq!(v.span_bars, 60.0);
        v.follow();
        assert!(v.following());
        // Few bars while following: the view fits them.
        let (f0, f1) = v.fitted_range(Some(60_000.0 * 190.0), Some(60_000.0 * 200.0), 60_000.0);
        assert_eq!(f1, 60_000.0 * 204.0);
        assert_eq!(f0, 60_000.0 * 174.0, "at least 30 bars wide");
        v.settle(Some(60_000.0 * 190.0), Some(60_000.0 * 200.0), 60_000.0);
        assert_eq!(v.span_bars, 30.0);
    }
}
