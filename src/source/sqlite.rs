//! Streaming rows out of one capture file, read-only and in order.
//!
//! Each table is read by its own thread, which owns its connection and one
//! long-running statement and sends raw rows in batches over a bounded
//! channel to a second thread that parses them: reading, level parsing and
//! the processor's book updates run side by side, and memory is bounded by
//! the channels, not the table. A table whose rows need no parsing (trades:
//! three numbers, checked as they are read) skips that second thread: it
//! would only pass batches on, at the cost of a hand-off and a wake-up per
//! batch. Emptied batches travel back up the
//! pipeline and are refilled, so once it is primed nothing is allocated
//! per row or per batch: memory stays flat however long the replay.
//!
//! Tables are read in `id` order (the rowid, so no sort and no index is
//! needed) and the reader checks that timestamps never go backwards. If
//! they do, it stops with [`StreamStop::Disorder`] and the caller re-reads
//! the table in `(timestamp, id)` order ([`Order::Time`]): SQLite's
//! external merge sort, with `temp_store=FILE` and a bounded cache, spills
//! to disk instead of holding the table in memory.
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
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

/// Rows per batch sent from a reader thread, at most.
const BATCH: usize = 2048;
/// Text bytes per batch, at most (a batch is sent once it holds this
/// much): what bounds the memory a batch of large book rows takes. Bigger
/// batches mean fewer hand-offs and wake-ups between the threads (a
/// measurable share of the run at 256 rows); beyond about half a MiB the
/// batches stop fitting the caches they are handed over through.
const BATCH_BYTES: usize = 512 << 10;
/// Batches in flight per table.
const IN_FLIGHT: usize = 2;
/// Emptied batches kept for reuse per stage.
const SPARE: usize = IN_FLIGHT + 2;

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
/// batch's one buffer ([`TableStream::levels`]); the row holds where.
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
    /// The bids and the asks, in `buffer` (from [`TableStream::levels`]).
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

/// A row of either table, for the generic reader.
///
/// A row is read in two steps: [`TableRow::read`] copies what it needs out
/// of SQLite (in the reader thread), [`TableRow::parse`] turns that into
/// the row, in a thread of its own: reading, parsing (book levels, the
/// expensive part) and applying form a three-stage pipeline that the
/// scheduler spreads over the cores.
pub trait TableRow: Send + Sized + 'static {
    /// What is copied out of SQLite.
    type Raw: Send + 'static;
    const TABLE: Table;
    const COLUMNS: &'static str;
    fn pos(&self) -> Position;
    fn raw_pos(raw: &Self::Raw) -> Position;
    /// Copies the selected columns (`id`, `timestamp`, then `COLUMNS`);
    /// `ts` falls back to `prev_ts` when the column is bad.
    /// Text it copies goes to the end of `text`, the batch's one buffer.
    fn read(row: &rusqlite::Row, prev_ts: i64, text: &mut Vec<u8>) -> rusqlite::Result<Self::Raw>;
    /// Levels it parses go to the end of `levels`, the batch's one buffer.
    fn parse(raw: Self::Raw, text: &[u8], levels: &mut Vec<Level>) -> Self;
    /// Whether [`TableRow::parse`] is worth a thread of its own; when not,
    /// the reader thread calls it.
    const PARSE_THREAD: bool = true;
}

/// A book row as read: position and where its bids and asks texts are in
/// the batch's buffer (`start..split`, `split..end`).
pub struct RawBook {
    pos: Position,
    text: Result<(usize, usize, usize), RowError>,
}

impl TableRow for BookRow {
    type Raw = RawBook;
    const TABLE: Table = Table::Book;
    const COLUMNS: &'static str = "bids, asks";

    fn pos(&self) -> Position {
        self.pos
    }

    fn raw_pos(raw: &RawBook) -> Position {
        raw.pos
    }

