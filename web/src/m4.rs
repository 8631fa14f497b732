//! M4 downsampling: when more bars are visible than there are pixel
//! columns, each column keeps its first, min, max and last value.
//!
//! Drawing one candle per pixel column with the column's open (first),
//! high (max), low (min) and close (last) shows exactly the envelope and
//! the ends that drawing every bar would show, at the cost of the columns,
//! not of the bars. Pure code, unit-tested on the host.

/// A bar as the chart draws it: centre time and four values (+ volume).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candle {
    pub x: f64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Merges consecutive candles that fall into the same of `cols` columns
/// spanning `[x0, x1]`. Input is in time order; so is the output.
pub fn m4(candles: &[Candle], x0: f64, x1: f64, cols: usize) -> Vec<Candle> {
    let span = x1 - x0;
    if cols == 0 || span.is_nan() || span <= 0.0 {
        return candles.to_vec();
    }
    let col_of = |x: f64| ((x - x0) / span * cols as f64).floor() as i64;
    let mut out: Vec<Candle> = Vec::with_capacity(cols.min(candles.len()));
    let mut current = i64::MIN;
    for c in candles {
        let col = col_of(c.x);
        match out.last_mut() {
            Some(last) if col == current => {
                last.high = last.high.max(c.high);
                last.low = last.low.min(c.low);
                last.close = c.close;
                last.volume += c.volume;
            }
            _ => {
                current = col;
                let mut first = *c;
                // Centre of the column, so merged candles sit on the grid.
                first.x = x0 + (col as f64 + 0.5) / cols as f64 * span;
                out.push(first);
            }
        }
    }
    out
}

/// M4 for a line: per column the first, min, max and last points, in time
/// order (min and max in the order they occurred).
pub fn m4_line(points: &[(f64, f64)], x0: f64, x1: f64, cols: usize) -> Vec<(f64, f64)> {
    let span = x1 - x0;
    if cols == 0 || span.is_nan() || span <= 0.0 || points.len() <= 2 * cols {
        return points.to_vec();
    }
    let col_of = |x: f64| ((x - x0) / span * cols as f64).floor() as i64;
    let mut out = Vec::with_capacity(4 * cols);
    let mut i = 0;
    while i < points.len() {
        let col = col_of(points[i].0);
        let start = i;
        let (mut min_i, mut max_i) = (i, i);
        while i < points.len() && col_of(points[i].0) == col {
            if points[i].1 < points[min_i].1 {
                min_i = i;
            }
            if points[i].1 > points[max_i].1 {
                max_i = i;
            }
            i += 1;
        }
        let last = i - 1;
        let mut idx = [start, min_i, max_i, last];
        idx.sort_unstable();
        let mut prev = usize::MAX;
        for j in idx {
            if j != prev {
                out.push(points[j]);
                prev = j;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f64, o: f64, h: f64, l: f64, cl: f64) -> Candle {
        Candle {
            x,
            open: o,
            high: h,
            low: l,
            close: cl,
            volume: 1.0,
        }
    }

    #[test]
    fn merges_a_column_into_first_max_min_last() {
        let bars = [
            c(0.0, 10.0, 12.0, 9.0, 11.0),
            c(1.0, 11.0, 15.0, 10.0, 14.0),
            c(2.0, 14.0, 14.5, 8.0, 9.0),
            c(5.0, 9.0, 9.5, 8.5, 9.2),
        ];
        let out = m4(&bars, 0.0, 6.0, 2);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (
                out[0].open,
                out[0].high,
                out[0].low,
                out[0].close,
                out[0].volume
            ),
            (10.0, 15.0, 8.0, 9.0, 3.0)
        );
        assert_eq!(out[1].open, 9.0);
        assert_eq!(out[0].x, 1.5);
    }

    #[test]
    fn line_keeps_extremes_in_order() {
        let pts: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, ((i * 37) % 11) as f64))
            .collect();
        let out = m4_line(&pts, 0.0, 100.0, 10);
        assert!(out.len() <= 40);
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
        for col in 0..10 {
            let seg: Vec<f64> = pts[col * 10..col * 10 + 10].iter().map(|p| p.1).collect();
            let kept: Vec<f64> = out
                .iter()
                .filter(|p| (p.0 / 10.0).floor() as usize == col)
                .map(|p| p.1)
                .collect();
            let max = seg.iter().cloned().fold(f64::MIN, f64::max);
            let min = seg.iter().cloned().fold(f64::MAX, f64::min);
            assert!(kept.contains(&max) && kept.contains(&min));
            assert_eq!(kept[0], seg[0]);
            assert_eq!(*kept.last().unwrap(), seg[9]);
        }
    }
}
