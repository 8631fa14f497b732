//! One side of the order book, as a price ladder.
//!
//! A book update names a price; finding that price in a sorted array is a
//! binary search whose steps each wait on the previous load (about ten of
//! them for a few hundred levels), and inserting or deleting a level then
//! shifts the array. Exchange prices sit on a tick grid, so this side
//! instead keeps one slot per tick between its far and best levels: the
//! slot of a price is `(key − base) / tick`, found with one multiplication
//! by the tick's reciprocal and checked exactly with integers, and an
//! insert or delete writes one slot. Empty slots hold size 0.
//!
//! Prices are handled as *keys* that grow towards the best price: the
//! price itself for bids, its bitwise complement `!price` for asks (which
//! reverses the order and never overflows). The best level is the highest
//! key, the last non-empty slot.
//!
//! The tick is learnt from the data: the greatest common divisor of the
//! distances between the prices seen. A price off the grid refines it
//! (the ladder is rebuilt on the finer grid). A side whose ladder would
//! need more than [`MAX_SLOTS`] slots (a far outlier, prices without a
//! common tick) is kept as a sorted array instead, as the book always was
//! before: correct for any prices, slower per update. Both forms answer
//! the same queries with the same results.

/// Slots beyond which a side is kept as a sorted array: 512 KB of sizes.
pub const MAX_SLOTS: usize = 1 << 16;

/// Slack added in front of the ladder when it grows downwards, at least.
const MIN_SLACK: usize = 16;

/// One side of the book in key space (best = highest key), with the sum of
/// its sizes.
#[derive(Clone, Debug)]
pub struct SideLevels {
    repr: Repr,
    /// Sum of the raw sizes, exact.
    total: i128,
}

#[derive(Clone, Debug)]
enum Repr {
    Ladder(Ladder),
    /// Ascending by key (the best last), sizes positive.
    Sorted(Vec<(i64, i64)>),
}

/// The slots `start..` of `slots` are the side, from its far level
/// (`slots[start]`) to its best (`slots.last()`), both non-empty unless the
/// side is empty (then `slots` is empty). Slots before `start` are empty
/// room to grow into. Slot `i` is key `base + i × tick`, and the key of
/// the last slot fits an `i64`.
#[derive(Clone, Debug)]
struct Ladder {
    /// Grid step in raw units; 0 until two different keys were seen.
    tick: i64,
    /// `1 / tick`, for the estimate of a slot.
    inv_tick: f64,
    base: i64,
    slots: Vec<i64>,
    start: usize,
    /// Non-empty slots.
    levels: usize,
}

impl Default for SideLevels {
    fn default() -> SideLevels {
        SideLevels {
            repr: Repr::Ladder(Ladder {
                tick: 0,
                inv_tick: 0.0,
                base: 0,
                slots: Vec::new(),
                start: 0,
                levels: 0,
            }),
            total: 0,
        }
    }
}

impl SideLevels {
    /// Sets the size at `key`; a size of zero or below removes the level.
    #[inline]
    pub fn set(&mut self, key: i64, size: i64) {
        match &mut self.repr {
            Repr::Ladder(l) => {
                if let Some(i) = l.slot_of(key) {
                    let old = l.slots[i];
                    if size > 0 {
                        l.slots[i] = size;
                        l.levels += usize::from(old == 0);
                        self.total += size as i128 - old as i128;
                    } else if old != 0 {
                        l.slots[i] = 0;
                        l.levels -= 1;
                        self.total -= old as i128;
                        l.trim(i);
                    }
                } else if size > 0 {
                    self.insert_outside(key, size);
                }
                // A removal of a key with no slot: there is no such level.
            }
            Repr::Sorted(v) => {
                let total = &mut self.total;
                match v.binary_search_by(|e| e.0.cmp(&key)) {
                    Ok(i) => {
                        *total -= v[i].1 as i128;
                        if size > 0 {
                            v[i].1 = size;
                            *total += size as i128;
                        } else {
                            v.remove(i);
                        }
                    }
                    Err(i) => {
                        if size > 0 {
                            v.insert(i, (key, size));
                            *total += size as i128;
                        }
                    }
                }
            }
        }
    }

