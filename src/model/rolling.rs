//! A rolling window of bars ordered by timestamp, capped at `max_bars`.
//!
//! This is the one place that implements "upsert by timestamp": an update to
//! an existing bar replaces it, a newer bar appends (dropping the oldest when
//! full), an older bar is inserted in order (or dropped if it is older than
//! everything in a full window). The processor's exact bars and the
//! [`crate::ipc::VizWriter`]'s published rows both use it.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Anything with a window-start timestamp in Unix milliseconds.
pub trait Timestamped {
    fn ts(&self) -> i64;
}

/// Bars oldest first, at most `cap` of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rolling<T> {
    cap: usize,
    items: VecDeque<T>,
}

impl<T: Timestamped> Rolling<T> {
    /// A window holding at most `cap` bars (at least one).
    pub fn new(cap: usize) -> Rolling<T> {
        Rolling {
            cap: cap.max(1),
            items: VecDeque::new(),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> + DoubleEndedIterator {
        self.items.iter()
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Appends `item` as a new bar. Same as [`Rolling::upsert`]; kept as its
    /// own name for the writer API's `add`.
    pub fn add(&mut self, item: T) {
        self.upsert(item);
    }

    /// Replaces the bar with the same timestamp, or inserts it in order.
    pub fn upsert(&mut self, item: T) {
        let ts = item.ts();
        self.upsert_with(ts, || item, |_| {}, true);
    }

    /// Finds the bar at `ts` and updates it with `update`, or inserts the
    /// bar made by `new` (whose timestamp must be `ts`). With `replace`,
    /// an existing bar is overwritten by `new()` instead of updated.
    pub fn upsert_with(
        &mut self,
        ts: i64,
        new: impl FnOnce() -> T,
        update: impl FnOnce(&mut T),
        replace: bool,
    ) {
        // Fast path: the newest bar, or a newer one.
        match self.items.back_mut() {
            Some(last) if last.ts() == ts => {
                if replace {
                    *last = new();
                } else {
                    update(last);
                }
                return;
            }
            Some(last) if last.ts() > ts => {}
            _ => {
                if self.items.len() == self.cap {
                    self.items.pop_front();
                }
                self.items.push_back(new());
                return;
            }
        }
        match self.items.binary_search_by_key(&ts, |b| b.ts()) {
            Ok(i) => {
                if replace {
                    self.items[i] = new();
                } else {
                    update(&mut self.items[i]);
                }
            }
            Err(0) if self.items.len() == self.cap => {}
            Err(i) => {
                self.items.insert(i, new());
                if self.items.len() > self.cap {
                    self.items.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct B(i64, u32);
    impl Timestamped for B {
        fn ts(&self) -> i64 {
            self.0
        }
    }

    fn ts(r: &Rolling<B>) -> Vec<i64> {
        r.iter().map(|b| b.0).collect()
    }

    #[test]
    fn upsert_replaces_appends_and_rolls() {
        let mut r = Rolling::new(3);
        r.upsert(B(10, 1));
        r.upsert(B(20, 1));
        r.upsert(B(20, 2));
        assert_eq!(r.last(), Some(&B(20, 2)));
        r.upsert(B(30, 1));
        r.upsert(B(40, 1));
        assert_eq!(ts(&r), [20, 30, 40]);
        // Older than a full window: dropped.
        r.upsert(B(5, 1));
        assert_eq!(ts(&r), [20, 30, 40]);
        // In between: inserted in order, oldest dropped.
        r.upsert(B(35, 1));
        assert_eq!(ts(&r), [30, 35, 40]);
        r.upsert(B(30, 9));
        assert_eq!(r.iter().next(), Some(&B(30, 9)));
    }

    #[test]
    fn upsert_with_updates_in_place() {
        let mut r = Rolling::new(2);
        r.upsert_with(10, || B(10, 1), |b| b.1 += 1, false);
        r.upsert_with(10, || B(10, 1), |b| b.1 += 1, false);
        assert_eq!(r.last(), Some(&B(10, 2)));
        assert_eq!(Rolling::<B>::new(0).cap(), 1);
    }
}
