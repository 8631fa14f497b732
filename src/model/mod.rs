//! The pure model: fixed-point numbers, the order book, rolling bars and the
//! engine that turns rows into bars.
//!
//! Nothing here does I/O or reads a clock, so every rule of the spec's §3
//! is unit- and property-tested here, and the processor's state can be
//! checkpointed by serialising an [`Engine`].

pub mod bars;
pub mod book;
pub mod fixed;
pub mod rolling;

pub use bars::{Candle, Counters, Engine, EngineConfig, MetricBar, OhlcBar, TradeSide};
pub use book::{Book, Level, Side};
pub use fixed::Fixed;
pub use rolling::{Rolling, Timestamped};
