//! A deterministic generator of realistic capture files, for tests, the
//! demo and the benchmark.
//!
//! Each call writes one SQLite file in the capture schema (spec §2) for one
//! UTC day: a snapshot of `levels_per_side` levels per side, then partial
//! updates touching 5–40 levels several times a second (size changes,
//! deletions, new levels, and the levels a moving mid price crosses), and
//! trades at the touch. The same [`SynthConfig`] always gives the same
//! bytes of level text and the same rows, whatever the machine, because the
//! random stream is ChaCha8 from a fixed seed and all numbers are
//! [`Fixed`].

use crate::model::{Book, Fixed, Level, Side};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

/// How level text is written, one per form the spec accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelFormat {
    /// `[["30247.5","0.1","0","3"], …]`, as OKX sends it.
    OkxStrings,
    /// `[[30247.5, 0.1], …]`.
    JsonNumbers,
    /// `[(30247.5, 0.1, 0, 1), …]`, a Python literal.
    Python,
    /// `[{"price": 30247.5, "size": 0.1}, …]`.
    Objects,
    /// `[{"p": "30247.5", "s": "0.1"}, …]`.
    ShortObjects,
}

impl LevelFormat {
    pub const ALL: [LevelFormat; 5] = [
        LevelFormat::OkxStrings,
        LevelFormat::JsonNumbers,
        LevelFormat::Python,
        LevelFormat::Objects,
        LevelFormat::ShortObjects,
    ];
}

/// What to generate for one file.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// First row's market time, Unix ms.
    pub start_ms: i64,
    /// Length of the data, ms.
    pub duration_ms: i64,
    /// Book rows per second (on average).
    pub book_per_second: f64,
    /// Trades per second (on average).
    pub trades_per_second: f64,
    /// Levels per side in the snapshot.
    pub levels_per_side: usize,
    /// Price of the first mid, and the tick size.
    pub mid: Fixed,
    pub tick: Fixed,
    pub format: LevelFormat,
    pub seed: u64,
}

impl SynthConfig {
    /// A BTC-like market starting at `start_ms` for `duration_ms`.
    pub fn new(start_ms: i64, duration_ms: i64) -> SynthConfig {
        SynthConfig {
            start_ms,
            duration_ms,
            book_per_second: 10.0,
            trades_per_second: 5.0,
            levels_per_side: 400,
            mid: Fixed::from_int(30_000),
            tick: Fixed::from_raw(10_000_000),
            format: LevelFormat::OkxStrings,
            seed: 1,
        }
    }
}

/// What a generated file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynthSummary {
    pub book_rows: u64,
    pub trades: u64,
    pub last_ts: i64,
}

/// Errors writing a generated file.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot write generated data to {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes one capture file at `path` (replacing any file there).
pub fn write_file(path: &Path, config: &SynthConfig) -> Result<SynthSummary, SynthError> {
    let io = |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let sql = |source| SynthError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let summary = {
        let mut conn = Connection::open(&tmp).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
             CREATE TABLE book(id INTEGER PRIMARY KEY, bids TEXT NOT NULL, asks TEXT NOT NULL, timestamp INTEGER NOT NULL);
             CREATE TABLE trades(id INTEGER PRIMARY KEY, trade_id REAL NOT NULL, price REAL NOT NULL,
                                 size REAL NOT NULL, side TEXT NOT NULL, timestamp INTEGER NOT NULL);",
        )
        .map_err(sql)?;
        let tx = conn.transaction().map_err(sql)?;
        let summary = Generator::new(config).run(&tx).map_err(sql)?;
        tx.commit().map_err(sql)?;
        summary
    };
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(summary)
}

/// Writes `days` files named `INSTRUMENT-YYYY-MM-DD.db` under `dir`, each
/// covering `hours` hours from midnight UTC of its day, starting at
/// `first_day`. Files that already exist are kept (generation is
/// deterministic, so they would be the same).
pub fn write_days(
    dir: &Path,
    instrument: &str,
    first_day: chrono::NaiveDate,
    days: u32,
    hours: f64,
    template: &SynthConfig,
) -> Result<Vec<PathBuf>, SynthError> {
    let mut paths = Vec::new();
    for d in 0..days {
        let day = first_day + chrono::Days::new(d as u64);
        let path = dir.join(format!("{instrument}-{}.db", day.format("%Y-%m-%d")));
        if !path.exists() {
            let mut config = template.clone();
            config.start_ms = day_start_ms(day);
            config.duration_ms = (hours * 3_600_000.0) as i64;
            config.seed = template.seed.wrapping_add(d as u64);
            write_file(&path, &config)?;
        }
        paths.push(path);
    }
    Ok(paths)
}

