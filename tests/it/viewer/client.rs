//! Minimal HTTP/1 clients for the tests: one-shot requests with any
//! `Host` and any raw path (which a real client would normalise), and a
//! reader of the server-sent-events stream.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `METHOD path` with `Host: host` (none if `host` is `None`) over
/// HTTP/1.0 and reads the whole reply.
pub fn request(addr: SocketAddr, method: &str, path: &str, host: Option<&str>) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let host_line = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\n{host_line}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read reply");
    parse(&raw)
}

/// Sends `METHOD path` with `Host: 127.0.0.1:PORT`, the header lines given
/// and `body`, and reads the whole reply.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        addr.port(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read reply");
    parse(&raw)
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(
        addr,
        "GET",
        path,
        Some(&format!("127.0.0.1:{}", addr.port())),
    )
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// One server-sent event.
#[derive(Clone, Debug)]
pub struct SseEvent {
    pub name: String,
    /// The event's `id:`, if it had one.
    pub id: Option<String>,
    pub data: serde_json::Value,
    pub at: Instant,
}

/// A connection to `/api/events`, read on a thread so events are
/// timestamped when they arrive.
pub struct Sse {
    rx: std::sync::mpsc::Receiver<SseEvent>,
}

impl Sse {
    pub fn connect(addr: SocketAddr) -> Sse {
        Sse::connect_to(addr, "/api/events", "")
    }

    /// Any event stream at `path`, with extra header lines (each ending
    /// in `\r\n`).
    pub fn connect_to(addr: SocketAddr, path: &str, headers: &str) -> Sse {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n{headers}\r\n",
            addr.port()
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(s);
            let mut line = String::new();
            // Headers.
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let (mut name, mut data) = (String::from("message"), String::new());
            let mut id: Option<String> = None;
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l.is_empty() {
                    if !data.is_empty() {
                        let ev = SseEvent {
                            name: std::mem::replace(&mut name, "message".into()),
                            id: id.take(),
                            data: serde_json::from_str(&data)
                                .unwrap_or(serde_json::Value::String(data.clone())),
                            at: Instant::now(),
                        };
                        data.clear();
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                } else if let Some(v) = l.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = l.strip_prefix("data:") {
                    data.push_str(v.trim());
                } else if let Some(v) = l.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                }
            }
        });
        Sse { rx }
    }

    /// The next event of any name before `deadline`.
    pub fn next(&self, deadline: Instant) -> Option<SseEvent> {
        let left = deadline.checked_duration_since(Instant::now())?;
        self.rx.recv_timeout(left).ok()
    }

    /// The next event named `name` (others are skipped) before `deadline`.
    pub fn next_named(&self, name: &str, deadline: Instant) -> Option<SseEvent> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(ev) if ev.name == name => return Some(ev),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// The harness's [`wait_until`](crate::harness::wait_until), under the
/// name the viewer tests use: polls until `Some`, or fails the test naming
/// what it waited for.
pub use crate::harness::wait_until as wait_for;
