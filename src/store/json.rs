//! Hand-written JSON for the bars of a segment: the hot part of a flush.
//!
//! A flush serialises every open segment again (a day's heatmap is eighty
//! numbers a bar and a thousand bars a segment), and most of that time went
//! into formatting fixed-point values as `f64`, shortest round trip. A
//! value with at most 15 significant digits *is* the shortest round trip of
//! its nearest `f64`, so it is written straight from its digits; anything
//! else, and every true float (the OBI), goes through serde_json.
//!
//! The bytes are exactly those serde_json writes for the same bars through
//! their `Serialize` forms ([`super::format::FileBars`],
//! [`super::views::FootFile`], [`super::views::HeatFile`], the reference
//! this module's tests hold it to). Readers parse either the same way
//! (docs/formats.md, "Series store").

use super::bar::SeriesBar;
use super::views::{FootBar, HeatBar};
use crate::model::Fixed;

/// Fixed-point units in one.
const SCALE: u64 = 100_000_000;
/// `|raw|` from here on (1e-4) is written plainly by serde_json too.
const PLAIN_FROM: u64 = 10_000;
/// `|raw|` below this (1e7) has at most 15 significant digits.
const PLAIN_BELOW: u64 = 1_000_000_000_000_000;

/// `raw / 10⁸` as serde_json writes its nearest `f64`.
#[inline]
pub fn fixed(out: &mut Vec<u8>, raw: i64) {
    let mag = raw.unsigned_abs();
    if mag == 0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    if !(PLAIN_FROM..PLAIN_BELOW).contains(&mag) {
        return float(out, Fixed::from_raw(raw).to_f64());
    }
    if raw < 0 {
        out.push(b'-');
    }
    let mut int = itoa::Buffer::new();
    out.extend_from_slice(int.format(mag / SCALE).as_bytes());
    out.push(b'.');
    let mut frac = mag % SCALE;
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = [0u8; 8];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let len = 8 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    out.extend_from_slice(&digits[..len]);
}

/// A float as serde_json writes it (`null` when not finite).
#[inline]
pub fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut b = zmij::Buffer::new();
        out.extend_from_slice(b.format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// `[a,b,…]`, each element written by `each`.
pub fn array<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

/// Bytes [`array_to`] gathers before it passes them on.
pub const CHUNK: usize = 32 << 10;

/// As [`array`] for a whole segment's bars: appended to `out`, which is
/// passed on to `w` a chunk at a time (a heatmap segment is about a
/// megabyte of text).
pub fn array_to<T>(
    w: &mut dyn std::io::Write,
    out: &mut Vec<u8>,
    items: &[T],
    each: fn(&mut Vec<u8>, &T),
) -> std::io::Result<()> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
        if out.len() >= CHUNK {
            w.write_all(out)?;
            out.clear();
        }
    }
    out.push(b']');
    Ok(())
}

/// A 14-column bar (docs/formats.md, "Bars").
pub fn series_bar(out: &mut Vec<u8>, b: &SeriesBar) {
    out.push(b'[');
    int(out, b.ts);
    match &b.price {
        Some(c) => {
            for v in [c.open, c.high, c.low, c.close] {
                out.push(b',');
                fixed(out, v.raw());
            }
        }
        None => out.extend_from_slice(b",null,null,null,null"),
    }
    out.push(b',');
    fixed(out, b.volume.raw());
    for v in [b.obi.open, b.obi.high, b.obi.low, b.obi.close] {
        out.push(b',');
        float(out, v);
    }
    for v in [b.cvd.open, b.cvd.high, b.cvd.low, b.cvd.close] {
        out.push(b',');
        fixed(out, v.raw());
    }
    out.push(b']');
}

/// A footprint bar: `[ts, [[price, buy, sell], …]]`.
pub fn foot_bar(out: &mut Vec<u8>, b: &FootBar) {
    out.push(b'[');
    int(out, b.ts);
    out.push(b',');
    array(out, &b.levels, |out, l| {
        array(out, l, |out, &v| fixed(out, v));
    });
    out.push(b']');
}

