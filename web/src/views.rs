//! The orderflow views' data as the chart holds it: heatmap columns (the
//! book's levels at each window's close), footprints (volume by price and
//! side per window), and what is drawn from them — footprints merged into
//! the candles' window and grouped by a multiple of the tick, and the
//! volume profile of the visible range with its point of control.
//! Pure: no browser, unit-tested on the host.

/// One window's book at its close: `[price, size]`, bids and asks best
/// first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeatColumn {
    pub ts: f64,
    pub bids: Vec<[f64; 2]>,
    pub asks: Vec<[f64; 2]>,
}

/// One window's traded volume: `[price, buy, sell]`, prices ascending.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Footprint {
    pub ts: f64,
    pub levels: Vec<[f64; 3]>,
}

impl crate::series::Timed for HeatColumn {
    fn ts(&self) -> f64 {
        self.ts
    }
}

impl crate::series::Timed for Footprint {
    fn ts(&self) -> f64 {
        self.ts
    }
}

/// What the views hold and which are on.
#[derive(Clone, Debug, Default)]
pub struct Views {
    pub heat: Vec<HeatColumn>,
    pub foot: Vec<Footprint>,
    /// The footprints' price bucket.
    pub tick: f64,
    /// The views' window (the run's).
    pub window_ms: f64,
    pub show_heat: bool,
    pub show_foot: bool,
    pub show_profile: bool,
    /// Footprint rows are `group` ticks tall.
    pub group: f64,
}

/// Heatmap columns from `[ts, nb, na, p, s × nb, p, s × na, …]`.
pub fn heat_from_flat(flat: &[f64]) -> Vec<HeatColumn> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 <= flat.len() {
        let (ts, nb, na) = (flat[i], flat[i + 1] as usize, flat[i + 2] as usize);
        let end = i + 3 + 2 * (nb + na);
        if end > flat.len() {
            break;
        }
        let pairs = |from: usize, n: usize| -> Vec<[f64; 2]> {
            (0..n)
                .map(|k| [flat[from + 2 * k], flat[from + 2 * k + 1]])
                .collect()
        };
        out.push(HeatColumn {
            ts,
            bids: pairs(i + 3, nb),
            asks: pairs(i + 3 + 2 * nb, na),
        });
        i = end;
    }
    out
}

/// Footprints from `[ts, n, p, buy, sell × n, …]`.
pub fn foot_from_flat(flat: &[f64]) -> Vec<Footprint> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= flat.len() {
        let (ts, n) = (flat[i], flat[i + 1] as usize);
        let end = i + 2 + 3 * n;
        if end > flat.len() {
            break;
        }
        let levels = (0..n)
            .map(|k| {
                let j = i + 2 + 3 * k;
                [flat[j], flat[j + 1], flat[j + 2]]
            })
            .collect();
        out.push(Footprint { ts, levels });
        i = end;
    }
    out
}

/// The bucket of `price` for rows `step` tall (exact for prices on the
/// tick grid, robust to binary noise).
pub fn bucket(price: f64, step: f64) -> f64 {
    if step.is_nan() || step <= 0.0 {
        return price;
    }
    let b = ((price / step) + 1e-9).floor() * step;
    (b * 1e9).round() / 1e9
}

/// Rows of at least `group` ticks, and at least `min_px` tall when a tick
/// is `tick_px` tall: the group rounded up to 1, 2 or 5 × 10ⁿ ticks.
pub fn row_ticks(group: f64, tick_px: f64, min_px: f64) -> f64 {
    let need = if tick_px > 0.0 {
        min_px / tick_px
    } else {
        f64::INFINITY
    };
    let want = group.max(need).max(1.0);
    if !want.is_finite() {
        return group.max(1.0);
    }
    let mut scale = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * scale >= want - 1e-9 {
                return m * scale;
            }
        }
        scale *= 10.0;
    }
}

/// Adds `[price, buy, sell]` into `rows` (sorted by price) at its bucket.
fn add_row(rows: &mut Vec<[f64; 3]>, price: f64, buy: f64, sell: f64) {
    match rows.binary_search_by(|r| r[0].total_cmp(&price)) {
        Ok(i) => {
            rows[i][1] += buy;
            rows[i][2] += sell;
        }
        Err(i) => rows.insert(i, [price, buy, sell]),
    }
}

