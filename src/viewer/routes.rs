//! The HTTP surface as warp filters: the page, its assets, the read-only
//! API, `/healthz` and the server-sent-events stream.
//!
//! Every route is a fixed path matched segment by segment; a name taken
//! from the path is only ever looked up in a fixed table (embedded assets,
//! the five data files), never joined to a file system path, so there is
//! nothing to traverse and nothing to list. A `Host` guard in front of all
//! routes answers 403 to any name but the bound address and the loopback
//! names, which is what defeats DNS rebinding (a foreign page that makes
//! its own name resolve to 127.0.0.1 still sends its own name as `Host`).
//! This module reads [`State`] and never touches the files itself.

use super::assets::{self, Asset};
use super::control;
use super::state::{index_of_route, Change, State};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use warp::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use warp::http::{Response, StatusCode};
use warp::reply::Reply;
use warp::sse::Event;
use warp::{Filter, Rejection};

/// The header that carries a data file's version.
pub const VERSION_HEADER: &str = "x-orderflow-version";
/// The header that says the served copy is the last good one of a file
/// that is now missing or unreadable.
pub const STALE_HEADER: &str = "x-orderflow-stale";
/// How long a browser waits before reconnecting the event stream.
pub const SSE_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct ForbiddenHost;
impl warp::reject::Reject for ForbiddenHost {}

/// The `Host` header values the viewer answers to: the loopback names and
/// the bound address, with the bound port.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    names: Vec<String>,
    port: u16,
}

impl AllowedHosts {
    /// For a server bound at `bound`, started with `--host configured`.
    pub fn new(bound: SocketAddr, configured: &str) -> AllowedHosts {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !bound.ip().is_unspecified() {
            names.push(crate::addr::url_host(&bound.ip().to_string()));
        }
        let configured = configured.trim().to_ascii_lowercase();
        let configured = match configured.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => None,
            Ok(ip) => Some(crate::addr::url_host(&ip.to_string())),
            Err(_) if configured.is_empty() => None,
            Err(_) => Some(configured),
        };
        names.extend(configured);
        names.sort();
        names.dedup();
        AllowedHosts {
            names,
            port: bound.port(),
        }
    }

    /// Whether a `Host` header value names this server.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port) = if let Some(rest) = host.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return false;
            };
            let name = &host[..end + 2];
            match &rest[end + 1..] {
                "" => (name, None),
                p => match p.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()) {
                    Some(p) => (name, Some(p)),
                    None => return false,
                },
            }
        } else {
            match host.rsplit_once(':') {
                Some((n, p)) => match p.parse::<u16>() {
                    Ok(p) => (n, Some(p)),
                    Err(_) => return false,
                },
                None => (host.as_str(), None),
            }
        };
        let port_ok = match port {
            Some(p) => p == self.port,
            None => self.port == 80,
        };
        port_ok && self.names.iter().any(|n| n == name)
    }
}

/// Everything the routes need.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub state: Arc<State>,
    pub hosts: AllowedHosts,
    /// Turns true when the server shuts down; ends the event streams.
    pub shutdown: watch::Receiver<bool>,
    /// The series store's reader and live diffs.
    pub hub: Arc<super::hub::Hub>,
    /// The access token every request must carry, if any.
    pub token: Option<Arc<str>>,
    /// One control request at a time.
    pub control_lock: Arc<std::sync::Mutex<()>>,
}

#[derive(Debug)]
struct Unauthorized;
impl warp::reject::Reject for Unauthorized {}

/// With a token: lets through only requests that carry it, and says when
/// the answer should set the cookie (the token came in the query).
fn auth_guard(
    token: Option<Arc<str>>,
) -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("cookie"))
        .and_then(
            move |query: String, authorization: Option<String>, cookie: Option<String>| {
                let token = token.clone();
                async move {
                    let Some(token) = token else {
                        return Ok(None);
                    };
                    let by_query = control::presented(&query, None, None)
                        .iter()
                        .any(|g| control::token_matches(g, &token));
                    let ok = by_query
                        || control::presented("", authorization.as_deref(), cookie.as_deref())
                            .iter()
                            .any(|g| control::token_matches(g, &token));
                    if !ok {
                        return Err(warp::reject::custom(Unauthorized));
                    }
                    Ok(by_query.then(|| {
                        format!(
                            "{}={token}; Path=/; HttpOnly; SameSite=Strict",
                            control::COOKIE
                        )
                    }))
                }
            },
        )
}