    fn read(row: &rusqlite::Row, prev_ts: i64, buffer: &mut Vec<u8>) -> rusqlite::Result<RawBook> {
        let (pos, ts_ok) = position(row, prev_ts)?;
        let text = |i: usize, column: &'static str| -> Result<&[u8], RowError> {
            match row.get_ref(i) {
                Ok(ValueRef::Text(t)) => Ok(t),
                _ => Err(RowError::Column {
                    column,
                    expected: "text",
                }),
            }
        };
        let text = if ts_ok {
            (|| {
                let (bids, asks) = (text(2, "bids")?, text(3, "asks")?);
                let start = buffer.len();
                buffer.extend_from_slice(bids);
                let split = buffer.len();
                buffer.extend_from_slice(asks);
                Ok((start, split, buffer.len()))
            })()
        } else {
            Err(RowError::Column {
                column: "timestamp",
                expected: "an integer",
            })
        };
        Ok(RawBook { pos, text })
    }

    fn parse(raw: RawBook, buffer: &[u8], all: &mut Vec<Level>) -> BookRow {
        let first = all.len();
        let levels = raw.text.and_then(|(start, split, end)| {
            let (bids, asks) = (&buffer[start..split], &buffer[split..end]);
            parse_level_bytes(bids, all).map_err(|source| RowError::Levels {
                side: "bids",
                source,
            })?;
            let n = all.len();
            parse_level_bytes(asks, all).map_err(|source| RowError::Levels {
                side: "asks",
                source,
            })?;
            Ok(Levels {
                start: first,
                split: n,
                end: all.len(),
            })
        });
        if levels.is_err() {
            all.truncate(first);
        }
        BookRow {
            pos: raw.pos,
            levels,
        }
    }
}

impl TableRow for TradeRow {
    type Raw = TradeRow;
    const TABLE: Table = Table::Trades;
    const PARSE_THREAD: bool = false;
    const COLUMNS: &'static str = "price, size, side";

    fn raw_pos(raw: &TradeRow) -> Position {
        raw.pos
    }

    fn parse(raw: TradeRow, _: &[u8], _: &mut Vec<Level>) -> TradeRow {
        raw
    }

    fn pos(&self) -> Position {
        self.pos
    }

    fn read(row: &rusqlite::Row, prev_ts: i64, _: &mut Vec<u8>) -> rusqlite::Result<TradeRow> {
        let (pos, ts_ok) = position(row, prev_ts)?;
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
        let trade = if ts_ok {
            (|| {
                let price = number(2, "price")?;
                let size = number(3, "size")?;
                let side = match row.get_ref(4) {
                    Ok(ValueRef::Text(t)) => TradeSide::parse(std::str::from_utf8(t).unwrap_or("")),
                    _ => TradeSide::Unknown,
                };
                Ok(Trade { price, size, side })
            })()
        } else {
            Err(RowError::Column {
                column: "timestamp",
                expected: "an integer",
            })
        };
        Ok(TradeRow { pos, trade })
    }
}

fn position(row: &rusqlite::Row, prev_ts: i64) -> rusqlite::Result<(Position, bool)> {
    let id: i64 = row.get(0)?;
    Ok(match row.get_ref(1)? {
        ValueRef::Integer(ts) => (Position { ts, id }, true),
        _ => (Position { ts: prev_ts, id }, false),
    })
}

/// Where and how to read one table.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub path: PathBuf,
    pub order: Order,
    /// Continue after this row (resume), or from the start.
    pub after: Option<Position>,
    /// Rows outside `[lo, hi)` ms are skipped.
    pub window: (i64, i64),
}

/// Why a stream stopped before its end.
#[derive(Debug)]
pub enum StreamStop {
    /// In `Order::Id`, the row `at` has an earlier timestamp than the row
    /// before it.
    Disorder {
        table: Table,
        at: Position,
        prev_ts: i64,
    },
    Failed(SourceError),
}

/// Rows, with the text buffer (raw rows) or level buffer (parsed book
/// rows) they point into.
struct Batch<R> {
    rows: VecDeque<R>,
    text: Vec<u8>,
    levels: Vec<Level>,
}

