//! The order book: price levels per side with exact running totals.
//!
//! Each side is a [`SideLevels`]: a price ladder with one slot per tick,
//! so that applying a level is one slot write instead of a binary search
//! and a shift (this is the processor's hot path; see [`super::ladder`]),
//! kept as a sorted array instead when the prices do not fit a ladder.
//! The side also keeps its summed size as an `i128` of raw fixed-point
//! units, updated on every change, so order-book imbalance over the whole
//! book is O(1) per update and exactly equal to a recomputation.
//!
//! The book knows nothing of rows, files or time: it is applied levels and
//! answers queries. [`Book::check_integrity`] recomputes everything it caches.

use super::fixed::Fixed;
use super::ladder::SideLevels;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which side of the book a level belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Bid,
    Ask,
}

/// One price level: price and the total size resting there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub price: Fixed,
    pub size: Fixed,
}

impl Level {
    pub fn new(price: Fixed, size: Fixed) -> Level {
        Level { price, size }
    }
}

/// An L2 order book with exact per-side totals.
///
/// Sides are kept by *key*, which grows towards the best price: the price
/// for bids, its bitwise complement for asks (order-reversing, and unlike
/// negation defined for every `i64`). Two books are equal when they hold
/// the same levels, whatever form their sides are kept in.
#[derive(Clone, Debug, Default)]
pub struct Book {
    bids: SideLevels,
    asks: SideLevels,
}

impl PartialEq for Book {
    fn eq(&self, other: &Book) -> bool {
        self.bids.iter().eq(other.bids.iter()) && self.asks.iter().eq(other.asks.iter())
    }
}

impl Eq for Book {}

impl Book {
    pub fn new() -> Book {
        Book::default()
    }

    /// Sets the size at a price. A size of zero or below removes the level.
    #[inline]
    pub fn apply(&mut self, side: Side, level: Level) {
        let Level { price, size } = level;
        match side {
            Side::Bid => self.bids.set(price.raw(), size.raw()),
            Side::Ask => self.asks.set(!price.raw(), size.raw()),
        }
    }

    /// Applies a batch of levels to one side, in order.
    pub fn apply_all(&mut self, side: Side, levels: &[Level]) {
        match side {
            Side::Bid => {
                for l in levels {
                    self.bids.set(l.price.raw(), l.size.raw());
                }
            }
            Side::Ask => {
                for l in levels {
                    self.asks.set(!l.price.raw(), l.size.raw());
                }
            }
        }
    }

    /// Removes every level.
    pub fn clear(&mut self) {
        *self = Book::default();
    }

    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids().next()
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks().next()
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids
            .iter()
            .map(|(k, s)| Level::new(Fixed::from_raw(k), Fixed::from_raw(s)))
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks
            .iter()
            .map(|(k, s)| Level::new(Fixed::from_raw(!k), Fixed::from_raw(s)))
    }

    /// Summed raw size of the bids and of the asks, over the best `levels`
    /// per side, or the whole book when `None`.
    pub fn totals(&self, levels: Option<usize>) -> (i128, i128) {
        match levels {
            None => (self.bids.total(), self.asks.total()),
            Some(n) => (
                self.bids.iter().take(n).map(|l| l.1 as i128).sum(),
                self.asks.iter().take(n).map(|l| l.1 as i128).sum(),
            ),
        }
    }

    /// Order-book imbalance `(B − A) / (B + A)`, 0 for an empty book.
    pub fn imbalance(&self, levels: Option<usize>) -> f64 {
        let (b, a) = self.totals(levels);
        imbalance_of(b, a)
    }

    /// Recomputes every cached total and checks every stored size is
    /// positive and the levels are in order. `Err` names the first
    /// inconsistency.
    pub fn check_integrity(&self) -> Result<(), String> {
        self.bids.check().map_err(|e| format!("bids: {e}"))?;
        self.asks.check().map_err(|e| format!("asks: {e}"))
    }

    /// Whether both sides are kept as price ladders (the fast form).
    pub fn is_ladder(&self) -> bool {
        self.bids.is_ladder() && self.asks.is_ladder()
    }
}

/// `(b − a) / (b + a)` from exact sums, 0 when both are 0.
pub fn imbalance_of(b: i128, a: i128) -> f64 {
    let (diff, sum) = (b - a, b + a);
    if sum == 0 {
        return 0.0;
    }
    // Both conversions round the same integer correctly either way; the
    // i64 one is a single instruction, the i128 one a library call, and
    // this runs on every row.
    match (i64::try_from(diff), i64::try_from(sum)) {
        (Ok(d), Ok(s)) => d as f64 / s as f64,
        _ => diff as f64 / sum as f64,
    }
}

/// The book as stored in a checkpoint: each side best first, as raw pairs.
#[derive(Serialize, Deserialize)]
struct BookRepr {
    bids: Vec<(Fixed, Fixed)>,
    asks: Vec<(Fixed, Fixed)>,
}

