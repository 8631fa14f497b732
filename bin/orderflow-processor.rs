//! `orderflow-processor`: replays capture files into the files in `OUT`.

use anyhow::Context;
use clap::Parser;
use orderflow::processor::{Args, Outcome, Processor};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Replay OKX order-book and trade captures (SQLite) into OHLC candles,
/// order-book imbalance and cumulative volume delta bars and a depth
/// snapshot, written atomically as JSON files for orderflow-viewer; and
/// every bar of the run, for it and any `--with` reference instrument, at
/// each of `--timeframes`, in OUT/series.
///
/// Killed at any instant and started again with the same arguments, it
/// resumes from its checkpoint; a finished run started again does nothing.
#[derive(Parser)]
#[command(name = "orderflow-processor", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

static SHUTDOWN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    SHUTDOWN.store(true, Ordering::Relaxed);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "orderflow-processor: {}",
                orderflow::report::chain(e.as_ref())
            );
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let config = args.validate()?;
    install_signal_handlers()?;
    let processor = Processor::open(&config)?;
    for note in processor.notes() {
        eprintln!("orderflow-processor: {note}");
    }
    if processor.is_finished() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "orderflow-processor: {} {}..{} from {} file(s) → {}",
        config.instruments().collect::<Vec<_>>().join(" + "),
        config.dates().0,
        config.dates().1,
        processor.files().count(),
        config.out().display()
    );
    Ok(match processor.run(&SHUTDOWN)? {
        Outcome::AlreadyFinished => ExitCode::SUCCESS,
        Outcome::Finished(status) => {
            eprintln!(
                "orderflow-processor: finished: {} rows ({} skipped, {} warnings) at {:.0} rows/s",
                status.rows_done, status.skipped_rows, status.warnings, status.rows_per_second
            );
            ExitCode::SUCCESS
        }
        Outcome::Stopped(_) => {
            eprintln!("orderflow-processor: stopped; run again with the same arguments to resume");
            ExitCode::from(130)
        }
    })
}

fn install_signal_handlers() -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { sigaction(sig, &action) }.with_context(|| format!("cannot handle {sig}"))?;
    }
    Ok(())
}
