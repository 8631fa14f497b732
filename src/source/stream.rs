//! Reading one table of a capture in order, on reader threads of its own.
//!
//! A table read in `id` order is cut into **chunks** of consecutive ids,
//! and the chunks are dealt in turn to the table's reader threads (two for
//! the book, whose rows carry the level text; one for trades). Each reader
//! owns a connection, reads its chunk with a range query on the rowid (a
//! seek, no sort, no index) and parses every row straight out of SQLite's
//! buffer into its batch (book levels into the batch's one level buffer;
//! the text is never copied). The consumer takes the batches reader by
//! reader in chunk order, so rows still come out in `id` order, while the
//! row decoding and level parsing, most of the processor's work, run on
//! both cores. See docs/architecture.md ("Processor performance").
//!
//! The consumer plans the chunks: it keeps two per reader assigned ahead
//! and sizes the next one from how many rows the last one held, so sparse
//! ids make wider chunks instead of many empty ones. Memory is bounded by
//! the channels (batches of at most [`BATCH`] rows or [`BATCH_LEVELS`]
//! levels, [`IN_FLIGHT`] per reader), not by the table; emptied batches go
//! back to their reader and are refilled, so nothing is allocated per row.
//!
//! Timestamps must never go backwards in `id` order: each reader checks its
//! chunk, the consumer checks where chunks meet, and either stops the
//! stream with [`StreamStop::Disorder`]. The caller then re-reads the table
//! in `(timestamp, id)` order ([`Order::Time`]): one reader, one sorted
//! query, SQLite's external merge sort spilling to disk (`temp_store=FILE`,
//! a bounded cache) instead of holding the table in memory.
//!
//! This module owns the threads and the order of rows; what a row is and
//! how its columns are read is [`super::sqlite`]'s.

use super::sqlite::{open, IdRange, Order, Position, RowError, Table, TableRow};
use super::SourceError;
use crate::model::Level;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::Duration;

/// Rows per batch, at most.
const BATCH: usize = 2048;
/// Levels per batch, at most (a batch is sent once it holds this many):
/// what bounds the memory a batch of large book rows takes (512 KiB).
/// Bigger batches mean fewer hand-offs and wake-ups between the threads;
/// beyond about half a MiB they stop fitting the caches they are handed
/// over through.
const BATCH_LEVELS: usize = 32 << 10;
/// Batches in flight per reader: the slack that lets a reader run ahead
/// while the other holds the chunk the consumer waits for (4 ran 3 %
/// slower on a day of OKX text, for 4.5 MB less).
const IN_FLIGHT: usize = 8;
/// Emptied batches kept for reuse per reader.
const SPARE: usize = IN_FLIGHT + 2;
/// Chunks assigned ahead per reader, so a reader that is through its
/// chunks while the other is still on the one the consumer waits for has
/// more to read instead of idling (2 left a core idle 11-14 % of a run).
const AHEAD: usize = 4;
/// The widest chunk, in ids: sparse ids widen chunks up to this.
const MAX_SPAN: i64 = 1 << 40;
/// Rows a chunk aims at, at most.
const CHUNK_ROWS: usize = 4096;
/// Levels a chunk aims at, at most.
const CHUNK_LEVELS: usize = 128 << 10;
/// The narrowest chunk, in ids (rows of thousands of levels).
const MIN_SPAN: i64 = 16;

/// Where and how to read one table.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub path: PathBuf,
    pub order: Order,
    /// The table's ids, from [`super::inspect`]: what the chunks cover.
    pub ids: IdRange,
    /// Continue after this row (resume), or from the start.
    pub after: Option<Position>,
    /// Rows outside `[lo, hi)` ms are skipped.
    pub window: (i64, i64),
    /// Reader threads the table may have at most (its rows' own limit is
    /// [`TableRow::READERS`]): the caller's share of the cores.
    pub readers: usize,
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

/// Rows, with the level buffer they point into, and what the reader saw
/// of the rows it read for them (skipped ones included), for the checks
/// where chunks meet.
struct Batch<R> {
    rows: VecDeque<R>,
    levels: Vec<Level>,
    /// The first row read, kept or skipped.
    first: Option<Position>,
    /// The timestamp of the last row read.
    last_ts: i64,
    /// Rows read, kept or skipped.
    read: u64,
}

