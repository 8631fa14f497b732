//! `orderflow-viewer`: serves the chart of the files in `OUT`. Parses
//! arguments, binds, prints the URL, serves until SIGINT/SIGTERM and maps
//! the result to an exit code in `main`.

use anyhow::Context;
use clap::Parser;
use orderflow::viewer::{Config, Viewer};
use std::path::PathBuf;
use std::process::ExitCode;

/// Serve the live orderflow chart of an output directory.
///
/// The page, its assets and a read-only API of the files in OUT; the page
/// updates itself when the processor rewrites them.
#[derive(Debug, Parser)]
#[command(name = "orderflow-viewer", version)]
struct Args {
    /// Output directory whose files are shown.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./out",
        env = "ORDERFLOW_OUT"
    )]
    out: PathBuf,
    /// Address to listen on; keep it on loopback unless you mean it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, value_name = "PORT", default_value_t = 8050)]
    port: u16,
    /// Access token every request must carry (generated when --host is not
    /// loopback and none is given); printed in the URL as ?token=.
    #[arg(long, value_name = "TOKEN", env = "ORDERFLOW_TOKEN")]
    token: Option<String>,
}

/// SIGINT or SIGTERM. The handlers are installed here, before the URL is
/// printed, so a signal sent as soon as the viewer answers is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let token = orderflow::viewer::control::token_for(&args.host, args.token.as_deref())
        .map_err(anyhow::Error::msg)?;
    let config = Config::new(args.out.clone(), args.host, args.port).with_token(token);
    let viewer = Viewer::bind(config).await?;
    println!(
        "orderflow-viewer: serving {} at {}",
        args.out.display(),
        viewer.url()
    );
    viewer.run(shutdown).await?;
    Ok(())
}

/// Exit codes: 0 once stopped by SIGINT/SIGTERM, 1 on an error (printed
/// as `orderflow-viewer: …`).
fn main() -> ExitCode {
    let args = Args::parse();
    let served = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(args)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderflow-viewer: {}", orderflow::report::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
