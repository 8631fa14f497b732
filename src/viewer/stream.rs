//! `GET /api/stream?series=ID,ID,…`: the series store live, as server-sent
//! events (docs/formats.md, "Live stream").
//!
//! A subscriber gets a `snapshot` of each series' newest bars, then a
//! `bars` event with only the bars that changed or were added after each
//! store write, and `status` events. Every event has an id
//! (`<instance>-<seq>`); reconnecting with `Last-Event-ID` replays what was
//! missed from the [`Hub`]'s history, or sends a `reset` (same shape as a
//! snapshot) when that is too old or from another viewer process.
//!
//! Each subscriber has one task and a bounded queue into its response.
//! A subscriber that stops reading blocks only its own task; the hub's
//! broadcast moves on, and when the subscriber reads again it has lagged
//! and gets a `reset`. Nothing grows with a slow consumer.
//!
//! A series may be any whole multiple of a stored one (`5m` over `1m`):
//! its events are the stored series' changes merged into it, read through
//! the same [`StoreReader`] as range queries.
//!
//! A subscription may also name a view (`INSTRUMENT/footprint` or
//! `INSTRUMENT/heatmap`): its events carry the view's bars as stored, the
//! newest [`VIEW_SNAPSHOT_BARS`] in a snapshot.

use super::hub::{bars_json, view_json, Hub, HubEvent, Kind};
use super::series::error_reply;
use crate::store::{format, views, RangeQuery, StoreReader, Timeframe};
use std::collections::HashMap;

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use warp::http::StatusCode;

use warp::sse::Event;

/// Bars a snapshot or reset carries per series.
pub const SNAPSHOT_BARS: i64 = 1000;
/// Events queued for one subscriber's response.
pub const QUEUE: usize = 64;
/// How long a browser waits before reconnecting.
pub const RETRY: Duration = Duration::from_millis(500);

/// Footprint or heatmap bars a snapshot or reset carries (a heatmap bar
/// is a whole book: a few kilobytes).
pub const VIEW_SNAPSHOT_BARS: i64 = 300;

/// One series a subscriber follows.
#[derive(Clone, Debug)]
struct Sub {
    /// Canonical id, `INSTRUMENT/TF` or `INSTRUMENT/VIEW`.
    id: String,
    instrument: String,
    what: What,
    /// The stored series whose changes feed it.
    base: String,
}

/// What a subscription is of.
#[derive(Clone, Copy, Debug)]
enum What {
    /// Bars at a timeframe (stored, or merged from a stored one).
    Bars(Timeframe),
    /// The footprint or the heatmap, as stored.
    View(&'static str),
}

/// Checks `series=…` against the store: each id known or mergeable.
fn subscriptions(reader: &StoreReader, list: &str) -> Result<Vec<Sub>, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let index = reader
        .index()
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let mut subs: Vec<Sub> = Vec::new();
    for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (instrument, tf) = id.rsplit_once('/').ok_or_else(|| {
            bad(format!(
                "series {id:?} is not INSTRUMENT/TIMEFRAME or INSTRUMENT/footprint|heatmap"
            ))
        })?;
        if let Some(view) = [views::FOOTPRINT, views::HEATMAP]
            .into_iter()
            .find(|v| *v == tf)
        {
            let known = index.as_ref().is_some_and(|i| {
                i.views
                    .iter()
                    .any(|e| e.instrument == instrument && e.view == view)
            });
            if !known {
                return Err((
                    StatusCode::NOT_FOUND,
                    format!("unknown series {id}: the store has no {view} of {instrument}"),
                ));
            }
            if !subs.iter().any(|s| s.id == id) {
                subs.push(Sub {
                    id: id.to_string(),
                    instrument: instrument.to_string(),
                    what: What::View(view),
                    base: id.to_string(),
                });
            }
            continue;
        }
        let tf: Timeframe = tf
            .parse()
            .map_err(|e: crate::store::TimeframeError| bad(e.to_string()))?;
        let base = index.as_ref().and_then(|i| {
            i.series
                .iter()
                .filter(|e| e.instrument == instrument && tf.is_multiple_of(e.timeframe))
                .max_by_key(|e| e.timeframe)
        });
        let Some(base) = base else {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "unknown series {id}: no stored series of {instrument} it can be built from"
                ),
            ));
        };
        let canonical = format::series_id(instrument, tf);
        if !subs.iter().any(|s| s.id == canonical) {
            subs.push(Sub {
                id: canonical,
                instrument: instrument.to_string(),
                what: What::Bars(tf),
                base: base.id.clone(),
            });
        }
    }
    if subs.is_empty() {
        return Err(bad(
            "series=ID,… names no series (e.g. series=BTC-USDT/1m)".into()
        ));
    }
    Ok(subs)
}

