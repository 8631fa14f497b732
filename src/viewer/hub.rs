//! The live side of the series store: turns each write of a segment into a
//! `bars` event holding only the bars that changed or were added, numbered,
//! kept in a bounded history for clients that reconnect, and broadcast to
//! every `/api/stream` subscriber.
//!
//! The hub watches `OUT/series` (inotify, recursive) and reacts to each
//! segment renamed into place: it reads the segment (through the
//! [`StoreReader`] cache, so a query never parses it again) and diffs it
//! against the newest segment it knew of that series. Footprint and heatmap
//! segments are diffed the same way, bar by bar as stored. A backup poll looks
//! at the index every [`POLL`], re-arms the watch when `series/` was
//! replaced, and catches up on anything the kernel dropped. Status changes
//! are numbered into the same sequence ([`Hub::publish_status`]).
//!
//! It runs on a thread of its own (file reads and JSON parsing would block
//! the async runtime) and only reads the store.

use crate::store::format;
use crate::store::views;
use crate::store::{FileBar, SeriesBar, StoreReader, Timeframe};
use notify::{RecursiveMode, Watcher};
use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// How often the backup poll looks at the index.
pub const POLL: Duration = Duration::from_millis(500);
/// Events kept for clients that reconnect with `Last-Event-ID`.
pub const HISTORY_EVENTS: usize = 4096;
/// Bytes of event data kept in that history, at most.
pub const HISTORY_BYTES: usize = 8 << 20;
/// Events a subscriber may fall behind the hub before it is sent a reset.
pub const BROADCAST: usize = 1024;

/// What an event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `{"series", "bars", "written_ms"}`: bars of one stored series that
    /// changed or were added.
    Bars,
    /// The processor's `status.json`.
    Status,
    /// The store was replaced (a fresh run): every subscriber gets a
    /// `reset` of each series it follows.
    Reset,
}

/// One numbered event.
#[derive(Debug)]
pub struct HubEvent {
    pub seq: u64,
    pub kind: Kind,
    /// The stored series of a `bars` event.
    pub series: Option<String>,
    /// The changed bars, for subscribers that merge them into a longer
    /// timeframe.
    pub bars: Vec<SeriesBar>,
    /// The segment's `written_ms` (of a `bars` event).
    pub written_ms: i64,
    /// The event's JSON data.
    pub data: String,
}

impl HubEvent {
    /// A `bars` event of stored series `id` (its `seq` set on publishing).
    fn bars(id: &str, data: String, bars: Vec<SeriesBar>, written_ms: i64) -> HubEvent {
        HubEvent {
            seq: 0,
            kind: Kind::Bars,
            series: Some(id.to_string()),
            bars,
            written_ms,
            data,
        }
    }
}

/// A bar the hub diffs: a series bar, or a footprint or heatmap bar as
/// stored (its first element is its window's start).
pub trait Tracked: Clone + PartialEq {
    fn ts(&self) -> i64;
}

impl Tracked for SeriesBar {
    fn ts(&self) -> i64 {
        self.ts
    }
}

impl Tracked for serde_json::Value {
    fn ts(&self) -> i64 {
        self.get(0)
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(i64::MIN)
    }
}

/// The newest segment the hub knows of one series or view.
struct Known<T> {
    start: i64,
    bars: Vec<T>,
}

struct Inner {
    seq: u64,
    known: HashMap<String, Known<SeriesBar>>,
    /// Footprints and heatmaps, by `INSTRUMENT/VIEW`.
    views: HashMap<String, Known<serde_json::Value>>,
    history: VecDeque<Arc<HubEvent>>,
    history_bytes: usize,
}

