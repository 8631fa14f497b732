//! The viewer: an HTTP server that shows the files in `OUT` as a live
//! chart.
//!
//! Cut like mini-redis: this module owns the configuration, binding and
//! the run loop with its shutdown; [`routes`] the HTTP surface; [`state`]
//! the last good copy of each file and the change broadcast; [`watch`]
//! the directory watch that feeds it; [`assets`] the embedded page;
//! [`series`] the series store's range API, [`hub`] its live diffs and
//! [`stream`] the `/api/stream` subscribers of those.
//!
//! The viewer only reads `OUT` (no lock, no writes): everything it serves
//! can be rebuilt from the files, so a killed and restarted viewer serves
//! the same data and open pages just reconnect. It binds its own listener
//! so that a taken port is an error the binary reports, not a panic.

pub mod assets;
pub mod control;
pub mod hub;
pub mod routes;
pub mod series;
pub mod state;
pub mod stream;
pub mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use routes::AllowedHosts;
pub use state::{Change, State};

/// How long open connections get to finish after shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Errors of the viewer, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error(
        "port {port} on {host} is already in use; stop the other server or pass another --port"
    )]
    PortInUse { host: String, port: u16 },
    #[error("cannot listen on {host}:{port}: {source}")]
    Bind {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("--host {host} does not resolve to an address: {reason}")]
    Host { host: String, reason: String },
    #[error("cannot create output directory {dir}: {source}")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch {dir} for changes: {source}")]
    Watch { dir: PathBuf, source: notify::Error },
}

/// Validated viewer settings.
#[derive(Clone, Debug)]
pub struct Config {
    out_dir: PathBuf,
    host: String,
    port: u16,
    token: Option<String>,
}

impl Config {
    /// `host` is an IP address or a name (`localhost`); port 0 picks a
    /// free port.
    pub fn new(out_dir: impl Into<PathBuf>, host: impl Into<String>, port: u16) -> Config {
        Config {
            out_dir: out_dir.into(),
            host: host.into(),
            port,
            token: None,
        }
    }

    /// Requires `token` on every request (see [`control`]).
    pub fn with_token(mut self, token: Option<String>) -> Config {
        self.token = token;
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A viewer with its listener bound and its cache filled, not yet serving.
#[derive(Debug)]
pub struct Viewer {
    config: Config,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: Arc<State>,
}

impl Viewer {
    /// Binds the listener and reads the files once. Must be called inside
    /// a tokio runtime.
    pub async fn bind(mut config: Config) -> Result<Viewer, ViewerError> {
        let host = config.host.clone();
        let port = config.port;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| ViewerError::Host {
                host: host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        let Some(addr) = addrs.first().copied() else {
            return Err(ViewerError::Host {
                host,
                reason: "no address".into(),
            });
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AddrInUse {
                    ViewerError::PortInUse {
                        host: host.clone(),
                        port,
                    }
                } else {
                    ViewerError::Bind {
                        host: host.clone(),
                        port,
                        source,
                    }
                }
            })?;
        let addr = listener.local_addr().map_err(|source| ViewerError::Bind {
            host: host.clone(),
            port,
            source,
        })?;
        // The viewer may start before the processor made the directory;
        // it needs it to exist to watch it.
        std::fs::create_dir_all(&config.out_dir).map_err(|source| ViewerError::CreateDir {
            dir: config.out_dir.clone(),
            source,
        })?;
        // The watches report absolute paths, which must match the paths
        // they are compared with: `--out out` is made absolute here once.
        config.out_dir =
            std::path::absolute(&config.out_dir).map_err(|source| ViewerError::CreateDir {
                dir: config.out_dir.clone(),
                source,
            })?;
        let state = Arc::new(State::new(&config.out_dir));
        state.reload_all(true);
        Ok(Viewer {
            config,
            listener,
            addr,
            state,
        })
    }

    /// The address actually bound (the real port when asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL (a wildcard bind is reached on loopback).
    pub fn url(&self) -> String {
        let query = self
            .config
            .token
            .as_deref()
            .map(|t| format!("?token={t}"))
            .unwrap_or_default();
        format!(
            "{}{query}",
            crate::addr::url(&self.addr.ip().to_string(), self.addr.port())
        )
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets open requests finish
    /// (event streams end at once) for at most [`SHUTDOWN_GRACE`].
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ViewerError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let watcher = watch::spawn(self.state.clone(), stop_rx.clone())?;
        let reader = Arc::new(crate::store::StoreReader::new(
            &self.config.out_dir,
            crate::store::reader::DEFAULT_CACHE_BARS,
        ));
        let hub = Arc::new(hub::Hub::new(reader));
        let hub_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hub_thread = {
            let (hub, stop) = (hub.clone(), hub_stop.clone());
            std::thread::Builder::new()
                .name("hub".into())
                .spawn(move || hub.run(stop))
                .map_err(|source| ViewerError::Watch {
                    dir: self.config.out_dir.clone(),
                    source: notify::Error::io(source),
                })?
        };
        let status_forward = forward_status(self.state.clone(), hub.clone(), stop_rx.clone());
        let ctx = routes::Ctx {
            state: self.state.clone(),
            hosts: AllowedHosts::new(self.addr, &self.config.host),
            shutdown: stop_rx.clone(),
            hub,
            token: self.config.token.as_deref().map(Arc::from),
            control_lock: Arc::default(),
        };
        let server = warp::serve(routes::routes(ctx))
            .incoming(self.listener)
            .graceful(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
            .run();
        let mut stopped = stop_rx;
        tokio::select! {
            () = server => {}
            () = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {}
        }
        watcher.abort();
        status_forward.abort();
        hub_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || hub_thread.join()).await;
        Ok(())
    }
}

/// Numbers each new `status.json` into the hub's event sequence.
fn forward_status(
    state: Arc<State>,
    hub: Arc<hub::Hub>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut rx = state.subscribe();
    let status = state::index_of_name(crate::ipc::files::STATUS);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(c) if Some(c.file) == status.map(|i| state::FILES[i].name) && !c.stale => {
                        if let Some(snap) = status.and_then(|i| state.snapshot(i)) {
                            hub.publish_status(&snap.body);
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    })
}

/// Binds and serves `config` until `shutdown`.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ViewerError> {
    Viewer::bind(config).await?.run(shutdown).await
}
