//! Text for axes, tags and the readout: UTC times and compact numbers.
//!
//! Pure functions with no browser dependency, so they are unit-tested on the
//! host. Times are always UTC: a backtest is read against exchange time, not
//! the viewer's local zone.

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split_ms(ms: f64) -> (i64, i64) {
    let ms = ms.floor() as i64;
    (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000))
}

/// `2022-05-13 14:05:00` (UTC).
pub fn date_time(ms: f64) -> String {
    let (days, rem) = split_ms(ms);
    let (y, mo, d) = civil_from_days(days);
    let s = rem / 1000;
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A time-axis tick label: the date at midnight, else `HH:MM`, with
/// seconds when the tick step is below a minute.
pub fn time_tick(ms: f64, step_ms: f64) -> String {
    let (days, rem) = split_ms(ms);
    let s = rem / 1000;
    if rem == 0 {
        // Midnight: the date instead of 00:00.
        let (_, mo, d) = civil_from_days(days);
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        return format!("{d} {}", MONTHS[(mo as usize + 11) % 12]);
    }
    if step_ms < 60_000.0 {
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 3600, s / 60 % 60)
    }
}

/// Steps the time axis may use, in ms.
const TIME_STEPS: [f64; 16] = [
    1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1_800e3, 3_600e3, 7_200e3,
    14_400e3, 86_400e3,
];

/// Ticks on whole UTC steps inside `[x0, x1]`, about `max_ticks` of them.
/// Returns the step and the ticks.
pub fn time_ticks(x0: f64, x1: f64, max_ticks: usize) -> (f64, Vec<f64>) {
    let span = (x1 - x0).max(1.0);
    let want = max_ticks.max(1) as f64;
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|s| span / s <= want)
        .unwrap_or_else(|| (span / want / 86_400e3).ceil() * 86_400e3);
    let mut ticks = Vec::new();
    let mut t = (x0 / step).ceil() * step;
    while t <= x1 && ticks.len() < 200 {
        ticks.push(t);
        t += step;
    }
    (step, ticks)
}

/// "Nice" value ticks (1, 2, 2.5, 5 × 10ⁿ) inside `[y0, y1]`.
pub fn nice_ticks(y0: f64, y1: f64, max_ticks: usize) -> (f64, Vec<f64>) {
    let span = y1 - y0;
    if !(span.is_finite() && span > 0.0) {
        return (1.0, vec![y0]);
    }
    let raw = span / max_ticks.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut ticks = Vec::new();
    let mut t = (y0 / step).ceil() * step;
    while t <= y1 + step * 1e-9 && ticks.len() < 100 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    (step, ticks)
}

/// Decimals needed to tell ticks `step` apart (0‒8).
pub fn decimals_for(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 2;
    }
    let d = -step.log10().floor();
    (d.max(0.0) as usize + usize::from(step / 10f64.powf(step.log10().floor()) % 1.0 > 1e-9)).min(8)
}

/// A value with a k/M/B suffix for axis labels of volume and CVD.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    let (div, suffix) = if a >= 1e9 {
        (1e9, "B")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / div;
    let digits = if x.abs() >= 100.0 || (suffix.is_empty() && x.fract() == 0.0) {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(date_time(0.0), "1970-01-01 00:00:00");
        assert_eq!(date_time(1_652_450_700_000.0), "2022-05-13 14:05:00");
        assert_eq!(date_time(951_782_400_000.0), "2000-02-29 00:00:00");
    }

    #[test]
    fn time_ticks_are_whole_steps() {
        let (step, ticks) = time_ticks(1_652_450_710_000.0, 1_652_454_300_000.0, 8);
        assert_eq!(step, 600e3);
        assert!(ticks.iter().all(|t| t % step == 0.0));
        assert_eq!(time_tick(ticks[0], step), "14:10");
        assert_eq!(time_tick(1_652_400_000_000.0, 7_200e3), "13 May");
    }

    #[test]
    fn nice_ticks_and_labels() {
        let (step, ticks) = nice_ticks(29_950.0, 30_230.0, 5);
        assert_eq!(step, 100.0);
        assert_eq!(ticks, [30_000.0, 30_100.0, 30_200.0]);
        assert_eq!(decimals_for(0.25), 2);
        assert_eq!(decimals_for(0.5), 1);
        assert_eq!(decimals_for(100.0), 0);
        assert_eq!(compact(1_250.0), "1.25k");
        assert_eq!(compact(-32_000_000.0), "-32.0M");
        assert_eq!(compact(12.0), "12");
    }
}