/// The diff broadcaster (see the module docs).
pub struct Hub {
    reader: Arc<StoreReader>,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<HubEvent>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// What a subscriber needs to start: the sequence number its snapshot is
/// as of, and the events after `after` still in the history (`None` when
/// they are gone: send a reset).
pub struct Resume {
    pub seq: u64,
    pub missed: Option<Vec<Arc<HubEvent>>>,
}

/// The bars of `new` that are not in `old` as they are (by timestamp).
pub fn diff<T: Tracked>(old: &[T], new: &[T]) -> Vec<T> {
    let same = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    new[same..]
        .iter()
        .filter(|b| {
            old.binary_search_by_key(&b.ts(), Tracked::ts)
                .map_or(true, |i| old[i] != **b)
        })
        .cloned()
        .collect()
}

/// Which segments to read when segment `start` of a series was written
/// and the hub knew segment `known` of it: every one from the known on
/// (`listed` by the index, in case a write in between was missed), none
/// when `start` is older than what is known.
fn to_read(known: Option<i64>, start: i64, listed: impl FnOnce() -> Vec<i64>) -> Vec<i64> {
    match known {
        Some(k) if start > k => {
            let mut starts: Vec<i64> = listed()
                .into_iter()
                .filter(|s| (k..start).contains(s))
                .collect();
            if starts.first() != Some(&k) {
                starts.insert(0, k);
            }
            starts.push(start);
            starts
        }
        Some(k) if start < k => Vec::new(), // an older, sealed one: nothing new
        _ => vec![start],
    }
}

/// Learns segment `start` of a series (`bars`) into `map` and returns the
/// bars that changed, or `None` when it is older than what is known.
/// The segment starts the index lists for `id` among `entries`.
fn segments_of<E>(
    entries: &[E],
    id: &str,
    fields: impl Fn(&E) -> (&String, &Vec<i64>),
) -> Option<Vec<i64>> {
    entries
        .iter()
        .map(fields)
        .find(|(e, _)| *e == id)
        .map(|(_, s)| s.clone())
}

fn learn<T: Tracked>(
    map: &mut HashMap<String, Known<T>>,
    id: &str,
    start: i64,
    bars: &[T],
) -> Option<Vec<T>> {
    let changed = match map.get(id) {
        Some(k) if k.start == start => diff(&k.bars, bars),
        Some(k) if k.start > start => return None,
        _ => bars.to_vec(),
    };
    map.insert(
        id.to_string(),
        Known {
            start,
            bars: bars.to_vec(),
        },
    );
    Some(changed)
}

impl Hub {
    pub fn new(reader: Arc<StoreReader>) -> Hub {
        let (tx, _) = broadcast::channel(BROADCAST);
        Hub {
            reader,
            inner: Mutex::new(Inner {
                seq: 0,
                known: HashMap::new(),
                views: HashMap::new(),
                history: VecDeque::new(),
                history_bytes: 0,
            }),
            tx,
        }
    }