pub use crate::model::day_start_ms;

struct Generator<'a> {
    config: &'a SynthConfig,
    rng: ChaCha8Rng,
    book: Book,
    /// Mid price in ticks.
    mid: i64,
}

impl<'a> Generator<'a> {
    fn new(config: &'a SynthConfig) -> Generator<'a> {
        let tick = config.tick.raw().max(1);
        Generator {
            config,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            book: Book::new(),
            mid: config.mid.raw() / tick,
        }
    }

    fn price(&self, ticks: i64) -> Fixed {
        Fixed::from_raw(ticks * self.config.tick.raw().max(1))
    }

    fn size(&mut self) -> Fixed {
        // 0.001 .. ~5, skewed small, in lots of 0.001.
        let lots: i64 = if self.rng.gen_bool(0.8) {
            self.rng.gen_range(1..500)
        } else {
            self.rng.gen_range(500..5_000)
        };
        Fixed::from_raw(lots * 100_000)
    }

    fn run(mut self, tx: &rusqlite::Transaction) -> rusqlite::Result<SynthSummary> {
        let mut book_stmt =
            tx.prepare("INSERT INTO book(bids, asks, timestamp) VALUES (?1, ?2, ?3)")?;
        let mut trade_stmt =
            tx.prepare("INSERT INTO trades(trade_id, price, size, side, timestamp) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let c = self.config;
        let end = c.start_ms + c.duration_ms;
        let book_gap = (1000.0 / c.book_per_second.max(0.001)).max(1.0);
        let trade_gap = (1000.0 / c.trades_per_second.max(0.001)).max(1.0);
        let mut summary = SynthSummary::default();

        // Snapshot.
        let (bids, asks) = self.snapshot();
        book_stmt.execute(params![self.text(&bids), self.text(&asks), c.start_ms])?;
        summary.book_rows += 1;
        summary.last_ts = c.start_ms;

        let mut next_book = c.start_ms as f64 + self.gap(book_gap);
        let mut next_trade = c.start_ms as f64 + self.gap(trade_gap);
        let mut trade_id = 1_000_000.0;
        while next_book < end as f64 || next_trade < end as f64 {
            if next_book <= next_trade {
                let ts = next_book as i64;
                let (bids, asks) = self.update();
                book_stmt.execute(params![self.text(&bids), self.text(&asks), ts])?;
                summary.book_rows += 1;
                summary.last_ts = ts;
                next_book += self.gap(book_gap);
            } else {
                let ts = next_trade as i64;
                let buy = self.rng.gen_bool(0.5);
                let touch = if buy {
                    self.book.best_ask()
                } else {
                    self.book.best_bid()
                };
                let price = touch.map_or(self.price(self.mid), |l| l.price);
                let size = self.size();
                trade_id += 1.0;
                trade_stmt.execute(params![
                    trade_id,
                    price.to_f64(),
                    size.to_f64(),
                    if buy { "buy" } else { "sell" },
                    ts
                ])?;
                summary.trades += 1;
                summary.last_ts = summary.last_ts.max(ts);
                next_trade += self.gap(trade_gap);
            }
        }
        Ok(summary)
    }

    /// An exponential-ish gap around `mean` ms.
    fn gap(&mut self, mean: f64) -> f64 {
        let u: f64 = self.rng.gen_range(0.05..1.0);
        (-u.ln() * mean).clamp(1.0, mean * 6.0)
    }

    fn snapshot(&mut self) -> (Vec<Level>, Vec<Level>) {
        let mut bids = Vec::new();
        let mut asks = Vec::new();
        for i in 0..self.config.levels_per_side as i64 {
            let b = Level::new(self.price(self.mid - 1 - i), self.size());
            let a = Level::new(self.price(self.mid + 1 + i), self.size());
            bids.push(b);
            asks.push(a);
        }
        self.book.apply_all(Side::Bid, &bids);
        self.book.apply_all(Side::Ask, &asks);
        (bids, asks)
    }

    fn update(&mut self) -> (Vec<Level>, Vec<Level>) {
        let mut bids = Vec::new();
        let mut asks = Vec::new();
        // The mid wanders; levels it crosses are deleted.
        if self.rng.gen_bool(0.3) {
            self.mid += self.rng.gen_range(-3..=3);
            let (mid, book) = (self.mid, &self.book);
            let mid_px = self.price(mid);
            for l in book.bids().take_while(|l| l.price >= mid_px) {
                bids.push(Level::new(l.price, Fixed::ZERO));
            }
            for l in book.asks().take_while(|l| l.price <= mid_px) {
                asks.push(Level::new(l.price, Fixed::ZERO));
            }
        }
        let touched = self.rng.gen_range(5..=40);
        let depth = self.config.levels_per_side as f64;
        for _ in 0..touched {
            let bid = self.rng.gen_bool(0.5);
            // Mostly near the touch.
            let u: f64 = self.rng.gen_range(0.0..1.0);
            let off = 1 + (u * u * u * depth) as i64;
            let (ticks, out) = if bid {
                (self.mid - off, &mut bids)
            } else {
                (self.mid + off, &mut asks)
            };
            let size = if self.rng.gen_bool(0.15) {
                Fixed::ZERO
            } else {
                self.size()
            };
            let price = self.price(ticks);
            out.retain(|l| l.price != price);
            out.push(Level::new(price, size));
        }
        // Keep the far end populated.
        let far_bid = self
            .book
            .bids()
            .nth(self.config.levels_per_side)
            .map(|l| l.price);
        if let Some(p) = far_bid {
            bids.push(Level::new(p, Fixed::ZERO));
        }
        let far_ask = self
            .book
            .asks()
            .nth(self.config.levels_per_side)
            .map(|l| l.price);
        if let Some(p) = far_ask {
            asks.push(Level::new(p, Fixed::ZERO));
        }
        self.book.apply_all(Side::Bid, &bids);
        self.book.apply_all(Side::Ask, &asks);
        (bids, asks)
    }

    fn text(&self, levels: &[Level]) -> String {
        format_levels(levels, self.config.format)
    }
}

/// Writes levels in one of the accepted text forms.
pub fn format_levels(levels: &[Level], format: LevelFormat) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(levels.len() * 32 + 2);
    s.push('[');
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let (p, z) = (l.price, l.size);
        let _ = match format {
            LevelFormat::OkxStrings => write!(s, "[\"{p}\",\"{z}\",\"0\",\"{}\"]", 1 + i % 7),
            LevelFormat::JsonNumbers => write!(s, "[{p}, {z}]"),
            LevelFormat::Python => {
                write!(s, "({}, {}, 0, {})", py_float(p), py_float(z), 1 + i % 7)
            }
            LevelFormat::Objects => write!(s, "{{\"price\": {p}, \"size\": {z}}}"),
            LevelFormat::ShortObjects => write!(s, "{{\"p\": \"{p}\", \"s\": \"{z}\"}}"),
        };
    }
    s.push(']');
    s
}

