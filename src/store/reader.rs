//! The reader's half of the store: the index, segments through a bounded
//! cache of parsed bars, and range queries at any whole multiple of a
//! stored timeframe, merged exactly (docs/formats.md, "Series store").
//!
//! Sealed segments never change, so once parsed they are kept by path
//! until the cache's bar budget pushes them out (least recently used
//! first); an open segment is kept with its file's identity (inode,
//! length, mtime) and read again when that changes. A query never parses
//! a cached sealed segment again.
//!
//! A query for `k × T` bars reads the coarsest stored timeframe that
//! divides the window it needs (the stored timeframes form a pyramid:
//! a day of `1h` bars is read from `1h`, not from 86 400 `1s` bars) and
//! merges exactly. With `max_bars`, the window is the smallest multiple
//! `k × T` whose bars fit. This module only reads files.

use super::bar::{merge_into, SeriesBar};
use super::format::{self, Index, IndexEntry, SegmentFile, SEGMENT_WINDOWS};
use super::timeframe::Timeframe;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bars the segment cache holds by default (about 120 bytes each): a day
/// of `1s` bars for four instruments, with room to spare.
pub const DEFAULT_CACHE_BARS: usize = 400_000;
/// The most bars one answer may hold.
pub const MAX_BARS: usize = 100_000;

/// The most footprint or heatmap bars one answer may hold (a heatmap bar
/// is the book's best levels: a hundred numbers pairs or so).
pub const MAX_VIEW_BARS: usize = 20_000;

/// A range of a footprint or heatmap (`GET /api/series/<I>/footprint`).
#[derive(Clone, Debug, PartialEq)]
pub struct ViewAnswer {
    /// `INSTRUMENT/VIEW`.
    pub series: String,
    pub window_ms: i64,
    /// The footprint's price bucket (of the newest segment read).
    pub tick: Option<f64>,
    /// The bars as stored (docs/formats.md, "Footprint and heatmap").
    pub bars: Vec<serde_json::Value>,
}

/// A footprint or heatmap segment as read (its bars as stored).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct ViewSegment {
    pub window_ms: i64,
    #[serde(default)]
    pub written_ms: i64,
    /// The footprint's price bucket.
    #[serde(default)]
    pub tick: Option<f64>,
    pub bars: Vec<serde_json::Value>,
}

/// A store file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid store file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Why a range query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No such series (and it cannot be merged from one): 404.
    #[error("{0}")]
    Unknown(String),
    /// A bad parameter: 400.
    #[error("{0}")]
    Bad(String),
    /// The store could not be read: 503 (it is being replaced, or broken).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A range query (`GET /api/series/<INSTRUMENT>/<TF>`).
#[derive(Clone, Debug, PartialEq)]
pub struct RangeQuery {
    pub instrument: String,
    pub timeframe: Timeframe,
    /// Bars with `from ≤ ts < to`; either may be open.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// At most this many bars: the window grows to the smallest multiple
    /// of the timeframe whose bars fit.
    pub max_bars: Option<usize>,
}

/// The answer to a [`RangeQuery`].
#[derive(Clone, Debug, PartialEq)]
pub struct RangeAnswer {
    /// `INSTRUMENT/TF` as asked.
    pub series: String,
    /// The window of the bars (a multiple of the asked timeframe when
    /// `max_bars` made it grow).
    pub window_ms: i64,
    pub bars: Vec<SeriesBar>,
    /// Bars of the asked timeframe in the range (more than `bars` holds
    /// when `max_bars` made the window grow).
    pub total: usize,
}

/// A parsed segment.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentData {
    pub start_ms: i64,
    pub sealed: bool,
    pub written_ms: i64,
    pub bars: Vec<SeriesBar>,
}

/// A cached segment and the index range of the bars wanted from it.
type Slice = (Arc<SegmentData>, std::ops::Range<usize>);

/// `(inode, length, mtime s, ns)`: a file's identity, to tell a replaced one.
type Identity = (u64, u64, i64, i64);

fn identity(path: &Path) -> Option<Identity> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

struct Cached {
    data: Arc<SegmentData>,
    identity: Option<Identity>,
    used: u64,
}

#[derive(Default)]
struct Cache {
    segments: HashMap<PathBuf, Cached>,
    bars: usize,
    tick: u64,
    index: Option<(Identity, Arc<Index>)>,
    /// The store directory the cache is of: a fresh run replaces it, and
    /// everything cached (sealed segments too) goes with it.
    root: Option<(u64, u64)>,
}