impl<R> Batch<R> {
    /// An emptied batch from `spares` (keeping its capacity), or a new one
    /// while the pipeline is still filling up.
    fn reuse(spares: &Receiver<Batch<R>>) -> Batch<R> {
        spares.try_recv().unwrap_or_else(|_| Batch::empty())
    }

    fn empty() -> Batch<R> {
        Batch {
            rows: VecDeque::new(),
            levels: Vec::new(),
            first: None,
            last_ts: i64::MIN,
            read: 0,
        }
    }

    /// Empties the batch and hands it back to its reader (dropped when
    /// enough spares are waiting or the reader has gone).
    fn recycle(mut self, spares: &SyncSender<Batch<R>>) {
        self.rows.clear();
        self.levels.clear();
        self.first = None;
        self.read = 0;
        let _ = spares.try_send(self);
    }

    fn is_full(&self) -> bool {
        self.rows.len() >= BATCH || self.levels.len() >= BATCH_LEVELS
    }
}

enum Msg<R> {
    Rows(Batch<R>),
    Stop(StreamStop),
    /// The chunk (or, in time order, the table) was read to its end. A
    /// channel that closes without this (or a `Stop`) means a thread died:
    /// the stream then fails rather than look complete.
    End,
}

/// Ids `from..=to` to read (inclusive, so the last id can be `i64::MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chunk {
    from: i64,
    to: i64,
}

/// Where a reader puts the batches it fills.
trait Sink<R> {
    /// An empty batch to fill.
    fn batch(&mut self) -> Batch<R>;
    /// Passes a message on; `false` when the consumer has gone.
    fn send(&mut self, msg: Msg<R>) -> bool;
}

/// A reader thread's end of its channels.
struct ToConsumer<R> {
    tx: SyncSender<Msg<R>>,
    spares: Receiver<Batch<R>>,
}

impl<R> Sink<R> for ToConsumer<R> {
    fn batch(&mut self) -> Batch<R> {
        Batch::reuse(&self.spares)
    }

    fn send(&mut self, msg: Msg<R>) -> bool {
        self.tx.send(msg).is_ok()
    }
}

/// A reader thread: reads the chunks it is given, in the order given.
struct Reader<R> {
    spec: StreamSpec,
    jobs: Receiver<Chunk>,
    out: ToConsumer<R>,
}

impl<R: TableRow> Reader<R> {
    fn run(mut self) {
        let path = self.spec.path.clone();
        let fail = |e| StreamStop::Failed(SourceError::sqlite(&path, e));
        let conn = match open(&path) {
            Ok(c) => c,
            Err(e) => {
                self.out.send(Msg::Stop(StreamStop::Failed(e)));
                return;
            }
        };
        let mut stmt = match conn.prepare(&select::<R>(self.spec.order)) {
            Ok(s) => s,
            Err(e) => {
                self.out.send(Msg::Stop(fail(e)));
                return;
            }
        };
        for chunk in &self.jobs {
            let msg = match read_chunk::<R>(&self.spec, &conn, &mut stmt, chunk, &mut self.out) {
                Ok(true) => Msg::End,
                Ok(false) => return,
                Err(stop) => Msg::Stop(stop),
            };
            let stopped = matches!(msg, Msg::Stop(_));
            if !self.out.send(msg) || stopped {
                return;
            }
        }
    }
}

/// The query a reader runs for each chunk.
fn select<R: TableRow>(order: Order) -> String {
    match order {
        Order::Id => format!(
            "SELECT id, timestamp, {} FROM {} WHERE id >= ?1 AND id <= ?2 ORDER BY id",
            R::COLUMNS,
            R::TABLE
        ),
        Order::Time => format!(
            "SELECT id, timestamp, {} FROM {} WHERE timestamp >= ?2 AND timestamp < ?3 \
             AND (timestamp > ?4 OR (timestamp = ?4 AND id > ?1)) ORDER BY timestamp, id",
            R::COLUMNS,
            R::TABLE
        ),
    }
}

