//! The processor's command line and its validated configuration.
//!
//! Two stages: [`Args`] is what clap parses (no I/O, no checks beyond
//! syntax); [`Args::validate`] turns it into a [`Config`] whose fields are
//! known to be consistent, or a [`ConfigError`] naming the argument.
//! [`Job`], the part of [`Args`] that says what to replay, is also
//! flattened into `orderflow run`, which validates it the same way and
//! hands it on with [`Job::to_argv`]: one definition of every option and
//! default for both commands.

use crate::store::{Timeframe, TimeframeError};
use chrono::NaiveDate;
use clap::Args as ClapArgs;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// What to replay and how: the options `orderflow-processor` and
/// `orderflow run` share. The supervisor parses them with the same
/// definitions and defaults and hands them on with [`Job::to_argv`], so a
/// bad value is refused before any child starts.
#[derive(Clone, Debug, ClapArgs)]
pub struct Job {
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

    /// Rewrite the output files at most this often while running (at
    /// `--speed max`, less often, up to once a second, when building a
    /// flush would take more than a twentieth of the replay's time).
    #[arg(
        long,
        default_value_t = 100,
        value_name = "MS",
        help_heading = "Output"
    )]
    pub flush_ms: u64,

    /// A reference instrument replayed beside the first (repeatable): same
    /// dates and data root, rows merged by timestamp, its own book, OBI
    /// and CVD, kept in the series store.
    #[arg(
        long = "with",
        value_name = "INSTRUMENT",
        help_heading = "Series store"
    )]
    pub with: Vec<String>,
    /// Timeframes kept in the series store for every instrument (s, m, h, d).
    #[arg(
        long,
        default_value = crate::store::DEFAULT_TIMEFRAMES,
        value_name = "TF,…",
        help_heading = "Series store"
    )]
    pub timeframes: String,
    /// Price bucket of the footprint (e.g. 0.5); default: the smallest
    /// price step seen in each instrument's trades.
    #[arg(long, value_name = "PRICE", help_heading = "Series store")]
    pub footprint_tick: Option<String>,

    /// Replay speed: `max`, or a multiple of market time (e.g. 10).
    #[arg(
        long,
        default_value = "max",
        value_name = "max|X",
        help_heading = "Replay"
    )]
    pub speed: String,
}

impl Job {
    /// Parses a job from command-line words (without a program name), with
    /// the same definitions and defaults as the command line.
    pub fn from_argv<I, T>(argv: I) -> Result<Job, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Words {
            #[command(flatten)]
            job: Job,
        }
        let words = std::iter::once(OsString::from("job")).chain(argv.into_iter().map(Into::into));
        Ok(<Words as clap::Parser>::try_parse_from(words)?.job)
    }

    /// The command-line words that give this job back (every option
    /// spelled out, `--db` last since it takes several values).
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![
            self.instrument.clone().into(),
            self.start_date.clone().into(),
            self.end_date.clone().into(),
        ];
        let mut opt = |name: &str, value: OsString| {
            argv.push(name.into());
            argv.push(value);
        };
        opt("--window-seconds", self.window_seconds.to_string().into());
        opt("--max-bars", self.max_bars.to_string().into());
        opt("--depth-levels", self.depth_levels.to_string().into());
        if let Some(n) = self.obi_levels {
            opt("--obi-levels", n.to_string().into());
        }
        opt("--data-root", self.data_root.clone().into_os_string());
        opt("--flush-ms", self.flush_ms.to_string().into());
        opt("--speed", self.speed.clone().into());
        for w in &self.with {
            opt("--with", w.clone().into());
        }
        opt("--timeframes", self.timeframes.clone().into());
        if let Some(t) = &self.footprint_tick {
            opt("--footprint-tick", t.clone().into());
        }
        if !self.db.is_empty() {
            argv.push("--db".into());
            argv.extend(self.db.iter().map(|p| p.clone().into_os_string()));
        }
        argv
    }
}

/// The processor's command line: a [`Job`] and where and how to keep
/// its results.
#[derive(Clone, Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub job: Job,
    /// Output directory for the JSON files.
    #[arg(
        long,
        default_value = "./out",
        value_name = "DIR",
        help_heading = "Output"
    )]
    pub out: PathBuf,
    /// Ignore an existing checkpoint and start over (the series store is
    /// replaced too).
    #[arg(long, help_heading = "Replay")]
    pub fresh: bool,
    /// Do not keep a checkpoint (benchmarks only: a crash then loses the run).
    #[arg(long, hide = true)]
    pub no_checkpoint: bool,
}

/// The longest bar: a year (longer windows make no sense for a replay,
/// and bar arithmetic in milliseconds must stay far from `i64` overflow).
pub const MAX_WINDOW_SECONDS: u64 = 366 * 86_400;

/// Where the input files come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inputs {
    /// Search this directory.
    Discover(PathBuf),
    /// Exactly these files.
    Files(Vec<PathBuf>),
}

