//! orderflow: replay OKX order-book captures into candles, order-book
//! imbalance (OBI) and cumulative volume delta (CVD) bars, chart them live,
//! and keep it all running.
//!
//! # Layout
//!
//! The library is cut along the pipeline; each module owns one idea and
//! talks to the others through types:
//!
//! - [`model`]: fixed-point numbers, the order book, bars (pure, no I/O).
//! - [`source`]: finding SQLite files, streaming and parsing their rows.
//! - [`ipc`]: the files in `OUT`, the only interface between processes.
//! - [`store`]: the series store: every bar of the run, segmented, by timeframe.
//! - [`processor`]: source → model → ipc, pacing, progress, checkpoint.
//! - [`viewer`]: the HTTP server, its routes, change events and assets.
//! - [`supervise`]: the supervisor's child state machine and process control.
//! - [`app`]: the `orderflow` application: its two children, the demo.
//! - [`addr`]: a bound host and port as clients write them (`host:port`, URL).
//! - [`synth`]: the deterministic data generator for tests, demo and bench.

pub mod addr;
pub mod app;
pub mod ipc;
pub mod model;
pub mod processor;
pub mod report;
pub mod source;
pub mod store;
pub mod supervise;
pub mod synth;
pub mod viewer;
