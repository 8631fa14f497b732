//! `orderflow`: the one command. Starts the processor and the viewer as
//! supervised children (`run`), or does so on a generated demo data set
//! (`demo`). Parses arguments, builds the library's configuration, runs
//! the supervisor on the main thread and maps the result to an exit code.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use orderflow::app::{demo, launch};
use orderflow::processor;
use orderflow::supervise;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "orderflow",
    version,
    about = "Replay order-book captures into candles, OBI and CVD, chart them live, keep it all running.",
    long_about = "Runs orderflow-processor and orderflow-viewer as supervised children: each in its own \
process group, restarted with exponential backoff when it crashes or hangs, stopped on Ctrl-C \
(SIGTERM, then SIGKILL after a grace period; a second Ctrl-C kills at once). Child output is \
shown prefixed with its name and kept in OUT/logs/; the state of both is in OUT/supervisor.json."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay INSTRUMENT from START_DATE to END_DATE and serve the chart.
    Run(RunArgs),
    /// Generate a demo data set (once) and replay it at a speed where
    /// candles visibly form.
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// What to replay: the processor's own options, with its defaults.
    #[command(flatten)]
    job: processor::Job,
    /// Start over, ignoring a checkpoint in OUT (first start only; a
    /// restart after a crash always resumes).
    #[arg(long, help_heading = "Replay")]
    fresh: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Output and viewer")]
struct CommonArgs {
    /// Output directory shared by the processor, the viewer and the
    /// supervisor.
    #[arg(long, value_name = "DIR", default_value = "out")]
    out: PathBuf,
    /// Address the viewer binds to.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    host: String,
    /// Port the viewer listens on.
    #[arg(long, value_name = "PORT", default_value_t = 8050, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// The viewer's access token (generated when --host is not loopback
    /// and none is given); printed in the URL as ?token=.
    #[arg(long, value_name = "TOKEN", env = "ORDERFLOW_TOKEN")]
    token: Option<String>,
    #[command(flatten)]
    supervisor: SupervisorArgs,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Supervisor")]
struct SupervisorArgs {
    /// Restart the processor when status.json's heartbeat is older than
    /// this, and the viewer when it has not answered /healthz for this long
    /// (at least 2 s). At least 1000: the processor beats every 500 ms.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1000..))]
    hang_limit_ms: u64,
    /// Time between SIGTERM and SIGKILL when stopping.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    grace_ms: u64,
    /// Processor program (default: orderflow-processor beside this program).
    #[arg(
        long,
        value_name = "PATH",
        env = "ORDERFLOW_PROCESSOR_BIN",
        hide = true
    )]
    processor_bin: Option<PathBuf>,
    /// Viewer program (default: orderflow-viewer beside this program).
    #[arg(long, value_name = "PATH", env = "ORDERFLOW_VIEWER_BIN", hide = true)]
    viewer_bin: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Where the generated capture is kept (generated once).
    #[arg(long, value_name = "DIR", default_value = "demo-data")]
    data: PathBuf,
    /// Hours of market data to generate.
    #[arg(long, value_name = "H", default_value_t = 1.0)]
    hours: f64,
    /// Bar length in seconds.
    #[arg(long, value_name = "N", default_value_t = 10)]
    window_seconds: u64,
    /// Replay speed, X times market time.
    #[arg(long, value_name = "X", default_value = "20")]
    speed: String,
    /// Only generate the demo data, print its paths (BTC-USDT, then ETH-USDT) and exit.
    #[arg(long)]
    prepare_only: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// Exit codes: 0 when every child ended well or a stop (SIGINT/SIGTERM)