/// `<instance>-<seq>` of this viewer, or `None`.
fn parse_id(text: &str, instance: &str) -> Option<u64> {
    let (inst, seq) = text.trim().rsplit_once('-')?;
    (inst == instance).then(|| seq.parse().ok()).flatten()
}

/// The newest bars of `sub` (a snapshot or reset).
fn newest(reader: &StoreReader, sub: &Sub) -> String {
    let index = reader.index().ok().flatten();
    let written = index.as_ref().map_or(0, |i| i.updated_ms);
    match sub.what {
        What::Bars(tf) => {
            let last = index.as_ref().and_then(|i| {
                i.series
                    .iter()
                    .find(|e| e.id == sub.base)
                    .and_then(|e| e.last_ts)
            });
            let w = tf.ms();
            let bars = last.and_then(|last| {
                let q = RangeQuery {
                    instrument: sub.instrument.clone(),
                    timeframe: tf,
                    from: Some(last.div_euclid(w) * w - (SNAPSHOT_BARS - 1) * w),
                    to: None,
                    max_bars: None,
                };
                reader.query(&q).ok()
            });
            bars_json(&sub.id, bars.as_ref().map_or(&[], |a| &a.bars), written)
        }
        What::View(view) => {
            let entry = index
                .as_ref()
                .and_then(|i| i.views.iter().find(|e| e.id == sub.base));
            let (w, last) = entry.map_or((0, None), |e| (e.window_ms, e.last_ts));
            let answer = last.and_then(|last| {
                let from = last.div_euclid(w) * w - (VIEW_SNAPSHOT_BARS - 1) * w;
                reader.view(&sub.instrument, view, Some(from), None).ok()
            });
            match answer {
                Some(a) => view_json(&sub.id, a.window_ms, a.tick, &a.bars, written),
                None => view_json(&sub.id, w, None, &[], written),
            }
        }
    }
}

