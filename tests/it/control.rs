//! Replay control through HTTP (`POST /api/control` → `control.json` → a
//! real processor), its refusals, a paused replay staying paused across a
//! SIGKILL and restart, and the access token of a viewer on 0.0.0.0.

use crate::harness::{fast_tempdir, json, KillOnDrop, PROCESSOR};
use crate::store::{args, generate};
use crate::viewer::client::{get, send, wait_for, Reply};
use crate::viewer::http::TestViewer;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn post(addr: std::net::SocketAddr, body: &str) -> Reply {
    send(
        addr,
        "POST",
        "/api/control",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

fn status(out: &Path) -> Value {
    json(&out.join("status.json"))
}

/// Waits for a status written after now that satisfies `f`.
fn wait_status(out: &Path, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let after = orderflow::ipc::now_ms();
    wait_for(what, T, || {
        let s = std::fs::read(out.join("status.json")).ok()?;
        let s: Value = serde_json::from_slice(&s).ok()?;
        (s["heartbeat_ms"].as_i64()? > after && f(&s)).then_some(s)
    })
}

fn start(argv: &[String]) -> KillOnDrop {
    KillOnDrop(
        Command::new(PROCESSOR)
            .args(argv)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn a_replay_is_paused_stepped_sped_up_and_jumped_through_http() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 30);
    let out = dir.path().join("out");
    let argv = args(&files, &out, &["--speed", "20", "--flush-ms", "20"]);
    let mut proc = start(&argv);
    let v = TestViewer::start(&out);
    let addr = v.addr;
    wait_status(&out, "a running replay", |s| s["market_time_ms"].is_i64());

    // Pause: market time stops.
    let r = post(addr, r#"{"action": "pause"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let paused = wait_status(&out, "paused", |s| s["paused"] == true);
    let at = paused["market_time_ms"].as_i64().unwrap();
    // Two more heartbeats, market time unchanged.
    let later = wait_status(&out, "a later heartbeat", |_| true);
    let later = wait_status(&out, "another heartbeat", |s| {
        s["heartbeat_ms"] != later["heartbeat_ms"]
    });
    assert_eq!(
        later["market_time_ms"].as_i64(),
        Some(at),
        "a paused replay does not move"
    );
    assert_eq!(later["state"], "running");

    // Step two windows (10 s each): the rest of the current one, then two.
    let r = post(addr, r#"{"action": "step", "bars": 2}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let until = at.div_euclid(10_000) * 10_000 + 30_000;
    let stepped = wait_status(&out, "the step", |s| {
        s["market_time_ms"]
            .as_i64()
            .is_some_and(|m| m >= until - 1_000)
    });
    let m = stepped["market_time_ms"].as_i64().unwrap();
    assert!(m < until, "stepped past {until}: {m}");
    let still = wait_status(&out, "a heartbeat after the step", |s| {
        s["heartbeat_ms"] != stepped["heartbeat_ms"]
    });
    assert_eq!(still["paused"], true);
    assert!(still["market_time_ms"].as_i64().unwrap() < until);

    // Faster, and on again.
    assert_eq!(
        post(addr, r#"{"action": "speed", "speed": 200}"#).status,
        200
    );
    assert_eq!(post(addr, r#"{"action": "resume"}"#).status, 200);
    let moving = wait_status(&out, "resumed at 200x", |s| {
        s["paused"] == false && s["speed"] == 200.0 && s["market_time_ms"].as_i64() > Some(m)
    });
    // Jump ahead; a time already passed is refused.
    let now = moving["market_time_ms"].as_i64().unwrap();
    let r = post(
        addr,
        &format!(r#"{{"action": "jump", "to_ms": {}}}"#, now - 1),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("only goes forward"), "{}", r.text());
    let target = now + 10 * 60_000;
    let r = post(addr, &format!(r#"{{"action": "jump", "to_ms": {target}}}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    wait_status(&out, "the jump", |s| {
        s["market_time_ms"].as_i64() >= Some(target)
    });
    let control = json(&out.join("control.json"));
    assert_eq!(control["run_id"], status(&out)["run_id"]);
    assert_eq!(control["speed"], 200.0);
    drop(proc.0.kill());
}

#[test]
fn other_sites_and_other_types_cannot_steer_and_a_pause_survives_a_restart() {
    let dir = fast_tempdir();
    let files = generate(dir.path(), 20);
    let out = dir.path().join("out");
    let argv = args(&files, &out, &["--speed", "10", "--flush-ms", "20"]);
    let mut proc = start(&argv);
    let v = TestViewer::start(&out);
    let addr = v.addr;
    wait_status(&out, "a running replay", |s| s["market_time_ms"].is_i64());
    let pause = br#"{"action": "pause"}"#;
    for (headers, why) in [
        (vec![("Content-Type", "text/plain")], "application/json"),
        (vec![], "application/json"),
        (
            vec![
                ("Content-Type", "application/json"),
                ("Origin", "http://evil.example"),
            ],
            "another site",
        ),
    ] {
        let r = send(addr, "POST", "/api/control", &headers, pause);
        assert_eq!(r.status, 403, "{headers:?}");
        assert!(r.text().contains(why), "{}", r.text());
        assert!(
            !out.join("control.json").exists(),
            "a refused request writes nothing"
        );
    }
    let origin = format!("http://127.0.0.1:{}", addr.port());
    let r = send(
        addr,
        "POST",
        "/api/control",
        &[("Content-Type", "application/json"), ("Origin", &origin)],
        pause,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for (body, code) in [
        (r#"{"action": "fly"}"#, 400),
        (r#"{"action": "speed", "speed": -1}"#, 400),
        (r#"{"action": "step", "bars": 0}"#, 400),
        ("not json", 400),
    ] {
        let r = post(addr, body);
        assert_eq!(r.status, code, "{body}: {}", r.text());
        assert!(serde_json::from_slice::<Value>(&r.body).unwrap()["error"].is_string());
    }
    let paused = wait_status(&out, "paused", |s| s["paused"] == true);
    // SIGKILL and start again: still paused, market time where it was.
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();
    let _proc = start(&argv);
    let again = wait_status(&out, "the restarted processor", |s| {
        s["pid"] != paused["pid"] && s["state"] == "running"
    });
    assert_eq!(again["paused"], true);
    let later = wait_status(&out, "a later heartbeat", |s| {
        s["heartbeat_ms"] != again["heartbeat_ms"]
    });
    assert!(later["market_time_ms"].as_i64() <= paused["market_time_ms"].as_i64());
    assert_eq!(later["paused"], true);
    // A control file of another run is ignored.
    let mut c = json(&out.join("control.json"));
    c["run_id"] = "another-run".into();
    c["paused"] = false.into();
    orderflow::ipc::write_atomic(&out, "control.json", &serde_json::to_vec(&c).unwrap()).unwrap();
    let later = wait_status(&out, "a heartbeat after a foreign control file", |s| {
        s["heartbeat_ms"] != later["heartbeat_ms"]
    });
    let later = wait_status(&out, "another", |s| {
        s["heartbeat_ms"] != later["heartbeat_ms"]
    });
    assert_eq!(later["paused"], true);
}

#[test]
fn a_viewer_on_all_addresses_wants_its_token() {
    let dir = fast_tempdir();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_orderflow-viewer"))
            .args([
                "--out",
                dir.path().to_str().unwrap(),
                "--host",
                "0.0.0.0",
                "--port",
                "0",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.split_whitespace().last().unwrap().to_string();
    let (base, token) = url
        .split_once("/?token=")
        .unwrap_or_else(|| panic!("no token in {url}"));
    assert_eq!(token.len(), 32);
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    for path in ["/", "/api/status", "/healthz", "/api/series"] {
        assert_eq!(get(addr, path).status, 401, "{path} without the token");
    }
    assert_eq!(get(addr, "/?token=wrong").status, 401);
    let page = get(addr, &format!("/?token={token}"));
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.starts_with(&format!("orderflow_token={token};")) && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let with = |h: (&str, &str)| send(addr, "GET", "/api/status", &[h], b"").status;
    assert_eq!(with(("Cookie", &format!("orderflow_token={token}"))), 200);
    assert_eq!(with(("Authorization", &format!("Bearer {token}"))), 200);
    assert_eq!(with(("Authorization", "Bearer nope")), 401);
    // With the token, the Host check accepts the name the machine is reached by.
    let r = crate::viewer::client::request(
        addr,
        "GET",
        &format!("/healthz?token={token}"),
        Some(&format!("myhost.lan:{}", addr.port())),
    );
    assert_eq!(r.status, 200);
}
