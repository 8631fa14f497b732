//! One bar of a series: price candle, volume, OBI and CVD candles of one
//! window of one instrument, exact (fixed-point), and how bars of
//! consecutive windows merge into the bar of a longer window.
//!
//! Two JSON forms: the public row of the segment files and the API
//! (`[ts, open, high, low, close, volume, obi_o, obi_h, obi_l, obi_c,
//! cvd_o, cvd_h, cvd_l, cvd_c]`, prices `null` in a window without trades;
//! docs/formats.md) through [`FileBar`], and the checkpoint's compact raw
//! integers through `SeriesBar`'s own serde impls.

use crate::model::{Candle, Fixed};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What one applied row contributes to its instrument's bars: the trade
/// (price, size) if it was one, then OBI and CVD sampled after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub trade: Option<(Fixed, Fixed)>,
    pub obi: f64,
    pub cvd: Fixed,
}

/// A bar of one window: the §3 OHLC and metric bars side by side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesBar {
    pub ts: i64,
    /// Trade prices; `None` when the window had only book rows.
    pub price: Option<Candle<Fixed>>,
    pub volume: Fixed,
    pub obi: Candle<f64>,
    pub cvd: Candle<Fixed>,
}

impl SeriesBar {
    /// The bar of window `ts` after its first row.
    pub fn new(ts: i64, s: &Sample) -> SeriesBar {
        SeriesBar {
            ts,
            price: s.trade.map(|(p, _)| Candle::new(p)),
            volume: s.trade.map_or(Fixed::ZERO, |(_, size)| size),
            obi: Candle::new(s.obi),
            cvd: Candle::new(s.cvd),
        }
    }

    /// Adds a later row of the same window.
    pub fn add(&mut self, s: &Sample) {
        if let Some((price, size)) = s.trade {
            match &mut self.price {
                Some(c) => c.push(price),
                None => self.price = Some(Candle::new(price)),
            }
            self.volume = self.volume.saturating_add(size);
        }
        self.obi.push(s.obi);
        self.cvd.push(s.cvd);
    }

    /// Extends this bar with the bar of a later window (exactly: open of
    /// the first, extremes, close of the last, summed volume); the
    /// timestamp stays this bar's.
    pub fn merge(&mut self, later: &SeriesBar) {
        match (&mut self.price, &later.price) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.price = Some(*b),
            (_, None) => {}
        }
        self.volume = self.volume.saturating_add(later.volume);
        self.obi.merge(&later.obi);
        self.cvd.merge(&later.cvd);
    }
}

/// Merges `bars` (oldest first, each at a window start of `from`
/// milliseconds) into bars of `window_ms`, a whole multiple of their
/// window: each output bar is the exact merge of the input bars whose
/// timestamps fall in its window.
pub fn merge_into(bars: impl IntoIterator<Item = SeriesBar>, window_ms: i64) -> Vec<SeriesBar> {
    let mut out: Vec<SeriesBar> = Vec::new();
    for bar in bars {
        let ts = bar.ts.div_euclid(window_ms) * window_ms;
        match out.last_mut() {
            Some(last) if last.ts == ts => last.merge(&bar),
            _ => out.push(SeriesBar { ts, ..bar }),
        }
    }
    out
}

/// A bar in its public JSON form (14 columns, numbers as decimals).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FileBar(pub SeriesBar);

impl Serialize for FileBar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = &self.0;
        let p = |f: fn(&Candle<Fixed>) -> Fixed| b.price.as_ref().map(|c| f(c).to_f64());
        let (o, c) = (&b.obi, &b.cvd);
        (
            b.ts,
            p(|c| c.open),
            p(|c| c.high),
            p(|c| c.low),
            p(|c| c.close),
            b.volume.to_f64(),
            o.open,
            o.high,
            o.low,
            o.close,
            c.open.to_f64(),
            c.high.to_f64(),
            c.low.to_f64(),
            c.close.to_f64(),
        )
            .serialize(s)
    }
}

type Row14 = (
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
);

impl<'de> Deserialize<'de> for FileBar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FileBar, D::Error> {
        let (ts, o, h, l, c, v, oo, oh, ol, oc, co, ch, cl, cc): Row14 =
            Deserialize::deserialize(d)?;
        let fixed =
            |x: f64| Fixed::from_f64(x).ok_or_else(|| D::Error::custom("number out of range"));
        let price = match (o, h, l, c) {
            (Some(o), Some(h), Some(l), Some(c)) => {
                Some(Candle::from([fixed(o)?, fixed(h)?, fixed(l)?, fixed(c)?]))
            }
            (None, None, None, None) => None,
            _ => {
                return Err(D::Error::custom(
                    "open..close must be all numbers or all null",
                ))
            }
        };
        Ok(FileBar(SeriesBar {
            ts,
            price,
            volume: fixed(v)?,
            obi: Candle::from([oo, oh, ol, oc]),
            cvd: Candle::from([fixed(co)?, fixed(ch)?, fixed(cl)?, fixed(cc)?]),
        }))
    }
}

