//! One capture file: opening it read-only, checking it, and what its rows
//! are ([`BookRow`], [`TradeRow`]) and how each is read from SQLite
//! ([`TableRow`]). Reading a table in order, on threads, is
//! [`super::stream`]'s.
//!
//! Connections are opened `immutable` and `query_only` with a large mmap
//! and page cache: the capture is never written, and SQLite can skip
//! locking entirely.

use super::levels::{parse_level_bytes, LevelError};
use super::SourceError;
use crate::model::{Fixed, Level, TradeSide};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The SQL pragmas every capture connection runs: read-only, memory-mapped,
/// sorts spilling to temp files.
pub const PRAGMAS: &str = "PRAGMA query_only=1; PRAGMA mmap_size=1073741824; \
     PRAGMA cache_size=-4096; PRAGMA temp_store=FILE;";

/// Opens a capture read-only with the tuned settings.
pub fn open(path: &Path) -> Result<Connection, SourceError> {
    let uri = format!("file:{}?immutable=1", uri_escape(path));
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| SourceError::sqlite(path, e))?;
    conn.execute_batch(PRAGMAS)
        .map_err(|e| SourceError::sqlite(path, e))?;
    Ok(conn)
}

fn uri_escape(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            _ => out.push(c),
        }
    }
    out
}

/// The id range of a table: `(min, max)`, or `None` when it is empty.
pub type IdRange = Option<(i64, i64)>;

/// What a capture file holds, checked before any row is processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub book: IdRange,
    pub trades: IdRange,
}

impl FileInfo {
    /// Rows in the file, assuming dense ids (an upper bound otherwise).
    pub fn rows_estimate(&self) -> u64 {
        // Ids come from the file: any i64 values, so no arithmetic that can
        // overflow.
        let n = |r: IdRange| {
            r.map_or(0, |(lo, hi)| {
                u64::try_from((i128::from(hi) - i128::from(lo) + 1).max(0)).unwrap_or(u64::MAX)
            })
        };
        n(self.book).saturating_add(n(self.trades))
    }
}

/// Checks that `path` is an intact capture (SQLite, not truncated, both
/// tables with their columns) and returns its id ranges.
pub fn inspect(path: &Path) -> Result<FileInfo, SourceError> {
    let meta = std::fs::metadata(path).map_err(|source| SourceError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let mut header = [0u8; 100];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|source| SourceError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        if f.read_exact(&mut header).is_err() || &header[..16] != b"SQLite format 3\0" {
            return Err(SourceError::NotSqlite {
                path: path.to_path_buf(),
            });
        }
    }
    // The header's page size and page count (valid when the "version
    // valid for" number matches the change counter) give the file's size.
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => n as u64,
    };
    if be32(92) == be32(24) {
        let expected = page_size * be32(28) as u64;
        if meta.len() < expected {
            return Err(SourceError::Truncated {
                path: path.to_path_buf(),
                expected,
                actual: meta.len(),
            });
        }
    }
    let conn = open(path)?;
    for (table, columns) in [
        ("book", &["id", "bids", "asks", "timestamp"][..]),
        (
            "trades",
            &["id", "trade_id", "price", "size", "side", "timestamp"][..],
        ),
    ] {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .map_err(|e| SourceError::sqlite(path, e))?;
        let have: Vec<String> = stmt
            .query_map([table], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| SourceError::sqlite(path, e))?;
        if have.is_empty() {
            return Err(SourceError::MissingTable {
                path: path.to_path_buf(),
                table,
            });
        }
        if let Some(column) = columns.iter().find(|c| !have.iter().any(|h| h == *c)) {
            return Err(SourceError::MissingColumn {
                path: path.to_path_buf(),
                table,
                column,
            });
        }
    }
    let range = |table: &str| -> Result<IdRange, SourceError> {
        conn.query_row(
            &format!("SELECT (SELECT min(id) FROM {table}), (SELECT max(id) FROM {table})"),
            [],
            |r| {
                Ok(
                    match (r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?) {
                        (Some(lo), Some(hi)) => Some((lo, hi)),
                        _ => None,
                    },
                )
            },
        )
        .map_err(|e| SourceError::sqlite(path, e))
    };
    Ok(FileInfo {
        book: range("book")?,
        trades: range("trades")?,
    })
}

/// The order a table is read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// By `id`, checking timestamps never go backwards.
    Id,
    /// By `(timestamp, id)`, sorted by SQLite with spilling.
    Time,
}

/// The two tables of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Book,
    Trades,
}

impl Table {
    /// The table's name in SQL and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Table::Book => "book",
            Table::Trades => "trades",
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `(timestamp, id)` of a row: where a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub ts: i64,
    pub id: i64,
}

/// Why a row of a table cannot be applied.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("{side}: {source}")]
    Levels {
        side: &'static str,
        source: LevelError,
    },
    #[error("column {column} is not {expected}")]
    Column {
        column: &'static str,
        expected: &'static str,
    },
    #[error("{field} {value} is negative or not finite")]
    BadNumber { field: &'static str, value: f64 },
}