    /// A new level at a key the ladder has no slot for: below or above
    /// it, or off its grid.
    #[cold]
    #[inline(never)]
    fn insert_outside(&mut self, key: i64, size: i64) {
        let Repr::Ladder(l) = &mut self.repr else {
            return;
        };
        if l.levels == 0 {
            l.slots.clear();
            l.slots.push(size);
            l.base = key;
            l.start = 0;
            l.levels = 1;
            self.total += size as i128;
            return;
        }
        let diff = key as i128 - l.base as i128;
        let tick = l.tick as i128;
        if tick == 0 || diff % tick != 0 {
            // Off the grid (or the second key ever): a finer tick.
            let tick = gcd(tick.unsigned_abs(), diff.unsigned_abs());
            self.rebuild(tick, Some((key, size)));
            return;
        }
        let index = diff / tick;
        let len = l.slots.len() as i128;
        let first = l.start as i128;
        let (lowest, highest) = (index.min(first), index.max(len - 1));
        if highest - lowest + 1 > MAX_SLOTS as i128 {
            self.make_sorted(Some((key, size)));
            return;
        }
        if index >= first && index < len {
            // A slot it has (never reached: `slot_of` finds every one).
            let i = index as usize;
            let old = l.slots[i];
            l.slots[i] = size;
            l.levels += usize::from(old == 0);
            self.total += size as i128 - old as i128;
            return;
        }
        if index >= len {
            // Above the best: a new best.
            l.slots.resize(index as usize + 1, 0);
            l.slots[index as usize] = size;
        } else if index >= 0 {
            // In the room below the far level.
            l.slots[index as usize] = size;
            l.start = index as usize;
        } else {
            // Below the room: make more, half the side again at least.
            let active = l.slots.len() - l.start;
            let slack = (active / 2).max(MIN_SLACK);
            let missing = (-index) as usize;
            let new_base = key as i128 - (slack as i128) * tick;
            let (slack, new_base) = if new_base < i64::MIN as i128 {
                (0, key as i128)
            } else {
                (slack, new_base)
            };
            let mut slots = Vec::with_capacity(slack + missing + l.slots.len());
            slots.resize(slack, 0);
            slots.push(size);
            slots.resize(slack + missing, 0);
            slots.extend_from_slice(&l.slots);
            l.slots = slots;
            l.base = new_base as i64;
            l.start = slack;
        }
        l.levels += 1;
        self.total += size as i128;
    }

    /// The side again on a grid of `tick`, with `extra` added: a ladder
    /// if it fits in [`MAX_SLOTS`], else a sorted array.
    fn rebuild(&mut self, tick: u128, extra: Option<(i64, i64)>) {
        let levels: Vec<(i64, i64)> = self.iter().chain(extra).collect();
        let (Some(lo), Some(hi)) = (
            levels.iter().map(|l| l.0).min(),
            levels.iter().map(|l| l.0).max(),
        ) else {
            *self = SideLevels::default();
            return;
        };
        let span = (hi as i128 - lo as i128) as u128;
        let tick = match i64::try_from(tick) {
            Ok(t) if t > 0 && span / (t as u128) < MAX_SLOTS as u128 => t,
            _ => return self.make_sorted(extra),
        };
        let mut slots = vec![0i64; (span / tick as u128) as usize + 1];
        for &(key, size) in &levels {
            slots[((key as i128 - lo as i128) / tick as i128) as usize] = size;
        }
        self.total = levels.iter().map(|l| l.1 as i128).sum();
        self.repr = Repr::Ladder(Ladder {
            tick,
            inv_tick: 1.0 / tick as f64,
            base: lo,
            slots,
            start: 0,
            levels: levels.len(),
        });
    }

    /// Keeps the side as a sorted array from now on (until cleared).
    fn make_sorted(&mut self, extra: Option<(i64, i64)>) {
        let mut levels: Vec<(i64, i64)> = self.iter().collect();
        levels.reverse();
        self.repr = Repr::Sorted(levels);
        if let Some((key, size)) = extra {
            self.set(key, size);
        }
    }

