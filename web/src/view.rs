//! The visible time range: follow the newest bar, zoom, pan, show all.
//!
//! Pure state with no browser dependency. The view is a span in
//! milliseconds and, when not following, a right edge in market time;
//! following keeps the right edge just past the newest bar as bars arrive.
//! The span is held between limits the chart sets from the timeframe and
//! the whole run's length ([`View::set_limits`]), so "show all" works on a
//! day of one-second bars as on a thousand one-minute ones.

/// What part of the time axis is shown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// Width in ms; `None`: [`DEFAULT_SPAN_BARS`] bars of the timeframe.
    pub span: Option<f64>,
    /// Right edge (ms) when the user has panned/zoomed away; `None` follows.
    pub end: Option<f64>,
    /// Narrowest and widest span, ms.
    pub min_span: f64,
    pub max_span: f64,
}

/// Empty bars kept right of the newest one while following.
pub const RIGHT_PAD_BARS: f64 = 3.0;
pub const DEFAULT_SPAN_BARS: f64 = 120.0;
pub const MIN_SPAN_BARS: f64 = 10.0;
/// The widest span in bars when the whole run is not longer.
pub const MAX_SPAN_BARS: f64 = 20_000.0;

impl Default for View {
    fn default() -> View {
        View {
            span: None,
            end: None,
            min_span: MIN_SPAN_BARS * 60_000.0,
            max_span: MAX_SPAN_BARS * 60_000.0,
        }
    }
}

impl View {
    /// Limits for bars of `bar_ms` in a run `run_ms` long: from ten bars
    /// to the whole run (at least [`MAX_SPAN_BARS`] bars).
    pub fn set_limits(&mut self, bar_ms: f64, run_ms: f64) {
        if bar_ms.is_nan() || bar_ms <= 0.0 {
            return;
        }
        self.min_span = MIN_SPAN_BARS * bar_ms;
        let whole = if run_ms.is_finite() {
            (run_ms + bar_ms * (2.0 + RIGHT_PAD_BARS)) * 1.05
        } else {
            0.0
        };
        self.max_span = (MAX_SPAN_BARS * bar_ms).max(whole);
        if let Some(s) = self.span {
            self.span = Some(s.clamp(self.min_span, self.max_span));
        }
    }

    fn span_ms(&self, bar_ms: f64) -> f64 {
        self.span.unwrap_or(DEFAULT_SPAN_BARS * bar_ms)
    }

    /// `[x0, x1]` in ms, given the newest bar's start and the bar length.
    pub fn range(&self, last_ts: Option<f64>, bar_ms: f64) -> (f64, f64) {
        let follow_end = last_ts.map_or(0.0, |t| t + bar_ms * (1.0 + RIGHT_PAD_BARS));
        let end = self.end.unwrap_or(follow_end);
        (end - self.span_ms(bar_ms), end)
    }

    /// Like [`View::range`], but while following with fewer bars than the
    /// span, the span shrinks to the bars (no empty half screen at the
    /// start of a run). `first_ts` is the oldest bar's start.
    pub fn fitted_range(
        &self,
        first_ts: Option<f64>,
        last_ts: Option<f64>,
        bar_ms: f64,
    ) -> (f64, f64) {
        let (x0, x1) = self.range(last_ts, bar_ms);
        match (self.end, first_ts) {
            (None, Some(first)) if first - bar_ms > x0 => {
                let min_span = MIN_SPAN_BARS * 3.0 * bar_ms;
                ((first - bar_ms).min(x1 - min_span), x1)
            }
            _ => (x0, x1),
        }
    }

    /// Makes the span what [`View::fitted_range`] shows, so zoom and pan
    /// start from what is on screen.
    pub fn settle(&mut self, first_ts: Option<f64>, last_ts: Option<f64>, bar_ms: f64) {
        let (x0, x1) = self.fitted_range(first_ts, last_ts, bar_ms);
        self.span = Some((x1 - x0).clamp(self.min_span, self.max_span));
    }

