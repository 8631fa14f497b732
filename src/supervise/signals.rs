//! SIGINT/SIGTERM → stop requests.
//!
//! This module owns the supervisor's own signal handling and nothing else:
//! it turns signals into [`Stop`] messages on a channel, the same channel a
//! test or an embedding program uses to stop [`super::run`] without any
//! signal. The first SIGINT or SIGTERM asks for a graceful stop (SIGTERM to
//! each child's group, SIGKILL after the grace period); a second one asks
//! to kill at once, so an impatient second Ctrl-C always works.
//!
//! `tokio::signal` installs the handlers (a self-pipe written from the
//! handler), so no flag is shared with a signal handler by hand and
//! nothing here is `static mut`.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// A request to stop the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM to the children, SIGKILL after the grace period.
    Graceful,
    /// SIGKILL to the children at once.
    Now,
}

/// Installs SIGINT and SIGTERM handlers and returns the stop requests they
/// produce: [`Stop::Graceful`] for the first signal, [`Stop::Now`] for every
/// later one. Must be called inside a tokio runtime.
pub fn stop_on_signals() -> std::io::Result<mpsc::UnboundedReceiver<Stop>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen = 0u32;
        loop {
            tokio::select! {
                Some(()) = int.recv() => {}
                Some(()) = term.recv() => {}
                else => return,
            }
            seen += 1;
            let stop = if seen == 1 { Stop::Graceful } else { Stop::Now };
            if tx.send(stop).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