    /// The levels, best (highest key) first: `(key, size)`.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Ladder(l) => Iter::Ladder {
                slots: &l.slots[l.start.min(l.slots.len())..],
                first_key: l.base.wrapping_add((l.start as i64).wrapping_mul(l.tick)),
                tick: l.tick,
            },
            Repr::Sorted(v) => Iter::Sorted(v.iter()),
        }
    }

    /// Sum of the sizes, exact.
    pub fn total(&self) -> i128 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Ladder(l) => l.levels == 0,
            Repr::Sorted(v) => v.is_empty(),
        }
    }

    /// Whether the side is kept as a ladder (for tests and profiles).
    pub fn is_ladder(&self) -> bool {
        matches!(self.repr, Repr::Ladder(_))
    }

    /// Recomputes what is cached and checks the form's invariants.
    pub fn check(&self) -> Result<(), String> {
        let sum: i128 = self.iter().map(|l| l.1 as i128).sum();
        if sum != self.total {
            return Err(format!("total {} != recomputed {sum}", self.total));
        }
        if let Some(l) = self.iter().find(|l| l.1 <= 0) {
            return Err(format!("level {} has size {}", l.0, l.1));
        }
        let keys: Vec<i64> = self.iter().map(|l| l.0).collect();
        if !keys.windows(2).all(|w| w[0] > w[1]) {
            return Err("levels are out of order".to_string());
        }
        if let Repr::Ladder(l) = &self.repr {
            let live = l.slots.iter().filter(|&&s| s != 0).count();
            if live != l.levels
                || l.slots[..l.start.min(l.slots.len())]
                    .iter()
                    .any(|&s| s != 0)
            {
                return Err("ladder level count or room is wrong".to_string());
            }
            if !l.slots.is_empty() && (l.slots[l.start] == 0 || l.slots.last() == Some(&0)) {
                return Err("ladder ends are empty slots".to_string());
            }
        }
        Ok(())
    }
}

impl Ladder {
    /// The slot holding `key`, if the ladder has one (in `start..`).
    #[inline(always)]
    fn slot_of(&self, key: i64) -> Option<usize> {
        let diff = key.wrapping_sub(self.base);
        // Rounded estimate (truncating after + 0.5); exact for any key on
        // the grid within 2^50 ticks of the base, and checked below anyway.
        let estimate = (diff as f64 * self.inv_tick + 0.5) as i64 as usize;
        let i = estimate;
        if i >= self.start
            && i < self.slots.len()
            && self.base.wrapping_add((i as i64).wrapping_mul(self.tick)) == key
        {
            Some(i)
        } else {
            None
        }
    }