/// Python's float repr of a decimal: always with a fraction (`50000.0`).
fn py_float(v: Fixed) -> String {
    let text = v.to_string();
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::levels::parse_levels;

    #[test]
    fn formats_parse_back_to_the_same_levels() {
        let levels = vec![
            Level::new(
                Fixed::parse("30247.5").unwrap(),
                Fixed::parse("0.1").unwrap(),
            ),
            Level::new(Fixed::parse("30000").unwrap(), Fixed::ZERO),
        ];
        for format in LevelFormat::ALL {
            let text = format_levels(&levels, format);
            let mut back = Vec::new();
            parse_levels(&text, &mut back).unwrap_or_else(|e| panic!("{format:?} {text}: {e}"));
            assert_eq!(back, levels, "{format:?}");
        }
        assert_eq!(
            format_levels(&levels, LevelFormat::Python),
            "[(30247.5, 0.1, 0, 1), (30000.0, 0.0, 0, 2)]"
        );
    }

    #[test]
    fn generation_is_deterministic_and_realistic() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SynthConfig::new(1_700_000_000_000, 60_000);
        config.levels_per_side = 200;
        let a = write_file(&dir.path().join("a.db"), &config).unwrap();
        let b = write_file(&dir.path().join("b.db"), &config).unwrap();
        assert_eq!(a, b);
        // ~10 book rows and ~5 trades a second.
        assert!((500..700).contains(&a.book_rows), "{a:?}");
        assert!((230..380).contains(&a.trades), "{a:?}");
        let conn = Connection::open(dir.path().join("a.db")).unwrap();
        let q = |sql: &str| -> String { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        let snapshot = q("SELECT bids FROM book ORDER BY id LIMIT 1");
        let mut levels = Vec::new();
        parse_levels(&snapshot, &mut levels).unwrap();
        assert_eq!(levels.len(), 200);
        let same: String = Connection::open(dir.path().join("b.db"))
            .unwrap()
            .query_row("SELECT group_concat(bids || asks) FROM book", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(q("SELECT group_concat(bids || asks) FROM book"), same);
    }
}