impl Serialize for Book {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        BookRepr {
            bids: self.bids().map(|l| (l.price, l.size)).collect(),
            asks: self.asks().map(|l| (l.price, l.size)).collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Book {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Book, D::Error> {
        let repr = BookRepr::deserialize(deserializer)?;
        let mut book = Book::new();
        for (price, size) in repr.bids {
            book.apply(Side::Bid, Level::new(price, size));
        }
        for (price, size) in repr.asks {
            book.apply(Side::Ask, Level::new(price, size));
        }
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn lv(p: i64, s: i64) -> Level {
        Level::new(Fixed::from_int(p), Fixed::from_int(s))
    }

    #[test]
    fn sides_are_best_first_and_zero_deletes() {
        let mut book = Book::new();
        book.apply_all(Side::Bid, &[lv(100, 1), lv(102, 2), lv(101, 3)]);
        book.apply_all(Side::Ask, &[lv(105, 1), lv(103, 2), lv(104, 3)]);
        let bids: Vec<i64> = book.bids().map(|l| l.price.raw() / 100_000_000).collect();
        let asks: Vec<i64> = book.asks().map(|l| l.price.raw() / 100_000_000).collect();
        assert_eq!(bids, [102, 101, 100]);
        assert_eq!(asks, [103, 104, 105]);
        book.apply(Side::Bid, lv(102, 0));
        book.apply(
            Side::Ask,
            Level::new(Fixed::from_int(103), Fixed::from_int(-1)),
        );
        assert_eq!(book.best_bid(), Some(lv(101, 3)));
        assert_eq!(book.best_ask(), Some(lv(104, 3)));
        // 4 on the bid side, 4 on the ask side.
        assert_eq!(book.imbalance(None), 0.0);
        assert_eq!(book.imbalance(Some(1)), 0.0);
        book.apply(Side::Bid, lv(101, 5));
        // B = 6, A = 4 → 0.2
        assert_eq!(book.imbalance(None), 0.2);
        // best one: B = 5, A = 3 → 0.25
        assert_eq!(book.imbalance(Some(1)), 0.25);
        book.check_integrity().unwrap();
    }

    #[test]
    fn empty_book_has_zero_imbalance() {
        assert_eq!(Book::new().imbalance(None), 0.0);
        assert_eq!(Book::new().imbalance(Some(5)), 0.0);
    }

    #[test]
    fn serde_round_trip_keeps_totals() {
        let mut book = Book::new();
        book.apply_all(Side::Bid, &[lv(100, 1), lv(99, 2)]);
        book.apply_all(Side::Ask, &[lv(101, 7)]);
        let text = serde_json::to_string(&book).unwrap();
        let back: Book = serde_json::from_str(&text).unwrap();
        assert_eq!(back, book);
        back.check_integrity().unwrap();
    }

    fn update() -> impl Strategy<Value = (bool, i64, i64)> {
        // Few prices so updates collide, sizes including zero and negative.
        (any::<bool>(), 1i64..40, -3i64..20)
    }

    proptest! {
        #[test]
        fn book_matches_naive_model(updates in prop::collection::vec(update(), 0..400), n in 1usize..8) {
            let mut book = Book::new();
            let mut model: [HashMap<i64, i64>; 2] = [HashMap::new(), HashMap::new()];
            for (is_bid, price, size) in updates {
                let side = if is_bid { Side::Bid } else { Side::Ask };
                let raw_size = size * 12_345_678;
                book.apply(side, Level::new(Fixed::from_raw(price * 1000), Fixed::from_raw(raw_size)));
                let m = &mut model[is_bid as usize];
                if raw_size > 0 { m.insert(price * 1000, raw_size); } else { m.remove(&(price * 1000)); }
            }
            book.check_integrity().map_err(TestCaseError::fail)?;
            let mut bids: Vec<(i64, i64)> = model[1].iter().map(|(p, s)| (*p, *s)).collect();
            bids.sort_by_key(|x| std::cmp::Reverse(x.0));
            let mut asks: Vec<(i64, i64)> = model[0].iter().map(|(p, s)| (*p, *s)).collect();
            asks.sort();
            let got_b: Vec<(i64, i64)> = book.bids().map(|l| (l.price.raw(), l.size.raw())).collect();
            let got_a: Vec<(i64, i64)> = book.asks().map(|l| (l.price.raw(), l.size.raw())).collect();
            prop_assert_eq!(&got_b, &bids);
            prop_assert_eq!(&got_a, &asks);
            // Incremental OBI equals a fresh recomputation, exactly.
            let b: i128 = bids.iter().map(|x| x.1 as i128).sum();
            let a: i128 = asks.iter().map(|x| x.1 as i128).sum();
            prop_assert_eq!(book.imbalance(None).to_bits(), imbalance_of(b, a).to_bits());
            let bn: i128 = bids.iter().take(n).map(|x| x.1 as i128).sum();
            let an: i128 = asks.iter().take(n).map(|x| x.1 as i128).sum();
            prop_assert_eq!(book.imbalance(Some(n)).to_bits(), imbalance_of(bn, an).to_bits());
        }

        /// The i64 shortcut gives the same bits as converting the i128s.
        #[test]
        fn imbalance_is_the_correctly_rounded_ratio(
            b in 0i128..(1i128 << 70), a in 0i128..(1i128 << 70), small in proptest::bool::ANY,
        ) {
            let (b, a) = if small { (b >> 20, a >> 20) } else { (b, a) };
            prop_assume!(a + b > 0);
            prop_assert_eq!(imbalance_of(b, a).to_bits(), ((b - a) as f64 / (b + a) as f64).to_bits());
        }
    }

    #[test]
    fn a_million_updates_do_not_drift() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut book = Book::new();
        for _ in 0..1_000_000 {
            let side = if rng.gen_bool(0.5) {
                Side::Bid
            } else {
                Side::Ask
            };
            let price = Fixed::from_raw(rng.gen_range(1..2_000) * 10_000_000);
            let size = Fixed::from_raw(rng.gen_range(-20_000_000..300_000_000));
            book.apply(side, Level::new(price, size));
        }
        book.check_integrity().unwrap();
        let b: i128 = book.bids().map(|l| l.size.raw() as i128).sum();
        let a: i128 = book.asks().map(|l| l.size.raw() as i128).sum();
        assert_eq!(book.imbalance(None).to_bits(), imbalance_of(b, a).to_bits());
    }
}