/// The footprints in `[x0, x1)` merged into windows of `window_ms` (the
/// candles'), their prices grouped into buckets of `step`.
pub fn merged_footprints(
    foot: &[Footprint],
    window_ms: f64,
    step: f64,
    x0: f64,
    x1: f64,
) -> Vec<Footprint> {
    let mut out: Vec<Footprint> = Vec::new();
    for f in foot.iter().filter(|f| f.ts + window_ms > x0 && f.ts < x1) {
        let ts = (f.ts / window_ms).floor() * window_ms;
        if out.last().is_none_or(|l| l.ts != ts) {
            out.push(Footprint {
                ts,
                levels: Vec::new(),
            });
        }
        if let Some(last) = out.last_mut() {
            for l in &f.levels {
                add_row(&mut last.levels, bucket(l[0], step), l[1], l[2]);
            }
        }
    }
    out
}

/// The volume at each price bucket of `step` over the footprints starting
/// in `[x0, x1)`, prices ascending, and the index of the point of control
/// (the bucket with the most volume; the lower on a tie).
pub fn profile(foot: &[Footprint], step: f64, x0: f64, x1: f64) -> (Vec<[f64; 3]>, Option<usize>) {
    let mut rows: Vec<[f64; 3]> = Vec::new();
    for f in foot.iter().filter(|f| f.ts >= x0 && f.ts < x1) {
        for l in &f.levels {
            add_row(&mut rows, bucket(l[0], step), l[1], l[2]);
        }
    }
    let poc = rows
        .iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f64)>, (i, r)| {
            let v = r[1] + r[2];
            match best {
                Some((_, b)) if b >= v => best,
                _ => Some((i, v)),
            }
        })
        .map(|(i, _)| i);
    (rows, poc)
}

/// Whether a footprint row is an imbalance: one side at least `ratio`
/// times the other (and not empty). `1` buyers, `-1` sellers, `0` none.
pub fn imbalance(buy: f64, sell: f64, ratio: f64) -> i8 {
    if buy > 0.0 && buy >= ratio * sell {
        1
    } else if sell > 0.0 && sell >= ratio * buy {
        -1
    } else {
        0
    }
}