/// Whether a run continues from an existing checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Resume from the checkpoint in `OUT` when there is one.
    Resume,
    /// Ignore it and start over (`--fresh`).
    Fresh,
}

/// Whether the run keeps a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpointing {
    On,
    /// Benchmarks only: a crash then loses the run.
    Off,
}

/// A validated processor configuration: built only by [`Job::config`],
/// so its fields are known to be consistent; read through its methods.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The primary instrument (the rolling files are its).
    pub(crate) instrument: String,
    /// Reference instruments, in the order given.
    pub(crate) with: Vec<String>,
    /// Timeframes of the series store, shortest first.
    pub(crate) timeframes: Vec<Timeframe>,
    /// Footprint price bucket; `None`: the smallest step seen.
    pub(crate) footprint_tick: Option<crate::model::Fixed>,
    pub(crate) start: NaiveDate,
    pub(crate) end: NaiveDate,
    pub(crate) window_seconds: u64,
    pub(crate) max_bars: usize,
    pub(crate) depth_levels: usize,
    pub(crate) obi_levels: Option<usize>,
    pub(crate) inputs: Inputs,
    pub(crate) out: PathBuf,
    pub(crate) flush: Duration,
    /// `None`: as fast as possible.
    pub(crate) speed: Option<f64>,
    pub(crate) start_mode: Start,
    pub(crate) checkpointing: Checkpointing,
}

impl Config {
    /// The primary instrument.
    pub fn instrument(&self) -> &str {
        &self.instrument
    }

    /// First and last UTC day.
    pub fn dates(&self) -> (NaiveDate, NaiveDate) {
        (self.start, self.end)
    }

    /// The output directory.
    pub fn out(&self) -> &std::path::Path {
        &self.out
    }

    /// Every instrument of the run: the primary first, then `--with`.
    pub fn instruments(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.instrument.as_str()).chain(self.with.iter().map(String::as_str))
    }

    pub fn fresh(&self) -> bool {
        self.start_mode == Start::Fresh
    }

    pub fn checkpoint(&self) -> bool {
        self.checkpointing == Checkpointing::On
    }

    pub fn window_ms(&self) -> i64 {
        self.window_seconds as i64 * 1000
    }

    /// Market-time bounds `[start 00:00, end+1 00:00)` in Unix ms.
    pub fn bounds_ms(&self) -> (i64, i64) {
        let lo = crate::model::day_start_ms(self.start);
        let hi = crate::model::day_start_ms(self.end) + 86_400_000;
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
    #[error("--{arg} must be at most {max}")]
    TooLarge { arg: &'static str, max: u64 },
    #[error("--speed {0:?} is neither `max` nor a positive number")]
    Speed(String),
    #[error(
        "{arg} {value:?} is not an instrument name: it must not be empty, `.`, `..` or contain '/'"
    )]
    Instrument { arg: &'static str, value: String },
    #[error("--with {0} names an instrument the run already has")]
    DuplicateInstrument(String),
    #[error("--timeframes: {0}")]
    Timeframes(#[from] TimeframeError),
    #[error("--footprint-tick {0:?} is not a positive price")]
    FootprintTick(String),
}

impl Args {
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let start = if self.fresh {
            Start::Fresh
        } else {
            Start::Resume
        };
        let checkpointing = if self.no_checkpoint {
            Checkpointing::Off
        } else {
            Checkpointing::On
        };
        self.job.config(self.out.clone(), start, checkpointing)
    }
}

