//! OHLC, OBI and CVD bars, and the engine that builds them row by row.
//!
//! [`Engine`] is the whole computational state of a replay: the book, the
//! running CVD, the rolling OHLC and metric bars and the row counters. It
//! is pure (no I/O, no clock) and serialisable, so the processor can
//! checkpoint it and a resumed run continues bit-identically.
//!
//! Semantics (the spec's §3): a row at `ts` belongs to the window starting
//! at `floor(ts / W) × W`. A trade updates that window's OHLC bar and the
//! CVD; after every applied row (book or trade) the current OBI and CVD are
//! sampled into that window's metric bar.

use super::book::{Book, Level, Side};
use super::fixed::Fixed;
use super::rolling::{Rolling, Timestamped};
use serde::{Deserialize, Serialize};

/// The aggressor side of a trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeSide {
    Buy,
    Sell,
    /// Any other text: counts for OHLC and volume, not for CVD.
    Unknown,
}

impl TradeSide {
    pub fn parse(text: &str) -> TradeSide {
        match text {
            "buy" => TradeSide::Buy,
            "sell" => TradeSide::Sell,
            _ => TradeSide::Unknown,
        }
    }
}

/// A candle of trade prices and the traded volume in one window.
/// Serialised (in the checkpoint) as `[ts, open, high, low, close, volume]`
/// of raw fixed-point integers: a thousand of them are written at every
/// flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OhlcBar {
    pub ts: i64,
    pub open: Fixed,
    pub high: Fixed,
    pub low: Fixed,
    pub close: Fixed,
    pub volume: Fixed,
}

/// First, highest, lowest and last sample of a value in one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candle<T> {
    pub open: T,
    pub high: T,
    pub low: T,
    pub close: T,
}

impl<T> From<[T; 4]> for Candle<T> {
    /// `[open, high, low, close]`.
    fn from([open, high, low, close]: [T; 4]) -> Candle<T> {
        Candle {
            open,
            high,
            low,
            close,
        }
    }
}

impl<T: Copy> Candle<T> {
    /// `[open, high, low, close]`.
    pub fn to_array(&self) -> [T; 4] {
        [self.open, self.high, self.low, self.close]
    }
}

impl<T: Copy + PartialOrd> Candle<T> {
    pub fn new(v: T) -> Candle<T> {
        Candle {
            open: v,
            high: v,
            low: v,
            close: v,
        }
    }

    pub fn push(&mut self, v: T) {
        if v > self.high {
            self.high = v;
        }
        if v < self.low {
            self.low = v;
        }
        self.close = v;
    }

    /// Extends this candle with a later one of the same value: the open
    /// stays, the extremes widen, the close is the later one's. Exact, so
    /// candles of consecutive windows merge into the candle of their union.
    pub fn merge(&mut self, later: &Candle<T>) {
        if later.high > self.high {
            self.high = later.high;
        }
        if later.low < self.low {
            self.low = later.low;
        }
        self.close = later.close;
    }
}

/// OBI and CVD sampled after every row of one window. Serialised (in the
/// checkpoint) as `[ts, [obi o, h, l, c], [cvd o, h, l, c]]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricBar {
    pub ts: i64,
    pub obi: Candle<f64>,
    pub cvd: Candle<Fixed>,
}

impl Serialize for OhlcBar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            self.ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        )
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for OhlcBar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OhlcBar, D::Error> {
        let (ts, open, high, low, close, volume) = Deserialize::deserialize(d)?;
        Ok(OhlcBar {
            ts,
            open,
            high,
            low,
            close,
            volume,
        })
    }
}

impl Serialize for MetricBar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.ts, self.obi.to_array(), self.cvd.to_array()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for MetricBar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MetricBar, D::Error> {
        let (ts, obi, cvd): (i64, [f64; 4], [Fixed; 4]) = Deserialize::deserialize(d)?;
        Ok(MetricBar {
            ts,
            obi: obi.into(),
            cvd: cvd.into(),
        })
    }
}

impl Timestamped for OhlcBar {
    fn ts(&self) -> i64 {
        self.ts
    }
}

impl Timestamped for MetricBar {
    fn ts(&self) -> i64 {
        self.ts
    }
}

/// What the engine is asked to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Window length in milliseconds (> 0).
    pub window_ms: i64,
    /// OBI over the best N levels per side, or the whole book.
    pub obi_levels: Option<usize>,
    /// Bars kept in each rolling window.
    pub max_bars: usize,
}

