//! `POST /api/control` and the access token (docs/formats.md,
//! "control.json"; docs/architecture.md, "Remote access").
//!
//! A control request must be `application/json` and, when it has an
//! `Origin`, come from the viewer's own origin — so no other web page can
//! steer a replay (a cross-site form or `fetch` cannot send JSON without
//! a preflight the viewer never answers, and its `Origin` is foreign).
//! The request is checked against the processor's `status.json` and
//! becomes the next `control.json` ([`Control::apply`]), written
//! atomically: the one file the viewer writes. Requests are serialised so
//! two at once cannot lose one.
//!
//! With a token (any non-loopback `--host`, or `--token`), every request
//! must carry it: `?token=`, `Authorization: Bearer`, or the cookie the
//! page gets when it is opened with `?token=`.

use super::series::{error_reply, json_reply};
use super::state::State;
use crate::ipc::control::{Action, Control, Refused, RunView};
use crate::ipc::{self, files, RunState, Status};
use warp::http::StatusCode;

/// The cookie that carries the token.
pub const COOKIE: &str = "orderflow_token";
/// The largest control request body.
pub const MAX_BODY: u64 = 4096;

/// Whether `origin` is this viewer's own, reached as `host`.
pub fn same_origin(origin: &str, host: &str) -> bool {
    origin.eq_ignore_ascii_case(&format!("http://{host}"))
}

/// Whether a `Content-Type` is JSON.
pub fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// The processor's state, from the last good `status.json`.
fn run_view(state: &State) -> Option<RunView> {
    let i = super::state::index_of_name(files::STATUS)?;
    let snap = state.snapshot(i)?;
    if snap.version == 0 {
        return None;
    }
    let status: Status = serde_json::from_slice(&snap.body).ok()?;
    Some(RunView {
        run_id: status.run_id,
        market_time_ms: status.market_time_ms,
        paused: status.paused,
        speed: status.speed,
        running: status.state == RunState::Running && !snap.stale,
    })
}

/// Handles one control request, already past the origin and type checks.
pub fn handle(state: &State, lock: &std::sync::Mutex<()>, body: &[u8]) -> warp::reply::Response {
    let action: Action = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                &format!(
                    "not a control request ({e}); send {{\"action\": \"pause\"}}, \"resume\", \
                     {{\"action\": \"speed\", \"speed\": X}}, {{\"action\": \"step\", \"bars\": N}} \
                     or {{\"action\": \"jump\", \"to_ms\": T}}"
                ),
            )
        }
    };
    let Some(run) = run_view(state) else {
        return error_reply(
            StatusCode::CONFLICT,
            "no replay to control: the processor has not written status.json",
        );
    };
    let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
    let dir = state.dir();
    let current = ipc::read_json::<Control>(&dir.join(files::CONTROL))
        .ok()
        .filter(|c| c.run_id == run.run_id)
        .unwrap_or_else(|| Control::initial(&run));
    let next = match current.apply(&action, &run, ipc::now_ms()) {
        Ok(n) => n,
        Err(Refused::Invalid(m)) => return error_reply(StatusCode::BAD_REQUEST, &m),
        Err(Refused::Conflict(m)) => return error_reply(StatusCode::CONFLICT, &m),
    };
    let bytes = serde_json::to_vec(&next).unwrap_or_default();
    match ipc::write_atomic(dir, files::CONTROL, &bytes) {
        Ok(()) => json_reply(StatusCode::OK, bytes),
        Err(e) => error_reply(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// The token a request carries, if any: `?token=`, `Authorization:
/// Bearer`, or the cookie.
pub fn presented(query: &str, authorization: Option<&str>, cookie: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("token=") {
            out.push(v.to_string());
        }
    }
    if let Some(v) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
        out.push(v.trim().to_string());
    }
    for c in cookie.into_iter().flat_map(|c| c.split(';')) {
        if let Some(v) = c
            .trim()
            .strip_prefix(COOKIE)
            .and_then(|r| r.strip_prefix('='))
        {
            out.push(v.to_string());
        }
    }
    out
}

/// Compares without leaking where the first difference is.
pub fn token_matches(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A new random token (128 bits from the kernel, as hex).
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token a viewer bound to `host` requires: the one `given` (checked:
/// it goes in URLs and a cookie), or a new one when `host` is not
/// loopback, or none.
pub fn token_for(host: &str, given: Option<&str>) -> Result<Option<String>, String> {
    match given {
        Some(t)
            if t.is_empty()
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) =>
        {
            Err("--token must be letters, digits, '-', '_', '.' or '~' (it goes in URLs and a cookie)".into())
        }
        Some(t) => Ok(Some(t.to_string())),
        None if !is_loopback(host) => new_token()
            .map(Some)
            .map_err(|e| format!("cannot generate an access token: {e}")),
        None => Ok(None),
    }
}

/// Whether `host` (as given to `--host`) is loopback only.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_by_query_bearer_or_cookie() {
        assert_eq!(presented("a=1&token=xyz", None, None), ["xyz"]);
        assert_eq!(presented("", Some("Bearer xyz"), None), ["xyz"]);
        assert_eq!(
            presented("", None, Some("a=b; orderflow_token=xyz")),
            ["xyz"]
        );
        assert!(presented("tokens=1", Some("Basic xyz"), Some("other=1")).is_empty());
        assert!(
            token_matches("abc", "abc")
                && !token_matches("abd", "abc")
                && !token_matches("ab", "abc")
        );
        assert_eq!(new_token().unwrap().len(), 32);
    }

    #[test]
    fn origins_types_and_loopback() {
        assert!(same_origin("http://127.0.0.1:8050", "127.0.0.1:8050"));
        assert!(!same_origin("http://evil.com", "127.0.0.1:8050"));
        assert!(!same_origin("null", "127.0.0.1:8050"));
        assert!(is_json("application/json; charset=utf-8") && !is_json("text/plain"));
        for h in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "192.168.1.5", "example.org", "::"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