    /// After slot `i` was emptied: drops empty slots at the best end and
    /// skips them at the far end, and gives back room that grew too large.
    #[inline]
    fn trim(&mut self, i: usize) {
        if self.levels == 0 {
            self.slots.clear();
            self.start = 0;
            return;
        }
        if i + 1 == self.slots.len() {
            while self.slots.last() == Some(&0) {
                self.slots.pop();
            }
        }
        if i == self.start {
            while self.slots[self.start] == 0 {
                self.start += 1;
            }
            let active = self.slots.len() - self.start;
            if self.start > MIN_SLACK + 2 * active {
                // As the price drifts the far end keeps moving: keep a
                // little room, give back the rest.
                let drop = self.start - MIN_SLACK;
                self.slots.drain(..drop);
                self.start -= drop;
                self.base = self
                    .base
                    .wrapping_add((drop as i64).wrapping_mul(self.tick));
            }
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Levels of a side, best first, as `(key, size)`.
pub enum Iter<'a> {
    Ladder {
        /// The side's slots, far level first; taken from the back.
        slots: &'a [i64],
        /// Key of `slots[0]`.
        first_key: i64,
        tick: i64,
    },
    Sorted(std::slice::Iter<'a, (i64, i64)>),
}

impl Iterator for Iter<'_> {
    type Item = (i64, i64);

    #[inline]
    fn next(&mut self) -> Option<(i64, i64)> {
        match self {
            Iter::Ladder {
                slots,
                first_key,
                tick,
            } => loop {
                let (&size, rest) = slots.split_last()?;
                let i = rest.len();
                *slots = rest;
                if size != 0 {
                    return Some((first_key.wrapping_add((i as i64).wrapping_mul(*tick)), size));
                }
            },
            Iter::Sorted(it) => it.next_back().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn check_against(side: &SideLevels, model: &BTreeMap<i64, i64>) -> Result<(), TestCaseError> {
        side.check().map_err(TestCaseError::fail)?;
        let want: Vec<(i64, i64)> = model.iter().rev().map(|(k, s)| (*k, *s)).collect();
        let got: Vec<(i64, i64)> = side.iter().collect();
        prop_assert_eq!(got, want);
        let total: i128 = model.values().map(|&s| s as i128).sum();
        prop_assert_eq!(side.total(), total);
        prop_assert_eq!(side.is_empty(), model.is_empty());
        Ok(())
    }

    fn key() -> impl Strategy<Value = i64> {
        prop_oneof![
            // On a grid near a price, as exchanges send them.
            8 => (2_990_000i64..3_010_000).prop_map(|t| t * 1_000_000),
            // Off that grid, far away, at the extremes.
            1 => any::<i64>(),
            1 => prop::sample::select(vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX]),
        ]
    }

    proptest! {
        /// The side matches a plain ordered map after any updates, in
        /// whichever form it ends up.
        #[test]
        fn matches_an_ordered_map(updates in prop::collection::vec((key(), -3i64..50), 0..300)) {
            let mut side = SideLevels::default();
            let mut model = BTreeMap::new();
            for (key, size) in updates {
                side.set(key, size);
                if size > 0 { model.insert(key, size); } else { model.remove(&key); }
                check_against(&side, &model)?;
            }
        }

        /// Prices wandering on one grid (a drifting mid, levels added and
        /// removed at both ends) keep the side a ladder.
        #[test]
        fn a_wandering_grid_stays_a_ladder(steps in prop::collection::vec((-5i64..6, 0i64..60, 0i64..4), 1..2000)) {
            let mut side = SideLevels::default();
            let mut model = BTreeMap::new();
            let mut mid = 1_000_000i64;
            for (step, off, size) in steps {
                mid += step;
                let key = (mid - off) * 10;
                side.set(key, size);
                if size > 0 { model.insert(key, size); } else { model.remove(&key); }
                // The far end goes, as the book's depth limit removes it.
                if model.len() > 40 {
                    if let Some((&far, _)) = model.iter().next() {
                        side.set(far, 0);
                        model.remove(&far);
                    }
                }
            }
            check_against(&side, &model)?;
            prop_assert!(side.is_ladder());
        }
    }

    #[test]
    fn a_far_outlier_makes_a_sorted_array_with_the_same_answers() {
        let mut side = SideLevels::default();
        side.set(3_000_000, 5);
        side.set(3_000_010, 7);
        assert!(side.is_ladder());
        side.set(10 * MAX_SLOTS as i64 * 10 + 3_000_000, 1);
        assert!(!side.is_ladder());
        assert_eq!(
            side.iter().collect::<Vec<_>>(),
            [
                (10 * MAX_SLOTS as i64 * 10 + 3_000_000, 1),
                (3_000_010, 7),
                (3_000_000, 5)
            ]
        );
        assert_eq!(side.total(), 13);
        side.check().unwrap();
    }

    #[test]
    fn an_off_grid_price_refines_the_tick() {
        let mut side = SideLevels::default();
        side.set(1000, 1);
        side.set(1100, 2);
        side.set(1030, 3);
        side.set(1100, 0);
        assert!(side.is_ladder());
        assert_eq!(side.iter().collect::<Vec<_>>(), [(1030, 3), (1000, 1)]);
        side.check().unwrap();
    }
}