/// A heatmap bar: `[ts, [[price, size], …bids], [[price, size], …asks]]`.
pub fn heat_bar(out: &mut Vec<u8>, b: &HeatBar) {
    let side = |out: &mut Vec<u8>, levels: &[[i64; 2]]| {
        array(out, levels, |out, l| array(out, l, |out, &v| fixed(out, v)));
    };
    out.push(b'[');
    int(out, b.ts);
    out.push(b',');
    side(out, &b.bids);
    out.push(b',');
    side(out, &b.asks);
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Candle;
    use crate::store::format::FileBars;
    use crate::store::views::{FootFile, HeatFile};
    use proptest::prelude::*;

    fn ours(raw: i64) -> String {
        let mut out = Vec::new();
        fixed(&mut out, raw);
        String::from_utf8(out).unwrap()
    }

    fn serde(raw: i64) -> String {
        serde_json::to_string(&Fixed::from_raw(raw).to_f64()).unwrap()
    }

    #[test]
    fn fixed_values_read_as_serde_json_writes_them() {
        for raw in [
            0,
            1,
            -1,
            9_999,
            10_000,
            -10_000,
            12_345,
            100_000_000,
            3_000_050_000_000,
            2_999_999_999_999,
            99_999_999_999_999,
            999_999_999_999_999,
            1_000_000_000_000_000,
            -1_000_000_000_000_000,
            123_456_789_012_345_678,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(ours(raw), serde(raw), "raw {raw}");
        }
        // Every power of ten and its neighbours, both signs.
        let mut p: i64 = 1;
        while let Some(next) = p.checked_mul(10) {
            for raw in [p - 1, p, p + 1, -p, 7 * p] {
                assert_eq!(ours(raw), serde(raw), "raw {raw}");
            }
            p = next;
        }
    }

    proptest! {
        #[test]
        fn any_fixed_value_reads_as_serde_json_writes_it(raw in any::<i64>(), small in -1_000_000_000_000i64..1_000_000_000_000) {
            prop_assert_eq!(ours(raw), serde(raw));
            prop_assert_eq!(ours(small), serde(small));
        }

        #[test]
        fn bars_are_written_byte_for_byte_as_their_serialize_forms(
            ts in any::<i64>(),
            raws in proptest::collection::vec(-10_000_000_000_000i64..10_000_000_000_000, 12),
            obi in proptest::collection::vec(-1.0f64..1.0, 4),
            traded in any::<bool>(),
            levels in proptest::collection::vec([0i64..10_000_000_000_000, 0i64..1_000_000_000, 0i64..1_000_000_000], 0..30),
        ) {
            let f = |i: usize| Fixed::from_raw(raws[i]);
            let bar = SeriesBar {
                ts,
                price: traded.then(|| Candle { open: f(0), high: f(1), low: f(2), close: f(3) }),
                volume: f(4),
                obi: Candle { open: obi[0], high: obi[1], low: obi[2], close: obi[3] },
                cvd: Candle { open: f(5), high: f(6), low: f(7), close: f(8) },
            };
            let mut out = Vec::new();
            array(&mut out, std::slice::from_ref(&bar), series_bar);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&FileBars(&[bar])).unwrap()
            );

            let foot = FootBar { ts, levels: levels.clone() };
            let mut out = Vec::new();
            array(&mut out, std::slice::from_ref(&foot), foot_bar);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&FootFile(&[foot])).unwrap()
            );

            let pairs: Vec<[i64; 2]> = levels.iter().map(|l| [l[0], l[1]]).collect();
            let heat = HeatBar { ts, bids: pairs.clone(), asks: pairs.iter().rev().copied().collect() };
            let mut out = Vec::new();
            array(&mut out, std::slice::from_ref(&heat), heat_bar);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&HeatFile(&[heat])).unwrap()
            );
        }
    }
}
