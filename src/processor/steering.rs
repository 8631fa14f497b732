//! Following `control.json` (docs/formats.md, "control.json"): pause,
//! resume, speed, step and jump, as the viewer asked.
//!
//! The replay loop asks [`Steering::poll`] at least every 50 ms (it only
//! stats the file unless it changed) and [`Steering::gate`] before each
//! row. A file that is malformed or written for another run is ignored
//! with one warning. What has been carried out (the last step and jump,
//! and one in progress) is part of the checkpoint ([`Progress`]), so a
//! processor that restarts neither repeats nor forgets them, and a paused
//! replay stays paused.

use crate::ipc::control::Control;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the control file is looked at.
pub const POLL: Duration = Duration::from_millis(40);

/// What of the control file has been carried out (in the checkpoint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Id of the last step taken up.
    pub step: u64,
    /// Id of the last jump taken up.
    pub jump: u64,
    /// A step in progress: rows before this market time are let through.
    pub step_until: Option<i64>,
    /// A jump in progress: rows before this market time go at full speed.
    pub jump_to: Option<i64>,
}

/// What the gate says about the next row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Apply it, paced at the replay speed.
    Paced,
    /// Apply it at once (a step or jump in progress).
    Now,
    /// Paused: wait.
    Wait,
}

/// The replay's steering state.
#[derive(Debug)]
pub struct Steering {
    path: PathBuf,
    run_id: String,
    identity: Option<(u64, u64, i64, i64)>,
    last_poll: Option<Instant>,
    pub paused: bool,
    /// `None`: as fast as possible.
    pub speed: Option<f64>,
    /// Lines to print (warnings, what was obeyed).
    notes: Vec<String>,
}

fn identity(path: &Path) -> Option<(u64, u64, i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// What changed in a poll.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Speed or pause changed: pacing must start again from here.
    pub pace: bool,
    /// Anything a status should show.
    pub status: bool,
}