/// `POST /api/control`.
fn control_route(
    ctx: Ctx,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("api" / "control")
        .and(warp::post())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(warp::body::content_length_limit(control::MAX_BODY))
        .and(warp::body::bytes())
        .then(
            move |ct: Option<String>,
                  origin: Option<String>,
                  host: Option<String>,
                  body: bytes::Bytes| {
                let ctx = ctx.clone();
                async move {
                    if !ct.as_deref().is_some_and(control::is_json) {
                        return super::series::error_reply(
                            StatusCode::FORBIDDEN,
                            "control requests must be Content-Type: application/json",
                        );
                    }
                    if let Some(o) = origin {
                        if !control::same_origin(&o, host.as_deref().unwrap_or_default()) {
                            return super::series::error_reply(
                                StatusCode::FORBIDDEN,
                                &format!("control requests from another site ({o}) are refused"),
                            );
                        }
                    }
                    let (state, lock) = (ctx.state.clone(), ctx.control_lock.clone());
                    tokio::task::spawn_blocking(move || control::handle(&state, &lock, &body))
                        .await
                        .unwrap_or_else(|e| {
                            super::series::error_reply(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                &e.to_string(),
                            )
                        })
                }
            },
        )
}

/// Refuses a `Host` that is not this server (DNS rebinding); with a token
/// (`any`), any name is let through, the token being the guard.
fn host_guard(
    hosts: AllowedHosts,
    any: bool,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and_then(move |host: Option<String>| {
            let ok = host.as_deref().is_some_and(|h| any || hosts.allows(h));
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(warp::reject::custom(ForbiddenHost))
                }
            }
        })
        .untuple_one()
}

fn security_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h
}

/// All routes, guarded, with errors turned into plain responses.
pub fn routes(ctx: Ctx) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let state = ctx.state.clone();
    let with_state = warp::any().map(move || state.clone());
    let page = warp::path::end().map(|| asset_reply(&assets::PAGE));
    let health = warp::path!("healthz")
        .and(with_state.clone())
        .map(|s: Arc<State>| health(&s));
    let sse_ctx = ctx.clone();
    let events = warp::path!("api" / "events").map(move || events(&sse_ctx));
    let asset = warp::path!("assets" / String).and_then(|name: String| async move {
        assets::asset(&name)
            .map(asset_reply)
            .ok_or_else(warp::reject::not_found)
    });
    let hub = ctx.hub.clone();
    let with_reader = warp::any().map(move || hub.reader().clone());
    let series_index = warp::path!("api" / "series")
        .and(with_reader.clone())
        .then(super::series::index);
    let series_range = warp::path!("api" / "series" / String / String)
        .and(warp::query::<HashMap<String, String>>())
        .and(with_reader)
        .then(|i: String, tf: String, q: HashMap<String, String>, r| {
            super::series::range(r, i, tf, q)
        });
    let stream_ctx = ctx.clone();
    let stream = warp::path!("api" / "stream")
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("last-event-id"))
        .map(move |q: HashMap<String, String>, last: Option<String>| {
            super::stream::stream(
                stream_ctx.hub.clone(),
                stream_ctx.state.instance().to_string(),
                q,
                last,
                stream_ctx.shutdown.clone(),
            )
        });
    let api = warp::path!("api" / String).and(with_state).and_then(
        |route: String, s: Arc<State>| async move {
            api_file(&route, &s).ok_or_else(warp::reject::not_found)
        },
    );
    let gets = warp::get().and(
        page.or(health)
            .or(events)
            .or(series_index)
            .or(series_range)
            .or(stream)
            .or(asset)
            .or(api),
    );
    host_guard(ctx.hosts.clone(), ctx.token.is_some())
        .and(auth_guard(ctx.token.clone()))
        .and(gets.or(control_route(ctx)))
        .map(|cookie: Option<String>, reply| {
            let mut r = warp::reply::Reply::into_response(reply);
            if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                r.headers_mut().insert(header::SET_COOKIE, c);
            }
            r
        })
        .recover(handle_rejection)
        .with(warp::reply::with::headers(security_headers()))
}