/// The largest size of the heat columns in `[x0, x1)` within prices
/// `[lo, hi]` (the intensity scale's top).
pub fn heat_max(heat: &[HeatColumn], x0: f64, x1: f64, lo: f64, hi: f64) -> f64 {
    heat.iter()
        .filter(|c| c.ts < x1 && c.ts >= x0)
        .flat_map(|c| c.bids.iter().chain(&c.asks))
        .filter(|l| l[0] >= lo && l[0] <= hi)
        .map(|l| l[1])
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_footprints_replace_by_window_and_keep_order() {
        let mut held = foot_from_flat(&[0.0, 1.0, 10.0, 1.0, 0.0, 2000.0, 0.0]);
        // The newest window grew, and a new one began.
        let diff = foot_from_flat(&[2000.0, 1.0, 10.0, 0.0, 4.0, 3000.0, 0.0]);
        crate::series::upsert(&mut held, &diff);
        let ts: Vec<f64> = held.iter().map(|f| f.ts).collect();
        assert_eq!(ts, [0.0, 2000.0, 3000.0]);
        assert_eq!(held[1].levels, vec![[10.0, 0.0, 4.0]]);
        // An older window changed again: replaced where it is.
        crate::series::upsert(&mut held, &foot_from_flat(&[0.0, 0.0]));
        assert!(held[0].levels.is_empty());
        assert_eq!(held.len(), 3);
    }

    #[test]
    fn flat_views_round_trip() {
        let heat = heat_from_flat(&[
            0.0, 2.0, 1.0, 99.0, 1.0, 98.0, 2.0, 101.0, 3.0, 1000.0, 0.0, 0.0,
        ]);
        assert_eq!(heat.len(), 2);
        assert_eq!(heat[0].bids, vec![[99.0, 1.0], [98.0, 2.0]]);
        assert_eq!(heat[0].asks, vec![[101.0, 3.0]]);
        assert!(heat[1].bids.is_empty());
        let foot = foot_from_flat(&[0.0, 1.0, 100.0, 2.0, 3.0, 1000.0, 2.0, 100.0, 1.0, 0.0]);
        assert_eq!(foot.len(), 1, "a truncated bar is left out");
        assert_eq!(foot[0].levels, vec![[100.0, 2.0, 3.0]]);
    }

    #[test]
    fn footprints_merge_into_the_candles_window_and_group_by_ticks() {
        let foot = vec![
            Footprint {
                ts: 0.0,
                levels: vec![[100.0, 1.0, 0.0], [100.5, 2.0, 1.0]],
            },
            Footprint {
                ts: 10.0,
                levels: vec![[100.5, 0.0, 4.0], [101.0, 1.0, 1.0]],
            },
            Footprint {
                ts: 20.0,
                levels: vec![[99.5, 5.0, 0.0]],
            },
        ];
        let m = merged_footprints(&foot, 20.0, 0.5, 0.0, 100.0);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].levels,
            vec![[100.0, 1.0, 0.0], [100.5, 2.0, 5.0], [101.0, 1.0, 1.0]]
        );
        // Two ticks a row: 100 and 100.5 share the 100 row.
        let g = merged_footprints(&foot, 20.0, 1.0, 0.0, 100.0);
        assert_eq!(g[0].levels, vec![[100.0, 3.0, 5.0], [101.0, 1.0, 1.0]]);
        // Buy − sell is kept whatever the grouping.
        let delta = |f: &Footprint| f.levels.iter().map(|l| l[1] - l[2]).sum::<f64>();
        assert_eq!(delta(&m[0]), delta(&g[0]));
        assert_eq!(bucket(100.3, 0.1), 100.3);
        assert_eq!(bucket(100.34, 0.1), 100.3);
    }

    #[test]
    fn rows_grow_to_a_readable_height_in_round_ticks() {
        assert_eq!(row_ticks(1.0, 20.0, 11.0), 1.0);
        assert_eq!(row_ticks(1.0, 2.0, 11.0), 10.0, "5.5 ticks → 10");
        assert_eq!(
            row_ticks(25.0, 20.0, 11.0),
            50.0,
            "a chosen 25 rounds to 50"
        );
        assert_eq!(row_ticks(5.0, 4.0, 11.0), 5.0);
        assert_eq!(row_ticks(1.0, 0.01, 11.0), 2000.0);
    }

    #[test]
    fn the_profile_sums_the_visible_range_and_marks_its_point_of_control() {
        let foot = vec![
            Footprint {
                ts: 0.0,
                levels: vec![[100.0, 1.0, 0.0], [101.0, 2.0, 1.0]],
            },
            Footprint {
                ts: 10.0,
                levels: vec![[100.0, 1.0, 4.0]],
            },
            Footprint {
                ts: 20.0,
                levels: vec![[101.0, 50.0, 0.0]],
            },
        ];
        let (rows, poc) = profile(&foot, 1.0, 0.0, 20.0);
        assert_eq!(rows, vec![[100.0, 2.0, 4.0], [101.0, 2.0, 1.0]]);
        assert_eq!(poc, Some(0), "6 traded at 100 against 3 at 101");
        assert_eq!(imbalance(3.0, 1.0, 3.0), 1);
        assert_eq!(imbalance(1.0, 3.0, 3.0), -1);
        assert_eq!(imbalance(2.0, 1.0, 3.0), 0);
        assert_eq!(imbalance(0.0, 0.0, 3.0), 0);
        let heat = heat_from_flat(&[0.0, 1.0, 1.0, 99.0, 7.0, 101.0, 3.0]);
        assert_eq!(heat_max(&heat, 0.0, 10.0, 100.0, 200.0), 3.0);
        assert_eq!(heat_max(&heat, 0.0, 10.0, 0.0, 200.0), 7.0);
    }
}