impl Steering {
    /// Steering from `control` (`OUT/control.json`) for run `run_id`,
    /// starting at the command line's speed.
    pub fn new(control: PathBuf, run_id: String, speed: Option<f64>) -> Steering {
        Steering {
            path: control,
            run_id,
            identity: None,
            last_poll: None,
            paused: false,
            speed,
            notes: Vec::new(),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Notes gathered since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// A run starting from nothing: the steps and jumps already in the
    /// control file are history (of an earlier run with the same id), not
    /// requests; they are recorded as taken up without being carried out.
    pub fn adopt(&mut self, progress: &mut Progress) {
        if let Some(c) = self.read().ok().filter(|c| c.run_id == self.run_id) {
            progress.step = c.step.map_or(0, |s| s.id);
            progress.jump = c.jump.map_or(0, |j| j.id);
        }
    }

    /// The control file, or why it cannot be read.
    fn read(&self) -> Result<Control, String> {
        let bytes = std::fs::read(&self.path).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// Reads the control file if it changed (at most every [`POLL`]
    /// unless `force`). `market` is the newest row applied; `window_ms`
    /// the step unit.
    pub fn poll(
        &mut self,
        progress: &mut Progress,
        market: Option<i64>,
        window_ms: i64,
        force: bool,
    ) -> Changed {
        if !force && self.last_poll.is_some_and(|t| t.elapsed() < POLL) {
            return Changed::default();
        }
        self.last_poll = Some(Instant::now());
        let id = identity(&self.path);
        if id.is_none() || id == self.identity {
            return Changed::default();
        }
        self.identity = id;
        let control = match self.read() {
            Ok(c) => c,
            Err(e) => {
                self.notes
                    .push(format!("ignoring {}: {e}", self.path.display()));
                return Changed::default();
            }
        };
        if control.speed.is_some_and(|x| !(x.is_finite() && x > 0.0)) {
            self.notes.push(format!(
                "ignoring {}: speed {:?} is not a positive number",
                self.path.display(),
                control.speed
            ));
            return Changed::default();
        }
        if control.run_id != self.run_id {
            self.notes.push(format!(
                "ignoring {}: it is for run {}, this is run {}",
                self.path.display(),
                control.run_id,
                self.run_id
            ));
            return Changed::default();
        }
        let mut changed = Changed::default();
        if control.paused != self.paused || control.speed != self.speed {
            changed = Changed {
                pace: true,
                status: true,
            };
            self.paused = control.paused;
            self.speed = control.speed;
        }
        if let Some(step) = control.step.filter(|s| s.id > progress.step) {
            progress.step = step.id;
            if self.paused {
                let w = window_ms;
                // The current window, then `bars` whole windows more.
                let from = market.map_or(i64::MIN / 4, |m| m.div_euclid(w) * w + w);
                let span = i64::try_from(step.bars)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(w);
                progress.step_until = Some(from.saturating_add(span));
                changed.status = true;
            }
        }
        if let Some(jump) = control.jump.filter(|j| j.id > progress.jump) {
            progress.jump = jump.id;
            if market.is_none_or(|m| jump.to_ms > m) {
                progress.jump_to = Some(jump.to_ms);
                changed = Changed {
                    pace: true,
                    status: true,
                };
            }
        }
        changed
    }

    /// What to do with the next row, at market time `ts`; ends a step or
    /// jump the row goes past.
    pub fn gate(&self, progress: &mut Progress, ts: i64) -> Gate {
        if let Some(to) = progress.jump_to {
            if ts < to {
                return Gate::Now;
            }
            progress.jump_to = None;
        }
        if self.paused {
            match progress.step_until {
                Some(until) if ts < until => return Gate::Now,
                Some(_) => progress.step_until = None,
                None => {}
            }
            return Gate::Wait;
        }
        progress.step_until = None;
        Gate::Paced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::control::{Jump, Step};

    fn write(dir: &Path, c: &Control) {
        crate::ipc::write_atomic(dir, "control.json", &serde_json::to_vec(c).unwrap()).unwrap();
    }

    fn control(seq: u64) -> Control {
        Control {
            run_id: "run".into(),
            seq,
            paused: false,
            speed: Some(5.0),
            step: None,
            jump: None,
            written_ms: 0,
        }
    }

    #[test]
    fn pause_step_and_jump_gate_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Steering::new(dir.path().join("control.json"), "run".into(), None);
        let mut p = Progress::default();
        assert_eq!(s.gate(&mut p, 0), Gate::Paced);
        let mut c = control(1);
        c.paused = true;
        write(dir.path(), &c);
        assert!(s.poll(&mut p, Some(1_500), 1_000, true).pace);
        assert_eq!((s.paused, s.speed), (true, Some(5.0)));
        assert_eq!(s.gate(&mut p, 1_600), Gate::Wait);
        // Two windows: the rest of this one, then 2000..4000.
        c.seq = 2;
        c.step = Some(Step { id: 2, bars: 2 });
        write(dir.path(), &c);
        s.poll(&mut p, Some(1_500), 1_000, true);
        assert_eq!(p.step_until, Some(4_000));
        assert_eq!(s.gate(&mut p, 3_999), Gate::Now);
        assert_eq!(s.gate(&mut p, 4_000), Gate::Wait);
        assert_eq!(p.step_until, None);
        // The same step id again is not a new step.
        write(dir.path(), &c);
        s.poll(&mut p, Some(3_999), 1_000, true);
        assert_eq!(p.step_until, None);
        // A jump goes at full speed, then pacing resumes.
        c.seq = 3;
        c.paused = false;
        c.jump = Some(Jump {
            id: 3,
            to_ms: 10_000,
        });
        write(dir.path(), &c);
        s.poll(&mut p, Some(3_999), 1_000, true);
        assert_eq!(s.gate(&mut p, 5_000), Gate::Now);
        assert_eq!(s.gate(&mut p, 10_000), Gate::Paced);
        assert_eq!(p.jump_to, None);
    }

    #[test]
    fn foreign_and_broken_files_are_ignored_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Steering::new(dir.path().join("control.json"), "mine".into(), Some(2.0));
        let mut p = Progress::default();
        let mut c = control(1);
        c.paused = true;
        write(dir.path(), &c);
        s.poll(&mut p, None, 1_000, true);
        assert!(!s.paused);
        assert!(s.take_notes()[0].contains("it is for run run, this is run mine"));
        crate::ipc::write_atomic(dir.path(), "control.json", b"{not json").unwrap();
        s.poll(&mut p, None, 1_000, true);
        assert!(!s.paused && s.speed == Some(2.0));
        assert!(s.take_notes()[0].starts_with("ignoring"));
    }
}