/// Reads one chunk (in time order: the whole table after `spec.after`)
/// into batches; `Ok(false)` when the consumer has gone.
fn read_chunk<R: TableRow>(
    spec: &StreamSpec,
    conn: &Connection,
    stmt: &mut rusqlite::Statement,
    chunk: Chunk,
    sink: &mut impl Sink<R>,
) -> Result<bool, StreamStop> {
    let path = &spec.path;
    let fail = |e: rusqlite::Error| StreamStop::Failed(SourceError::sqlite(path, e));
    let (lo, hi) = spec.window;
    let mut rows = match spec.order {
        Order::Id => stmt.query([chunk.from, chunk.to]),
        Order::Time => {
            let after = spec.after.unwrap_or(Position {
                ts: i64::MIN,
                id: i64::MIN,
            });
            stmt.query([after.id, lo, hi, after.ts])
        }
    }
    .map_err(fail)?;
    let mut batch = sink.batch();
    // The timestamp of the row before, once known: a row whose timestamp
    // is not an integer is placed (and reported) there.
    let mut prev: Option<i64> = None;
    while let Some(row) = rows.next().map_err(fail)? {
        let id: i64 = row.get(0).map_err(fail)?;
        let (ts, ts_ok) = match row.get_ref(1).map_err(fail)? {
            ValueRef::Integer(ts) => (ts, true),
            _ => match prev {
                Some(p) => (p, false),
                None => (
                    timestamp_before(conn, R::TABLE, id, spec).map_err(fail)?,
                    false,
                ),
            },
        };
        let pos = Position { ts, id };
        batch.first.get_or_insert(pos);
        if spec.order == Order::Id {
            if let Some(p) = prev.filter(|&p| ts < p) {
                if !batch.rows.is_empty() {
                    sink.send(Msg::Rows(batch));
                }
                return Err(StreamStop::Disorder {
                    table: R::TABLE,
                    at: pos,
                    prev_ts: p,
                });
            }
            batch.read += 1;
            batch.last_ts = ts;
            prev = Some(ts);
            if ts < lo || ts >= hi {
                continue;
            }
        } else {
            prev = Some(ts);
        }
        let value = if ts_ok {
            R::read(row, &mut batch.levels)
        } else {
            Err(RowError::Column {
                column: "timestamp",
                expected: "an integer",
            })
        };
        batch.rows.push_back(R::new(pos, value));
        if batch.is_full() {
            let full = std::mem::replace(&mut batch, sink.batch());
            if !sink.send(Msg::Rows(full)) {
                return Ok(false);
            }
        }
    }
    if batch.read > 0 || !batch.rows.is_empty() {
        return Ok(sink.send(Msg::Rows(batch)));
    }
    Ok(true)
}