impl<R> Batch<R> {
    /// An emptied batch from `spares` (keeping its capacity), or a new one
    /// while the pipeline is still filling up.
    fn reuse(spares: &Receiver<Batch<R>>) -> Batch<R> {
        spares.try_recv().unwrap_or_else(|_| Batch::empty())
    }

    /// A new, empty batch.
    fn empty() -> Batch<R> {
        Batch {
            rows: VecDeque::with_capacity(BATCH),
            text: Vec::new(),
            levels: Vec::new(),
        }
    }

    /// Empties the batch and hands it back up the pipeline (dropped when
    /// enough spares are waiting or the stage above has gone).
    fn recycle(mut self, spares: &SyncSender<Batch<R>>) {
        self.clear();
        let _ = spares.try_send(self);
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.text.clear();
        self.levels.clear();
    }
}

/// Parses a batch of raw rows into a batch taken from `spares`.
fn parse_batch<R: TableRow>(raw: &mut Batch<R::Raw>, spares: &Receiver<Batch<R>>) -> Batch<R> {
    let mut out = Batch::reuse(spares);
    out.levels.reserve(raw.text.len() / 24);
    let text = &raw.text;
    out.rows.extend(
        raw.rows
            .drain(..)
            .map(|r| R::parse(r, text, &mut out.levels)),
    );
    out
}

/// Where a reader thread puts the batches it fills.
trait RawSink<R: TableRow> {
    /// An empty batch to fill.
    fn batch(&mut self) -> Batch<R::Raw>;
    /// Passes a message on; `false` when the stage below has gone.
    fn send(&mut self, msg: Msg<R::Raw>) -> bool;
}

/// To a parse thread, which sends emptied batches back.
struct ToParser<R: TableRow> {
    tx: SyncSender<Msg<R::Raw>>,
    spares: Receiver<Batch<R::Raw>>,
}

impl<R: TableRow> RawSink<R> for ToParser<R> {
    fn batch(&mut self) -> Batch<R::Raw> {
        Batch::reuse(&self.spares)
    }

    fn send(&mut self, msg: Msg<R::Raw>) -> bool {
        self.tx.send(msg).is_ok()
    }
}

/// Parsed in the reader's thread and sent to the consumer; the one raw
/// batch is reused.
struct ParseHere<R: TableRow> {
    tx: SyncSender<Msg<R>>,
    spares: Receiver<Batch<R>>,
    raw: Option<Batch<R::Raw>>,
}

impl<R: TableRow> RawSink<R> for ParseHere<R> {
    fn batch(&mut self) -> Batch<R::Raw> {
        self.raw.take().unwrap_or_else(Batch::empty)
    }

    fn send(&mut self, msg: Msg<R::Raw>) -> bool {
        let out = match msg {
            Msg::Rows(mut raw) => {
                let out = parse_batch(&mut raw, &self.spares);
                raw.clear();
                self.raw = Some(raw);
                Msg::Rows(out)
            }
            Msg::Stop(stop) => Msg::Stop(stop),
            Msg::End => Msg::End,
        };
        self.tx.send(out).is_ok()
    }
}

enum Msg<R> {
    Rows(Batch<R>),
    Stop(StreamStop),
    /// The table was read to its end. A channel that closes without this
    /// (or a `Stop`) means a thread died: the stream then fails rather than
    /// look complete.
    End,
}

/// A table being read by its thread, consumed row by row.
pub struct TableStream<R: TableRow> {
    rx: Receiver<Msg<R>>,
    path: PathBuf,
    /// Why the threads could not start, if they could not.
    lost: Option<String>,
    /// The batch being taken, with the level buffer its rows point into.
    current: Batch<R>,
    /// Where taken batches go back to the parser.
    spares: SyncSender<Batch<R>>,
    head: Option<R>,
    stop: Option<StreamStop>,
    ended: bool,
}

