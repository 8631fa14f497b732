//! How a child shows it is alive: a worker's heartbeat in `status.json`,
//! a server's answer on `/healthz`.
//!
//! This module owns the two checks and nothing else: it reads one field of
//! `status.json` and sends one HTTP request at a time. It decides nothing:
//! what it sees goes to the event loop ([`super::runner`]), whose state
//! machines decide whether a silent child is killed. It must not write any
//! file, nor signal any process.
//!
//! The probe is a hand-written HTTP/1.1 `GET` over a tokio `TcpStream`
//! rather than an HTTP client crate: it needs one request, one status line
//! and a timeout, and the supervisor stays small.

use crate::addr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// How often the processor's heartbeat is read while it runs.
pub const HEARTBEAT_POLL: Duration = Duration::from_millis(200);
/// How often `/healthz` is tried until the server answers.
pub const HEALTH_POLL: Duration = Duration::from_millis(25);
/// How often an answering server is probed again (each probe waits at
/// most [`PROBE_TIMEOUT`] for its answer).
pub const LIVENESS_POLL: Duration = Duration::from_secs(1);
/// How long one probe waits for its answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How to tell that a server child answers: `GET http://host:port/healthz`
/// returns 200. With a hang limit, a server that answered once and then
/// stops answering for that long counts as hung.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    host: String,
    port: u16,
    hang_limit: Option<Duration>,
    token: Option<String>,
}

/// What a [`HealthCheck::watch`] task saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probed {
    /// The server answered for the first time.
    Answered,
    /// After answering, it has not answered for this long (more than the
    /// hang limit).
    Silent(Duration),
}

impl HealthCheck {
    pub fn new(host: impl Into<String>, port: u16) -> HealthCheck {
        HealthCheck {
            host: host.into(),
            port,
            hang_limit: None,
            token: None,
        }
    }

    /// Probes with `Authorization: Bearer <token>`, and puts the token in
    /// the printed URL (a viewer reachable from other machines).
    pub fn with_token(mut self, token: Option<String>) -> HealthCheck {
        self.token = token;
        self
    }

    /// Kill and restart the server when, after its first answer, it has
    /// not answered `/healthz` for `limit` (probed every second).
    pub fn with_hang_limit(mut self, limit: Duration) -> HealthCheck {
        self.hang_limit = Some(limit);
        self
    }

    pub fn hang_limit(&self) -> Option<Duration> {
        self.hang_limit
    }

    /// The page's URL, printed once the server answers.
    pub fn url(&self) -> String {
        let query = self
            .token
            .as_deref()
            .map(|t| format!("?token={t}"))
            .unwrap_or_default();
        format!("{}{query}", addr::url(&self.host, self.port))
    }

    /// One probe, with a short timeout.
    pub async fn probe(&self) -> bool {
        let authority = addr::authority(&self.host, self.port);
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(authority.as_str())
                .await
                .ok()?;
            let auth = self
                .token
                .as_deref()
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            let request = format!(
                "GET /healthz HTTP/1.1\r\nHost: {authority}\r\n{auth}Connection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = Vec::with_capacity(64);
            let mut limited = (&mut stream).take(4096);
            while !head.windows(2).any(|w| w == b"\r\n") {
                let mut buf = [0u8; 256];
                let n = limited.read(&mut buf).await.ok()?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&head);
            let mut parts = line.split_whitespace();
            let version = parts.next()?;
            Some(version.starts_with("HTTP/") && parts.next() == Some("200"))
        };
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
            Ok(Some(true))
        )
    }

    /// Probes until the server answers and reports [`Probed::Answered`];
    /// then, with a hang limit, probes every [`LIVENESS_POLL`] and reports
    /// [`Probed::Silent`] once it has not answered for longer than the
    /// limit. The task ends after its last report; abort it when the
    /// process ends.
    pub fn watch(self, report: impl Fn(Probed) + Send + 'static) -> JoinHandle<()> {
        tokio::spawn(async move {
            while !self.probe().await {
                tokio::time::sleep(HEALTH_POLL).await;
            }
            report(Probed::Answered);
            let Some(limit) = self.hang_limit else {
                return;
            };
            let mut answered = Instant::now();
            loop {
                tokio::time::sleep(LIVENESS_POLL).await;
                if self.probe().await {
                    answered = Instant::now();
                    continue;
                }
                let silent = answered.elapsed();
                if silent > limit {
                    report(Probed::Silent(silent));
                    return;
                }
            }
        })
    }
}

/// `heartbeat_ms` from `status.json`, read leniently: only that field.
pub fn read_heartbeat(path: &Path) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Beat {
        heartbeat_ms: i64,
    }
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Beat>(&bytes)
        .ok()
        .map(|b| b.heartbeat_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_urls() {
        assert_eq!(
            HealthCheck::new("127.0.0.1", 8050).url(),
            "http://127.0.0.1:8050/"
        );
        assert_eq!(
            HealthCheck::new("0.0.0.0", 80).url(),
            "http://127.0.0.1:80/"
        );
        assert_eq!(HealthCheck::new("::1", 8050).url(), "http://[::1]:8050/");
    }

    #[test]
    fn reads_only_the_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        assert_eq!(read_heartbeat(&p), None);
        std::fs::write(&p, r#"{"state":"running","heartbeat_ms":1234,"future":1}"#).unwrap();
        assert_eq!(read_heartbeat(&p), Some(1234));
        std::fs::write(&p, "{").unwrap();
        assert_eq!(read_heartbeat(&p), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn probe_sees_200_and_refuses_anything_else() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz HTTP/1.1\r\n"));
                s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let check = HealthCheck::new("127.0.0.1", port);
        assert!(check.probe().await);
        assert!(!check.probe().await);
        server.await.unwrap();
        // Nobody listening any more.
        assert!(!check.probe().await);
    }
}
