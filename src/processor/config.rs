//! The processor's command line and its validated configuration.
//!
//! Two stages: [`Args`] is what clap parses (no I/O, no checks beyond
//! syntax); [`Args::validate`] turns it into a [`Config`] whose fields are
//! known to be consistent, or a [`ConfigError`] naming the argument.

use chrono::NaiveDate;
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::time::Duration;

/// Options shared by `orderflow-processor` and `orderflow run`.
#[derive(Clone, Debug, ClapArgs)]
pub struct Args {
    /// Instrument to replay, exactly as in the file names (e.g. BTC-USDT).
    #[arg(value_name = "INSTRUMENT")]
    pub instrument: String,
    /// First UTC day to replay (YYYY-MM-DD).
    #[arg(value_name = "START_DATE")]
    pub start_date: String,
    /// Last UTC day to replay, inclusive (YYYY-MM-DD).
    #[arg(value_name = "END_DATE")]
    pub end_date: String,

    /// Bar length in seconds.
    #[arg(
        long,
        default_value_t = 60,
        value_name = "SECONDS",
        help_heading = "Bars"
    )]
    pub window_seconds: u64,
    /// Bars kept in each output file (a rolling window).
    #[arg(long, default_value_t = 1000, value_name = "N", help_heading = "Bars")]
    pub max_bars: usize,
    /// Price levels per side in depth_data.json.
    #[arg(long, default_value_t = 50, value_name = "N", help_heading = "Bars")]
    pub depth_levels: usize,
    /// Order-book imbalance over the best N levels per side [default: whole book].
    #[arg(long, value_name = "N", help_heading = "Bars")]
    pub obi_levels: Option<usize>,

    /// Where to search for capture files (recursively).
    #[arg(
        long,
        env = "ORDERFLOW_DATA_ROOT",
        default_value = "../data/OKX",
        value_name = "DIR",
        help_heading = "Input"
    )]
    pub data_root: PathBuf,
    /// Read exactly these files instead of searching the data root.
    #[arg(long, num_args = 1.., value_name = "FILE", help_heading = "Input")]
    pub db: Vec<PathBuf>,

    /// Output directory for the JSON files.
    #[arg(
        long,
        default_value = "./out",
        value_name = "DIR",
        help_heading = "Output"
    )]
    pub out: PathBuf,
    /// Rewrite the output files at most this often while running.
    #[arg(
        long,
        default_value_t = 100,
        value_name = "MS",
        help_heading = "Output"
    )]
    pub flush_ms: u64,

    /// Replay speed: `max`, or a multiple of market time (e.g. 10).
    #[arg(
        long,
        default_value = "max",
        value_name = "max|X",
        help_heading = "Replay"
    )]
    pub speed: String,
    /// Ignore an existing checkpoint and start over.
    #[arg(long, help_heading = "Replay")]
    pub fresh: bool,
    /// Do not keep a checkpoint (benchmarks only: a crash then loses the run).
    #[arg(long, hide = true)]
    pub no_checkpoint: bool,
}

/// Where the input files come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inputs {
    /// Search this directory.
    Discover(PathBuf),
    /// Exactly these files.
    Files(Vec<PathBuf>),
}

/// A validated processor configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub instrument: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub window_seconds: u64,
    pub max_bars: usize,
    pub depth_levels: usize,
    pub obi_levels: Option<usize>,
    pub inputs: Inputs,
    pub out: PathBuf,
    pub flush: Duration,
    /// `None`: as fast as possible.
    pub speed: Option<f64>,
    pub fresh: bool,
    pub checkpoint: bool,
}

impl Config {
    pub fn window_ms(&self) -> i64 {
        self.window_seconds as i64 * 1000
    }

    /// Market-time bounds `[start 00:00, end+1 00:00)` in Unix ms.
    pub fn bounds_ms(&self) -> (i64, i64) {
        let lo = crate::synth::day_start_ms(self.start);
        let hi = crate::synth::day_start_ms(self.end) + 86_400_000;
        (lo, hi)
    }
}

/// A bad argument, named.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{arg} {value:?} is not a date; use YYYY-MM-DD")]
    Date { arg: &'static str, value: String },
    #[error("END_DATE {end} is before START_DATE {start}")]
    EndBeforeStart { start: NaiveDate, end: NaiveDate },
    #[error("--{arg} must be at least 1")]
    Zero { arg: &'static str },
    #[error("--speed {0:?} is neither `max` nor a positive number")]
    Speed(String),
    #[error("INSTRUMENT must not be empty or contain '/'")]
    Instrument,
}

impl Args {
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let date = |arg: &'static str, value: &str| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| ConfigError::Date {
                arg,
                value: value.to_string(),
            })
        };
        let start = date("START_DATE", &self.start_date)?;
        let end = date("END_DATE", &self.end_date)?;
        if end < start {
            return Err(ConfigError::EndBeforeStart { start, end });
        }
        if self.instrument.is_empty() || self.instrument.contains('/') {
            return Err(ConfigError::Instrument);
        }
        for (arg, v) in [
            ("window-seconds", self.window_seconds as usize),
            ("max-bars", self.max_bars),
            ("depth-levels", self.depth_levels),
            ("flush-ms", self.flush_ms as usize),
            ("obi-levels", self.obi_levels.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero { arg });
            }
        }
        let speed = match self.speed.as_str() {
            "max" => None,
            s => match s.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Some(x),
                _ => return Err(ConfigError::Speed(s.to_string())),
            },
        };
        Ok(Config {
            instrument: self.instrument.clone(),
            start,
            end,
            window_seconds: self.window_seconds,
            max_bars: self.max_bars,
            depth_levels: self.depth_levels,
            obi_levels: self.obi_levels,
            inputs: if self.db.is_empty() {
                Inputs::Discover(self.data_root.clone())
            } else {
                Inputs::Files(self.db.clone())
            },
            out: self.out.clone(),
            flush: Duration::from_millis(self.flush_ms),
            speed,
            fresh: self.fresh,
            checkpoint: !self.no_checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["p"];
        all.extend_from_slice(argv);
        Cli::parse_from(all).args.validate()
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn validates_each_argument_by_name() {
        let c = parse(&["BTC-USDT", "2022-05-13", "2022-05-14", "--speed", "12.5"]).unwrap();
        assert_eq!(c.speed, Some(12.5));
        assert_eq!(c.window_ms(), 60_000);
        assert_eq!(c.bounds_ms().1 - c.bounds_ms().0, 2 * 86_400_000);
        assert_eq!(
            parse(&["X", "2022-05-13", "2022-05-12"]),
            Err(ConfigError::EndBeforeStart {
                start: NaiveDate::from_ymd_opt(2022, 5, 13).unwrap(),
                end: NaiveDate::from_ymd_opt(2022, 5, 12).unwrap()
            })
        );
        assert!(matches!(
            parse(&["X", "2022-5-13x", "2022-05-12"]),
            Err(ConfigError::Date {
                arg: "START_DATE",
                ..
            })
        ));
        assert_eq!(
            parse(&["X", "2022-05-13", "2022-05-13", "--speed", "0"]),
            Err(ConfigError::Speed("0".into()))
        );
        assert_eq!(
            parse(&["X", "2022-05-13", "2022-05-13", "--window-seconds", "0"]),
            Err(ConfigError::Zero {
                arg: "window-seconds"
            })
        );
        let err = parse(&["X", "2022-05-13", "2022-05-12"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("END_DATE 2022-05-12 is before START_DATE 2022-05-13"),
            "{err}"
        );
    }
}