impl<R: TableRow> TableStream<R> {
    /// Starts the reader thread (and the parse thread, if the rows need
    /// one).
    pub fn start(spec: StreamSpec) -> TableStream<R> {
        let (tx, rx) = sync_channel::<Msg<R>>(IN_FLIGHT);
        let (spares, parsed_spares) = sync_channel::<Batch<R>>(SPARE);
        let path = spec.path.clone();
        let reader = std::thread::Builder::new().name(format!("read-{}", R::TABLE));
        let spawned = if R::PARSE_THREAD {
            let (raw_tx, raw_rx) = sync_channel::<Msg<R::Raw>>(IN_FLIGHT);
            let (raw_spares_tx, raw_spares) = sync_channel::<Batch<R::Raw>>(SPARE);
            let parse = Parse {
                rx: raw_rx,
                tx,
                spares: parsed_spares,
                raw_spares: raw_spares_tx,
            };
            let sink = ToParser::<R> {
                tx: raw_tx,
                spares: raw_spares,
            };
            std::thread::Builder::new()
                .name(format!("parse-{}", R::TABLE))
                .spawn(move || parse.run())
                .and_then(|_| reader.spawn(move || read_table::<R>(spec, sink)))
        } else {
            let sink = ParseHere::<R> {
                tx,
                spares: parsed_spares,
                raw: None,
            };
            reader.spawn(move || read_table::<R>(spec, sink))
        };
        // A thread that could not start closes its channel without `End`,
        // so the stream reports this as its stop.
        let lost = spawned
            .err()
            .map(|e| format!("its thread could not start: {e}"));
        TableStream::receiving(rx, spares, path, lost)
    }

    /// The consuming end of the pipeline.
    fn receiving(
        rx: Receiver<Msg<R>>,
        spares: SyncSender<Batch<R>>,
        path: PathBuf,
        lost: Option<String>,
    ) -> TableStream<R> {
        TableStream {
            path,
            lost,
            rx,
            current: Batch {
                rows: VecDeque::new(),
                text: Vec::new(),
                levels: Vec::new(),
            },
            spares,
            head: None,
            stop: None,
            ended: false,
        }
    }

    /// Waits up to `timeout` for the next row and says what is next.
    pub fn poll(&mut self, timeout: Duration) -> Next {
        if self.fill(timeout) {
            return Next::Pending;
        }
        if let Some(h) = &self.head {
            return Next::Row(h.pos());
        }
        match &self.stop {
            Some(_) => Next::Stopped,
            None => Next::End,
        }
    }

    /// Why the stream stopped early (after [`Next::Stopped`]).
    pub fn take_stop(&mut self) -> Option<StreamStop> {
        self.stop.take()
    }

    /// Takes the row last polled.
    pub fn take(&mut self) -> Option<R> {
        self.head.take()
    }

    /// The level buffer of the rows being taken (see [`Levels::sides`]).
    pub fn levels(&self) -> &[Level] {
        &self.current.levels
    }

    /// Fills `head`; `true` when nothing arrived within `timeout`.
    fn fill(&mut self, timeout: Duration) -> bool {
        loop {
            if self.head.is_some() {
                return false;
            }
            if let Some(r) = self.current.rows.pop_front() {
                self.head = Some(r);
                return false;
            }
            if self.ended {
                return false;
            }
            match self.rx.recv_timeout(timeout) {
                Ok(Msg::Rows(batch)) => {
                    std::mem::replace(&mut self.current, batch).recycle(&self.spares);
                }
                Ok(Msg::Stop(stop)) => {
                    self.stop = Some(stop);
                    self.ended = true;
                }
                Ok(Msg::End) => self.ended = true,
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => {
                    let detail = self
                        .lost
                        .take()
                        .unwrap_or_else(|| "its thread ended before the table did".to_string());
                    self.stop = Some(StreamStop::Failed(SourceError::ReaderLost {
                        path: self.path.clone(),
                        table: R::TABLE.name(),
                        detail,
                    }));
                    self.ended = true;
                }
            }
        }
    }
}

