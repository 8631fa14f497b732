//! The `orderflow` application: what only `bin/orderflow.rs` uses, on top
//! of the generic [`crate::supervise`].
//!
//! - [`launch`]: the two children (the processor and the viewer), the
//!   programs they run, their arguments, policies and checks, as a
//!   supervisor [`Config`](crate::supervise::Config).
//! - [`demo`]: the demo data set and the replay `orderflow demo` runs.
//!
//! This module owns the choices that make the supervisor *this*
//! application's: program names, child names, which child is watched by
//! its heartbeat and which by `/healthz`. It starts nothing and parses no
//! command line (the binary does both), and it must not reach into the
//! supervisor's event loop or state machine: it hands over a `Config` and
//! nothing else, so the supervisor stays reusable and testable without
//! these programs.

pub mod demo;
pub mod launch;
