//! The JSON formats of the files in `OUT` (documented in `docs/formats.md`).
//!
//! Bars are JSON arrays, not objects, because that is the established
//! format other tools already write: `[ts, open, high, low, close, volume]`
//! and `[ts, obi_o, obi_h, obi_l, obi_c, cvd_o, cvd_h, cvd_l, cvd_c]`.
//! A five-column metrics row (the older OBI-only format) is still read.

use crate::model::{MetricBar, OhlcBar, Timestamped};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One row of `ohlc_data.json`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OhlcRow {
    pub ts: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// One row of `metrics_data.json`. `cvd` is `None` in the older
/// five-column format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricRow {
    pub ts: i64,
    pub obi: [f64; 4],
    pub cvd: Option<[f64; 4]>,
}

/// `depth_data.json`: best levels per side, best first, `[price, size]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Depth {
    pub bids: Vec<[f64; 2]>,
    pub asks: Vec<[f64; 2]>,
}

impl Timestamped for OhlcRow {
    fn ts(&self) -> i64 {
        self.ts
    }
}

impl Timestamped for MetricRow {
    fn ts(&self) -> i64 {
        self.ts
    }
}

impl From<&OhlcBar> for OhlcRow {
    fn from(b: &OhlcBar) -> OhlcRow {
        OhlcRow {
            ts: b.ts,
            open: b.open.to_f64(),
            high: b.high.to_f64(),
            low: b.low.to_f64(),
            close: b.close.to_f64(),
            volume: b.volume.to_f64(),
        }
    }
}

impl From<&MetricBar> for MetricRow {
    fn from(b: &MetricBar) -> MetricRow {
        MetricRow {
            ts: b.ts,
            obi: [b.obi.open, b.obi.high, b.obi.low, b.obi.close],
            cvd: Some([
                b.cvd.open.to_f64(),
                b.cvd.high.to_f64(),
                b.cvd.low.to_f64(),
                b.cvd.close.to_f64(),
            ]),
        }
    }
}

impl Serialize for OhlcRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            self.ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        )
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for OhlcRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OhlcRow, D::Error> {
        let (ts, open, high, low, close, volume) =
            <(f64, f64, f64, f64, f64, f64)>::deserialize(d)?;
        Ok(OhlcRow {
            ts: ts_from(ts)?,
            open,
            high,
            low,
            close,
            volume,
        })
    }
}

impl Serialize for MetricRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let [o, h, l, c] = self.obi;
        match self.cvd {
            Some([co, ch, cl, cc]) => (self.ts, o, h, l, c, co, ch, cl, cc).serialize(s),
            None => (self.ts, o, h, l, c).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for MetricRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MetricRow, D::Error> {
        let v = Vec::<f64>::deserialize(d)?;
        let cvd = match v.len() {
            5 => None,
            9 => Some([v[5], v[6], v[7], v[8]]),
            n => {
                return Err(D::Error::custom(format!(
                    "metrics row has {n} columns, expected 5 or 9"
                )))
            }
        };
        Ok(MetricRow {
            ts: ts_from(v[0])?,
            obi: [v[1], v[2], v[3], v[4]],
            cvd,
        })
    }
}

fn ts_from<E: serde::de::Error>(ts: f64) -> Result<i64, E> {
    if ts.is_finite() && ts.fract() == 0.0 {
        Ok(ts as i64)
    } else {
        Err(E::custom(format!(
            "timestamp {ts} is not a whole number of milliseconds"
        )))
    }
}

/// Processor run state in `status.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Finished,
    Failed,
    /// Stopped by a signal before the end; starting it again resumes.
    Stopped,
}

/// `status.json`: what the processor is doing, refreshed at least once a
/// second while it is alive (`heartbeat_ms`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: RunState,
    pub instrument: String,
    pub start_date: String,
    pub end_date: String,
    pub window_seconds: u64,
    /// 0‒1, by input rows.
    pub progress: f64,
    pub rows_done: u64,
    pub rows_total: u64,
    pub rows_per_second: f64,
    /// Market time of the last row applied, Unix ms.
    pub market_time_ms: Option<i64>,
    pub skipped_rows: u64,
    /// Rows applied with a warning (trades of unknown side).
    pub warnings: u64,
    /// Replay speed: `null` for as fast as possible.
    pub speed: Option<f64>,
    /// Paused through `control.json`.
    #[serde(default)]
    pub paused: bool,
    /// Identifies the run (its arguments and input files): the same after
    /// a restart, so `control.json` written for it still applies.
    #[serde(default)]
    pub run_id: String,
    pub pid: u32,
    /// Wall clock of the last refresh, Unix ms.
    pub heartbeat_ms: i64,
    pub started_ms: i64,
    /// Why the run failed, or a note on how it ended.
    pub message: Option<String>,
}

/// A supervised child's state in `supervisor.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildState {
    Starting,
    Running,
    Backoff,
    Finished,
    Failed,
    Stopping,
    Stopped,
}

/// One child in `supervisor.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildStatus {
    pub name: String,
    pub pid: Option<u32>,
    pub state: ChildState,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// The last line the child wrote to stderr before it last failed (its
    /// error message, e.g. a full disk), when it failed.
    #[serde(default)]
    pub last_error: Option<String>,
    pub since_ms: i64,
}

/// `supervisor.json`: the supervisor and its children.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    pub pid: u32,
    pub started_ms: i64,
    pub updated_ms: i64,
    pub url: Option<String>,
    pub children: Vec<ChildStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_arrays() {
        let r = OhlcRow {
            ts: 60000,
            open: 1.5,
            high: 2.0,
            low: 1.0,
            close: 1.25,
            volume: 0.1,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "[60000,1.5,2.0,1.0,1.25,0.1]"
        );
        let back: OhlcRow = serde_json::from_str("[60000,1.5,2,1,1.25,0.1]").unwrap();
        assert_eq!(back, r);
        let m = MetricRow {
            ts: 0,
            obi: [0.1, 0.2, -0.1, 0.0],
            cvd: Some([1.0, 2.0, 0.5, 1.5]),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, "[0,0.1,0.2,-0.1,0.0,1.0,2.0,0.5,1.5]");
        assert_eq!(serde_json::from_str::<MetricRow>(&text).unwrap(), m);
    }

    #[test]
    fn reads_the_older_five_column_metrics() {
        let m: MetricRow = serde_json::from_str("[1000,0.1,0.2,-0.1,0]").unwrap();
        assert_eq!(m.cvd, None);
        assert!(serde_json::from_str::<MetricRow>("[1000,0.1,0.2]").is_err());
        assert!(serde_json::from_str::<OhlcRow>("[1.5,1,1,1,1,1]").is_err());
    }
}