fn response(content_type: &'static str, body: Vec<u8>) -> warp::reply::Response {
    let mut r = Response::new(body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn asset_reply(a: &'static Asset) -> warp::reply::Response {
    let mut r = Response::new(a.bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    // Embedded in this binary: a new binary may change them.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `/api/<route>`: the last good copy of a data file.
fn api_file(route: &str, state: &State) -> Option<warp::reply::Response> {
    let snap = state.snapshot(index_of_route(route)?)?;
    let mut r = response("application/json", snap.body.to_vec());
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        HeaderName::from_static(VERSION_HEADER),
        HeaderValue::from(snap.version),
    );
    h.insert(
        HeaderName::from_static(STALE_HEADER),
        HeaderValue::from_static(if snap.stale { "true" } else { "false" }),
    );
    Some(r)
}

fn health(state: &State) -> warp::reply::Response {
    let files: Vec<serde_json::Value> = state
        .versions()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let error = state.snapshot(i).and_then(|s| s.error);
            serde_json::json!({ "file": c.file, "version": c.version, "stale": c.stale, "error": error })
        })
        .collect();
    let body = serde_json::json!({ "ok": true, "instance": state.instance(), "files": files });
    let mut r = response("application/json", body.to_string().into_bytes());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn hello(state: &State) -> Event {
    let data = serde_json::json!({ "instance": state.instance(), "files": state.versions() });
    Event::default()
        .event("hello")
        .retry(SSE_RETRY)
        .data(data.to_string())
}

fn change(state: &State, c: &Change) -> Event {
    let data = serde_json::json!({ "file": c.file, "version": c.version, "stale": c.stale, "instance": state.instance() });
    Event::default().event(c.file).data(data.to_string())
}

/// `/api/events`: a `hello` with every file's version, then one event per
/// change, named after the file. A subscriber that falls behind gets a
/// new `hello` (refetch everything) instead of the events it missed.
fn events(ctx: &Ctx) -> impl Reply {
    // Subscribe before reading the versions, so no change falls between.
    let mut rx = ctx.state.subscribe();
    let first = hello(&ctx.state);
    let state = ctx.state.clone();
    let mut shutdown = ctx.shutdown.clone();
    // A task per stream forwards changes; it ends when the client goes
    // away (the channel closes) or the server shuts down, which ends the
    // response so a graceful shutdown is not held up by open pages.
    let (tx, out) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        loop {
            let event = tokio::select! {
                r = rx.recv() => match r {
                    Ok(c) => change(&state, &c),
                    Err(broadcast::error::RecvError::Lagged(_)) => hello(&state),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = tx.closed() => break,
            };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    sse_reply(out)
}

/// An event stream from the events a task queues into `out`, with a
/// keep-alive comment every 15 s; it ends when the task drops its sender.
pub fn sse_reply(mut out: tokio::sync::mpsc::Receiver<Event>) -> warp::reply::Response {
    let stream = futures_util::stream::poll_fn(move |cx| {
        out.poll_recv(cx).map(|e| e.map(Ok::<Event, Infallible>))
    });
    warp::sse::reply(
        warp::sse::keep_alive()
            .interval(Duration::from_secs(15))
            .stream(stream),
    )
    .into_response()
}

async fn handle_rejection(err: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (code, text) = if err.find::<Unauthorized>().is_some() {
        (
            StatusCode::UNAUTHORIZED,
            "unauthorized: open the URL with ?token=… that orderflow-viewer printed, \
             or send Authorization: Bearer <token>\n",
        )
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
    } else if err.find::<ForbiddenHost>().is_some() {
        (
            StatusCode::FORBIDDEN,
            "forbidden: this viewer answers only to its own address and localhost\n",
        )
    } else if err.is_not_found() {
        (StatusCode::NOT_FOUND, "not found\n")
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: the viewer is read-only but for POST /api/control\n",
        )
    } else {
        (StatusCode::NOT_FOUND, "not found\n")
    };
    let mut r = response("text/plain; charset=utf-8", text.as_bytes().to_vec());
    *r.status_mut() = code;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let h = AllowedHosts::new("127.0.0.1:8050".parse().unwrap(), "127.0.0.1");
        for ok in [
            "127.0.0.1:8050",
            "localhost:8050",
            "LOCALHOST:8050",
            "[::1]:8050",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.com:8050",
            "127.0.0.1:80",
            "localhost",
            "127.0.0.1:8050x",
            "[::1",
            "localhost.evil.com:8050",
            "",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        let h = AllowedHosts::new("[::1]:80".parse().unwrap(), "::1");
        assert!(h.allows("[::1]") && h.allows("localhost:80"));
        let h = AllowedHosts::new("0.0.0.0:8050".parse().unwrap(), "0.0.0.0");
        assert!(!h.allows("0.0.0.0:8050") && h.allows("localhost:8050"));
    }
}
