//! A minimal W3C WebDriver client for Debian's chromedriver: the dozen
//! endpoints the page tests need (session, navigate, execute script,
//! pointer actions, screenshot), over plain HTTP/1.1 with serde_json.
//! See docs/adr/0006-handwritten-webdriver-client.md for why not a crate.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path).chain([
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/lib/chromium"),
        ]) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A chromedriver process with one headless Chromium session.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless session with the window size
    /// given; `None` (with a message) when Chromium or chromedriver is
    /// not installed.
    pub fn start(width: u32, height: u32) -> Option<Browser> {
        Browser::start_scaled(width, height, 1.0)
    }

    /// Like [`Browser::start`] with a device pixel ratio (HiDPI checks).
    pub fn start_scaled(width: u32, height: u32, dpr: f64) -> Option<Browser> {
        if !orderflow::viewer::assets::CHART_BUILT {
            eprintln!(
                "skipping: this build has no chart to test (web/dist is missing); \
                 run scripts/build-web, then the tests again (scripts/test does both)"
            );
            return None;
        }
        let (Some(chromium), Some(chromedriver)) = (
            find(&["chromium", "chromium-browser", "google-chrome"]),
            find(&["chromedriver"]),
        ) else {
            eprintln!("skipping: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let profile = tempfile::tempdir().expect("profile dir");
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        crate::harness::wait_until("chromedriver to be ready", Duration::from_secs(20), || {
            let status = b.call("GET", "/status", None).ok()?;
            status["value"]["ready"].as_bool()?.then_some(())
        });
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            &format!("--force-device-scale-factor={dpr}"),
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.to_string_lossy(), "args": args}
        }}});
        let v = b.call("POST", "/session", Some(caps)).expect("new session");
        b.session = v["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Some(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        // chromedriver keeps the connection open: read by Content-Length.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let body = loop {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before a full reply".into());
            }
            raw.extend_from_slice(&buf[..n]);
            let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let body = &raw[split + 4..];
            if head.contains("transfer-encoding: chunked") {
                if body.ends_with(b"0\r\n\r\n") {
                    break dechunk(body);
                }
                continue;
            }
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("reply without Content-Length")?;
            if body.len() >= len {
                break body[..len].to_vec();
            }
        };
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&body)))?;
        if v["value"].get("error").is_some() {
            return Err(format!("{method} {path}: {}", v["value"]));
        }
        Ok(v)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        self.call(method, &p, body)
            .unwrap_or_else(|e| panic!("webdriver: {e}"))["value"]
            .clone()
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and
    /// returns what it returns.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// `window.orderflowState`.
    pub fn state(&self) -> Value {
        self.exec("return window.orderflowState || null;", json!([]))
    }

    /// Moves the mouse to viewport CSS coordinates.
    pub fn move_mouse(&self, x: f64, y: f64) {
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "duration": 0, "origin": "viewport", "x": x.round() as i64, "y": y.round() as i64}]
        }]});
        self.session_call("POST", "/actions", Some(actions));
    }

    pub fn screenshot(&self, path: &Path) {
        use base64_decode as b64;
        let v = self.session_call("GET", "/screenshot", None);
        let png = b64(v.as_str().expect("screenshot data"));
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Polls `window.orderflowState` until `pred` holds.
    pub fn wait_state(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let seen = crate::harness::wait_for(timeout, || {
            let s = self.state();
            if pred(&s) {
                return Some(s);
            }
            last = s;
            // Each look is a WebDriver round trip through the browser:
            // about every 20 ms is enough and keeps it off the page's
            // timings.
            std::thread::sleep(Duration::from_millis(15));
            None
        });
        seen.unwrap_or_else(|| {
            panic!("timed out after {timeout:?} waiting for {what}; state: {last}")
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..(i + 2 + n).min(b.len())]);
        b = &b[(i + 4 + n).min(b.len())..];
    }
    out
}

/// Standard base64 (the screenshot); small enough not to need a crate.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