/// was carried out, 1 when a child ended failed or on an error (printed as
/// `orderflow: …`).
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("orderflow: {}", orderflow::report::chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let launch = match cli.command {
        Command::Run(args) => {
            check(&args.job, &args.common)?;
            let first = if args.fresh {
                vec!["--fresh".into()]
            } else {
                Vec::new()
            };
            to_launch(args.job.to_argv(), first, args.common)?
        }
        Command::Demo(args) => {
            anyhow::ensure!(
                args.hours > 0.0 && args.hours <= 24.0,
                "--hours must be in (0, 24]"
            );
            eprintln!("orderflow: preparing demo data in {}", args.data.display());
            let dbs = demo::ensure_data(&args.data, args.hours).with_context(|| {
                format!("cannot generate the demo data in {}", args.data.display())
            })?;
            if args.prepare_only {
                for db in &dbs {
                    println!("{}", db.display());
                }
                return Ok(0);
            }
            let job =
                demo::job(&dbs, args.window_seconds, &args.speed).context("demo replay options")?;
            check(&job, &args.common)?;
            // Replay from the start each time the demo is launched, so the
            // candles are seen forming.
            to_launch(job.to_argv(), vec!["--fresh".into()], args.common)?
        }
    };
    let config = launch.config();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The loop runs on this (the main) thread: the children's parent-death
    // signal is tied to the thread that spawns them.
    let outcome = runtime.block_on(async {
        let stop =
            supervise::stop_on_signals().context("cannot install the SIGINT/SIGTERM handlers")?;
        supervise::run(config, stop)
            .await
            .with_context(|| format!("supervisor on {}", launch.out.display()))
    })?;
    Ok(u8::try_from(outcome.exit_code()).unwrap_or(1))
}

/// Refuses a job the processor would refuse, before any child starts
/// (a bad argument would otherwise only show as a crash loop).
fn check(job: &processor::Job, common: &CommonArgs) -> anyhow::Result<()> {
    job.config(
        common.out.clone(),
        orderflow::processor::Start::Resume,
        orderflow::processor::Checkpointing::On,
    )?;
    Ok(())
}

fn to_launch(
    processor_args: Vec<OsString>,
    first_start_args: Vec<OsString>,
    common: CommonArgs,
) -> anyhow::Result<launch::Launch> {
    let programs = launch::Programs::resolve(
        common.supervisor.processor_bin,
        common.supervisor.viewer_bin,
    )?;
    let token = orderflow::viewer::control::token_for(&common.host, common.token.as_deref())
        .map_err(anyhow::Error::msg)?;
    Ok(launch::Launch {
        processor_args,
        first_start_args,
        out: common.out,
        host: common.host,
        port: common.port,
        token,
        programs,
        hang_limit: Duration::from_millis(common.supervisor.hang_limit_ms),
        grace: Duration::from_millis(common.supervisor.grace_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn processor_options_pass_through() {
        let cli = Cli::try_parse_from([
            "orderflow",
            "run",
            "BTC-USDT",
            "2025-01-01",
            "2025-01-02",
            "--window-seconds",
            "10",
            "--speed",
            "max",
            "--data-root",
            "/captures",
            "--db",
            "a.db",
            "b.db",
            "--with",
            "ETH-USDT",
            "--fresh",
            "--port",
            "9000",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let text: Vec<String> = args
            .job
            .to_argv()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // Every option spelled out, the processor's defaults included.
        assert_eq!(
            text,
            [
                "BTC-USDT",
                "2025-01-01",
                "2025-01-02",
                "--window-seconds",
                "10",
                "--max-bars",
                "1000",
                "--depth-levels",
                "50",
                "--data-root",
                "/captures",
                "--flush-ms",
                "100",
                "--speed",
                "max",
                "--with",
                "ETH-USDT",
                "--timeframes",
                "1s,1m,1h,1d",
                "--db",
                "a.db",
                "b.db"
            ]
        );
        assert!(args.fresh);
        assert_eq!(args.common.port, 9000);
        assert!(check(&args.job, &args.common).is_ok());
        // A job the processor would refuse is refused before launch, with
        // the processor's own message.
        let bad =
            Cli::try_parse_from(["orderflow", "run", "X", "2025-01-02", "2025-01-01"]).unwrap();
        let Command::Run(bad) = bad.command else {
            panic!("not run")
        };
        let err = check(&bad.job, &bad.common).unwrap_err().to_string();
        assert_eq!(err, "END_DATE 2025-01-01 is before START_DATE 2025-01-02");
        // A limit under the processor's heartbeat interval would kill it
        // on every start.
        assert!(Cli::try_parse_from(["orderflow", "demo", "--hang-limit-ms", "999"]).is_err());
        // The supervisor must know the port to probe it.
        assert!(Cli::try_parse_from(["orderflow", "demo", "--port", "0"]).is_err());
    }
}