/// What comes next in a [`TableStream`].
#[derive(Debug)]
pub enum Next {
    /// A row at this position (take it with [`TableStream::take`]).
    Row(Position),
    /// The table is read to its end.
    End,
    /// Nothing yet (the reader is busy, e.g. sorting).
    Pending,
    /// The reader stopped early ([`TableStream::take_stop`] says why).
    Stopped,
}

/// The middle stage: parses raw batches into batches taken from
/// `spares`, and sends the raw ones back to the reader.
struct Parse<R: TableRow> {
    rx: Receiver<Msg<R::Raw>>,
    tx: SyncSender<Msg<R>>,
    spares: Receiver<Batch<R>>,
    raw_spares: SyncSender<Batch<R::Raw>>,
}

impl<R: TableRow> Parse<R> {
    fn run(self) {
        for msg in &self.rx {
            let out = match msg {
                Msg::Rows(mut raw) => {
                    let out = parse_batch(&mut raw, &self.spares);
                    raw.recycle(&self.raw_spares);
                    Msg::Rows(out)
                }
                Msg::Stop(stop) => Msg::Stop(stop),
                Msg::End => Msg::End,
            };
            if self.tx.send(out).is_err() {
                return;
            }
        }
    }
}

fn read_table<R: TableRow>(spec: StreamSpec, mut sink: impl RawSink<R>) {
    let last = match stream_rows::<R>(&spec, &mut sink) {
        Ok(()) => Msg::End,
        Err(e) => Msg::Stop(e),
    };
    sink.send(last);
}