/// A book row with its levels parsed. The levels themselves live in the
/// batch's one buffer ([`super::stream::TableStream::levels`]); the row holds where.
#[derive(Clone, Debug)]
pub struct BookRow {
    pub pos: Position,
    pub levels: Result<Levels, RowError>,
}

/// Where a row's bids (`start..split`) and asks (`split..end`) are in its
/// batch's level buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Levels {
    start: usize,
    split: usize,
    end: usize,
}

impl Levels {
    /// The bids and the asks, in `buffer` (from [`super::stream::TableStream::levels`]).
    pub fn sides<'a>(&self, buffer: &'a [Level]) -> (&'a [Level], &'a [Level]) {
        (
            &buffer[self.start..self.split],
            &buffer[self.split..self.end],
        )
    }
}

/// A checked trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    pub price: Fixed,
    pub size: Fixed,
    pub side: TradeSide,
}

/// A trade row, checked.
#[derive(Clone, Debug)]
pub struct TradeRow {
    pub pos: Position,
    pub trade: Result<Trade, RowError>,
}

/// A row of either table, for the table readers of [`super::stream`].
pub trait TableRow: Send + Sized + 'static {
    const TABLE: Table;
    /// The columns selected after `id, timestamp`.
    const COLUMNS: &'static str;
    /// Reader threads for the table in `id` order: the book's rows carry
    /// the level text, whose parsing is most of a run's work; trades are
    /// three numbers each.
    const READERS: usize;
    /// What a row holds once checked.
    type Value;
    fn new(pos: Position, value: Result<Self::Value, RowError>) -> Self;
    fn pos(&self) -> Position;
    /// Reads and checks a row's columns (those after `id, timestamp`).
    /// Levels it parses go to the end of `levels`, the batch's one buffer,
    /// straight from SQLite's text: nothing is copied; on error nothing is
    /// added.
    fn read(row: &rusqlite::Row, levels: &mut Vec<Level>) -> Result<Self::Value, RowError>;
}

impl TableRow for BookRow {
    const TABLE: Table = Table::Book;
    const COLUMNS: &'static str = "bids, asks";
    const READERS: usize = 2;
    type Value = Levels;

    fn new(pos: Position, levels: Result<Levels, RowError>) -> BookRow {
        BookRow { pos, levels }
    }

    fn pos(&self) -> Position {
        self.pos
    }

    fn read(row: &rusqlite::Row, all: &mut Vec<Level>) -> Result<Levels, RowError> {
        let text = |i: usize, column: &'static str| -> Result<&[u8], RowError> {
            match row.get_ref(i) {
                Ok(ValueRef::Text(t)) => Ok(t),
                _ => Err(RowError::Column {
                    column,
                    expected: "text",
                }),
            }
        };
        let first = all.len();
        let levels = (|| {
            let (bids, asks) = (text(2, "bids")?, text(3, "asks")?);
            parse_level_bytes(bids, all).map_err(|source| RowError::Levels {
                side: "bids",
                source,
            })?;
            let split = all.len();
            parse_level_bytes(asks, all).map_err(|source| RowError::Levels {
                side: "asks",
                source,
            })?;
            Ok(Levels {
                start: first,
                split,
                end: all.len(),
            })
        })();
        if levels.is_err() {
            all.truncate(first);
        }
        levels
    }
}

impl TableRow for TradeRow {
    const TABLE: Table = Table::Trades;
    const COLUMNS: &'static str = "price, size, side";
    const READERS: usize = 1;
    type Value = Trade;

    fn new(pos: Position, trade: Result<Trade, RowError>) -> TradeRow {
        TradeRow { pos, trade }
    }

    fn pos(&self) -> Position {
        self.pos
    }

    fn read(row: &rusqlite::Row, _: &mut Vec<Level>) -> Result<Trade, RowError> {
        let number = |i: usize, field: &'static str| -> Result<Fixed, RowError> {
            let value = match row.get_ref(i) {
                Ok(ValueRef::Real(v)) => v,
                Ok(ValueRef::Integer(v)) => v as f64,
                Ok(ValueRef::Text(t)) => std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .unwrap_or(f64::NAN),
                _ => f64::NAN,
            };
            match Fixed::from_f64(value) {
                Some(v) if !v.is_negative() => Ok(v),
                _ => Err(RowError::BadNumber { field, value }),
            }
        };
        let price = number(2, "price")?;
        let size = number(3, "size")?;
        let side = match row.get_ref(4) {
            Ok(ValueRef::Text(t)) => TradeSide::parse(std::str::from_utf8(t).unwrap_or("")),
            _ => TradeSide::Unknown,
        };
        Ok(Trade { price, size, side })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_estimate_survives_any_ids() {
        let info = |book, trades| FileInfo { book, trades };
        assert_eq!(info(Some((1, 10)), Some((5, 5))).rows_estimate(), 11);
        assert_eq!(info(None, Some((9, 3))).rows_estimate(), 0);
        assert_eq!(
            info(Some((i64::MIN, i64::MAX)), Some((0, i64::MAX))).rows_estimate(),
            u64::MAX
        );
    }
}