/// The timestamp of the last row before `id` that has one: where a row
/// with a bad timestamp at the start of a chunk is placed, the same as
/// reading the table from its start would have carried forward (and, on
/// resume, what the earlier run placed its last row at).
fn timestamp_before(
    conn: &Connection,
    table: Table,
    id: i64,
    spec: &StreamSpec,
) -> rusqlite::Result<i64> {
    let start = spec.after.map_or(i64::MIN, |a| a.ts);
    if spec.order == Order::Time {
        return Ok(start);
    }
    let before: Option<i64> = conn
        .query_row(
            &format!(
                "SELECT timestamp FROM {table} WHERE id < ?1 AND typeof(timestamp) = 'integer' \
                 ORDER BY id DESC LIMIT 1"
            ),
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(before.unwrap_or(start))
}

/// The consumer's plan of chunks: which ids come next, how wide.
#[derive(Debug)]
struct Plan {
    /// The first id not yet assigned; `None` once the table is covered.
    next: Option<i64>,
    /// The table's last id.
    last: i64,
    /// Ids per chunk.
    span: i64,
}

impl Plan {
    fn new(order: Order, ids: IdRange, after: Option<Position>) -> Plan {
        let (next, last) = match (order, ids) {
            // One "chunk": the sorted query reads the table after `after`.
            (Order::Time, _) => (Some(i64::MIN), i64::MIN),
            (Order::Id, Some((lo, hi))) => {
                let from = match after {
                    Some(a) => a.id.checked_add(1).map(|n| n.max(lo)),
                    None => Some(lo),
                };
                (from.filter(|&f| f <= hi), hi)
            }
            (Order::Id, None) => (None, 0),
        };
        Plan {
            next,
            last,
            span: CHUNK_ROWS as i64,
        }
    }

    /// The next chunk to assign, if any.
    fn take(&mut self) -> Option<Chunk> {
        let from = self.next?;
        let to = from.saturating_add(self.span - 1).min(self.last);
        self.next = if to >= self.last { None } else { Some(to + 1) };
        Some(Chunk { from, to })
    }

    /// Learns from a finished chunk that held `read` rows and `levels`
    /// levels: the next chunks aim at one batch each (at most [`BATCH`]
    /// rows and three quarters of [`BATCH_LEVELS`] levels, so a chunk is
    /// rarely cut in two), widening at most 16-fold at a time.
    fn learn(&mut self, chunk: Chunk, read: u64, levels: u64) {
        let span = i128::from(chunk.to) - i128::from(chunk.from) + 1;
        let read = i128::from(read.max(1));
        let rows = match levels {
            0 => CHUNK_ROWS as i128,
            l => (read * CHUNK_LEVELS as i128 / i128::from(l)).clamp(1, CHUNK_ROWS as i128),
        };
        let aim = (span * rows / read).min(i128::from(self.span) * 16);
        self.span = aim.clamp(MIN_SPAN as i128, i128::from(MAX_SPAN)) as i64;
    }
}

/// A chunk assigned and not yet read to its end.
#[derive(Clone, Copy, Debug)]
struct Pending {
    chunk: Chunk,
    /// The reader it went to.
    reader: usize,
    /// Rows read of it so far, kept or skipped.
    read: u64,
    /// Levels of its kept rows so far.
    levels: u64,
}

/// The consumer's end of one reader.
struct ReaderEnd<R> {
    jobs: Sender<Chunk>,
    rx: Receiver<Msg<R>>,
    spares: SyncSender<Batch<R>>,
}

/// A table being read by its threads, consumed row by row.
pub struct TableStream<R: TableRow> {
    readers: Vec<ReaderEnd<R>>,
    /// The chunks assigned and not yet read to their end, oldest first,
    /// with the reader each went to and the rows and levels read of it so
    /// far.
    pending: VecDeque<Pending>,
    /// Chunks assigned so far (the next goes to reader `dealt % readers`).
    dealt: usize,
    plan: Plan,
    /// Whether where chunks meet is checked for order (`Order::Id`).
    check_order: bool,
    /// The timestamp of the last row read, kept or skipped.
    last_ts: i64,
    path: PathBuf,
    /// Why a thread could not start, if one could not.
    lost: Option<String>,
    /// The batch being taken, with the level buffer its rows point into,
    /// and the reader it goes back to.
    current: Batch<R>,
    current_from: usize,
    head: Option<R>,
    stop: Option<StreamStop>,
    ended: bool,
}

impl<R: TableRow> TableStream<R> {
    /// Starts the table's reader threads and assigns their first chunks.
    pub fn start(spec: StreamSpec) -> TableStream<R> {
        let plan = Plan::new(spec.order, spec.ids, spec.after);
        let threads = match spec.order {
            Order::Id => R::READERS.min(spec.readers).max(1),
            Order::Time => 1,
        };
        let mut readers = Vec::new();
        let mut lost = None;
        // No chunk, no thread: an empty table, or one resumed at its end.
        let threads = if plan.next.is_some() { threads } else { 0 };
        for n in 0..threads {
            let (jobs_tx, jobs) = channel();
            let (tx, rx) = sync_channel(IN_FLIGHT);
            let (spares, spares_rx) = sync_channel(SPARE);
            let reader = Reader::<R> {
                spec: spec.clone(),
                jobs,
                out: ToConsumer {
                    tx,
                    spares: spares_rx,
                },
            };
            let name = match threads {
                1 => format!("read-{}", R::TABLE),
                _ => format!("read-{}-{n}", R::TABLE),
            };
            // A thread that could not start drops its channel without
            // `End`, so the stream reports this as its stop.
            if let Err(e) = std::thread::Builder::new()
                .name(name)
                .spawn(move || reader.run())
            {
                lost.get_or_insert_with(|| format!("its thread could not start: {e}"));
            }
            readers.push(ReaderEnd {
                jobs: jobs_tx,
                rx,
                spares,
            });
        }
        TableStream::over(readers, plan, &spec, lost)
    }

    /// The consuming end, over `readers` (one per thread), with their first
    /// chunks assigned.
    fn over(
        readers: Vec<ReaderEnd<R>>,
        plan: Plan,
        spec: &StreamSpec,
        lost: Option<String>,
    ) -> TableStream<R> {
        let mut stream = TableStream {
            readers,
            pending: VecDeque::new(),
            dealt: 0,
            plan,
            check_order: spec.order == Order::Id,
            last_ts: spec.after.map_or(i64::MIN, |a| a.ts),
            path: spec.path.clone(),
            lost,
            current: Batch::empty(),
            current_from: 0,
            head: None,
            stop: None,
            ended: false,
        };
        for _ in 0..stream.readers.len() * AHEAD {
            stream.deal();
        }
        stream.ended = stream.pending.is_empty();
        stream
    }

    /// Assigns the next chunk, if any, to the reader whose turn it is.
    fn deal(&mut self) {
        if self.readers.is_empty() {
            return;
        }
        if let Some(chunk) = self.plan.take() {
            let n = self.dealt % self.readers.len();
            self.dealt += 1;
            // A reader that has gone shows as a closed channel when its
            // turn comes.
            let _ = self.readers[n].jobs.send(chunk);
            self.pending.push_back(Pending {
                chunk,
                reader: n,
                read: 0,
                levels: 0,
            });
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

    /// The level buffer of the rows being taken (see
    /// [`super::sqlite::Levels::sides`]).
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
            let Some(&Pending { reader: n, .. }) = self.pending.front() else {
                self.ended = true;
                return false;
            };
            match self.readers[n].rx.recv_timeout(timeout) {
                Ok(Msg::Rows(batch)) => self.arrived(batch, n),
                Ok(Msg::Stop(stop)) => self.halt(stop),
                Ok(Msg::End) => {
                    if let Some(p) = self.pending.pop_front() {
                        self.plan.learn(p.chunk, p.read, p.levels);
                    }
                    self.deal();
                }
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => {
                    let detail = self
                        .lost
                        .take()
                        .unwrap_or_else(|| "its thread ended before the table did".to_string());
                    self.halt(StreamStop::Failed(SourceError::ReaderLost {
                        path: self.path.clone(),
                        table: R::TABLE.name(),
                        detail,
                    }));
                }
            }
        }
    }

    /// A batch from reader `n`: checked against the rows before it, then
    /// the one being taken.
    fn arrived(&mut self, batch: Batch<R>, n: usize) {
        if let Some(front) = self.pending.front_mut() {
            front.read += batch.read;
            front.levels += batch.levels.len() as u64;
        }
        if self.check_order {
            if let Some(first) = batch.first.filter(|f| f.ts < self.last_ts) {
                let prev_ts = self.last_ts;
                batch.recycle(&self.readers[n].spares);
                self.halt(StreamStop::Disorder {
                    table: R::TABLE,
                    at: first,
                    prev_ts,
                });
                return;
            }
            if batch.read > 0 {
                self.last_ts = batch.last_ts;
            }
        }
        let done = std::mem::replace(&mut self.current, batch);
        if let Some(r) = self.readers.get(self.current_from) {
            done.recycle(&r.spares);
        }
        self.current_from = n;
    }

    /// Stops the stream: nothing more is taken from the readers, which
    /// end once they see their channels closed.
    fn halt(&mut self, stop: StreamStop) {
        self.stop = Some(stop);
        self.ended = true;
        self.pending.clear();
        self.readers.clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::sqlite::{BookRow, TradeRow};
    use rusqlite::params;

    /// A capture whose book has a row at each `(id, timestamp)`, with one
    /// bid at price `id` (size 1) and no asks.
    fn book(rows: &[(i64, rusqlite::types::Value)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE book(id INTEGER PRIMARY KEY, bids TEXT, asks TEXT, timestamp INTEGER);
             BEGIN;",
        )
        .unwrap();
        let mut insert = conn
            .prepare("INSERT INTO book(id, bids, asks, timestamp) VALUES (?1, ?2, '[]', ?3)")
            .unwrap();
        for (id, ts) in rows {
            insert
                .execute(params![id, format!("[[\"{id}\",\"1\"]]"), ts])
                .unwrap();
        }
        drop(insert);
        conn.execute_batch("COMMIT").unwrap();
        (dir, path)
    }

    fn int(v: i64) -> rusqlite::types::Value {
        rusqlite::types::Value::Integer(v)
    }

    fn spec(path: &std::path::Path, ids: IdRange) -> StreamSpec {
        StreamSpec {
            path: path.to_path_buf(),
            order: Order::Id,
            ids,
            after: None,
            window: (i64::MIN, i64::MAX),
            readers: 2,
        }
    }

    /// A row as [`drain`] gives it.
    type Got = (Position, Result<i64, RowError>);

    /// Every row the stream gives, as (position, first bid price in whole
    /// units or the error), and how it ended.
    fn drain(mut stream: TableStream<BookRow>) -> (Vec<Got>, Next) {
        let mut out = Vec::new();
        loop {
            match stream.poll(Duration::from_secs(10)) {
                Next::Row(_) => {
                    let row = stream.take().unwrap();
                    let price = row.levels.map(|l| {
                        let (bids, _) = l.sides(stream.levels());
                        bids[0].price.raw() / crate::model::fixed::SCALE
                    });
                    out.push((row.pos, price));
                }
                Next::Pending => panic!("no row within 10 s"),
                end => {
                    if let Next::Stopped = end {
                        let stop = stream.take_stop();
                        assert!(stop.is_some());
                        if let Some(StreamStop::Disorder { at, prev_ts, .. }) = stop {
                            out.push((at, Ok(-prev_ts)));
                        }
                    }
                    return (out, end);
                }
            }
        }
    }

    #[test]
    fn rows_come_out_in_id_order_across_chunks_and_readers() {
        // Dense ids over many chunks (two readers, 4096 ids a chunk).
        let rows: Vec<_> = (1..=30_000).map(|id| (id, int(id * 10))).collect();
        let (_dir, path) = book(&rows);
        let (got, end) = drain(TableStream::start(spec(&path, Some((1, 30_000)))));
        assert!(matches!(end, Next::End), "{end:?}");
        let want: Vec<_> = (1..=30_000)
            .map(|id| (Position { ts: id * 10, id }, Ok(id)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn sparse_ids_widen_the_chunks() {
        // 3000 rows spread over 3 billion ids: chunks of 4096 ids would
        // take 700 000 queries.
        let rows: Vec<_> = (1..=3000i64).map(|k| (k * 1_000_000, int(k))).collect();
        let (_dir, path) = book(&rows);
        let mut stream =
            TableStream::<BookRow>::start(spec(&path, Some((1_000_000, 3_000_000_000))));
        let mut ids = Vec::new();
        while let Next::Row(p) = stream.poll(Duration::from_secs(10)) {
            ids.push(p.id);
            stream.take();
        }
        assert_eq!(ids, (1..=3000).map(|k| k * 1_000_000).collect::<Vec<_>>());
        assert!(stream.dealt < 200, "{} chunks", stream.dealt);
    }

    #[test]
    fn a_resumed_stream_starts_after_its_row_and_skips_rows_outside_the_window() {
        let rows: Vec<_> = (1..=5000).map(|id| (id, int(id))).collect();
        let (_dir, path) = book(&rows);
        let mut s = spec(&path, Some((1, 5000)));
        s.after = Some(Position { ts: 3000, id: 3000 });
        s.window = (0, 4500);
        let (got, end) = drain(TableStream::start(s));
        assert!(matches!(end, Next::End));
        let ids: Vec<i64> = got.iter().map(|r| r.0.id).collect();
        assert_eq!(ids, (3001..4500).collect::<Vec<_>>());
    }

    #[test]
    fn timestamps_going_back_stop_the_stream_inside_a_chunk_and_where_chunks_meet() {
        // Chunks are ids 1..=4096, 4097..=8192, …: a step back at 4097 is
        // seen only where two readers' chunks meet, one at 100 inside one.
        for at in [CHUNK_ROWS as i64 + 1, 100] {
            let rows: Vec<_> = (1..=9000)
                .map(|id| (id, int(if id == at { 5 } else { id * 10 })))
                .collect();
            let (_dir, path) = book(&rows);
            let (got, end) = drain(TableStream::start(spec(&path, Some((1, 9000)))));
            assert!(matches!(end, Next::Stopped), "{end:?}");
            let (stop, rows) = got.split_last().unwrap();
            let ids: Vec<i64> = rows.iter().map(|r| r.0.id).collect();
            assert_eq!(
                ids,
                (1..at).collect::<Vec<_>>(),
                "every row before, in order"
            );
            assert_eq!(stop.0, Position { ts: 5, id: at });
            assert_eq!(stop.1, Ok(-(at - 1) * 10), "the row before's timestamp");
        }
    }

    #[test]
    fn a_bad_timestamp_takes_the_one_before_even_at_a_chunk_start() {
        // The second chunk starts at id k + 1: rows k + 1 and k + 2 have
        // text timestamps, k - 1 and k (the first chunk's last) none, so
        // the one before is k - 2's.
        let k = CHUNK_ROWS as i64;
        let rows: Vec<_> = (1..=k + 1000)
            .map(|id| {
                let ts = match id - k {
                    -1 | 0 => rusqlite::types::Value::Null,
                    1 | 2 => rusqlite::types::Value::Text("soon".into()),
                    _ => int(id * 10),
                };
                (id, ts)
            })
            .collect();
        let (_dir, path) = book(&rows);
        let (got, end) = drain(TableStream::start(spec(&path, Some((1, k + 1000)))));
        assert!(matches!(end, Next::End));
        assert_eq!(got.len(), rows.len());
        for (pos, levels) in &got[k as usize - 2..k as usize + 2] {
            assert_eq!(pos.ts, (k - 2) * 10, "row {}", pos.id);
            assert!(
                matches!(
                    levels,
                    Err(RowError::Column {
                        column: "timestamp",
                        ..
                    })
                ),
                "{levels:?}"
            );
        }
        let next = k + 3;
        assert_eq!(
            got[next as usize - 1],
            (
                Position {
                    ts: next * 10,
                    id: next
                },
                Ok(next)
            )
        );
    }

    /// Keeps every batch a reader sends: (rows, levels) each.
    #[derive(Default)]
    struct Recorder(Vec<(usize, usize)>);

    impl Sink<BookRow> for Recorder {
        fn batch(&mut self) -> Batch<BookRow> {
            Batch::empty()
        }

        fn send(&mut self, msg: Msg<BookRow>) -> bool {
            if let Msg::Rows(b) = msg {
                self.0.push((b.rows.len(), b.levels.len()));
            }
            true
        }
    }

    #[test]
    fn batches_are_bounded_by_rows_and_by_levels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE book(id INTEGER PRIMARY KEY, bids TEXT, asks TEXT, timestamp INTEGER);",
        )
        .unwrap();
        // 3000 rows of one level, then 300 of 1000 levels (a big
        // snapshot's size): the first are cut by row count, the others by
        // levels.
        let big = format!("[{}]", vec!["[\"1\",\"1\"]"; 1000].join(","));
        let small = "[[\"1\",\"1\"]]";
        conn.execute_batch("BEGIN").unwrap();
        let mut insert = conn
            .prepare("INSERT INTO book(id, bids, asks, timestamp) VALUES (?1, ?2, '[]', ?1)")
            .unwrap();
        for id in 1..=3300i64 {
            insert
                .execute(params![id, if id <= 3000 { small } else { &big }])
                .unwrap();
        }
        drop(insert);
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        let spec = spec(&path, Some((1, 3300)));
        let conn = open(&path).unwrap();
        let mut stmt = conn.prepare(&select::<BookRow>(Order::Id)).unwrap();
        let mut sink = Recorder::default();
        let whole = Chunk { from: 1, to: 3300 };
        assert!(read_chunk::<BookRow>(&spec, &conn, &mut stmt, whole, &mut sink).unwrap());
        let rows: usize = sink.0.iter().map(|b| b.0).sum();
        assert_eq!(rows, 3300, "every row, once");
        assert_eq!(sink.0[0].0, BATCH, "small rows: full batches by count");
        for &(n, levels) in &sink.0 {
            assert!(n <= BATCH, "{n} rows in a batch");
            assert!(levels < BATCH_LEVELS + 1000, "{levels} levels in a batch");
        }
        let cut_by_levels = sink.0.iter().filter(|b| b.1 >= BATCH_LEVELS).count();
        assert!(cut_by_levels >= 5, "{:?}", sink.0);
    }

    /// A stream over one reader fed by hand: `msgs` are sent, then the
    /// sending side is dropped as a dying thread would drop it.
    fn fed(msgs: Vec<Msg<TradeRow>>) -> TableStream<TradeRow> {
        let (tx, rx) = sync_channel(msgs.len() + 1);
        for m in msgs {
            tx.send(m).unwrap();
        }
        let (jobs, _) = channel();
        let (spares, _) = sync_channel(SPARE);
        let spec = StreamSpec {
            path: "cap.db".into(),
            order: Order::Id,
            ids: Some((1, 10)),
            after: None,
            window: (i64::MIN, i64::MAX),
            readers: 1,
        };
        let plan = Plan::new(Order::Id, spec.ids, None);
        TableStream::over(vec![ReaderEnd { jobs, rx, spares }], plan, &spec, None)
    }

    #[test]
    fn a_table_ends_only_when_its_reader_says_so() {
        let mut done = fed(vec![Msg::End]);
        assert!(matches!(done.poll(Duration::from_millis(10)), Next::End));

        // The channel closed without `End`: a reader thread died. The
        // table must not look complete (its rows would be lost silently).
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

    #[test]
    fn the_plan_covers_every_id_once_and_sizes_chunks_by_rows() {
        let mut plan = Plan::new(Order::Id, Some((i64::MAX - 5000, i64::MAX)), None);
        let mut chunks = Vec::new();
        while let Some(c) = plan.take() {
            chunks.push(c);
        }
        assert_eq!(chunks.first().map(|c| c.from), Some(i64::MAX - 5000));
        assert_eq!(chunks.last().map(|c| c.to), Some(i64::MAX));
        assert!(chunks.windows(2).all(|w| w[1].from == w[0].to + 1));

        let mut plan = Plan::new(Order::Id, Some((1, i64::MAX)), None);
        let first = plan.take().unwrap();
        plan.learn(first, 0, 0);
        assert_eq!(
            plan.span,
            16 * CHUNK_ROWS as i64,
            "an empty chunk widens 16-fold"
        );
        let wide = plan.take().unwrap();
        plan.learn(wide, 16 * CHUNK_ROWS as u64, 0);
        assert_eq!(plan.span, CHUNK_ROWS as i64, "a dense one narrows back");
        // Dense rows of 64 levels: as many rows as make the chunk's levels.
        let chunk = plan.take().unwrap();
        plan.learn(chunk, CHUNK_ROWS as u64, 64 * CHUNK_ROWS as u64);
        assert_eq!(plan.span, (CHUNK_LEVELS / 64) as i64);
        // Rows of thousands of levels: the narrowest chunk.
        let chunk = plan.take().unwrap();
        plan.learn(chunk, (CHUNK_LEVELS / 64) as u64, 20_000_000);
        assert_eq!(plan.span, MIN_SPAN);
        // Resumed at the last id: nothing left.
        let done = Plan::new(Order::Id, Some((1, 10)), Some(Position { ts: 0, id: 10 }));
        assert_eq!(done.next, None);
    }
}