fn stream_rows<R: TableRow>(
    spec: &StreamSpec,
    sink: &mut impl RawSink<R>,
) -> Result<(), StreamStop> {
    let path = &spec.path;
    let fail = |e: rusqlite::Error| StreamStop::Failed(SourceError::sqlite(path, e));
    let conn = open(path).map_err(StreamStop::Failed)?;
    let (lo, hi) = spec.window;
    let after = spec.after.unwrap_or(Position {
        ts: i64::MIN,
        id: i64::MIN,
    });
    let sql = match spec.order {
        Order::Id => format!(
            "SELECT id, timestamp, {} FROM {} WHERE id > ?1 ORDER BY id",
            R::COLUMNS,
            R::TABLE
        ),
        Order::Time => format!(
            "SELECT id, timestamp, {} FROM {} WHERE timestamp >= ?2 AND timestamp < ?3 \
             AND (timestamp > ?4 OR (timestamp = ?4 AND id > ?1)) ORDER BY timestamp, id",
            R::COLUMNS,
            R::TABLE
        ),
    };
    let mut stmt = conn.prepare(&sql).map_err(fail)?;
    let mut rows = match spec.order {
        Order::Id => stmt.query([after.id]),
        Order::Time => stmt.query([after.id, lo, hi, after.ts]),
    }
    .map_err(fail)?;
    let mut batch = sink.batch();
    let mut prev_ts = if spec.after.is_some() {
        after.ts
    } else {
        i64::MIN
    };
    while let Some(row) = rows.next().map_err(fail)? {
        let text_len = batch.text.len();
        let r = R::read(row, prev_ts, &mut batch.text).map_err(fail)?;
        let pos = R::raw_pos(&r);
        if spec.order == Order::Id {
            if pos.ts < prev_ts {
                batch.text.truncate(text_len);
                if !batch.rows.is_empty() {
                    sink.send(Msg::Rows(batch));
                }
                return Err(StreamStop::Disorder {
                    table: R::TABLE,
                    at: pos,
                    prev_ts,
                });
            }
            prev_ts = pos.ts;
            if pos.ts < lo || pos.ts >= hi {
                batch.text.truncate(text_len);
                continue;
            }
        }
        batch.rows.push_back(r);
        if batch.rows.len() == BATCH || batch.text.len() >= BATCH_BYTES {
            let full = std::mem::replace(&mut batch, sink.batch());
            if !sink.send(Msg::Rows(full)) {
                return Ok(());
            }
        }
    }
    if !batch.rows.is_empty() {
        sink.send(Msg::Rows(batch));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream fed by hand: `msgs` are sent, then the sending side is
    /// dropped as a dying thread would drop it.
    fn fed(msgs: Vec<Msg<TradeRow>>) -> TableStream<TradeRow> {
        let (tx, rx) = sync_channel(msgs.len() + 1);
        for m in msgs {
            tx.send(m).unwrap();
        }
        let (spares, _) = sync_channel(SPARE);
        TableStream::receiving(rx, spares, "cap.db".into(), None)
    }

    /// Keeps every batch a reader sends: (rows, text bytes) each.
    #[derive(Default)]
    struct Recorder(Vec<(usize, usize)>);

    impl RawSink<BookRow> for Recorder {
        fn batch(&mut self) -> Batch<RawBook> {
            Batch::empty()
        }

        fn send(&mut self, msg: Msg<RawBook>) -> bool {
            match msg {
                Msg::Rows(b) => self.0.push((b.rows.len(), b.text.len())),
                Msg::End | Msg::Stop(_) => {}
            }
            true
        }
    }

    #[test]
    fn batches_are_bounded_by_rows_and_by_text_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE book(id INTEGER PRIMARY KEY, bids TEXT, asks TEXT, timestamp INTEGER);",
        )
        .unwrap();
        // 3000 small rows, then 300 rows of 10 000 bytes each (a big
        // snapshot's size): the first are cut by row count, the others by
        // bytes.
        let big = format!("[{}]", vec!["[\"1\",\"1\"]"; 1000].join(","));
        let small = "[[\"1\",\"1\"]]";
        conn.execute_batch("BEGIN").unwrap();
        let mut insert = conn
            .prepare("INSERT INTO book(id, bids, asks, timestamp) VALUES (?1, ?2, '[]', ?1)")
            .unwrap();
        for id in 1..=3300i64 {
            insert
                .execute(rusqlite::params![id, if id <= 3000 { small } else { &big }])
                .unwrap();
        }
        drop(insert);
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        let spec = StreamSpec {
            path,
            order: Order::Id,
            after: None,
            window: (i64::MIN, i64::MAX),
        };
        let mut sink = Recorder::default();
        stream_rows::<BookRow>(&spec, &mut sink).unwrap();
        let rows: usize = sink.0.iter().map(|b| b.0).sum();
        assert_eq!(rows, 3300, "every row, once");
        assert_eq!(sink.0[0].0, BATCH, "small rows: full batches by count");
        let row_bytes = big.len() + 2;
        for &(n, bytes) in &sink.0 {
            assert!(n <= BATCH, "{n} rows in a batch");
            assert!(bytes < BATCH_BYTES + row_bytes, "{bytes} bytes in a batch");
        }
        let cut_by_bytes = sink.0.iter().filter(|b| b.1 >= BATCH_BYTES).count();
        assert!(cut_by_bytes >= 5, "{:?}", sink.0);
    }

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

    #[test]
    fn a_table_ends_only_when_its_reader_says_so() {
        let mut done = fed(vec![Msg::End]);
        assert!(matches!(done.poll(Duration::from_millis(10)), Next::End));

        // The channel closed without `End`: a reader or parser thread died.
        // The table must not look complete (its rows would be lost silently).
        let mut lost = fed(vec![]);
        assert!(matches!(
            lost.poll(Duration::from_millis(10)),
            Next::Stopped
        ));
        let Some(StreamStop::Failed(e)) = lost.take_stop() else {
            panic!("no failure")
        };
        assert_eq!(
            e.to_string(),
            "cap.db: the `trades` reader stopped early (its thread ended before the table did); \
             nothing after that point was read"
        );
    }
}