/// Checkpoint form: `[ts, [o, h, l, c] | null, volume, [obi ×4], [cvd ×4]]`,
/// prices, volume and CVD as raw fixed-point integers.
impl Serialize for SeriesBar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            self.ts,
            self.price.as_ref().map(Candle::to_array),
            self.volume,
            self.obi.to_array(),
            self.cvd.to_array(),
        )
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SeriesBar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SeriesBar, D::Error> {
        type Raw = (i64, Option<[Fixed; 4]>, Fixed, [f64; 4], [Fixed; 4]);
        let (ts, price, volume, obi, cvd): Raw = Deserialize::deserialize(d)?;
        Ok(SeriesBar {
            ts,
            price: price.map(Candle::from),
            volume,
            obi: obi.into(),
            cvd: cvd.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> Fixed {
        Fixed::parse(s).unwrap()
    }

    fn trade(p: &str, size: &str, obi: f64, cvd: &str) -> Sample {
        Sample {
            trade: Some((f(p), f(size))),
            obi,
            cvd: f(cvd),
        }
    }

    fn book(obi: f64, cvd: &str) -> Sample {
        Sample {
            trade: None,
            obi,
            cvd: f(cvd),
        }
    }

    #[test]
    fn a_bar_starts_on_a_book_row_and_gets_prices_from_its_first_trade() {
        let mut b = SeriesBar::new(60_000, &book(0.5, "1"));
        assert_eq!(b.price, None);
        assert_eq!(b.volume, Fixed::ZERO);
        b.add(&trade("100.5", "0.25", 0.25, "1.25"));
        b.add(&trade("99", "1", -0.5, "0.25"));
        b.add(&book(0.75, "0.25"));
        assert_eq!(
            b.price,
            Some(Candle {
                open: f("100.5"),
                high: f("100.5"),
                low: f("99"),
                close: f("99")
            })
        );
        assert_eq!(b.volume, f("1.25"));
        assert_eq!(
            b.obi,
            Candle {
                open: 0.5,
                high: 0.75,
                low: -0.5,
                close: 0.75
            }
        );
        assert_eq!(
            b.cvd,
            Candle {
                open: f("1"),
                high: f("1.25"),
                low: f("0.25"),
                close: f("0.25")
            }
        );
    }

    #[test]
    fn public_rows_are_14_columns_with_null_prices_and_read_back_exactly() {
        let mut b = SeriesBar::new(1000, &book(0.125, "-2.5"));
        let text = serde_json::to_string(&FileBar(b)).unwrap();
        assert_eq!(
            text,
            "[1000,null,null,null,null,0.0,0.125,0.125,0.125,0.125,-2.5,-2.5,-2.5,-2.5]"
        );
        b.add(&trade("30247.12345678", "0.00000001", 0.0, "-2.49999999"));
        let text = serde_json::to_string(&FileBar(b)).unwrap();
        let back: FileBar = serde_json::from_str(&text).unwrap();
        assert_eq!(back.0, b);
        let raw = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<SeriesBar>(&raw).unwrap(), b);
        assert!(serde_json::from_str::<FileBar>("[0,1,null,null,null,0,0,0,0,0,0,0,0,0]").is_err());
    }

    /// Rows as (ts, kind, price, size, obi) → the bars a window of `w`
    /// builds straight from them.
    fn bars_of(rows: &[(i64, u8, i64, i64, i8)], w: i64) -> Vec<SeriesBar> {
        let mut cvd = 0i64;
        let mut out: Vec<SeriesBar> = Vec::new();
        for &(ts, kind, price, size, obi) in rows {
            let trade = (kind > 0).then(|| {
                cvd += if kind == 1 { size } else { -size };
                (Fixed::from_raw(price), Fixed::from_raw(size))
            });
            let s = Sample {
                trade,
                obi: obi as f64 / 100.0,
                cvd: Fixed::from_raw(cvd),
            };
            let window = ts.div_euclid(w) * w;
            match out.last_mut() {
                Some(b) if b.ts == window => b.add(&s),
                _ => out.push(SeriesBar::new(window, &s)),
            }
        }
        out
    }

    proptest! {
        /// Merging the bars of a fine window gives exactly the bars built
        /// directly at any multiple of it.
        #[test]
        fn merging_fine_bars_gives_the_coarse_bar(
            mut rows in prop::collection::vec(
                (-50_000i64..200_000, 0u8..3, 1i64..1_000_000, 1i64..100_000, -100i8..=100), 1..400),
            fine in 1i64..5_000,
            k in 1i64..40,
        ) {
            rows.sort_by_key(|r| r.0);
            let coarse = bars_of(&rows, fine * k);
            let merged = merge_into(bars_of(&rows, fine), fine * k);
            prop_assert_eq!(merged, coarse);
        }
    }
}