/// Rows seen, applied and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub book_rows: u64,
    pub trades: u64,
    pub skipped_book_rows: u64,
    pub skipped_trades: u64,
    pub unknown_side_trades: u64,
}

impl Counters {
    /// Rows consumed, applied or skipped.
    pub fn rows(&self) -> u64 {
        self.book_rows + self.trades + self.skipped_book_rows + self.skipped_trades
    }

    pub fn skipped(&self) -> u64 {
        self.skipped_book_rows + self.skipped_trades
    }
}

/// The replay state: book, CVD, bars and counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Engine {
    config: EngineConfig,
    book: Book,
    cvd: Fixed,
    ohlc: Rolling<OhlcBar>,
    metrics: Rolling<MetricBar>,
    counters: Counters,
    /// Market time of the last applied row.
    last_ts: Option<i64>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            config,
            book: Book::new(),
            cvd: Fixed::ZERO,
            ohlc: Rolling::new(config.max_bars),
            metrics: Rolling::new(config.max_bars),
            counters: Counters::default(),
            last_ts: None,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn book(&self) -> &Book {
        &self.book
    }

    pub fn cvd(&self) -> Fixed {
        self.cvd
    }

    pub fn ohlc(&self) -> &Rolling<OhlcBar> {
        &self.ohlc
    }

    pub fn metrics(&self) -> &Rolling<MetricBar> {
        &self.metrics
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn last_ts(&self) -> Option<i64> {
        self.last_ts
    }

    /// Start of the window holding `ts`.
    pub fn window_start(&self, ts: i64) -> i64 {
        ts.div_euclid(self.config.window_ms) * self.config.window_ms
    }

    /// Empties the book (each input file starts from an empty book).
    pub fn reset_book(&mut self) {
        self.book.clear();
    }

    /// Applies one book row (snapshot or partial update) and samples.
    /// Returns the sample: OBI and CVD after the row.
    pub fn apply_book(&mut self, ts: i64, bids: &[Level], asks: &[Level]) -> (f64, Fixed) {
        self.book.apply_all(Side::Bid, bids);
        self.book.apply_all(Side::Ask, asks);
        self.counters.book_rows += 1;
        self.sample(ts)
    }

    /// Applies one trade and samples. Returns the sample: OBI and CVD
    /// after the trade.
    pub fn apply_trade(
        &mut self,
        ts: i64,
        price: Fixed,
        size: Fixed,
        side: TradeSide,
    ) -> (f64, Fixed) {
        let window = self.window_start(ts);
        self.ohlc.upsert_with(
            window,
            || OhlcBar {
                ts: window,
                open: price,
                high: price,
                low: price,
                close: price,
                volume: size,
            },
            |bar| {
                bar.high = bar.high.max(price);
                bar.low = bar.low.min(price);
                bar.close = price;
                bar.volume = bar.volume.saturating_add(size);
            },
            false,
        );
        match side {
            TradeSide::Buy => self.cvd = self.cvd.saturating_add(size),
            TradeSide::Sell => self.cvd = self.cvd.saturating_sub(size),
            TradeSide::Unknown => self.counters.unknown_side_trades += 1,
        }
        self.counters.trades += 1;
        self.sample(ts)
    }

    /// Counts a book row that could not be applied.
    pub fn skip_book_row(&mut self) {
        self.counters.skipped_book_rows += 1;
    }

    /// Counts a trade that could not be applied.
    pub fn skip_trade(&mut self) {
        self.counters.skipped_trades += 1;
    }

    fn sample(&mut self, ts: i64) -> (f64, Fixed) {
        let obi = self.book.imbalance(self.config.obi_levels);
        let cvd = self.cvd;
        let window = self.window_start(ts);
        self.metrics.upsert_with(
            window,
            || MetricBar {
                ts: window,
                obi: Candle::new(obi),
                cvd: Candle::new(cvd),
            },
            |bar| {
                bar.obi.push(obi);
                bar.cvd.push(cvd);
            },
            false,
        );
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
        (obi, cvd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> Fixed {
        Fixed::parse(s).unwrap()
    }

    fn engine(window_ms: i64) -> Engine {
        Engine::new(EngineConfig {
            window_ms,
            obi_levels: None,
            max_bars: 1000,
        })
    }

    #[test]
    fn hand_computed_bars() {
        let mut e = engine(1000);
        // Book: bid 2 @ 100, ask 1 @ 101 → OBI = (2-1)/3.
        e.apply_book(
            500,
            &[Level::new(f("100"), f("2"))],
            &[Level::new(f("101"), f("1"))],
        );
        e.apply_trade(700, f("101"), f("0.5"), TradeSide::Buy); // cvd 0.5
        e.apply_trade(999, f("100"), f("0.25"), TradeSide::Sell); // cvd 0.25
        e.apply_trade(1000, f("102"), f("1"), TradeSide::Unknown); // cvd 0.25, next window
        e.apply_book(1500, &[], &[Level::new(f("101"), f("0"))]); // OBI 1
        let ohlc: Vec<_> = e.ohlc().iter().copied().collect();
        assert_eq!(
            ohlc,
            [
                OhlcBar {
                    ts: 0,
                    open: f("101"),
                    high: f("101"),
                    low: f("100"),
                    close: f("100"),
                    volume: f("0.75")
                },
                OhlcBar {
                    ts: 1000,
                    open: f("102"),
                    high: f("102"),
                    low: f("102"),
                    close: f("102"),
                    volume: f("1")
                },
            ]
        );
        let m: Vec<_> = e.metrics().iter().copied().collect();
        let third = 1.0 / 3.0;
        assert_eq!(m[0].ts, 0);
        assert_eq!(
            m[0].obi,
            Candle {
                open: third,
                high: third,
                low: third,
                close: third
            }
        );
        assert_eq!(
            m[0].cvd,
            Candle {
                open: f("0"),
                high: f("0.5"),
                low: f("0"),
                close: f("0.25")
            }
        );
        assert_eq!(m[1].ts, 1000);
        assert_eq!(
            m[1].obi,
            Candle {
                open: third,
                high: 1.0,
                low: third,
                close: 1.0
            }
        );
        assert_eq!(m[1].cvd, Candle::new(f("0.25")));
        assert_eq!(e.counters().unknown_side_trades, 1);
        assert_eq!(e.counters().rows(), 5);
    }

    #[test]
    fn the_engine_round_trips_through_json_exactly() {
        let mut e = engine(1000);
        e.apply_book(
            5,
            &[Level::new(f("100"), f("3"))],
            &[Level::new(f("101"), f("7"))],
        );
        e.apply_trade(7, f("100.5"), f("0.123"), TradeSide::Sell);
        e.apply_book(1005, &[Level::new(f("99.5"), f("0.3"))], &[]);
        let text = serde_json::to_string(&e).unwrap();
        assert!(
            text.contains("[0,10050000000,"),
            "bars are compact arrays: {text}"
        );
        let back: Engine = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn negative_timestamps_floor_down() {
        let e = engine(60_000);
        assert_eq!(e.window_start(-1), -60_000);
        assert_eq!(e.window_start(59_999), 0);
    }

    proptest! {
        #[test]
        fn bars_are_well_formed_and_volumes_add_up(
            trades in prop::collection::vec((0i64..20_000, 1i64..5_000, 1i64..1_000, 0u8..3), 1..300)
        ) {
            let mut trades = trades;
            trades.sort_by_key(|t| t.0);
            let mut e = Engine::new(EngineConfig { window_ms: 700, obi_levels: None, max_bars: 100_000 });
            let mut total = 0i64;
            let mut cvd = 0i64;
            for &(ts, p, s, side) in &trades {
                let side = [TradeSide::Buy, TradeSide::Sell, TradeSide::Unknown][side as usize];
                e.apply_trade(ts, Fixed::from_raw(p * 1_000_000), Fixed::from_raw(s), side);
                total += s;
                cvd += match side { TradeSide::Buy => s, TradeSide::Sell => -s, TradeSide::Unknown => 0 };
            }
            let mut vol = 0i64;
            for b in e.ohlc().iter() {
                prop_assert!(b.low <= b.open && b.open <= b.high);
                prop_assert!(b.low <= b.close && b.close <= b.high);
                prop_assert_eq!(b.ts % 700, 0);
                vol += b.volume.raw();
            }
            prop_assert_eq!(vol, total);
            prop_assert_eq!(e.cvd().raw(), cvd);
            for m in e.metrics().iter() {
                prop_assert!(m.cvd.low <= m.cvd.open && m.cvd.open <= m.cvd.high);
                prop_assert!(m.cvd.low <= m.cvd.close && m.cvd.close <= m.cvd.high);
            }
            prop_assert_eq!(e.metrics().last().map(|m| m.cvd.close.raw()), Some(cvd));
        }
    }
}