/// Reads the store in `OUT/series`, with a bounded cache of segments.
pub struct StoreReader {
    out: PathBuf,
    root: PathBuf,
    budget: usize,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("root", &self.root)
            .field("budget", &self.budget)
            .finish()
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let bytes = std::fs::read(path).map_err(|source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

impl StoreReader {
    /// A reader of `out/series` whose cache holds at most `budget` bars.
    pub fn new(out: &Path, budget: usize) -> StoreReader {
        StoreReader {
            out: out.to_path_buf(),
            root: out.join(format::DIR),
            budget,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets everything cached (the store was replaced).
    pub fn clear(&self) {
        let mut cache = self.lock();
        cache.segments.clear();
        cache.bars = 0;
        cache.index = None;
    }

    /// The index, or `None` when there is no store (yet).
    pub fn index(&self) -> Result<Option<Arc<Index>>, StoreError> {
        let root = std::fs::metadata(&self.root)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        {
            let mut cache = self.lock();
            if cache.root != root {
                cache.segments.clear();
                cache.bars = 0;
                cache.index = None;
                cache.root = root;
            }
        }
        let path = self.root.join(format::INDEX);
        let Some(id) = identity(&path) else {
            return Ok(None);
        };
        if let Some((cached, index)) = &self.lock().index {
            if *cached == id {
                return Ok(Some(index.clone()));
            }
        }
        let index: Arc<Index> = match read_json(&path) {
            Ok(i) => Arc::new(i),
            // Replaced between the stat and the read (a fresh run).
            Err(StoreError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        self.lock().index = Some((id, index.clone()));
        Ok(Some(index))
    }

    /// The segment of `instrument`/`tf` starting at `start_ms`, from the
    /// cache when it is there and current.
    pub fn segment(
        &self,
        instrument: &str,
        tf: Timeframe,
        start_ms: i64,
    ) -> Result<Arc<SegmentData>, StoreError> {
        let path = self
            .out
            .join(format::series_dir(instrument, tf))
            .join(format::segment_name(start_ms));
        let mut id = None;
        {
            let mut cache = self.lock();
            cache.tick += 1;
            let tick = cache.tick;
            if let Some(c) = cache.segments.get_mut(&path) {
                if c.data.sealed {
                    c.used = tick;
                    return Ok(c.data.clone());
                }
                id = identity(&path);
                if id.is_some() && id == c.identity {
                    c.used = tick;
                    return Ok(c.data.clone());
                }
            }
        }
        let id = id.or_else(|| identity(&path));
        let file: SegmentFile = read_json(&path)?;
        let data = Arc::new(SegmentData {
            start_ms: file.start_ms,
            sealed: file.sealed,
            written_ms: file.written_ms,
            bars: file.bars.into_iter().map(|b| b.0).collect(),
        });
        let mut cache = self.lock();
        cache.tick += 1;
        let used = cache.tick;
        let n = data.bars.len();
        if let Some(old) = cache.segments.insert(
            path,
            Cached {
                data: data.clone(),
                identity: id,
                used,
            },
        ) {
            cache.bars -= old.data.bars.len();
        }
        cache.bars += n;
        while cache.bars > self.budget && cache.segments.len() > 1 {
            let Some(oldest) = cache
                .segments
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            if let Some(c) = cache.segments.remove(&oldest) {
                cache.bars -= c.data.bars.len();
            }
        }
        Ok(data)
    }

    /// Bars cached now, and the budget.
    pub fn cached_bars(&self) -> (usize, usize) {
        (self.lock().bars, self.budget)
    }

    /// The stored bars of `entry` with `from ≤ ts < to`, as the cached
    /// segments holding them and the index range in each (no copy).
    fn slices(&self, entry: &IndexEntry, from: i64, to: i64) -> Result<Vec<Slice>, StoreError> {
        let span = entry.window_ms * SEGMENT_WINDOWS;
        let mut out = Vec::new();
        for &start in &entry.segments {
            if start >= to || start + span <= from {
                continue;
            }
            let seg = self.segment(&entry.instrument, entry.timeframe, start)?;
            let lo = seg.bars.partition_point(|b| b.ts < from);
            let hi = seg.bars.partition_point(|b| b.ts < to);
            out.push((seg, lo..hi));
        }
        Ok(out)
    }

    /// How many bars of windows `w` (a multiple of `entry`'s timeframe)
    /// start in `[from, to)`; nothing is built.
    fn count(&self, entry: &IndexEntry, w: i64, from: i64, to: i64) -> Result<usize, StoreError> {
        let parts = self.slices(entry, align_up(from, w), align_up(to, w))?;
        if w == entry.window_ms {
            return Ok(parts.iter().map(|(_, r)| r.len()).sum());
        }
        let mut last = None;
        Ok(parts
            .iter()
            .flat_map(|(s, r)| &s.bars[r.clone()])
            .filter(|b| last.replace(b.ts.div_euclid(w)) != Some(b.ts.div_euclid(w)))
            .count())
    }

    /// The bars of windows `w` whose start is in `[from, to)`, merged
    /// exactly from `entry` ([`merge_into`]).
    fn merged(
        &self,
        entry: &IndexEntry,
        w: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<SeriesBar>, StoreError> {
        let parts = self.slices(entry, align_up(from, w), align_up(to, w))?;
        let bars = parts
            .iter()
            .flat_map(|(s, r)| s.bars[r.clone()].iter().copied());
        Ok(if w == entry.window_ms {
            bars.collect()
        } else {
            merge_into(bars, w)
        })
    }

    /// Answers a range query (see [`RangeQuery`]).
    pub fn query(&self, q: &RangeQuery) -> Result<RangeAnswer, QueryError> {
        let id = format::series_id(&q.instrument, q.timeframe);
        if let (Some(f), Some(t)) = (q.from, q.to) {
            if t < f {
                return Err(QueryError::Bad(format!("to ({t}) is before from ({f})")));
            }
        }
        if let Some(n) = q.max_bars {
            if n == 0 || n > MAX_BARS {
                return Err(QueryError::Bad(format!(
                    "max_bars must be from 1 to {MAX_BARS} (got {n})"
                )));
            }
        }
        let index = self.index()?.ok_or_else(|| {
            QueryError::Unknown(format!("unknown series {id}: there is no series store yet"))
        })?;
        let stored: Vec<&IndexEntry> = index
            .series
            .iter()
            .filter(|e| e.instrument == q.instrument)
            .collect();
        if stored.is_empty() {
            let known: Vec<&str> = index.series.iter().map(|e| e.instrument.as_str()).collect();
            let mut known = known;
            known.dedup();
            return Err(QueryError::Unknown(format!(
                "unknown series {id}: no instrument {} in the store (it has: {})",
                q.instrument,
                known.join(", ")
            )));
        }
        // The coarsest stored timeframe that divides `w`.
        let source = |w: Timeframe| {
            stored
                .iter()
                .filter(|e| w.is_multiple_of(e.timeframe))
                .max_by_key(|e| e.timeframe)
                .copied()
        };
        let Some(base) = source(q.timeframe) else {
            let names: Vec<String> = stored.iter().map(|e| e.timeframe.to_string()).collect();
            return Err(QueryError::Bad(format!(
                "{} is not a whole multiple of a stored timeframe of {} (stored: {})",
                q.timeframe,
                q.instrument,
                names.join(", ")
            )));
        };
        let from = q.from.unwrap_or(i64::MIN / 4);
        let to = q.to.unwrap_or(i64::MAX / 4);
        let count_at = |w: Timeframe| self.count(source(w).unwrap_or(base), w.ms(), from, to);
        let n = count_at(q.timeframe)?;
        let mut window = q.timeframe;
        match q.max_bars {
            Some(max) if n > max => {
                // Each bar of k × T covers at most k bars of T, so the
                // answer is at least ⌈n / max⌉.
                let tf = |k: u64| {
                    q.timeframe
                        .seconds()
                        .checked_mul(k)
                        .and_then(Timeframe::from_seconds)
                        .ok_or_else(|| {
                            QueryError::Bad(format!("max_bars {max} is too small for this range"))
                        })
                };
                let mut bad = n.div_ceil(max) as u64 - 1;
                let mut k = bad + 1;
                let mut good = loop {
                    let count = count_at(tf(k)?)?;
                    if count <= max {
                        break k;
                    }
                    bad = k;
                    // Bars fall about as 1/k: jump near the answer when far
                    // from it (then narrow down below), else step by one.
                    let guess = (k as u128 * count as u128 / max as u128) as u64;
                    k = if count > 2 * max {
                        guess.max(k + 1)
                    } else {
                        k + 1
                    };
                };
                // The smallest k in (bad, good] that fits.
                while good - bad > 1 {
                    let mid = bad + (good - bad) / 2;
                    if count_at(tf(mid)?)? <= max {
                        good = mid;
                    } else {
                        bad = mid;
                    }
                }
                window = tf(good)?;
            }
            None if n > MAX_BARS => {
                return Err(QueryError::Bad(format!(
                    "the range holds {n} bars of {id}; pass max_bars (at most {MAX_BARS}) \
                     or a narrower from/to"
                )));
            }
            _ => {}
        }
        let bars = self.merged(source(window).unwrap_or(base), window.ms(), from, to)?;
        Ok(RangeAnswer {
            series: id,
            window_ms: window.ms(),
            bars,
            total: n,
        })
    }

    /// The bars of `instrument`'s `view` (`footprint` or `heatmap`) with
    /// `from ≤ ts < to`, read from its segments (no merging).
    pub fn view(
        &self,
        instrument: &str,
        view: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<ViewAnswer, QueryError> {
        let id = format!("{instrument}/{view}");
        if let (Some(f), Some(t)) = (from, to) {
            if t < f {
                return Err(QueryError::Bad(format!("to ({t}) is before from ({f})")));
            }
        }
        let index = self.index()?.ok_or_else(|| {
            QueryError::Unknown(format!("unknown series {id}: there is no series store yet"))
        })?;
        let entry = index
            .views
            .iter()
            .find(|e| e.instrument == instrument && e.view == view)
            .ok_or_else(|| {
                QueryError::Unknown(format!(
                    "unknown series {id}: the store has no {view} of {instrument}"
                ))
            })?;
        let (from, to) = (from.unwrap_or(i64::MIN / 4), to.unwrap_or(i64::MAX / 4));
        let span = entry.window_ms * SEGMENT_WINDOWS;
        let mut answer = ViewAnswer {
            series: entry.id.clone(),
            window_ms: entry.window_ms,
            tick: None,
            bars: Vec::new(),
        };
        for &start in &entry.segments {
            if start >= to || start + span <= from {
                continue;
            }
            let seg = self.view_segment(&entry.instrument, &entry.view, start)?;
            answer.tick = seg.tick.or(answer.tick);
            let inside = |b: &serde_json::Value| {
                b.get(0)
                    .and_then(serde_json::Value::as_i64)
                    .is_some_and(|ts| from <= ts && ts < to)
            };
            answer.bars.extend(seg.bars.into_iter().filter(inside));
            if answer.bars.len() > MAX_VIEW_BARS {
                return Err(QueryError::Bad(format!(
                    "{id} holds more than {MAX_VIEW_BARS} bars from {from} to {to}: ask for a shorter range"
                )));
            }
        }
        Ok(answer)
    }

    /// The segment of `instrument`'s `view` starting at `start_ms`, read
    /// from its file (views are not cached: a page asks for the visible
    /// range only).
    pub fn view_segment(
        &self,
        instrument: &str,
        view: &str,
        start_ms: i64,
    ) -> Result<ViewSegment, StoreError> {
        let path = self
            .out
            .join(super::views::view_dir(instrument, view))
            .join(format::segment_name(start_ms));
        read_json(&path)
    }

    /// The text of `series/<INSTRUMENT>/depth.json` of an instrument the
    /// index lists.
    pub fn depth(&self, instrument: &str) -> Result<Vec<u8>, QueryError> {
        let index = self.index()?;
        let known = index
            .as_ref()
            .is_some_and(|i| i.series.iter().any(|e| e.instrument == instrument));
        if !known {
            return Err(QueryError::Unknown(format!(
                "unknown instrument {instrument}: the store has no series of it"
            )));
        }
        let path = self
            .out
            .join(format::instrument_dir(instrument))
            .join(format::DEPTH);
        std::fs::read(&path).map_err(|source| QueryError::Store(StoreError::Read { path, source }))
    }
}

/// The first multiple of `w` at or after `ts`.
fn align_up(ts: i64, w: i64) -> i64 {
    let down = ts.div_euclid(w) * w;
    if down == ts {
        ts
    } else {
        down.saturating_add(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fixed;
    use crate::store::{InstrumentRecorder, Sample};

    /// A store of `instrument` with rows every 700 ms for `secs` seconds,
    /// written by the recorder itself.
    fn store(dir: &Path, instrument: &str, tfs: &str, secs: i64) {
        let tfs = Timeframe::parse_list(tfs).unwrap();
        let mut r = InstrumentRecorder::new(instrument, &tfs);
        let mut cvd = 0;
        for i in 0..secs * 1000 / 700 {
            let ts = i * 700;
            cvd += (i % 7) - 3;
            let s = Sample {
                trade: (i % 3 != 0).then(|| {
                    (
                        Fixed::from_int(100 + (i * 13) % 17),
                        Fixed::from_raw(i % 5 + 1),
                    )
                }),
                obi: ((i * 31) % 200 - 100) as f64 / 100.0,
                cvd: Fixed::from_raw(cvd),
            };
            r.record(ts, &s);
        }
        r.seal_all();
        for w in r.writes() {
            let d = dir.join(&w.dir);
            std::fs::create_dir_all(&d).unwrap();
            let mut f = std::fs::File::create(d.join(&w.name)).unwrap();
            w.write(&mut f, 1).unwrap();
        }
        let index = Index {
            updated_ms: 1,
            series: r.index_entries().collect(),
            views: Vec::new(),
        };
        std::fs::write(
            dir.join("series/index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    fn q(tf: &str, from: Option<i64>, to: Option<i64>, max: Option<usize>) -> RangeQuery {
        RangeQuery {
            instrument: "X".into(),
            timeframe: tf.parse().unwrap(),
            from,
            to,
            max_bars: max,
        }
    }

    #[test]
    fn ranges_merge_exactly_and_fit_max_bars() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), "X", "1s,1m", 3_000);
        let r = StoreReader::new(dir.path(), 2_000);
        let all_1s = r.query(&q("1s", None, None, None)).unwrap();
        assert_eq!(all_1s.bars.len(), 2_999, "rows every 0.7 s up to 2998.8 s");
        // 5m from 1m equals 5m from 1s: the pyramid changes nothing.
        let a = r.query(&q("5m", None, None, None)).unwrap();
        assert_eq!(a.bars, merge_into(all_1s.bars.clone(), 300_000));
        assert_eq!(a.window_ms, 300_000);
        // 7s comes from 1s only.
        let b = r.query(&q("7s", Some(10_500), Some(70_000), None)).unwrap();
        let want: Vec<SeriesBar> = merge_into(
            all_1s
                .bars
                .iter()
                .copied()
                .filter(|b| b.ts >= 14_000 && b.ts < 70_000),
            7_000,
        );
        assert_eq!(b.bars, want);
        assert!(b.bars.iter().all(|x| x.ts >= 10_500 && x.ts < 70_000));
        // max_bars: the smallest multiple that fits.
        let c = r.query(&q("1s", None, None, Some(100))).unwrap();
        assert_eq!(c.window_ms, 30_000);
        assert_eq!(c.bars.len(), 100);
        assert_eq!(c.bars, merge_into(all_1s.bars.clone(), 30_000));
        let d = r.query(&q("1s", Some(0), Some(1_000), Some(5))).unwrap();
        assert_eq!((d.window_ms, d.bars.len()), (1_000, 1));
        // The cache stayed within its budget.
        let (held, budget) = r.cached_bars();
        assert!(held <= budget + 1000, "{held} > {budget}");
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let r = StoreReader::new(dir.path(), 1000);
        let e = r.query(&q("1s", None, None, None)).unwrap_err();
        assert!(matches!(e, QueryError::Unknown(_)), "{e}");
        store(dir.path(), "X", "1m", 600);
        let msg = |q: RangeQuery| r.query(&q).unwrap_err().to_string();
        assert_eq!(
            msg(q("90s", None, None, None)),
            "90s is not a whole multiple of a stored timeframe of X (stored: 1m)"
        );
        assert_eq!(
            msg(q("1m", Some(5), Some(4), None)),
            "to (4) is before from (5)"
        );
        assert_eq!(
            msg(q("1m", None, None, Some(0))),
            "max_bars must be from 1 to 100000 (got 0)"
        );
        let mut other = q("1m", None, None, None);
        other.instrument = "Y".into();
        assert_eq!(
            r.query(&other).unwrap_err().to_string(),
            "unknown series Y/1m: no instrument Y in the store (it has: X)"
        );
    }
}