/// The events a hub event becomes for these subscriptions.
fn convert(reader: &StoreReader, subs: &[Sub], ev: &HubEvent) -> Vec<(&'static str, String)> {
    match ev.kind {
        Kind::Status => vec![("status", ev.data.clone())],
        Kind::Reset => subs.iter().map(|s| ("reset", newest(reader, s))).collect(),
        Kind::Bars => subs
            .iter()
            .filter(|s| Some(&s.base) == ev.series.as_ref())
            .map(|s| {
                if s.id == s.base {
                    return ("bars", ev.data.clone());
                }
                // A longer timeframe: the windows these bars fall in, merged
                // again from the store.
                let What::Bars(tf) = s.what else {
                    return ("bars", String::new());
                };
                let w = tf.ms();
                let lo = ev.bars.iter().map(|b| b.ts.div_euclid(w) * w).min();
                let hi = ev.bars.iter().map(|b| b.ts.div_euclid(w) * w).max();
                let bars = match (lo, hi) {
                    (Some(lo), Some(hi)) => reader
                        .query(&RangeQuery {
                            instrument: s.instrument.clone(),
                            timeframe: tf,
                            from: Some(lo),
                            to: Some(hi + w),
                            max_bars: None,
                        })
                        .map(|a| a.bars)
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                ("bars", bars_json(&s.id, &bars, ev.written_ms))
            })
            .collect(),
    }
}

/// `GET /api/stream`.
pub fn stream(
    hub: Arc<Hub>,
    instance: String,
    params: HashMap<String, String>,
    last_event_id: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) -> warp::reply::Response {
    let reader = hub.reader().clone();
    let list = params.get("series").cloned().unwrap_or_default();
    let subs = match subscriptions(&reader, &list) {
        Ok(s) => s,
        Err((code, message)) => return error_reply(code, &message),
    };
    let last = last_event_id.or_else(|| params.get("last_event_id").cloned());
    let after = last.as_deref().and_then(|t| parse_id(t, &instance));
    let asked_resume = last.is_some();
    // Subscribe before reading anything, so no change falls between.
    let mut rx = hub.subscribe();
    let resume = hub.resume(after);
    let (tx, out) = tokio::sync::mpsc::channel::<Event>(QUEUE);
    let id = move |seq: u64| format!("{instance}-{seq}");
    tokio::spawn(async move {
        let send_all = |name: &'static str, seq: u64, subs: Vec<Sub>, reader: Arc<StoreReader>| {
            let id = id(seq);
            async move {
                let data = tokio::task::spawn_blocking(move || {
                    subs.iter().map(|s| newest(&reader, s)).collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                data.into_iter()
                    .map(|d| Event::default().id(id.clone()).event(name).data(d))
                    .collect::<Vec<_>>()
            }
        };
        let mut first: Vec<Event> = match (&resume.missed, asked_resume) {
            (Some(missed), true) => {
                let (r, s) = (reader.clone(), subs.clone());
                let missed = missed.clone();
                let seqs: Vec<u64> = missed.iter().map(|e| e.seq).collect();
                let converted = tokio::task::spawn_blocking(move || {
                    missed
                        .iter()
                        .map(|e| convert(&r, &s, e))
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                converted
                    .into_iter()
                    .zip(seqs)
                    .flat_map(|(evs, seq)| {
                        let id = id(seq);
                        evs.into_iter().map(move |(name, d)| {
                            Event::default().id(id.clone()).event(name).data(d)
                        })
                    })
                    .collect()
            }
            (None, true) => send_all("reset", resume.seq, subs.clone(), reader.clone()).await,
            (_, false) => send_all("snapshot", resume.seq, subs.clone(), reader.clone()).await,
        };
        if first.is_empty() {
            first.push(Event::default().comment("no missed events"));
        }
        let retry = first.remove(0).retry(RETRY);
        for e in std::iter::once(retry).chain(first) {
            if tx.send(e).await.is_err() {
                return;
            }
        }
        let mut seen = resume.seq;
        loop {
            let next = tokio::select! {
                r = rx.recv() => Some(r),
                _ = shutdown.wait_for(|stop| *stop) => None,
                () = tx.closed() => None,
            };
            let events: Vec<Event> = match next {
                None | Some(Err(broadcast::error::RecvError::Closed)) => break,
                Some(Ok(ev)) if ev.seq <= seen => continue,
                Some(Ok(ev)) => {
                    seen = ev.seq;
                    let (r, s) = (reader.clone(), subs.clone());
                    let seq = ev.seq;
                    let needs_io = ev.kind == Kind::Reset
                        || ev.kind == Kind::Bars && subs.iter().any(|x| x.id != x.base);
                    let converted = if needs_io {
                        tokio::task::spawn_blocking(move || convert(&r, &s, &ev))
                            .await
                            .unwrap_or_default()
                    } else {
                        convert(&r, &s, &ev)
                    };
                    converted
                        .into_iter()
                        .map(|(name, d)| Event::default().id(id(seq)).event(name).data(d))
                        .collect()
                }
                Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let now = hub.resume(None).seq;
                    seen = seen.max(now);
                    send_all("reset", now, subs.clone(), reader.clone()).await
                }
            };
            for e in events {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });
    super::routes::sse_reply(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_belong_to_one_viewer() {
        assert_eq!(parse_id("abc-12", "abc"), Some(12));
        assert_eq!(parse_id("a-b-c-7", "a-b-c"), Some(7));
        assert_eq!(parse_id("other-12", "abc"), None);
        assert_eq!(parse_id("abc-x", "abc"), None);
        assert_eq!(parse_id("12", "abc"), None);
    }
}