    pub fn reader(&self) -> &Arc<StoreReader> {
        &self.reader
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to new events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HubEvent>> {
        self.tx.subscribe()
    }

    /// The current sequence number and, when `after` is given, the events
    /// after it from the history (`None` if some are no longer there).
    pub fn resume(&self, after: Option<u64>) -> Resume {
        let inner = self.lock();
        let missed = after.and_then(|after| {
            if after > inner.seq {
                return None;
            }
            let oldest = inner.history.front().map_or(inner.seq + 1, |e| e.seq);
            (after + 1 >= oldest).then(|| {
                inner
                    .history
                    .iter()
                    .filter(|e| e.seq > after)
                    .cloned()
                    .collect()
            })
        });
        Resume {
            seq: inner.seq,
            missed,
        }
    }

    fn publish(&self, inner: &mut Inner, event: HubEvent) {
        inner.seq += 1;
        let event = Arc::new(HubEvent {
            seq: inner.seq,
            ..event
        });
        inner.history_bytes += event.data.len();
        inner.history.push_back(event.clone());
        while inner.history.len() > HISTORY_EVENTS || inner.history_bytes > HISTORY_BYTES {
            match inner.history.pop_front() {
                Some(old) => inner.history_bytes -= old.data.len(),
                None => break,
            }
        }
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    /// Numbers and broadcasts a new `status.json`.
    pub fn publish_status(&self, body: &[u8]) {
        let data = String::from_utf8_lossy(body).into_owned();
        let mut inner = self.lock();
        let event = HubEvent {
            seq: 0,
            kind: Kind::Status,
            series: None,
            bars: Vec::new(),
            written_ms: 0,
            data,
        };
        self.publish(&mut inner, event);
    }

    /// A segment of `instrument`/`tf` starting at `start` was written:
    /// publishes what changed. With `quiet`, only learns it (start-up).
    pub fn on_segment(&self, instrument: &str, tf: Timeframe, start: i64, quiet: bool) {
        let id = format::series_id(instrument, tf);
        let read = |s| self.reader.segment(instrument, tf, s).ok();
        self.follow(
            &id,
            start,
            quiet,
            |i| &mut i.known,
            |i, id| segments_of(&i.series, id, |e| (&e.id, &e.segments)),
            read,
            |seg| &seg.bars,
            |id, seg, changed| {
                let data = bars_json(id, &changed, seg.written_ms);
                HubEvent::bars(id, data, changed, seg.written_ms)
            },
        );
    }

    /// A segment of `instrument`'s `view` (footprint or heatmap) starting
    /// at `start` was written: publishes the bars that changed, as stored.
    pub fn on_view_segment(&self, instrument: &str, view: &str, start: i64, quiet: bool) {
        let id = format!("{instrument}/{view}");
        let read = |s| self.reader.view_segment(instrument, view, s).ok();
        self.follow(
            &id,
            start,
            quiet,
            |i| &mut i.views,
            |i, id| segments_of(&i.views, id, |e| (&e.id, &e.segments)),
            read,
            |seg| &seg.bars,
            |id, seg, changed| {
                let data = view_json(id, seg.window_ms, seg.tick, &changed, seg.written_ms);
                HubEvent::bars(id, data, Vec::new(), seg.written_ms)
            },
        );
    }

    /// Reads the segments of `id` from `start` on (and any the index
    /// lists between the last one known and `start`), learns their
    /// `bars` and, unless `quiet`, publishes the event `event` makes of
    /// the bars that changed in each.
    #[allow(clippy::too_many_arguments)]
    fn follow<T: Tracked, M>(
        &self,
        id: &str,
        start: i64,
        quiet: bool,
        map: fn(&mut Inner) -> &mut HashMap<String, Known<T>>,
        listed: fn(&format::Index, &str) -> Option<Vec<i64>>,
        read: impl Fn(i64) -> Option<M>,
        bars: fn(&M) -> &Vec<T>,
        event: impl Fn(&str, &M, Vec<T>) -> HubEvent,
    ) {
        let known = map(&mut self.lock()).get(id).map(|k| k.start);
        for s in to_read(known, start, || self.index_entry(|i| listed(i, id))) {
            let Some(seg) = read(s) else {
                continue;
            };
            let mut inner = self.lock();
            let Some(changed) = learn(map(&mut inner), id, s, bars(&seg)) else {
                continue;
            };
            if quiet || changed.is_empty() {
                continue;
            }
            let e = event(id, &seg, changed);
            self.publish(&mut inner, e);
        }
    }

    /// Something the index says, or the default when there is no index.
    fn index_entry<T: Default>(&self, f: impl FnOnce(&format::Index) -> Option<T>) -> T {
        self.reader
            .index()
            .ok()
            .flatten()
            .and_then(|i| f(&i))
            .unwrap_or_default()
    }

    /// Brings every series up to the index (start-up, backup poll, a
    /// replaced store).
    pub fn sync(&self, quiet: bool) {
        let Ok(Some(index)) = self.reader.index() else {
            return;
        };
        for e in &index.series {
            if let Some(newest) = self.newest(|i| &mut i.known, &e.id, &e.segments) {
                self.on_segment(&e.instrument, e.timeframe, newest, quiet);
            }
        }
        for e in &index.views {
            if let Some(newest) = self.newest(|i| &mut i.views, &e.id, &e.segments) {
                self.on_view_segment(&e.instrument, &e.view, newest, quiet);
            }
        }
    }

    /// The newest of a series' `segments`; what is known of it is
    /// forgotten when it is newer still (the store was replaced by a fresh
    /// run: start over).
    fn newest<T>(
        &self,
        map: impl FnOnce(&mut Inner) -> &mut HashMap<String, Known<T>>,
        id: &str,
        segments: &[i64],
    ) -> Option<i64> {
        let newest = *segments.last()?;
        let mut inner = self.lock();
        let map = map(&mut inner);
        if map.get(id).is_some_and(|k| k.start > newest) {
            map.remove(id);
        }
        Some(newest)
    }

    /// The store directory was replaced (a fresh run) or removed: nothing
    /// known holds any more; subscribers start over.
    fn replaced(&self) {
        self.reader.clear();
        let mut inner = self.lock();
        inner.known.clear();
        inner.views.clear();
        let event = HubEvent {
            seq: 0,
            kind: Kind::Reset,
            series: None,
            bars: Vec::new(),
            written_ms: 0,
            data: String::new(),
        };
        self.publish(&mut inner, event);
    }

    /// Watches `OUT/series` and publishes changes until `stop` is set.
    /// Blocks: run it on its own thread.
    pub fn run(self: Arc<Self>, stop: Arc<AtomicBool>) {
        let root = self.reader.root().to_path_buf();
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let mut watcher: Option<notify::RecommendedWatcher> = None;
        let mut identity = None;
        self.sync(true);
        let mut last_sync = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = dir_identity(&root);
            if now != identity && identity.is_some() {
                self.replaced();
            }
            if now.is_some() && (watcher.is_none() || now != identity) {
                watcher = watch(&root, tx.clone());
                self.sync(false);
            } else if now.is_none() {
                watcher = None;
            }
            identity = now;
            match rx.recv_timeout(POLL) {
                Ok(path) => {
                    let mut paths = vec![path];
                    paths.extend(rx.try_iter());
                    // Segments in order, the index (written after them) last.
                    paths.sort_by_key(|p| (p.ends_with(format::INDEX), p.clone()));
                    paths.dedup();
                    for p in paths {
                        self.on_path(&root, &p);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => watcher = None,
            }
            // The backup poll, also while events keep coming (one the
            // watch reported but could not place must not wait for quiet).
            if last_sync.elapsed() >= POLL {
                self.sync(false);
                last_sync = std::time::Instant::now();
            }
        }
    }

    fn on_path(&self, root: &Path, path: &Path) {
        let Ok(rel) = path.strip_prefix(root) else {
            return;
        };
        let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
        match parts.as_slice() {
            [name] if *name == format::INDEX => self.sync(false),
            [instrument, tf, file] => {
                let Some(start) = file.strip_suffix(".json").and_then(|s| s.parse().ok()) else {
                    return;
                };
                if [views::FOOTPRINT, views::HEATMAP].contains(tf) {
                    return self.on_view_segment(instrument, tf, start, false);
                }
                let Ok(tf) = tf.parse::<Timeframe>() else {
                    return;
                };
                self.on_segment(instrument, tf, start, false);
            }
            _ => {}
        }
    }
}

/// The data of a `bars`, `snapshot` or `reset` event.
pub fn bars_json(series: &str, bars: &[SeriesBar], written_ms: i64) -> String {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        series: &'a str,
        bars: Vec<FileBar>,
        written_ms: i64,
    }
    serde_json::to_string(&Out {
        series,
        bars: bars.iter().map(|b| FileBar(*b)).collect(),
        written_ms,
    })
    .unwrap_or_default()
}

/// The data of a footprint or heatmap `bars`, `snapshot` or `reset`
/// event: `{"series", "window_ms", "tick" (footprint), "bars",
/// "written_ms"}`, the bars as stored.
pub fn view_json(
    series: &str,
    window_ms: i64,
    tick: Option<f64>,
    bars: &[serde_json::Value],
    written_ms: i64,
) -> String {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        series: &'a str,
        window_ms: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        tick: Option<f64>,
        bars: &'a [serde_json::Value],
        written_ms: i64,
    }
    serde_json::to_string(&Out {
        series,
        window_ms,
        tick,
        bars,
        written_ms,
    })
    .unwrap_or_default()
}

fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// A recursive watch of `root` sending the path of every file renamed or
/// written into place (temp files are left out).
fn watch(root: &Path, tx: mpsc::Sender<PathBuf>) -> Option<notify::RecommendedWatcher> {
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        let relevant = matches!(
            event.kind,
            notify::EventKind::Create(_)
                | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
        );
        if !relevant {
            return;
        }
        for p in event.paths {
            let temp = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.starts_with('.') || !n.ends_with(".json"));
            if !temp {
                let _ = tx.send(p);
            }
        }
    })
    .ok()?;
    w.watch(root, RecursiveMode::Recursive).ok()?;
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Candle, Fixed};

    fn bar(ts: i64, v: i64) -> SeriesBar {
        SeriesBar {
            ts,
            price: None,
            volume: Fixed::from_raw(v),
            obi: Candle::new(0.0),
            cvd: Candle::new(Fixed::ZERO),
        }
    }

    #[test]
    fn a_diff_holds_exactly_the_changed_and_added_bars() {
        let old = [bar(0, 1), bar(10, 1), bar(20, 1)];
        let new = [bar(0, 1), bar(10, 1), bar(20, 5), bar(30, 1)];
        assert_eq!(diff(&old, &new), [bar(20, 5), bar(30, 1)]);
        assert_eq!(diff(&new, &new), []);
        assert_eq!(diff(&[], &old), old);
        // An insertion in the middle shifts positions; only it counts.
        let mid = [bar(0, 1), bar(10, 1), bar(15, 1), bar(20, 1)];
        assert_eq!(diff(&old, &mid), [bar(15, 1)]);
    }

    #[test]
    fn history_is_bounded_and_resume_says_when_it_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::new(Arc::new(StoreReader::new(dir.path(), 10)));
        for _ in 0..HISTORY_EVENTS + 10 {
            hub.publish_status(b"{}");
        }
        let r = hub.resume(Some(5));
        assert!(r.missed.is_none(), "events 6.. are gone");
        let r = hub.resume(Some(r.seq - 3));
        assert_eq!(r.missed.map(|m| m.len()), Some(3));
        assert!(hub.resume(Some(u64::MAX)).missed.is_none());
        assert_eq!(hub.resume(None).seq, (HISTORY_EVENTS + 10) as u64);
    }
}
