//! Progress for people: a progress bar with rate and ETA on a terminal, a
//! log line every few seconds otherwise (under the supervisor, whose log
//! files keep them).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Reports progress to stderr.
pub struct Progress {
    /// Whether stderr is a terminal (a bar) or not (log lines).
    terminal: bool,
    /// Created on the first update, so nothing is drawn before the run
    /// has said what it is doing.
    bar: Option<ProgressBar>,
    label: String,
    last_line: Instant,
}

const LINE_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    pub fn new(label: &str) -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            bar: None,
            label: label.to_string(),
            last_line: Instant::now(),
        }
    }

    /// `done` rows of `total`; `market` is the market time reached.
    pub fn update(&mut self, done: u64, total: u64, rate: f64, market: &str) {
        if self.terminal && self.bar.is_none() {
            let bar =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(8));
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:32.cyan/blue}] {percent:>3}% {human_pos}/{human_len} rows · ETA {eta} · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(self.label.clone());
            self.bar = Some(bar);
        }
        match &self.bar {
            Some(bar) => {
                bar.set_length(total.max(done));
                bar.set_position(done);
                bar.set_message(format!("{} rows/s · market {market}", human_rate(rate)));
            }
            None => {
                if self.last_line.elapsed() >= LINE_EVERY {
                    self.last_line = Instant::now();
                    let pct = if total > 0 {
                        done as f64 * 100.0 / total as f64
                    } else {
                        0.0
                    };
                    eprintln!(
                        "progress {pct:5.1}% · {done} rows · {rate:.0} rows/s · market {market}"
                    );
                }
            }
        }
    }

    /// Prints a message without tearing the bar.
    pub fn println(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// `812`, `34.6k`, `1.25M`.
fn human_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

/// `2022-05-13 00:12:00.123 UTC`, or `—` before the first row.
pub fn market_time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| "—".to_string())
}
