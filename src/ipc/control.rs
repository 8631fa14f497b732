//! `control.json`: how a replay is steered (docs/formats.md, "control.json").
//!
//! The one file the viewer writes (atomically, like every file here); the
//! processor reads it at least every 50 ms and obeys. It carries the whole
//! wished-for state (paused, speed) plus the last step and jump asked for,
//! each with an id so that a processor that restarts does not do them
//! twice. It names the run it is for (`run_id`, from `status.json`): a
//! file left by another run is ignored.
//!
//! [`Control::apply`] is the one place that turns a request into the next
//! control state, with the checks that need the processor's status.

use serde::{Deserialize, Serialize};

/// The control state of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// The run it is for (`status.json`'s `run_id`).
    pub run_id: String,
    /// Increases with every write.
    pub seq: u64,
    pub paused: bool,
    /// Replay speed, `null` for as fast as possible.
    pub speed: Option<f64>,
    /// The last step asked for.
    pub step: Option<Step>,
    /// The last jump asked for.
    pub jump: Option<Jump>,
    pub written_ms: i64,
}

/// While paused: finish the current window and `bars` whole windows more
/// (the chart gains `bars` bars), then pause again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub id: u64,
    pub bars: u64,
}

/// Run at full speed until market time `to_ms`, then go on at the set speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jump {
    pub id: u64,
    pub to_ms: i64,
}

/// A request to `POST /api/control`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    Pause,
    Resume,
    Speed { speed: SpeedValue },
    Step { bars: u64 },
    Jump { to_ms: i64 },
}

/// A speed: a positive number or `"max"`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SpeedValue {
    Times(f64),
    Max(MaxWord),
}

/// The word `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxWord {
    Max,
}

/// Why a request cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a valid request (400).
    #[error("{0}")]
    Invalid(String),
    /// Valid, but not now (409).
    #[error("{0}")]
    Conflict(String),
}

/// The processor's state the checks need.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub run_id: String,
    pub market_time_ms: Option<i64>,
    pub paused: bool,
    pub speed: Option<f64>,
    pub running: bool,
}

impl Control {
    /// The state before any request: as the processor runs now.
    pub fn initial(run: &RunView) -> Control {
        Control {
            run_id: run.run_id.clone(),
            seq: 0,
            paused: run.paused,
            speed: run.speed,
            step: None,
            jump: None,
            written_ms: 0,
        }
    }

    /// The control state after `action`, from `self` (the current file,
    /// for this run) and the processor's state.
    pub fn apply(&self, action: &Action, run: &RunView, now_ms: i64) -> Result<Control, Refused> {
        if !run.running {
            return Err(Refused::Conflict(
                "the replay is not running (it finished, failed or was stopped)".into(),
            ));
        }
        let mut next = Control {
            run_id: run.run_id.clone(),
            seq: self.seq + 1,
            written_ms: now_ms,
            ..self.clone()
        };
        let id = self.seq + 1;
        match *action {
            Action::Pause => next.paused = true,
            Action::Resume => next.paused = false,
            Action::Speed { speed } => {
                next.speed = match speed {
                    SpeedValue::Max(_) => None,
                    SpeedValue::Times(x) if x.is_finite() && x > 0.0 => Some(x),
                    SpeedValue::Times(x) => {
                        return Err(Refused::Invalid(format!(
                            "speed {x} is neither \"max\" nor a positive number"
                        )))
                    }
                }
            }
            Action::Step { bars } => {
                if bars == 0 || bars > 100_000 {
                    return Err(Refused::Invalid(format!(
                        "bars {bars} must be from 1 to 100000"
                    )));
                }
                if !run.paused && !self.paused {
                    return Err(Refused::Conflict(
                        "step works on a paused replay; pause it first".into(),
                    ));
                }
                next.step = Some(Step { id, bars });
            }
            Action::Jump { to_ms } => {
                if let Some(at) = run.market_time_ms {
                    if to_ms <= at {
                        return Err(Refused::Conflict(format!(
                            "market time is already at {at}; a jump only goes forward (to_ms {to_ms})"
                        )));
                    }
                }
                next.jump = Some(Jump { id, to_ms });
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(paused: bool) -> RunView {
        RunView {
            run_id: "r1".into(),
            market_time_ms: Some(1_000),
            paused,
            speed: Some(10.0),
            running: true,
        }
    }

    fn act(text: &str) -> Action {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn requests_become_control_states() {
        let c = Control::initial(&run(false));
        let p = c
            .apply(&act(r#"{"action":"pause"}"#), &run(false), 5)
            .unwrap();
        assert!(p.paused);
        assert_eq!((p.seq, p.written_ms, p.speed), (1, 5, Some(10.0)));
        let s = p
            .apply(&act(r#"{"action":"step","bars":3}"#), &run(true), 6)
            .unwrap();
        assert_eq!(s.step, Some(Step { id: 2, bars: 3 }));
        let m = s
            .apply(&act(r#"{"action":"speed","speed":"max"}"#), &run(true), 7)
            .unwrap();
        assert_eq!(m.speed, None);
        let x = m
            .apply(&act(r#"{"action":"speed","speed":2.5}"#), &run(true), 7)
            .unwrap();
        assert_eq!(x.speed, Some(2.5));
        let j = x
            .apply(&act(r#"{"action":"jump","to_ms":5000}"#), &run(true), 8)
            .unwrap();
        assert_eq!(j.jump, Some(Jump { id: 5, to_ms: 5000 }));
        let r = j
            .apply(&act(r#"{"action":"resume"}"#), &run(true), 9)
            .unwrap();
        assert!(!r.paused);
        assert_eq!(
            r.step,
            Some(Step { id: 2, bars: 3 }),
            "the last step stays on record"
        );
    }

    #[test]
    fn bad_and_untimely_requests_are_refused() {
        let c = Control::initial(&run(false));
        let conflict = |a: &str, r: RunView| match c.apply(&act(a), &r, 0) {
            Err(Refused::Conflict(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            conflict(r#"{"action":"jump","to_ms":1000}"#, run(false)).contains("only goes forward")
        );
        assert!(conflict(r#"{"action":"step","bars":1}"#, run(false)).contains("pause it first"));
        let mut done = run(false);
        done.running = false;
        assert!(conflict(r#"{"action":"pause"}"#, done).contains("not running"));
        assert!(matches!(
            c.apply(&act(r#"{"action":"speed","speed":0}"#), &run(false), 0),
            Err(Refused::Invalid(_))
        ));
        for bad in [
            r#"{"action":"fly"}"#,
            r#"{"action":"speed","speed":"fast"}"#,
            r#"{"action":"step"}"#,
            r#"{"action":"step","bars":1,"bar":2}"#,
        ] {
            assert!(serde_json::from_str::<Action>(bad).is_err(), "{bad}");
        }
    }
}
