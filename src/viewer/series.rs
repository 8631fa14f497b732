//! `GET /api/series` and `GET /api/series/<INSTRUMENT>/<TF>`: the series
//! store's index and its bars by range (docs/formats.md, "Series API").
//!
//! Parameters are checked here and named in the 400 answer; the range
//! itself (merging, `max_bars`, the segment cache) is
//! [`crate::store::reader`]'s. Reads block, so they run on tokio's
//! blocking pool. This module never writes.

use crate::store::{QueryError, RangeQuery, StoreReader, Timeframe};
use std::collections::HashMap;
use std::sync::Arc;
use warp::http::header::{self, HeaderValue};
use warp::http::{Response, StatusCode};
use warp::reply::Reply;

/// A JSON answer with `status`.
pub fn json_reply(status: StatusCode, body: Vec<u8>) -> warp::reply::Response {
    let mut r = Response::new(body).into_response();
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `{"error": "…"}` with `status`.
pub fn error_reply(status: StatusCode, message: &str) -> warp::reply::Response {
    let body = serde_json::json!({ "error": message })
        .to_string()
        .into_bytes();
    json_reply(status, body)
}

/// `GET /api/series`: the index, or an empty one before the store exists.
pub async fn index(reader: Arc<StoreReader>) -> warp::reply::Response {
    let read = tokio::task::spawn_blocking(move || reader.index()).await;
    match read {
        Ok(Ok(Some(index))) => match serde_json::to_vec(&*index) {
            Ok(body) => json_reply(StatusCode::OK, body),
            Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        Ok(Ok(None)) => json_reply(
            StatusCode::OK,
            br#"{"updated_ms":null,"series":[]}"#.to_vec(),
        ),
        Ok(Err(e)) => error_reply(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A whole number of milliseconds, or the 400 message naming `name`.
/// Times far beyond any market (±2^61 ms) are clamped there, so window
/// arithmetic never overflows.
fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, String> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(|n| Some(n.clamp(i64::MIN / 4, i64::MAX / 4)))
            .map_err(|_| format!("{name} {v:?} is not a whole number")),
    }
}

/// The range query a request asks for, or the 400 message.
pub fn parse_query(
    instrument: &str,
    tf: &str,
    params: &HashMap<String, String>,
) -> Result<RangeQuery, String> {
    let timeframe: Timeframe = tf
        .parse()
        .map_err(|e: crate::store::TimeframeError| e.to_string())?;
    let from = number(params, "from")?;
    let to = number(params, "to")?;
    let max_bars = match number(params, "max_bars")? {
        None => None,
        Some(n) => {
            Some(usize::try_from(n).map_err(|_| format!("max_bars {n} must be from 1 to 100000"))?)
        }
    };
    Ok(RangeQuery {
        instrument: instrument.to_string(),
        timeframe,
        from,
        to,
        max_bars,
    })
}

/// `GET /api/series/<INSTRUMENT>/<TF>?from=&to=&max_bars=`, or the
/// instrument's depth for `<TF>` = `depth`.
pub async fn range(
    reader: Arc<StoreReader>,
    instrument: String,
    tf: String,
    params: HashMap<String, String>,
) -> warp::reply::Response {
    if tf == "depth" {
        return depth(reader, instrument).await;
    }
    if tf == crate::store::views::FOOTPRINT || tf == crate::store::views::HEATMAP {
        return view(reader, instrument, tf, params).await;
    }
    let q = match parse_query(&instrument, &tf, &params) {
        Ok(q) => q,
        Err(e) => return error_reply(StatusCode::BAD_REQUEST, &e),
    };
    let answer = tokio::task::spawn_blocking(move || {
        let a = reader.query(&q)?;
        #[derive(serde::Serialize)]
        struct Out<'a> {
            series: &'a str,
            window_ms: i64,
            from: Option<i64>,
            to: Option<i64>,
            total: usize,
            bars: Vec<crate::store::FileBar>,
        }
        let out = Out {
            series: &a.series,
            window_ms: a.window_ms,
            from: q.from,
            to: q.to,
            total: a.total,
            bars: a.bars.iter().map(|b| crate::store::FileBar(*b)).collect(),
        };
        Ok::<_, QueryError>(serde_json::to_vec(&out).unwrap_or_default())
    })
    .await;
    reply(answer)
}

/// A read on the blocking pool as an HTTP answer: 200 with the body, or
/// 404/400/503/500 with `{"error": …}`.
fn reply(
    answer: Result<Result<Vec<u8>, QueryError>, tokio::task::JoinError>,
) -> warp::reply::Response {
    match answer {
        Ok(Ok(body)) => json_reply(StatusCode::OK, body),
        Ok(Err(QueryError::Unknown(e))) => error_reply(StatusCode::NOT_FOUND, &e),
        Ok(Err(QueryError::Bad(e))) => error_reply(StatusCode::BAD_REQUEST, &e),
        Ok(Err(e @ QueryError::Store(_))) => {
            error_reply(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /api/series/<INSTRUMENT>/footprint|heatmap?from=&to=`: the
/// bars as stored, no merging.
async fn view(
    reader: Arc<StoreReader>,
    instrument: String,
    view: String,
    params: HashMap<String, String>,
) -> warp::reply::Response {
    let (from, to) = match (number(&params, "from"), number(&params, "to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return error_reply(StatusCode::BAD_REQUEST, &e),
    };
    let answer = tokio::task::spawn_blocking(move || {
        let a = reader.view(&instrument, &view, from, to)?;
        #[derive(serde::Serialize)]
        struct Out<'a> {
            series: &'a str,
            window_ms: i64,
            from: Option<i64>,
            to: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            tick: Option<f64>,
            bars: &'a [serde_json::Value],
        }
        let out = Out {
            series: &a.series,
            window_ms: a.window_ms,
            from,
            to,
            tick: a.tick,
            bars: &a.bars,
        };
        Ok::<_, QueryError>(serde_json::to_vec(&out).unwrap_or_default())
    })
    .await;
    reply(answer)
}

/// `GET /api/series/<INSTRUMENT>/depth`: that instrument's
/// `series/<INSTRUMENT>/depth.json`, as written.
async fn depth(reader: Arc<StoreReader>, instrument: String) -> warp::reply::Response {
    reply(tokio::task::spawn_blocking(move || reader.depth(&instrument)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_are_checked_by_name() {
        let q = parse_query("X", "5m", &p(&[("from", "10"), ("max_bars", "7")])).unwrap();
        assert_eq!((q.from, q.to, q.max_bars), (Some(10), None, Some(7)));
        assert_eq!(q.timeframe.ms(), 300_000);
        assert_eq!(
            parse_query("X", "5m", &p(&[("from", "abc")])).unwrap_err(),
            "from \"abc\" is not a whole number"
        );
        assert_eq!(
            parse_query("X", "5m", &p(&[("max_bars", "-1")])).unwrap_err(),
            "max_bars -1 must be from 1 to 100000"
        );
        assert!(parse_query("X", "5x", &p(&[]))
            .unwrap_err()
            .contains("\"5x\" is not a timeframe"));
    }
}