impl Job {
    /// The validated configuration of this job writing to `out`, or the
    /// first bad argument, named.
    pub fn config(
        &self,
        out: PathBuf,
        start_mode: Start,
        checkpointing: Checkpointing,
    ) -> Result<Config, ConfigError> {
        let job = self;
        let date = |arg: &'static str, value: &str| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| ConfigError::Date {
                arg,
                value: value.to_string(),
            })
        };
        let start = date("START_DATE", &job.start_date)?;
        let end = date("END_DATE", &job.end_date)?;
        if end < start {
            return Err(ConfigError::EndBeforeStart { start, end });
        }
        let name_ok = |n: &str| !(n.is_empty() || n == "." || n == ".." || n.contains('/'));
        if !name_ok(&job.instrument) {
            return Err(ConfigError::Instrument {
                arg: "INSTRUMENT",
                value: job.instrument.clone(),
            });
        }
        for (i, w) in job.with.iter().enumerate() {
            if !name_ok(w) {
                return Err(ConfigError::Instrument {
                    arg: "--with",
                    value: w.clone(),
                });
            }
            if *w == job.instrument || job.with[..i].contains(w) {
                return Err(ConfigError::DuplicateInstrument(w.clone()));
            }
        }
        let timeframes = Timeframe::parse_list(&job.timeframes)?;
        let footprint_tick = match &job.footprint_tick {
            None => None,
            Some(t) => match crate::model::Fixed::parse(t.trim()) {
                Some(f) if f.is_positive() => Some(f),
                _ => return Err(ConfigError::FootprintTick(t.clone())),
            },
        };
        for (arg, v) in [
            ("window-seconds", job.window_seconds as usize),
            ("max-bars", job.max_bars),
            ("depth-levels", job.depth_levels),
            ("flush-ms", job.flush_ms as usize),
            ("obi-levels", job.obi_levels.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero { arg });
            }
        }
        if job.window_seconds > MAX_WINDOW_SECONDS {
            return Err(ConfigError::TooLarge {
                arg: "window-seconds",
                max: MAX_WINDOW_SECONDS,
            });
        }
        let speed = match job.speed.as_str() {
            "max" => None,
            s => match s.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Some(x),
                _ => return Err(ConfigError::Speed(s.to_string())),
            },
        };
        Ok(Config {
            instrument: job.instrument.clone(),
            with: job.with.clone(),
            timeframes,
            footprint_tick,
            start,
            end,
            window_seconds: job.window_seconds,
            max_bars: job.max_bars,
            depth_levels: job.depth_levels,
            obi_levels: job.obi_levels,
            inputs: if job.db.is_empty() {
                Inputs::Discover(job.data_root.clone())
            } else {
                Inputs::Files(job.db.clone())
            },
            out,
            flush: Duration::from_millis(job.flush_ms),
            speed,
            start_mode,
            checkpointing,
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
    fn a_job_survives_its_own_argv() {
        let job = Job::from_argv([
            "ETH-USDT",
            "2022-05-13",
            "2022-05-14",
            "--obi-levels",
            "5",
            "--speed",
            "2.5",
            "--db",
            "a.db",
            "b.db",
            "--max-bars",
            "7",
            "--with",
            "BTC-USDT",
            "--timeframes",
            "1m,5s",
        ])
        .unwrap();
        let argv = job.to_argv();
        let again = Job::from_argv(argv.clone()).unwrap();
        assert_eq!(again.to_argv(), argv);
        let config = |job: Job| {
            job.config("o".into(), Start::Resume, Checkpointing::On)
                .unwrap()
        };
        let c = config(again);
        assert_eq!(c, config(job));
        assert_eq!((c.obi_levels, c.max_bars, c.speed), (Some(5), 7, Some(2.5)));
        assert_eq!(c.inputs, Inputs::Files(vec!["a.db".into(), "b.db".into()]));
        assert_eq!(c.with, ["BTC-USDT"]);
        assert_eq!(c.timeframes, Timeframe::parse_list("5s,1m").unwrap());
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
        assert_eq!(
            parse(&[
                "X",
                "2022-05-13",
                "2022-05-13",
                "--window-seconds",
                "31622401"
            ])
            .unwrap_err()
            .to_string(),
            "--window-seconds must be at most 31622400"
        );
        assert!(parse(&[
            "X",
            "2022-05-13",
            "2022-05-13",
            "--window-seconds",
            "31622400"
        ])
        .is_ok());
        // A slow but valid speed: pacing must not overflow (it waits).
        assert_eq!(
            parse(&["X", "2022-05-13", "2022-05-13", "--speed", "1e-300"])
                .unwrap()
                .speed,
            Some(1e-300)
        );
        let c = parse(&["X", "2022-05-13", "2022-05-13"]).unwrap();
        assert_eq!(c.timeframes, Timeframe::parse_list("1s,1m,1h,1d").unwrap());
        assert_eq!(c.instruments().collect::<Vec<_>>(), ["X"]);
        for (bad, want) in [
            (
                "7x",
                "--timeframes: \"7x\" is not a timeframe: it does not end in s, m, h or d",
            ),
            ("0s", "--timeframes: \"0s\" is not a timeframe: it is zero"),
            (
                "1.5s",
                "--timeframes: \"1.5s\" is not a timeframe: it does not start with a whole number",
            ),
        ] {
            let err = parse(&["X", "2022-05-13", "2022-05-13", "--timeframes", bad])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{err}");
        }
        assert_eq!(
            parse(&["X", "2022-05-13", "2022-05-13", "--with", "X"]),
            Err(ConfigError::DuplicateInstrument("X".into()))
        );
        assert!(matches!(
            parse(&["X", "2022-05-13", "2022-05-13", "--with", ".."]),
            Err(ConfigError::Instrument { arg: "--with", .. })
        ));
        let c = parse(&[
            "X",
            "2022-05-13",
            "2022-05-13",
            "--with",
            "Y",
            "--with",
            "Z",
        ])
        .unwrap();
        assert_eq!(c.instruments().collect::<Vec<_>>(), ["X", "Y", "Z"]);
        let err = parse(&["X", "2022-05-13", "2022-05-12"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("END_DATE 2022-05-12 is before START_DATE 2022-05-13"),
            "{err}"
        );
    }
}