    /// Zooms by `factor` (<1 in, >1 out) keeping the time at `anchor`
    /// (0‒1 across the plot) in place.
    pub fn zoom(&mut self, factor: f64, anchor: f64, last_ts: Option<f64>, bar_ms: f64) {
        let (x0, x1) = self.range(last_ts, bar_ms);
        let anchor = anchor.clamp(0.0, 1.0);
        let at = x0 + (x1 - x0) * anchor;
        let span = (self.span_ms(bar_ms) * factor).clamp(self.min_span, self.max_span);
        self.span = Some(span);
        if self.end.is_some() || anchor < 0.98 {
            self.end = Some(at + (1.0 - anchor) * span);
        }
    }

    /// Pans by `fraction` of the visible span (positive = later).
    pub fn pan(&mut self, fraction: f64, last_ts: Option<f64>, bar_ms: f64) {
        let (_, x1) = self.range(last_ts, bar_ms);
        self.end = Some(x1 + fraction * self.span_ms(bar_ms));
    }

    /// Centres the view on `t` keeping the span; following again when that
    /// reaches the newest bar.
    pub fn centre_on(&mut self, t: f64, last_ts: Option<f64>, bar_ms: f64) {
        let span = self.span_ms(bar_ms);
        let end = t + span / 2.0;
        let follow_end = last_ts.map(|l| l + bar_ms * (1.0 + RIGHT_PAD_BARS));
        self.end = match follow_end {
            Some(f) if end >= f => None,
            _ => Some(end),
        };
    }

    /// Shows the whole run `[first, last]` and follows its newest bar.
    pub fn show_all(&mut self, first: f64, last: f64, bar_ms: f64) {
        let span = last - first + bar_ms * (2.0 + RIGHT_PAD_BARS);
        self.span = Some(span.clamp(self.min_span, self.max_span));
        self.end = None;
    }

    /// Back to the default span of the timeframe (a new timeframe).
    pub fn reset_span(&mut self) {
        self.span = None;
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

    const M: f64 = 60_000.0;

    #[test]
    fn follows_then_pans_and_zooms_around_the_anchor() {
        let mut v = View::default();
        let (x0, x1) = v.range(Some(M * 200.0), M);
        assert_eq!(x1, M * 204.0);
        assert_eq!(x1 - x0, 120.0 * M);
        v.pan(-0.5, Some(M * 200.0), M);
        assert!(!v.following());
        let (a0, a1) = v.range(Some(M * 500.0), M);
        assert_eq!(a1, x1 - 60.0 * M);
        let mid = (a0 + a1) / 2.0;
        v.zoom(0.5, 0.5, None, M);
        let (b0, b1) = v.range(None, M);
        assert!(((b0 + b1) / 2.0 - mid).abs() < 1e-6);
        assert_eq!(v.span, Some(60.0 * M));
        v.follow();
        assert!(v.following());
        // Few bars while following: the view fits them.
        let (f0, f1) = v.fitted_range(Some(M * 190.0), Some(M * 200.0), M);
        assert_eq!(f1, M * 204.0);
        assert_eq!(f0, M * 174.0, "at least 30 bars wide");
        v.settle(Some(M * 190.0), Some(M * 200.0), M);
        assert_eq!(v.span, Some(30.0 * M));
    }

    #[test]
    fn limits_come_from_the_timeframe_and_the_run() {
        let mut v = View::default();
        // A day of 1 s bars: wider than 20 000 bars, so the run sets it.
        v.set_limits(1000.0, 86_400_000.0);
        assert_eq!(v.min_span, 10_000.0);
        assert!(v.max_span > 86_400_000.0);
        v.zoom(1e9, 1.0, Some(86_399_000.0), 1000.0);
        assert_eq!(v.span, Some(v.max_span));
        v.zoom(1e-9, 1.0, Some(86_399_000.0), 1000.0);
        assert_eq!(v.span, Some(10_000.0));
        // Show all: the whole run, following.
        v.pan(-1.0, Some(86_399_000.0), 1000.0);
        v.show_all(0.0, 86_399_000.0, 1000.0);
        assert!(v.following());
        let (x0, x1) = v.range(Some(86_399_000.0), 1000.0);
        assert!(x0 < 0.0 && x1 > 86_400_000.0);
        // Centring far back stops following; on the newest bar follows.
        v.centre_on(1_000_000.0, Some(86_399_000.0), 1000.0);
        assert!(!v.following());
        v.centre_on(86_399_000.0, Some(86_399_000.0), 1000.0);
        assert!(v.following());
    }
}
